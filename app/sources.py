"""``venue:SYMBOL`` source strings + configuration -> :class:`feeds.base.Feed` objects.

Venues: ``binance-usdm`` and ``bybit-linear`` (endpoints from ``[venues.<venue>]``), and ``demo``,
which starts the embedded exchange simulator in-process (once per factory, shared by every demo
symbol) and connects the real Binance USDⓈ-M adapter to it, so the demo runs live-session code.
Symbols of one venue given together share one feed (one connection set).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.instrument import Instrument
from feeds.base import Feed, FeedCounters, FeedSink

DEMO = "demo"
BINANCE_USDM = "binance-usdm"
BYBIT_LINEAR = "bybit-linear"
VENUES = (BINANCE_USDM, BYBIT_LINEAR, DEMO)
DEMO_VENUE = BINANCE_USDM  # the adapter (and wire format) the demo symbols are served with

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9_\-]{1,30}$")


class SourceError(ValueError):
    """A source string or its venue configuration is unusable (one-line message)."""


@dataclass(frozen=True, slots=True)
class Source:
    """One parsed ``venue:SYMBOL``."""

    venue: str
    symbol: str

    @property
    def text(self) -> str:
        """Back to ``venue:SYMBOL``."""
        return f"{self.venue}:{self.symbol}"


def parse_source(text: str) -> Source:
    """``"binance-usdm:BTCUSDT"`` -> ``Source``; raises :class:`SourceError` with the valid forms."""
    venue, sep, symbol = text.strip().partition(":")
    venue = venue.lower()
    if not sep or not venue or not symbol:
        raise SourceError(f"source {text!r} is not venue:SYMBOL (venues: {', '.join(VENUES)})")
    if venue not in VENUES:
        raise SourceError(f"unknown venue {venue!r} in {text!r} (venues: {', '.join(VENUES)})")
    symbol = symbol.upper()
    if not _SYMBOL.match(symbol):
        raise SourceError(f"bad symbol {symbol!r} in {text!r}")
    return Source(venue, symbol)


def venue_settings(config: Mapping[str, Any], venue: str, keys: Sequence[str]) -> dict[str, str]:
    """``config["venues"][venue]`` restricted to ``keys``; a missing key is a SourceError."""
    section = config.get("venues", {}).get(venue, {}) if config else {}
    missing = [k for k in keys if not section.get(k)]
    if missing:
        raise SourceError(f"config [venues.{venue}] lacks {', '.join(missing)}")
    return {k: str(section[k]) for k in keys}


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

    ep = venue_settings(config, BINANCE_USDM, ("rest", "ws_public", "ws_market"))
    return BinanceUsdmFeed(list(symbols), ep["rest"], ep["ws_public"], ep["ws_market"])


def _bybit(symbols: Sequence[str], config: Mapping[str, Any]) -> Feed:
    from feeds.bybit_linear import BybitLinearFeed

    ep = venue_settings(config, BYBIT_LINEAR, ("rest", "ws"))
    return BybitLinearFeed(list(symbols), ep["rest"], ep["ws"])


BUILDERS: dict[str, FeedBuilder] = {BINANCE_USDM: _binance, BYBIT_LINEAR: _bybit}


class SourceFactory:
    """Builds feeds for source strings; owns the embedded simulator of ``demo:`` sources."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: Mapping[str, Any] = config or {}
        self.simulator: Any = None

    def build(self, sources: Sequence[str]) -> list[tuple[str, Feed]]:
        """(label, feed) per venue for ``sources``; every string is checked before anything starts."""
        parsed = [parse_source(s) for s in sources]
        if not parsed:
            raise SourceError("no sources given")
        by_venue: dict[str, list[str]] = {}
        for src in parsed:
            symbols = by_venue.setdefault(src.venue, [])
            if src.symbol not in symbols:
                symbols.append(src.symbol)
        out = []
        for venue, symbols in by_venue.items():
            label = ",".join(f"{venue}:{s}" for s in symbols)
            if venue == DEMO:
                config = self._demo_config(symbols)
                out.append((label, VenueAlias(BUILDERS[DEMO_VENUE](symbols, config), DEMO)))
            else:
                out.append((label, BUILDERS[venue](symbols, self.config)))
        return out

    def _demo_config(self, symbols: Sequence[str]) -> Mapping[str, Any]:
        """Start (once) the in-process simulator and point the demo venue's endpoints at it."""
        from feeds.simulator import start_embedded

        if self.simulator is None:
            settings = dict(self.config.get("simulator", {})) if self.config else {}
            self.simulator = start_embedded(symbols=list(symbols), settings=settings)
        else:
            self.simulator.add_symbols(list(symbols))
        endpoints = self.simulator.endpoints(DEMO_VENUE)
        venues = dict(self.config.get("venues", {})) if self.config else {}
        venues[DEMO_VENUE] = dict(endpoints)
        return {**self.config, "venues": venues}

    def close(self) -> None:
        """Stop the embedded simulator if one was started."""
        sim, self.simulator = self.simulator, None
        if sim is not None:
            sim.stop()
