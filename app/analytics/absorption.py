"""Absorption: heavy aggressive volume into a narrow band that does not give way.

Per book side, over a sliding window of ``window_s`` seconds: the band is the ``band_ticks + 1`` ticks
around the latest fill that took the most aggressive volume since price last went beyond it (lower for
bids, higher for asks); a fill beyond an open band means it gave way.
Absorption opens when the volume into the band passes the threshold (and ``visible_ratio`` × the most
the band showed, off by default), the band is still quoted with at least ``hold_fraction`` of the most
it showed, and all of that has held for ``confirm_ms`` — a level simply eaten through fails the
holding test. It closes when price trades through / the band is no longer quoted or gives way, or the
flow fades.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from app.analytics.auto import AutoThreshold, ThresholdSpec
from app.analytics.base import MS, SEC, Emitter, Section, Window, level_key
from app.core.detection import Detection
from app.core.events import NO_PRICE


class _Episode:
    __slots__ = ("lo", "hi", "since", "max_visible", "det_id", "volume", "last_emit_ts", "last_emit_vol",
                 "visible", "threshold", "grown_ts", "grown_size")

    def __init__(self, lo: int, hi: int, ts: int) -> None:
        self.lo = lo
        self.hi = hi
        self.since = ts
        self.max_visible = 0.0
        self.det_id = 0
        self.volume = 0.0
        self.last_emit_ts = 0
        self.last_emit_vol = 0.0
        self.visible = 0.0
        self.threshold = 0.0
        # When the band last grew to over twice what it had shown (a wall joined it), and to what:
        # flow before that hit a much smaller band and was absorbed by nobody.
        self.grown_ts = -(2**62)
        self.grown_size = 0.0


class AbsorptionDetector:
    """Watches the aggressive flow per book side for bands that absorb it."""

    kinds = ("absorption",)

    def __init__(self, emitter: Emitter, cfg: Section) -> None:
        self.em = emitter
        self.band_ticks = cfg.int("band_ticks", 1, 0, 2)
        self.window_ns = int(cfg.num("window_s", 3.0, 1.0, 5.0) * SEC)
        self.confirm_ns = int(cfg.num("confirm_ms", 500.0, 0.0) * MS)
        # Sustained flow, not one aggressor: fills at this many different exchange times in the band.
        self.min_fills = cfg.int("min_fills", 4, 1)
        # Volume also counts as heavy at this multiple of the median level size (0 = off): sustained
        # flow worth several typical levels into a band that holds is absorption even where bursts
        # of sweeps make the statistical threshold high.
        self.median_multiple = cfg.num("median_multiple", 0.0, 0.0)
        # Absorption is by a visible wall (hidden refills are the iceberg detector's): the band must have
        # shown wall_multiple x the median level size (0 = any band); then wall_fraction of what it
        # showed, taken while it holds, is heavy enough.
        self.wall_multiple = cfg.num("wall_multiple", 8.0, 0.0)
        self.wall_fraction = cfg.num("wall_fraction", 0.25, 0.0, 10.0)
        self._median = 0.0
        self.visible_ratio = cfg.num("visible_ratio", 0.0, 0.0)
        # The band must still show this fraction of the most it showed: a level being eaten away is
        # not holding, however much traded into it.
        self.hold_fraction = cfg.num("hold_fraction", 0.3, 0.0, 1.0)
        self.update_ns = int(cfg.num("update_ms", 1000.0, 0.0) * MS)
        self.volume = AutoThreshold(ThresholdSpec.parse(cfg.get("volume", "auto"), cfg.where("volume"),
                                                        k=2.0, minutes=5.0, min_samples=25))
        e = np.empty(0)
        ei = np.empty(0, dtype=np.int64)
        self._ts, self._side, self._tick, self._qty = ei, ei, ei, e
        self._ep: dict[int, _Episode] = {}
        self._new = {1: False, -1: False}  # fills arrived on that side since its last evaluation
        self._seen: dict[tuple[int, int], tuple[float, int]] = {}  # level hit -> (most it showed, last ts)
        self._open: dict[int, Detection] = {}

    def on_window(self, w: Window, known_size: Callable[[int, int], float]) -> None:
        """Take the window's fills into the sliding history, and the sizes the hit levels showed."""
        if len(w.lv_qty):
            rowmap = dict(zip(level_key(w.d_side, w.d_tick).tolist(), range(len(w.d_tick)), strict=True))
            seen = self._seen
            for s, t in zip(w.lv_side.tolist(), w.lv_tick.tolist(), strict=True):
                r = rowmap.get(t * 2 + (s > 0), -1)
                b = float(w.d_before[r]) if r >= 0 else math.nan
                vis = b if b == b else known_size(s, t)
                if r >= 0:
                    vis = max(vis, float(w.d_after[r]))
                old = seen.get((s, t))
                seen[(s, t)] = (max(vis, old[0]) if old else vis, w.ts)
        if len(w.t_qty):
            self._new[1] = self._new[1] or bool((w.t_side > 0).any())
            self._new[-1] = self._new[-1] or bool((w.t_side < 0).any())
            self._ts = np.concatenate((self._ts, w.t_ts))
            self._side = np.concatenate((self._side, w.t_side))
            self._tick = np.concatenate((self._tick, w.t_tick))
            self._qty = np.concatenate((self._qty, w.t_qty))

    def on_tick(self, ts: int, book: object, out: list[Detection], median_level: float | None = None) -> None:
        """Evaluate both sides at exchange time ``ts`` (``median_level``: median resting level size now)."""
        if median_level:
            self._median = median_level
        if len(self._ts) and self._ts[0] < ts - self.window_ns:
            k = int(np.searchsorted(self._ts, ts - self.window_ns, side="left"))
            if k:
                self._ts, self._side, self._tick, self._qty = (
                    self._ts[k:], self._side[k:], self._tick[k:], self._qty[k:])
        if not len(self._ts) and not self._ep:
            return
        for side in (1, -1):
            # Nothing new on a side with no episode: the answer cannot have changed (cheap skip).
            if self._new[side] or side in self._ep:
                self._new[side] = False
                self._eval_side(side, ts, book, out)
        if len(self._seen) > 64:
            old = ts - self.window_ns
            self._seen = {k: v for k, v in self._seen.items() if v[1] >= old}

    def _eval_side(self, side: int, ts: int, book, out: list[Detection]) -> None:
        m = self._side == side
        ep = self._ep.get(side)
        if not m.any():
            if ep is not None:
                self._end(side, ts, "faded", out)
            return
        ticks = self._tick[m]
        qty = self._qty[m]
        t_ts = self._ts[m]
        k = self.band_ticks
        # The band is where the flow is now: of the k+1-tick bands holding the latest fill's tick, the
        # one that took the most since price last went beyond it (earlier fills were another visit).
        anchor = int(ticks[int(np.argmax(t_ts))])
        best_vol = -1.0
        lo = hi = anchor
        in_band = ticks < 0
        last_beyond = -(2**62)
        # On a tie the band reaching away from mid wins (where price would go if it gave way).
        cands = range(anchor - k, anchor + 1) if side > 0 else range(anchor, anchor - k - 1, -1)
        for cand_lo in cands:
            cand_hi = cand_lo + k
            beyond = (ticks < cand_lo) if side > 0 else (ticks > cand_hi)
            lb = int(t_ts[beyond].max()) if beyond.any() else -(2**62)
            sel = (ticks >= cand_lo) & (ticks <= cand_hi) & (t_ts > lb)
            v = float(qty[sel].sum())
            if v > best_vol:
                best_vol, lo, hi, in_band, last_beyond = v, cand_lo, cand_hi, sel, lb
        broken = not in_band.any() or bool(ep is not None and ep.det_id and last_beyond > ep.since)
        vol = best_vol
        best = book.best_bid_tick if side > 0 else book.best_ask_tick
        quoted = best != NO_PRICE and (best >= lo if side > 0 else best <= hi)
        thr = self.volume.value()
        if self.median_multiple and self._median > 0:
            thr = min(thr, self.median_multiple * self._median)
        self.volume.add(vol, ts)
        if ep is not None and (lo != ep.lo or hi != ep.hi or broken):
            through = broken or (lo < ep.lo if side > 0 else hi > ep.hi)
            self._end(side, ts, "traded_through" if through else "moved", out)
            ep = None
        if broken:
            return
        if not quoted:
            if ep is not None:
                self._end(side, ts, "not_quoted", out)
            return
        if ep is None and not vol >= min(thr, self._wall_floor()):
            return  # not heavy: no episode to follow
        visible = 0.0
        shown = 0.0  # the most each band tick showed while being hit: what a plain level could absorb
        for t in range(lo, hi + 1):
            q = book.qty_at(side, t)
            visible += q
            s = self._seen.get((side, t))
            shown += max(q, s[0]) if s else q
        if ep is None:
            ep = _Episode(lo, hi, ts)
            self._ep[side] = ep
        ep.max_visible = max(ep.max_visible, shown)
        ep.volume = vol
        ep.threshold = thr
        ep.visible = visible
        # A wall: the band showed at least wall_multiple x the median level. Then taking a fraction of
        # what it showed while holding is absorption, however the statistical threshold stands.
        if ep.max_visible > 2.0 * ep.grown_size:
            # The first look at the band counts all its flow; a later growth restarts the count.
            if ep.grown_size > 0:
                ep.grown_ts = ts
            ep.grown_size = ep.max_visible
        wall = self.wall_multiple > 0 and self._median > 0 and ep.max_visible >= self.wall_multiple * self._median
        if wall:
            thr = min(thr, self.wall_fraction * ep.max_visible)
            ep.threshold = thr  # the evidence says which bar the volume passed
            if ep.grown_ts > -(2**62):
                # Only flow the wall took counts: fills into the band before it was quoted there (a
                # level eaten just before a large order joined it) do not show the wall holding.
                in_band = in_band & (t_ts >= ep.grown_ts)
                vol = float(qty[in_band].sum())
                ep.volume = vol
        heavy = vol >= thr
        strong = (heavy and (wall or not self.wall_multiple) and vol >= self.visible_ratio * ep.max_visible
                  and visible >= self.hold_fraction * ep.max_visible
                  and len(np.unique(t_ts[in_band])) >= self.min_fills)
        if not ep.det_id:
            if not strong:
                ep.since = ts
            elif ts - ep.since >= self.confirm_ns:
                ep.det_id = self.em.new_id()
                ep.last_emit_ts, ep.last_emit_vol = ts, vol
                self._emit(side, ep, ts, "open", visible, out)
        elif vol < 0.5 * thr:
            self._end(side, ts, "faded", out)
        elif visible < 0.5 * self.hold_fraction * ep.max_visible:
            self._end(side, ts, "giving_way", out)
        elif ts - ep.last_emit_ts >= self.update_ns and vol >= 1.25 * ep.last_emit_vol:
            ep.last_emit_ts, ep.last_emit_vol = ts, vol
            self._emit(side, ep, ts, "update", visible, out)

    def _wall_floor(self) -> float:
        if self.wall_multiple > 0 and self._median > 0:
            return self.wall_fraction * self.wall_multiple * self._median
        return float("inf")

    def _emit(self, side: int, ep: _Episode, ts: int, state: str, visible: float, out: list[Detection],
              reason: str | None = None) -> None:
        ev = {"executed": round(ep.volume, 10), "visible": visible, "max_visible": ep.max_visible,
              "band": [ep.lo, ep.hi], "window_ms": self.window_ns // MS,
              "threshold": round(ep.threshold, 10), "duration_ms": (ts - ep.since) // MS}
        if reason:
            ev["reason"] = reason
        # price: the band's edge nearest mid; price_far: its other edge.
        price, far = (ep.hi, ep.lo) if side > 0 else (ep.lo, ep.hi)
        d = self.em.make(ep.det_id, "absorption", side, price, ts, state, ev, far)
        out.append(d)
        if state == "close":
            self._open.pop(ep.det_id, None)
        else:
            self._open[ep.det_id] = d

    def _end(self, side: int, ts: int, reason: str, out: list[Detection]) -> None:
        ep = self._ep.pop(side, None)
        if ep is not None and ep.det_id:
            self._emit(side, ep, ts, "close", ep.visible, out, reason)

    def reset(self, ts: int, out: list[Detection], reason: str = "resync") -> None:
        """Close what is open and forget the flow."""
        for side in list(self._ep):
            self._end(side, ts, reason, out)
        self._ts, self._side, self._tick, self._qty = self._ts[:0], self._side[:0], self._tick[:0], self._qty[:0]

    def open(self) -> list[Detection]:
        """The latest record of each open absorption."""
        return list(self._open.values())
