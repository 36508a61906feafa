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
