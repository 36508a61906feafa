"""Test doubles for the engine tests: a scripted feed, batch builders, and (until the real
``app.core.book`` exists on this branch) a dict-backed stand-in of the DepthBook contract."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.core import events as ev
from app.core.instrument import Instrument
from feeds.base import LIVE, RESYNCING, SYNCING, FeedCounters, FeedSink


def _install_book_stand_in() -> None:
    """Register a minimal dict DepthBook as ``app.core.book`` when the real one is not merged yet."""
    try:
        import app.core.book  # noqa: F401
        return
    except ImportError:
        pass

    class DepthBook:
        def __init__(self, instrument: Instrument, roi_ticks: int = 8192) -> None:
            self.instrument = instrument
            self._sides: dict[int, dict[int, float]] = {1: {}, -1: {}}
            self.update_id = 0
            self.version = 0

        def apply(self, batch: np.ndarray) -> None:
            kinds = batch["ev"] & ev.KIND_MASK
            flags = batch["ev"] & ev.SIDE_MASK
            depth = np.isin(kinds, (ev.DEPTH_EVENT, ev.DEPTH_SNAPSHOT_EVENT))
            if depth.any():
                q = batch["qty"][depth]
                if not np.isfinite(q).all() or (q < 0).any() or (flags[depth] == 0).any():
                    raise ValueError("bad depth rows")
            for row, kind, flag in zip(batch, kinds, flags, strict=True):
                side = 1 if flag & ev.BUY_EVENT else -1 if flag & ev.SELL_EVENT else 0
                if kind == ev.DEPTH_CLEAR_EVENT:
                    self.clear(side)
                elif kind in (ev.DEPTH_EVENT, ev.DEPTH_SNAPSHOT_EVENT):
                    if row["qty"] == 0:
                        self._sides[side].pop(int(row["ival"]), None)
                    else:
                        self._sides[side][int(row["ival"])] = float(row["qty"])
                    self.update_id = int(row["order_id"])
            self.version += 1

        def clear(self, side: int = 0) -> None:
            for s in (1, -1) if side == 0 else (side,):
                self._sides[s].clear()

        @property
        def best_bid_tick(self) -> int:
            return max(self._sides[1], default=ev.NO_PRICE)

        @property
        def best_ask_tick(self) -> int:
            return min(self._sides[-1], default=ev.NO_PRICE)

        def best_bid(self) -> tuple[int, float] | None:
            t = self.best_bid_tick
            return None if t == ev.NO_PRICE else (t, self._sides[1][t])

        def best_ask(self) -> tuple[int, float] | None:
            t = self.best_ask_tick
            return None if t == ev.NO_PRICE else (t, self._sides[-1][t])

        def qty_at(self, side: int, tick: int) -> float:
            return self._sides[side].get(int(tick), 0.0)

        def levels(self, side: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
            ticks = sorted(self._sides[side], reverse=side == 1)[:n]
            return np.array(ticks, np.int64), np.array([self._sides[side][t] for t in ticks])

        def ladder(self, top_tick: int, rows: int, group: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            assert group == 1
            ticks = top_tick - np.arange(rows, dtype=np.int64)
            bid = np.array([self._sides[1].get(int(t), 0.0) for t in ticks])
            ask = np.array([self._sides[-1].get(int(t), 0.0) for t in ticks])
            return ticks, bid, ask

        def is_crossed(self) -> bool:
            b, a = self.best_bid_tick, self.best_ask_tick
            return b != ev.NO_PRICE and a != ev.NO_PRICE and b >= a

    module = types.ModuleType("app.core.book")
    module.DepthBook = DepthBook  # type: ignore[attr-defined]
    sys.modules["app.core.book"] = module


_install_book_stand_in()

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


def test_stand_in_or_real_book_follows_the_contract() -> None:
    from app.core.book import DepthBook

    book = DepthBook(INST)
    book.apply(snapshot({1000: 5.0}, {1001: 4.0}, 7))
    assert book.best_bid() == (1000, 5.0)
    assert book.best_ask() == (1001, 4.0)
    book.apply(diff({1000: 0.0}, {}, 8))
    assert book.best_bid_tick == ev.NO_PRICE
