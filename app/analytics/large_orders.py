"""Large orders: a resting level far above the sizes around it, near mid, that persists.

A level within ``distance_ticks`` of mid is large when its size passes the rule: ``size`` contracts,
``notional`` (size × price) or ``median_multiple`` × the median level size near mid (the default,
automatic rule; whichever rules are set must all pass). It opens after ``persist_ms`` and closes when
the level drops below half of its peak, telling whether it was ``filled`` (traded) or ``pulled``.
"""

from __future__ import annotations

import numpy as np

from app.analytics.auto import AutoThreshold, ThresholdSpec, winsorized
from app.analytics.base import MS, BookView, Emitter, Section, Window, traded_by_level
from app.core.detection import Detection
from app.core.instrument import Instrument


class _Order:
    __slots__ = ("side", "tick", "since", "peak", "size", "det_id", "traded", "last_emit_size")

    def __init__(self, side: int, tick: int, size: float, ts: int) -> None:
        self.side = side
        self.tick = tick
        self.since = ts
        self.peak = size
        self.size = size
        self.det_id = 0
        self.traded = 0.0
        self.last_emit_size = size


class LargeOrderDetector:
    """Tracks large resting levels near mid from appearance to pull or fill."""

    kinds = ("large_order",)

    def __init__(self, emitter: Emitter, instrument: Instrument, cfg: Section) -> None:
        self.em = emitter
        self.tick_size = instrument.tick_size
        self.multiplier = instrument.multiplier
        self.distance_ticks = cfg.int("distance_ticks", 20, 1)
        # Size rule: a number of contracts, or auto = max(floor, mean + k·sd) of level sizes near mid.
        self.size = AutoThreshold(ThresholdSpec.parse(cfg.get("size", "auto"), cfg.where("size"),
                                                      k=3.5, minutes=5.0, min_samples=200))
        self.notional = cfg.num("notional", 0.0, 0.0)
        self.median_multiple = cfg.num("median_multiple", 4.0, 0.0)
        self.persist_ns = int(cfg.num("persist_ms", 500.0, 0.0) * MS)
        self.release = cfg.num("release_fraction", 0.5, 0.0, 1.0)
        if not self.size.spec.auto and self.size.spec.value == 0 and self.notional == 0 and self.median_multiple == 0:
            raise ValueError("detectors.large_order: set at least one of size, notional, median_multiple")
        self._orders: dict[tuple[int, int], _Order] = {}
        self._open: dict[int, Detection] = {}

    def threshold(self, median: float, ticks: np.ndarray) -> np.ndarray:
        """Per-tick size a level must reach to be large (every configured rule must pass)."""
        thr = np.full(len(ticks), max(self.size.value(), self.median_multiple * median))
        if self.notional > 0:
            thr = np.maximum(thr, self.notional / (ticks * self.tick_size * self.multiplier))
        return thr

    def on_window(self, w: Window) -> None:
        """Credit fills to the levels we follow (to tell a fill from a pull)."""
        if self._orders and len(w.t_qty):
            for s, t, q in zip(*traded_by_level(w), strict=True):
                o = self._orders.get((int(s), int(t)))
                if o is not None:
                    o.traded += float(q)

    def on_tick(self, v: BookView, book, out: list[Detection]) -> None:
        """Find new large levels and follow the known ones."""
        if v.median <= 0:
            return
        mid_lo = (v.mid2 - 2 * self.distance_ticks) / 2.0
        mid_hi = (v.mid2 + 2 * self.distance_ticks) / 2.0
        near = (v.ticks >= mid_lo) & (v.ticks <= mid_hi)
        ticks = v.ticks[near]
        thr = self.threshold(v.median, ticks)
        sizes = np.concatenate((v.bid[near], v.ask[near]))
        self.size.add_many(winsorized(sizes[sizes > 0], self.size.value()), v.ts)
        for side, qty in ((1, v.bid[near]), (-1, v.ask[near])):
            for i in np.flatnonzero(qty >= thr):
                key = (side, int(ticks[i]))
                if key not in self._orders:
                    self._orders[key] = _Order(side, key[1], float(qty[i]), v.ts)
        for key in list(self._orders):
            o = self._orders[key]
            size = float(book.qty_at(o.side, o.tick))
            o.size = size
            if not (mid_lo - self.distance_ticks <= o.tick <= mid_hi + self.distance_ticks):
                self._end(o, v.ts, "out_of_range", out)
            elif size < self.release * o.peak or (not o.det_id and size < self._thr_now(v, o.tick)):
                removed = o.peak - size
                self._end(o, v.ts, "filled" if o.traded >= 0.5 * removed else "pulled", out)
            else:
                o.peak = max(o.peak, size)
                if not o.det_id and v.ts - o.since >= self.persist_ns:
                    o.det_id = self.em.new_id()
                    o.last_emit_size = size
                    self._emit(o, v.ts, "open", out)
                elif o.det_id and abs(size - o.last_emit_size) >= 0.25 * o.last_emit_size:
                    o.last_emit_size = size
                    self._emit(o, v.ts, "update", out)

    def _thr_now(self, v: BookView, tick: int) -> float:
        return float(self.threshold(v.median, np.array([tick]))[0])

    def _emit(self, o: _Order, ts: int, state: str, out: list[Detection], reason: str | None = None) -> None:
        ev = {"visible": o.size, "peak": o.peak, "traded": round(o.traded, 10),
              "notional": round(o.peak * o.tick * self.tick_size * self.multiplier, 2),
              "duration_ms": (ts - o.since) // MS}
        if reason:
            ev["reason"] = reason
        d = self.em.make(o.det_id, "large_order", o.side, o.tick, ts, state, ev)
        out.append(d)
        if state == "close":
            self._open.pop(o.det_id, None)
        else:
            self._open[o.det_id] = d

    def _end(self, o: _Order, ts: int, reason: str, out: list[Detection]) -> None:
        if o.det_id:
            self._emit(o, ts, "close", out, reason)
        self._orders.pop((o.side, o.tick), None)

    def reset(self, ts: int, out: list[Detection], reason: str = "resync") -> None:
        """Close what is open."""
        for o in list(self._orders.values()):
            self._end(o, ts, reason, out)

    def open(self) -> list[Detection]:
        """The latest record of each open large order."""
        return list(self._open.values())
