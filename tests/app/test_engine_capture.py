"""The real Binance capture through the real Binance processor and the engine: every ``top`` the
engine reports at an update id the venue's own bookTicker also carries must equal it."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import numpy as np

from app.core.events import DEPTH_BBO_EVENT, KIND_MASK
from app.core.instrument import Instrument
from app.engine import Engine
from feeds.base import FeedCounters, FeedSink
from feeds.binance_usdm import BinanceUsdmProcessor

BTC = Instrument("binance-usdm", "BTCUSDT", tick_size=0.1, lot_size=0.001)


class CaptureFeed:
    """Plays an hftbacktest capture through the venue's pure processor (a minimal replay, tests only)."""

    venue = "binance-usdm"
    symbols = ("BTCUSDT",)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: BinanceUsdmProcessor | None = None
        self.venue_tops: dict[int, tuple[int, float, int, float]] = {}

    async def run(self, sink: FeedSink) -> None:
        sink.on_instrument(BTC)
        tops = self.venue_tops
        inner = sink.on_batch

        def on_batch(symbol: str, batch: np.ndarray, update_id: int | None) -> None:
            if update_id is None and len(batch) == 2 and int(batch["ev"][0]) & KIND_MASK == DEPTH_BBO_EVENT:
                tops[int(batch["order_id"][0])] = (int(batch["ival"][0]), float(batch["qty"][0]),
                                                   int(batch["ival"][1]), float(batch["qty"][1]))
            inner(symbol, batch, update_id)

        class Tap:
            on_instrument = sink.on_instrument
            on_status = sink.on_status
            on_raw = sink.on_raw

        tap = Tap()
        tap.on_batch = on_batch  # type: ignore[attr-defined]
        self.proc = proc = BinanceUsdmProcessor([BTC], tap)  # type: ignore[arg-type]
        with gzip.open(self.path, "rt") as fh:
            for i, line in enumerate(fh):
                local_ns, _, raw = line.partition(" ")
                proc.on_line(raw, int(local_ns))
                if i % 5000 == 0:
                    await asyncio.sleep(0)  # stay cancellable like a real feed

    def counters(self) -> FeedCounters:
        p = self.proc
        return FeedCounters() if p is None else FeedCounters(p.messages, p.resyncs, 0, p.malformed)


def test_engine_tops_equal_the_venues_book_ticker(btc_capture: Path) -> None:
    engine = Engine({"engine": {"ring_capacity": 1 << 16}}, detect=False)  # detectors: their own tests
    feed = CaptureFeed(btc_capture)
    engine.add_feed(feed, label="binance-usdm:BTCUSDT")
    ours: dict[int, tuple[int, float, int, float]] = {}
    ids: list[int] = []

    def on_top(inst, exch_ts, local_ts, update_id, bid_tick, bid_qty, ask_tick, ask_qty) -> None:  # noqa: ANN001
        ids.append(update_id)
        ours[update_id] = (bid_tick, bid_qty, ask_tick, ask_qty)

    engine.listen("top", on_top)
    asyncio.run(engine.run_until(120))
    assert not engine.errors
    common = sorted(set(ours) & set(feed.venue_tops))
    assert len(common) >= 600  # 629 in this file (issue 2)
    mismatches = [u for u in common if ours[u] != feed.venue_tops[u]]
    assert mismatches == []
    assert ids == sorted(ids) and len(ids) == len(set(ids))  # one top per book message, in id order
    summary = engine.summary_sources()[0]
    assert summary["malformed"] == 0 and summary["resyncs"] == 0
    assert summary["tops"] == len(ids) > 6000
    market = engine.market("binance-usdm:BTCUSDT")
    assert market is not None and market.crossed == 0 and market.rejected == 0
    f = engine.frame("BTCUSDT", ladder_rows=60)
    assert f is not None and f.ladder_traded_buy.sum() + f.ladder_traded_sell.sum() > 0
