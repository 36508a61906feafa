"""``venue:SYMBOL`` source strings + configuration -> :class:`feeds.base.Feed` objects.

Venues: ``binance-usdm`` and ``bybit-linear`` (endpoints from ``[venues.<venue>]``), and ``demo``,
which starts the embedded exchange simulator in-process (once per factory, shared by every demo
symbol) and connects the real Binance USDⓈ-M adapter to it, so the demo runs live-session code.
Symbols of one venue given together share one feed (one connection set).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app.config import ConfigError, parse_source, venue_endpoints
from app.core.instrument import Instrument
from feeds.base import Feed, FeedCounters, FeedSink

DEMO = "demo"
BINANCE_USDM = "binance-usdm"
BYBIT_LINEAR = "bybit-linear"
DEMO_VENUE = BINANCE_USDM  # the adapter (and wire format) the demo symbols are served with


class VenueAlias:
    """A feed shown under another venue name (``demo`` runs the Binance adapter but says ``demo``)."""

    def __init__(self, feed: Feed, venue: str) -> None:
        self.feed = feed
        self.venue = venue
        self.symbols = feed.symbols

    async def run(self, sink: FeedSink) -> None:
        """Run the wrapped feed, renaming the venue of the instruments it announces."""
        await self.feed.run(_AliasSink(sink, self.venue))

    def counters(self) -> FeedCounters:
        """The wrapped feed's counters."""
        return self.feed.counters()


class _AliasSink:
    """Passes everything through (the hot ``on_batch`` without an extra call) but renames instruments."""

    def __init__(self, sink: FeedSink, venue: str) -> None:
        self._sink = sink
        self._venue = venue
        self.on_batch = sink.on_batch
        self.on_status = sink.on_status
        self.on_raw = sink.on_raw

    def on_instrument(self, instrument: Instrument) -> None:
        self._sink.on_instrument(dataclasses.replace(instrument, venue=self._venue))


FeedBuilder = Callable[[Sequence[str], Mapping[str, Any]], Feed]


def _binance(symbols: Sequence[str], config: Mapping[str, Any]) -> Feed:
    from feeds.binance_usdm import BinanceUsdmFeed

    ep = venue_endpoints(dict(config), BINANCE_USDM)
    return BinanceUsdmFeed(list(symbols), ep["rest"], ep["ws_public"], ep["ws_market"])


def _bybit(symbols: Sequence[str], config: Mapping[str, Any]) -> Feed:
    from feeds.bybit_linear import BybitLinearFeed

    ep = venue_endpoints(dict(config), BYBIT_LINEAR)
    return BybitLinearFeed(list(symbols), ep["rest"], ep["ws"])


BUILDERS: dict[str, FeedBuilder] = {BINANCE_USDM: _binance, BYBIT_LINEAR: _bybit}


class SourceFactory:
    """Builds feeds for source strings; owns the embedded simulator of ``demo:`` sources."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: Mapping[str, Any] = config or {}
        self.simulators: list[Any] = []  # SimulatorThread per demo symbol set

    def build(self, sources: Sequence[str]) -> list[tuple[str, Feed]]:
        """(label, feed) per venue for ``sources``; every string is checked before anything starts."""
        parsed = [parse_source(s) for s in sources]
        if not parsed:
            raise ConfigError("no sources given")
        by_venue: dict[str, list[str]] = {}
        for venue, symbol in parsed:
            symbols = by_venue.setdefault(venue, [])
            if symbol not in symbols:
                symbols.append(symbol)
        out: list[tuple[str, Feed]] = []
        for venue, symbols in by_venue.items():
            label = ",".join(f"{venue}:{s}" for s in symbols)
            if venue == DEMO:
                config = self._demo_config(symbols)
                out.append((label, VenueAlias(BUILDERS[DEMO_VENUE](symbols, config), DEMO)))
            else:
                out.append((label, BUILDERS[venue](symbols, self.config)))
        return out

    def _demo_config(self, symbols: Sequence[str]) -> Mapping[str, Any]:
        """Start an in-process simulator listing ``symbols``; the demo venue's endpoints point at it.

        Symbols already served by a running embedded simulator reuse it; new ones get their own
        (the simulator's symbol list is fixed when it starts).
        """
        from feeds.simulator.faults import FaultPlan
        from feeds.simulator.server import SimulatorThread, parse_symbols

        sim = next((s for s in self.simulators if set(symbols) <= set(s.server.symbols)), None)
        if sim is None:
            settings = self.config.get("simulator", {}) if self.config else {}
            if not isinstance(settings, Mapping):
                raise ConfigError("config: [simulator] must be a table")
            allowed = {"seed", "rate", "speed", "step_ms", "coalesce", "faults"}
            unknown = sorted(set(settings) - allowed)
            if unknown:
                raise ConfigError(f"config: unknown key(s) {', '.join(unknown)} in [simulator] "
                                  f"(known: {', '.join(sorted(allowed))})")
            kwargs = dict(settings)
            try:
                if "faults" in kwargs:  # e.g. "drop=0.01,malformed=0.005,seed=7"
                    kwargs["faults"] = FaultPlan.parse(str(kwargs["faults"]))
                sim = SimulatorThread(symbols=parse_symbols(symbols), **kwargs)
                sim.start()
            except (OSError, ValueError, TypeError) as exc:
                raise ConfigError(f"cannot start the demo exchange: {exc}") from None
            self.simulators.append(sim)
        assert sim.server is not None
        venues = dict(self.config.get("venues", {})) if self.config else {}
        venues[DEMO_VENUE] = dict(sim.server.endpoints()[DEMO_VENUE])
        return {**self.config, "venues": venues}

    def close(self) -> None:
        """Stop the embedded simulators started for ``demo:`` sources."""
        sims, self.simulators = self.simulators, []
        for sim in sims:
            sim.stop()
