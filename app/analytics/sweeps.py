"""Sweep and big trade: fills with the same exchange time and aggressor side are one aggressor.

A *sweep* is an aggressor that spans ≥ ``min_levels`` price levels with volume ≥ its threshold; a
*big trade* is an aggressor whose volume alone passes its (higher) threshold. Both are instantaneous:
an ``open`` immediately followed by its ``close``. ``side`` is the book side eaten (a buy sweeps asks).
The per-fill path is a handful of scalar operations because most venues send one fill per message.
"""

from __future__ import annotations

import math

from app.analytics.auto import AutoThreshold, ThresholdSpec
from app.analytics.base import Emitter, Section
from app.core.detection import Detection


class SweepDetector:
    """Groups fills into aggressors and flags sweeps and big trades."""

    kinds = ("sweep", "big_trade")

    def __init__(self, emitter: Emitter, sweep_cfg: Section, big_cfg: Section,
                 sweep: bool = True, big: bool = True) -> None:
        self.em = emitter
        self.sweep_enabled = sweep
        self.big_enabled = big
        self.min_levels = sweep_cfg.int("min_levels", 3, 2)
        self.sweep_size = AutoThreshold(ThresholdSpec.parse(
            sweep_cfg.get("size", "auto"), sweep_cfg.where("size"), k=3.0, minutes=5.0, min_samples=50))
        self.big_size = AutoThreshold(ThresholdSpec.parse(
            big_cfg.get("size", "auto"), big_cfg.where("size"), k=12.0, minutes=5.0, min_samples=50))
        self._ts = -1
        self._aggr = 0
        self._qty = 0.0
        self._notional_ticks = 0.0
        self._first = 0
        self._last = 0
        self._lo = 0
        self._hi = 0
        self._fills = 0
        self._levels = 0

    @property
    def pending_ts(self) -> int:
        """Exchange time of the aggressor being assembled, -1 when none."""
        return self._ts

    def on_fill(self, ts: int, aggressor: int, tick: int, qty: float, out: list[Detection]) -> None:
        """One fill (aggressor +1 buy / -1 sell)."""
        if ts != self._ts or aggressor != self._aggr:
            if self._ts >= 0:
                self.flush(out)
            self._ts, self._aggr, self._qty, self._notional_ticks = ts, aggressor, 0.0, 0.0
            self._first = self._lo = self._hi = tick
            self._fills = 0
            self._levels = 1
        elif tick != self._last:
            self._levels += 1
        self._qty += qty
        self._notional_ticks += qty * tick
        self._last = tick
        if tick < self._lo:
            self._lo = tick
        elif tick > self._hi:
            self._hi = tick
        self._fills += 1

    def flush(self, out: list[Detection]) -> None:
        """Finish the pending aggressor and emit what it was."""
        if self._ts < 0:
            return
        ts, qty = self._ts, self._qty
        self._ts = -1
        levels = self._levels
        sweep_thr = self.sweep_size.value()
        big_thr = self.big_size.value()
        self.sweep_size.add(qty, ts)
        self.big_size.add(qty, ts)
        side = -self._aggr
        ev = {"executed": round(qty, 10), "levels": levels, "ticks": self._hi - self._lo + 1, "fills": self._fills,
              "vwap_tick": round(self._notional_ticks / qty, 3) if qty > 0 else math.nan,
              "aggressor": "buy" if self._aggr > 0 else "sell"}
        if self.sweep_enabled and levels >= self.min_levels and qty >= sweep_thr:
            self._emit("sweep", side, self._first, self._last, ts, dict(ev, threshold=round(sweep_thr, 10)), out)
        if self.big_enabled and qty >= big_thr:
            self._emit("big_trade", side, self._first, self._last, ts, dict(ev, threshold=round(big_thr, 10)), out)

    def _emit(self, kind: str, side: int, tick: int, far: int | None, ts: int, ev: dict,
              out: list[Detection]) -> None:
        det_id = self.em.new_id()
        out.append(self.em.make(det_id, kind, side, tick, ts, "open", ev, far))
        out.append(self.em.make(det_id, kind, side, tick, ts, "close", dict(ev, reason="instant"), far))

    def reset(self, ts: int, out: list[Detection], reason: str = "resync") -> None:
        """Finish the pending aggressor."""
        self.flush(out)

    def open(self) -> list[Detection]:
        """Sweeps and big trades never stay open."""
        return []
