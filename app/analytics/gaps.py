"""Liquidity gaps (vacuums in front of price) and a thin book.

``liquidity_gap``: on each side, the run of ≥ G consecutive ticks within D ticks of mid, outside the
spread, whose size is below ε × the median level size, nearest to mid; it must persist ``persist_ms``
to open and is closed once gone for ``close_ms``. ``price_tick`` is its edge nearest mid,
``price_far_tick`` the far edge. G can be automatic (the usual longest near-empty run + k·sd).

``thin_book``: per side, the size within ``bps`` of mid compared with its own rolling 10th percentile
(one sample a second over ``minutes``); opens when it stays below ``factor`` × that for ``persist_ms``.
"""

from __future__ import annotations

import math

import numpy as np

from app.analytics.auto import AutoThreshold, ThresholdSpec
from app.analytics.base import MS, SEC, BookView, Emitter, Section
from app.core.detection import Detection


def near_empty_runs(empty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the runs of True in a boolean array."""
    if len(empty) == 0:
        z = np.empty(0, dtype=np.int64)
        return z, z
    d = np.diff(np.concatenate(([0], empty.view(np.int8), [0])))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return starts, ends - starts


_NONE = np.empty(0, dtype=np.int64)


class _Gap:
    __slots__ = ("near", "far", "since", "seen", "det_id", "width", "median", "bar")

    def __init__(self, near: int, far: int, ts: int) -> None:
        self.near = near
        self.far = far
        self.since = ts
        self.seen = ts
        self.det_id = 0
        self.width = abs(far - near) + 1
        self.median = 0.0
        self.bar = math.inf


class GapDetector:
    """Finds vacuums near mid on both sides."""

    kinds = ("liquidity_gap",)

    def __init__(self, emitter: Emitter, cfg: Section) -> None:
        self.em = emitter
        self.min_ticks = AutoThreshold(ThresholdSpec.parse(
            cfg.get("min_ticks", "auto"), cfg.where("min_ticks"), floor=3.0, k=3.0, minutes=5.0, min_samples=30))
        self.distance_ticks = cfg.int("distance_ticks", 20, 2)
        # -1: a run anywhere within distance_ticks; n >= 0: it must start within n ticks of the touch.
        self.front_ticks = cfg.int("front_ticks", 1, -1)
        self.epsilon = cfg.num("epsilon", 0.1, 0.0, 1.0)
        # Vacuums left behind by a sweep refill within a second or so; one that lasts is news.
        self.persist_ns = int(cfg.num("persist_ms", 800.0, 0.0) * MS)
        self.close_ns = int(cfg.num("close_ms", 300.0, 0.0) * MS)
        self._gaps: dict[int, _Gap] = {}
        self._open: dict[int, Detection] = {}

    def on_tick(self, v: BookView, out: list[Detection]) -> None:
        """Evaluate both sides on one book view."""
        g_min = self.min_ticks.value()
        floor = self.epsilon * v.median
        for side in (1, -1):
            # Ticks outside the spread up to D ticks from mid, nearest mid first.
            if side > 0:
                far_limit = (v.mid2 - 2 * self.distance_ticks) // 2 + 1
                ticks, qty = v.bid_side(self.distance_ticks + 1)
                keep = (ticks >= far_limit) & (ticks < v.best_bid)
            else:
                far_limit = (v.mid2 + 2 * self.distance_ticks + 1) // 2
                ticks, qty = v.ask_side(self.distance_ticks + 1)
                keep = (ticks <= far_limit) & (ticks > v.best_ask)
            ticks, qty = ticks[keep], qty[keep]
            if self.front_ticks >= 0:
                # Only a vacuum right in front of price counts: its run starts within front_ticks of
                # the touch (there is at most one such run). The automatic size is learnt from that
                # same run (0 when there is none). A scalar scan: the run is a handful of ticks.
                empty = (qty < floor).tolist()
                start = next((j for j in range(min(self.front_ticks + 1, len(empty))) if empty[j]), -1)
                if start < 0:
                    starts = lengths = _NONE
                else:
                    end = start
                    while end < len(empty) and empty[end]:
                        end += 1
                    starts, lengths = np.array([start]), np.array([end - start])
            else:
                starts, lengths = near_empty_runs(qty < floor)
            # A candidate is judged against the bar of the moment it appeared: a vacuum must not
            # raise its own bar while it persists (it still counts for the bar of later ones).
            g = self._gaps.get(side)
            bar = min(g_min, g.bar) if g is not None else g_min
            ok = np.flatnonzero(lengths >= bar) if math.isfinite(bar) else np.empty(0, dtype=np.int64)
            self.min_ticks.add(float(lengths.max()) if len(lengths) else 0.0, v.ts)
            self._track(side, v.ts, ticks, starts[ok[0]] if len(ok) else -1,
                        lengths[ok[0]] if len(ok) else 0, v.median, out, bar)

    def _track(self, side: int, ts: int, ticks: np.ndarray, start: int, length: int, median: float,
               out: list[Detection], bar: float = math.inf) -> None:
        g = self._gaps.get(side)
        if start < 0:
            if g is not None and ts - g.seen >= self.close_ns:
                self._end(side, ts, "filled", out)
            return
        near, far = int(ticks[start]), int(ticks[start + length - 1])
        lo, hi = min(near, far), max(near, far)
        if g is not None and (hi < min(g.near, g.far) or lo > max(g.near, g.far)):
            self._end(side, ts, "moved", out)  # a different gap: the old one is gone
            g = None
        if g is None:
            g = _Gap(near, far, ts)
            g.bar = bar
            self._gaps[side] = g
        changed = (near, far) != (g.near, g.far)
        g.near, g.far, g.seen, g.width, g.median = near, far, ts, int(length), median
        if not g.det_id:
            if ts - g.since >= self.persist_ns:
                g.det_id = self.em.new_id()
                self._emit(side, g, ts, "open", median, out)
        elif changed:
            self._emit(side, g, ts, "update", median, out)

    def _emit(self, side: int, g: _Gap, ts: int, state: str, median: float, out: list[Detection],
              reason: str | None = None) -> None:
        ev = {"ticks": g.width, "median_level": median, "epsilon": self.epsilon,
              "duration_ms": (ts - g.since) // MS}
        if reason:
            ev["reason"] = reason
        d = self.em.make(g.det_id, "liquidity_gap", side, g.near, ts, state, ev, g.far)
        out.append(d)
        if state == "close":
            self._open.pop(g.det_id, None)
        else:
            self._open[g.det_id] = d

    def _end(self, side: int, ts: int, reason: str, out: list[Detection]) -> None:
        g = self._gaps.pop(side, None)
        if g is not None and g.det_id:
            self._emit(side, g, ts, "close", g.median, out, reason)

    def reset(self, ts: int, out: list[Detection], reason: str = "resync") -> None:
        """Close what is open."""
        for side in list(self._gaps):
            self._end(side, ts, reason, out)

    def open(self) -> list[Detection]:
        """The latest record of each open gap."""
        return list(self._open.values())


class ThinBookDetector:
    """Depth near mid far below its own recent normal."""

    kinds = ("thin_book",)

    def __init__(self, emitter: Emitter, cfg: Section) -> None:
        self.em = emitter
        self.bps = cfg.num("bps", 10.0, 0.01)
        self.percentile = cfg.num("percentile", 10.0, 0.0, 100.0)
        self.factor = cfg.num("factor", 0.7, 0.0, 10.0)
        self.persist_ns = int(cfg.num("persist_ms", 2000.0, 0.0) * MS)
        self.warmup_s = cfg.int("warmup_s", 60, 1)
        minutes = cfg.num("minutes", 10.0, 0.1)
        self._n = max(2, int(minutes * 60))
        self._hist = {1: np.full(self._n, np.nan), -1: np.full(self._n, np.nan)}
        self._sec = -1
        self._count = 0
        self._ref = {1: math.nan, -1: math.nan}
        self._state: dict[int, list] = {}  # side -> [since, det_id, min_depth]
        self._open: dict[int, Detection] = {}

    def on_tick(self, v: BookView, book, out: list[Detection]) -> None:
        """Sample and evaluate both sides."""
        mid = v.mid2 / 2.0
        n_ticks = max(1, int(round(mid * self.bps / 10_000.0))) if mid > 0 else 1
        sec = v.ts // SEC
        new_sec = sec != self._sec
        if new_sec:
            self._sec = sec
            self._count += 1
        for side in (1, -1):
            depth = float(book.depth_within(side, n_ticks))
            if new_sec:
                h = self._hist[side]
                h[sec % self._n] = depth
                if self._count >= self.warmup_s and (self._count % 5 == 0 or math.isnan(self._ref[side])):
                    # The 10th percentile of minutes of history moves slowly: every 5 s is enough.
                    self._ref[side] = float(np.nanpercentile(h, self.percentile))
            ref = self._ref[side]
            st = self._state.get(side)
            thin = math.isfinite(ref) and depth < self.factor * ref
            if thin:
                if st is None:
                    st = [v.ts, 0, depth]
                    self._state[side] = st
                st[2] = min(st[2], depth)
                if not st[1] and v.ts - st[0] >= self.persist_ns:
                    st[1] = self.em.new_id()
                    self._emit(side, st, v, depth, ref, n_ticks, "open", out)
            elif st is not None:
                if st[1]:
                    self._emit(side, st, v, depth, ref, n_ticks, "close", out, "recovered")
                del self._state[side]

    def _emit(self, side: int, st: list, v: BookView, depth: float, ref: float, n_ticks: int, state: str,
              out: list[Detection], reason: str | None = None) -> None:
        best = v.best_bid if side > 0 else v.best_ask
        far = best - side * n_ticks
        ev = {"depth": depth, "min_depth": st[2], "reference": ref, "percentile": self.percentile,
              "bps": self.bps, "duration_ms": (v.ts - st[0]) // MS}
        if reason:
            ev["reason"] = reason
        d = self.em.make(st[1], "thin_book", side, best, v.ts, state, ev, far)
        out.append(d)
        if state == "close":
            self._open.pop(st[1], None)
        else:
            self._open[st[1]] = d

    def reset(self, ts: int, out: list[Detection], reason: str = "resync") -> None:
        """Close what is open (history is kept: the normal depth of the market did not change)."""
        for side, st in list(self._state.items()):
            if st[1]:
                last = self._open[st[1]]
                d = self.em.make(st[1], "thin_book", side, last.price_tick, ts, "close",
                                 dict(last.evidence, reason=reason), last.price_far_tick)
                out.append(d)
                self._open.pop(st[1], None)
        self._state.clear()

    def open(self) -> list[Detection]:
        """The latest record of each open thin book."""
        return list(self._open.values())
