"""Offline rendering of a scenario into raw wire records (what a capture of it would hold)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING

from feeds.simulator.binance import BinanceVenue
from feeds.simulator.bybit import BybitVenue
from feeds.simulator.market import BookChange

if TYPE_CHECKING:
    from feeds.simulator.scenarios import Scenario


class _Collector:
    """Stands in for a client connection and keeps every message with a local receive time."""

    def __init__(self, latency_ns: int) -> None:
        self.records: list[tuple[int, str]] = []
        self.latency_ns = latency_ns
        self.now_ns = 0
        self.combined = True
        self.closed = False
        self.streams: list[str] = []
        self.conn_id = "render"
        self.route = "render"

    def push(self, message: str) -> None:
        last = self.records[-1][0] if self.records else 0
        self.records.append((max(self.now_ns + self.latency_ns, last + 1), message))

    reply = push


def render_records(scenario: Scenario, venue: str, latency_ms: float = 2.0,
                   start_ns: int = 1_767_225_600_000_000_000) -> list[tuple[int, str]]:
    """Run ``scenario`` offline and return (local_ns, raw text) records for ``venue``.

    Binance: ``@depth@0ms``, ``@trade``, ``@bookTicker``, ``@markPrice@1s`` envelopes plus the REST
    depth snapshot right after the first depth event (as hftbacktest's collector records it).
    Bybit: ``orderbook.200`` snapshot then deltas, ``publicTrade``, ``tickers``.
    """
    if venue not in ("binance-usdm", "bybit-linear"):
        raise ValueError(f"unknown venue {venue!r}: binance-usdm or bybit-linear")
    collector = _Collector(int(latency_ms * 1_000_000))
    sym = scenario.symbol
    low = sym.lower()
    snapshot_done = False
    out: BinanceVenue | BybitVenue | None = None
    for model, now, events in scenario.run(start_ns=start_ns):
        collector.now_ns = now
        if out is None:
            if venue == "binance-usdm":
                out = BinanceVenue(model, scenario.symbols, coalesce=True)
                for stream in (f"{low}@depth@0ms", f"{low}@trade", f"{low}@bookTicker", f"{low}@markPrice@1s"):
                    out.subs[stream] = {collector}  # type: ignore[arg-type]
            else:
                out = BybitVenue(model, scenario.symbols, coalesce=True)
                for topic in (f"orderbook.200.{sym}", f"publicTrade.{sym}", f"tickers.{sym}"):
                    out.on_text(collector, f'{{"op":"subscribe","args":["{topic}"]}}', now)  # type: ignore[arg-type]
                collector.records = [r for r in collector.records if '"op":"subscribe"' not in r[1]]
        out.on_events(events, now)
        if isinstance(out, BinanceVenue) and not snapshot_done and any(type(e) is BookChange for e in events):
            snapshot_done = True
            collector.push(out.depth_snapshot(sym, 1000, now // 1_000_000))
    return collector.records


def write_scenario(scenario: Scenario, out_dir: str | Path, venue: str = "binance-usdm") -> tuple[Path, Path]:
    """Write ``<name>.<venue>.gz`` (hftbacktest collector lines) and ``<name>.<venue>.labels.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records, labels = scenario.render(venue)
    capture = out / f"{scenario.name}.{venue}.gz"
    with gzip.open(capture, "wt", encoding="utf-8") as fh:
        for ns, raw in records:
            fh.write(f"{ns} {raw}\n")
    spec = scenario.symbol_spec
    label_file = out / f"{scenario.name}.{venue}.labels.json"
    label_file.write_text(json.dumps({
        "scenario": scenario.name, "kind": scenario.kind, "seed": scenario.seed, "venue": venue,
        "symbol": spec.symbol, "tick_size": spec.tick_size, "lot_size": spec.lot_size,
        "capture": capture.name, "labels": labels}, indent=1))
    return capture, label_file


def records_as_lines(records: list[tuple[int, str]]) -> list[str]:
    """hftbacktest collector lines ``<local_ns> <raw>`` (what a ``.gz`` capture holds, uncompressed)."""
    return [f"{ns} {raw}" for ns, raw in records]


__all__ = ["render_records", "records_as_lines", "write_scenario"]

