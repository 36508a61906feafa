"""Fixtures for the detector tests: a stand-in DepthBook (until app.core.book is merged) and helpers."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.events import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    KIND_MASK,
    NO_PRICE,
    SIDE_MASK,
)
from app.core.instrument import Instrument

try:  # the real book once the core-book branch is merged
    from app.core.book import DepthBook as _RealBook  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on merge state
    _RealBook = None


class StandInBook:
    """A small dense-array book with the subset of the DepthBook API the detectors use."""

    def __init__(self, instrument: Instrument, roi_ticks: int = 1 << 21) -> None:
        self.instrument = instrument
        self._n = roi_ticks
        self._base: int | None = None
        self._q = {1: np.zeros(roi_ticks), -1: np.zeros(roi_ticks)}
        self.best_bid_tick = NO_PRICE
        self.best_ask_tick = NO_PRICE
        self.version = 0
        self.update_id = 0

    def clear(self, side: int = 0) -> None:
        for s in (1, -1):
            if side in (0, s):
                self._q[s][:] = 0.0
        if side in (0, 1):
            self.best_bid_tick = NO_PRICE
        if side in (0, -1):
            self.best_ask_tick = NO_PRICE

    def apply(self, batch: np.ndarray) -> None:
        kinds = batch["ev"] & KIND_MASK
        for i in np.flatnonzero(kinds == DEPTH_CLEAR_EVENT):
            flags = int(batch["ev"][i]) & SIDE_MASK
            self.clear(0 if flags == 0 else (1 if flags & BUY_EVENT else -1))
        rows = batch[(kinds == DEPTH_EVENT) | (kinds == DEPTH_SNAPSHOT_EVENT)]
        if len(rows):
            if self._base is None:
                self._base = int(rows["ival"][0]) - self._n // 2
            side = np.where(rows["ev"] & BUY_EVENT, 1, -1)
            for s in (1, -1):
                m = side == s
                if m.any():
                    self.apply_side(s, rows["ival"][m], rows["qty"][m])
            self.update_id = int(rows["order_id"][-1])
        self.version += 1

    def apply_side(self, side: int, ticks: np.ndarray, qty: np.ndarray) -> None:
        idx = np.asarray(ticks, dtype=np.int64) - self._base
        ok = (idx >= 0) & (idx < self._n)
        arr = self._q[side]
        arr[idx[ok]] = qty[ok]
        self._refresh_best(side, ticks[ok], qty[ok])

    def _refresh_best(self, side: int, ticks: np.ndarray, qty: np.ndarray) -> None:
        arr = self._q[side]
        best = self.best_bid_tick if side > 0 else self.best_ask_tick
        pos = ticks[qty > 0]
        if len(pos):
            cand = int(pos.max()) if side > 0 else int(pos.min())
            if best == NO_PRICE or (side > 0 and cand > best) or (side < 0 and cand < best):
                best = cand
        if best != NO_PRICE and arr[best - self._base] <= 0:
            i = best - self._base
            if side > 0:
                nz = np.flatnonzero(arr[max(0, i - 65536):i][::-1] > 0)
                best = best - 1 - int(nz[0]) if len(nz) else self._scan(side)
            else:
                nz = np.flatnonzero(arr[i + 1:i + 65537] > 0)
                best = best + 1 + int(nz[0]) if len(nz) else self._scan(side)
        if side > 0:
            self.best_bid_tick = best
        else:
            self.best_ask_tick = best

    def _scan(self, side: int) -> int:
        nz = np.flatnonzero(self._q[side] > 0)
        if not len(nz):
            return NO_PRICE
        return int(nz[-1] if side > 0 else nz[0]) + self._base

    def qty_at(self, side: int, tick: int) -> float:
        if self._base is None:
            return 0.0
        i = tick - self._base
        return float(self._q[side][i]) if 0 <= i < self._n else 0.0

    def ladder(self, top_tick: int, rows: int, group: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ticks = top_tick - np.arange(rows, dtype=np.int64)
        if self._base is None:
            return ticks, np.zeros(rows), np.zeros(rows)
        idx = ticks - self._base
        ok = (idx >= 0) & (idx < self._n)
        bq = np.zeros(rows)
        aq = np.zeros(rows)
        bq[ok] = self._q[1][idx[ok]]
        aq[ok] = self._q[-1][idx[ok]]
        return ticks, bq, aq

    def depth_within(self, side: int, n_ticks: int) -> float:
        best = self.best_bid_tick if side > 0 else self.best_ask_tick
        if best == NO_PRICE:
            return 0.0
        i = best - self._base
        arr = self._q[side]
        return float(arr[max(0, i - n_ticks):i + 1].sum() if side > 0 else arr[i:i + n_ticks + 1].sum())

    def best_bid(self) -> tuple[int, float] | None:
        b = self.best_bid_tick
        return None if b == NO_PRICE else (b, self.qty_at(1, b))

    def best_ask(self) -> tuple[int, float] | None:
        a = self.best_ask_tick
        return None if a == NO_PRICE else (a, self.qty_at(-1, a))


def make_book(instrument: Instrument):
    """The real DepthBook when merged, else the stand-in."""
    return _RealBook(instrument) if _RealBook is not None else StandInBook(instrument)


@pytest.fixture
def inst() -> Instrument:
    """A small-cap-like contract: tick 0.01."""
    return Instrument("sim", "ALTUSDT", tick_size=0.01, lot_size=1.0)


MS = 1_000_000
T0 = 1_700_000_000_000_000_000  # an exchange time in ns


class Market:
    """Hand-built event sequences: a book + a DetectorSet, fed batch by batch like the engine does."""

    def __init__(self, instrument: Instrument, config: dict | None = None) -> None:
        from app.analytics.detectors import DetectorSet

        self.inst = instrument
        self.book = make_book(instrument)
        self.dets = DetectorSet(instrument, config or {})
        self.found: list = []
        self.ts = T0
        self.uid = 0

    def feed(self, batch: np.ndarray) -> list:
        self.book.apply(batch)
        got = self.dets.on_batch(batch, self.book)
        self.found.extend(got)
        return got

    def at(self, ms: float) -> int:
        """Exchange time ``ms`` after the start."""
        self.ts = T0 + int(ms * MS)
        return self.ts

    def snapshot(self, bids: dict[int, float], asks: dict[int, float], ms: float = 0.0) -> None:
        from app.core import events as E

        ts = self.at(ms)
        parts = [E.clear_row(ts, ts)]
        for side, lv in ((E.BID, bids), (E.ASK, asks)):
            parts.append(E.depth_rows(side, np.array(list(lv), dtype=np.int64), np.array(list(lv.values())),
                                      self.inst.tick_size, ts, ts, kind=E.DEPTH_SNAPSHOT_EVENT))
        self.feed(np.concatenate(parts))

    def depth(self, ms: float, bids: dict[int, float] | None = None, asks: dict[int, float] | None = None) -> list:
        from app.core import events as E

        ts = self.at(ms)
        self.uid += 1
        parts = []
        for side, lv in ((E.BID, bids or {}), (E.ASK, asks or {})):
            if lv:
                parts.append(E.depth_rows(side, np.array(list(lv), dtype=np.int64), np.array(list(lv.values())),
                                          self.inst.tick_size, ts, ts, self.uid))
        return self.feed(np.concatenate(parts))

    def trade(self, ms: float, aggressor: int, tick: int, qty: float) -> list:
        from app.core import events as E

        ts = self.at(ms)
        return self.feed(E.trade_row(aggressor, tick, qty, self.inst.tick_size, ts, ts))

    def quote(self, ms: float) -> list:
        """A best bid/offer row: only moves the detectors' clock."""
        from app.core import events as E

        ts = self.at(ms)
        bb, ba = self.book.best_bid_tick, self.book.best_ask_tick
        rows = np.concatenate([
            E.depth_rows(E.BID, np.array([bb]), np.array([self.book.qty_at(1, bb)]), self.inst.tick_size, ts, ts,
                         kind=E.DEPTH_BBO_EVENT),
            E.depth_rows(E.ASK, np.array([ba]), np.array([self.book.qty_at(-1, ba)]), self.inst.tick_size, ts,
                         ts, kind=E.DEPTH_BBO_EVENT)])
        return self.feed(rows)

    def idle(self, start_ms: float, end_ms: float, step_ms: float = 100.0) -> None:
        """Quotes only, moving time from ``start_ms`` to ``end_ms``."""
        t = start_ms
        while t <= end_ms:
            self.quote(t)
            t += step_ms

    def close(self) -> list:
        got = self.dets.close_all(self.ts)
        self.found.extend(got)
        return got

    def opened(self, kind: str | None = None) -> list:
        return [d for d in self.found if d.state == "open" and (kind is None or d.kind == kind)]

    def of(self, kind: str) -> list:
        return [d for d in self.found if d.kind == kind]


def flat_book(mid: int = 10_000, levels: int = 60, size: float = 10.0) -> tuple[dict, dict]:
    """Bids at mid-1 … and asks at mid … each ``size``: a dense, quiet book (spread one tick)."""
    bids = {mid - 1 - i: size for i in range(levels)}
    asks = {mid + i: size for i in range(levels)}
    return bids, asks


def quiet_config(**overrides: dict) -> dict:
    """Fixed thresholds (no warm-up) so hand-built sequences are deterministic."""
    cfg = {
        "iceberg": {"min_executed": 0},
        "absorption": {"volume": 50},
        "liquidity_gap": {"min_ticks": 3},
        "thin_book": {"enabled": False},
        "pull": {"size": 50},
        "stack": {"size": 50},
        "sweep": {"size": 20, "min_levels": 3},
        "big_trade": {"size": 100},
        "large_order": {"size": 60, "median_multiple": 0},
    }
    for k, v in overrides.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    return cfg
