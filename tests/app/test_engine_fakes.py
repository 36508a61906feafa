"""Test doubles for the engine tests: a scripted feed and batch builders (the book is the real one)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.core import events as ev
from app.core.instrument import Instrument
from feeds.base import LIVE, RESYNCING, SYNCING, FeedCounters, FeedSink

INST = Instrument("fake", "ALTUSDT", tick_size=0.001, lot_size=1.0)
T0 = 1_700_000_000_000_000_000


def snapshot(bids: dict[int, float], asks: dict[int, float], update_id: int, ts: int = T0) -> np.ndarray:
    """Clear + snapshot rows (what a feed sends after (re)sync)."""
    parts = [ev.clear_row(ts, ts)]
    if bids:
        parts.append(ev.depth_rows(ev.BID, list(bids), list(bids.values()), INST.tick_size, ts, ts, update_id,
                                   ev.DEPTH_SNAPSHOT_EVENT))
    if asks:
        parts.append(ev.depth_rows(ev.ASK, list(asks), list(asks.values()), INST.tick_size, ts, ts, update_id,
                                   ev.DEPTH_SNAPSHOT_EVENT))
    return np.concatenate(parts)


def diff(bids: dict[int, float], asks: dict[int, float], update_id: int, ts: int = T0) -> np.ndarray:
    """One depth diff message's rows."""
    parts = [ev.empty(0)]
    if bids:
        parts.append(ev.depth_rows(ev.BID, list(bids), list(bids.values()), INST.tick_size, ts, ts, update_id))
    if asks:
        parts.append(ev.depth_rows(ev.ASK, list(asks), list(asks.values()), INST.tick_size, ts, ts, update_id))
    return np.concatenate(parts)


def trade(aggressor: int, tick: int, qty: float, ts: int = T0, trade_id: int = 1) -> np.ndarray:
    """One trade row."""
    return ev.trade_row(aggressor, tick, qty, INST.tick_size, ts, ts, trade_id)


def gap(ts: int = T0) -> np.ndarray:
    """A feed's gap batch: GAP marker + clear of both sides."""
    return np.concatenate([ev.marker_row(ev.GAP_EVENT, ts, ts), ev.clear_row(ts, ts)])


def funding(rate: float, next_ts: int, mark: float, index: float, ts: int = T0) -> np.ndarray:
    """Mark + funding rows as the Binance adapter builds them."""
    return np.concatenate([
        ev.marker_row(ev.MARK_PRICE_EVENT, ts, ts, px=mark, fval=index),
        ev.marker_row(ev.FUNDING_EVENT, ts, ts, px=mark, ival=next_ts, fval=rate),
    ])


@dataclass
class Step:
    """One scripted feed action: a batch (with its update id), a status, or a pause."""

    symbol: str = INST.symbol
    batch: np.ndarray | None = None
    update_id: int | None = None
    status: str | None = None
    reason: str = ""
    sleep: float = 0.0


@dataclass
class FakeFeed:
    """A feed that announces instruments, then plays scripted steps; optionally waits forever after."""

    steps: Sequence[Step]
    instruments: Sequence[Instrument] = (INST,)
    venue: str = "fake"
    hold: bool = False  # keep running after the script (like a live feed) until cancelled
    fail: BaseException | None = None  # raise this after the script
    cancelled: bool = False
    delivered: int = 0
    counts: FeedCounters = field(default_factory=FeedCounters)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(i.symbol for i in self.instruments)

    async def run(self, sink: FeedSink) -> None:
        try:
            for inst in self.instruments:
                sink.on_instrument(inst)
            for step in self.steps:
                if step.sleep:
                    await asyncio.sleep(step.sleep)
                if step.status is not None:
                    sink.on_status(step.symbol, step.status, step.reason)
                if step.batch is not None:
                    sink.on_batch(step.symbol, step.batch, step.update_id)
                    self.delivered += 1
            if self.fail is not None:
                raise self.fail
            while self.hold:
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    def counters(self) -> FeedCounters:
        return FeedCounters(messages=self.delivered, resyncs=self.counts.resyncs,
                            reconnects=self.counts.reconnects, malformed=self.counts.malformed)


def basic_script() -> list[Step]:
    """syncing -> snapshot -> live -> two diffs -> a trade -> funding."""
    return [
        Step(status=SYNCING),
        Step(batch=snapshot({1000: 5.0, 999: 3.0}, {1001: 4.0, 1002: 2.0}, 100), update_id=100),
        Step(status=LIVE),
        Step(batch=diff({1000: 6.0}, {}, 101, T0 + 1_000_000), update_id=101),
        Step(batch=diff({}, {1001: 0.0}, 102, T0 + 2_000_000), update_id=102),
        Step(batch=trade(ev.BID, 1002, 1.5, T0 + 3_000_000)),
        Step(batch=funding(0.0001, T0 + 3600 * 10**9, 1.0005, 1.0004, T0 + 4_000_000)),
    ]


def resync_script() -> list[Step]:
    """A live book, a gap (no top until the new snapshot), then a new snapshot."""
    return [
        Step(batch=snapshot({1000: 5.0}, {1001: 4.0}, 10), update_id=10),
        Step(status=LIVE),
        Step(batch=diff({1000: 1.0}, {}, 11), update_id=11),
        Step(batch=gap(), update_id=None),
        Step(status=RESYNCING, reason="pu gap"),
        Step(batch=diff({999: 1.0}, {}, 13), update_id=13),  # must not produce a top: out of sync
        Step(batch=snapshot({990: 2.0}, {995: 3.0}, 20), update_id=20),
        Step(status=LIVE),
        Step(batch=diff({991: 1.0}, {}, 21), update_id=21),
    ]


def test_batch_builders_drive_the_real_book() -> None:
    from app.core.book import DepthBook

    book = DepthBook(INST)
    book.apply(snapshot({1000: 5.0}, {1001: 4.0}, 7))
    assert book.best_bid() == (1000, 5.0)
    assert book.best_ask() == (1001, 4.0)
    book.apply(diff({1000: 0.0}, {}, 8))
    assert book.best_bid_tick == ev.NO_PRICE
