"""Pull and stack: large size removed without being traded, or added, at one level within seconds.

Each depth window gives, per changed level near mid, the size change and the volume traded into that
level in the same window (exchange-time aligned), so ``cancelled = decrease − traded`` and
``added = increase + traded``. Pieces at one level within ``window_s`` add up; when the sum passes the
threshold the event is emitted as an ``open`` immediately followed by its ``close`` (it is instantaneous).

Market makers flicker quotes: size added and taken away again within a second. That is neither a
stack nor a pull worth a trader's eye, so a stack is only reported once the added size has rested
``persist_ms``, and a pull counts only the size beyond what was added in the last ``min_age_ms``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.analytics.auto import AutoThreshold, ThresholdSpec, winsorized
from app.analytics.base import MS, SEC, BookView, Emitter, Section, Window
from app.core.detection import Detection


class _Rule:
    """One kind's settings (pull or stack)."""

    __slots__ = ("kind", "band_ticks", "window_ns", "piece_fraction", "size", "age_ns")

    def __init__(self, kind: str, cfg: Section) -> None:
        self.kind = kind
        self.band_ticks = cfg.int("band_ticks", 20, 0)
        self.window_ns = int(cfg.num("window_s", 5.0, 0.0) * SEC)
        self.piece_fraction = cfg.num("piece_fraction", 0.25, 0.0, 1.0)
        # pull: the removed size must have rested this long; stack: the added size must rest this long.
        self.age_ns = int(cfg.num("min_age_ms" if kind == "pull" else "persist_ms", 1000.0 if kind == "pull" else 500.0, 0.0) * MS)
        # Size: auto = max(floor, mean + k·sd) of the resting level sizes near mid (as for large orders):
        # a pull or stack is worth a look when it is as big as a large order.
        self.size = AutoThreshold(ThresholdSpec.parse(cfg.get("size", "auto"), cfg.where("size"),
                                                      k=4.0, minutes=5.0, min_samples=200))


class PullStackDetector:
    """Emits ``pull`` (cancelled size) and ``stack`` (added size) events near mid."""

    kinds = ("pull", "stack")

    def __init__(self, emitter: Emitter, pull_cfg: Section, stack_cfg: Section, pull: bool = True,
                 stack: bool = True) -> None:
        self.em = emitter
        self.rules = [r for r, on in ((_Rule("pull", pull_cfg), pull), (_Rule("stack", stack_cfg), stack)) if on]
        self.band_ticks = max(r.band_ticks for r in self.rules) if self.rules else 0
        self._acc: dict[tuple[str, int, int], list] = {}  # (kind, side, tick) -> [first_ts, sum, before]
        self._added: dict[tuple[int, int], list[tuple[int, float]]] = {}  # level -> recent (ts, added)
        self._stacks: dict[tuple[int, int], list] = {}  # stacks waiting to have rested persist_ms

    def on_window(self, w: Window, mid_tick: int | None, out: list[Detection]) -> None:
        """Account the level changes of one depth window."""
        if len(w.d_tick) == 0 or mid_tick is None or not self.rules:
            return
        dist = np.abs(w.d_tick - mid_tick)
        delta = w.d_after - w.d_before  # NaN where the size before is unknown
        absd = np.abs(delta)
        changed = (dist <= self.band_ticks) & (absd > 0.0)
        changes = absd[changed]
        if not len(changes):
            return
        max_traded = float(w.lv_qty.max()) if len(w.lv_qty) else 0.0
        top = float(changes.max()) + max_traded
        for rule in self.rules:
            thr = rule.size.value()
            piece = rule.piece_fraction * thr
            if not top >= piece:  # also false for an infinite (warming-up) threshold
                continue
            idx = np.flatnonzero(changed & (absd + max_traded >= piece) & (dist <= rule.band_ticks))
            for i in idx:
                side, tick = int(w.d_side[i]), int(w.d_tick[i])
                traded = 0.0
                if max_traded:
                    hit = np.flatnonzero((w.lv_tick == tick) & (w.lv_side == side))
                    traded = float(w.lv_qty[hit[0]]) if len(hit) else 0.0
                d = float(delta[i])
                size = max(0.0, -d - traded) if rule.kind == "pull" else max(0.0, d + (traded if d > 0 else 0.0))
                if size >= piece:
                    self._piece(rule, side, tick, size, float(w.d_before[i]), float(w.d_after[i]), traded,
                                w.ts, thr, out)

    def on_view(self, v: BookView) -> None:
        """Sample the resting level sizes near mid (the automatic thresholds' quantity)."""
        near = np.abs(v.ticks * 2 - v.mid2) <= 2 * self.band_ticks
        sizes = np.concatenate((v.bid[near], v.ask[near]))
        sizes = sizes[sizes > 0]
        for rule in self.rules:
            rule.size.add_many(winsorized(sizes, rule.size.value()), v.ts)

    def _piece(self, rule: _Rule, side: int, tick: int, size: float, before: float, after: float,
               traded: float, ts: int, thr: float, out: list[Detection]) -> None:
        level = (side, tick)
        if rule.kind == "stack":
            self._added.setdefault(level, []).append((ts, size))
        key = (rule.kind, side, tick)
        acc = self._acc.get(key)
        if acc is None or ts - acc[0] > rule.window_ns:
            acc = [ts, 0.0, before]
            self._acc[key] = acc
        acc[1] += size
        if acc[1] < thr:
            return
        del self._acc[key]
        ev = {"cancelled" if rule.kind == "pull" else "added": round(acc[1], 10), "before": acc[2],
              "after": after, "traded": traded, "threshold": round(thr, 10),
              "duration_ms": int((ts - acc[0]) // MS)}
        if rule.kind == "pull":
            recent = sum(q for t, q in self._added.get(level, ()) if ts - t < rule.age_ns)
            if acc[1] - recent < thr:
                self._stacks.pop(level, None)  # a flicker: neither the stack nor the pull is news
                return
            self._emit("pull", side, tick, ts, ev, out)
        else:
            # Report once it has rested: [reached_ts, evidence, size it must keep, rule]
            self._stacks[level] = [ts, ev, acc[2] + 0.5 * acc[1], rule]

    def _emit(self, kind: str, side: int, tick: int, ts: int, ev: dict, out: list[Detection]) -> None:
        det_id = self.em.new_id()
        out.append(self.em.make(det_id, kind, side, tick, ts, "open", ev))
        out.append(self.em.make(det_id, kind, side, tick, ts, "close", dict(ev, reason="instant")))

    def on_tick(self, ts: int, out: list[Detection], size_now: Callable[[int, int], float] | None = None) -> None:
        """Report stacks that have rested; drop old partial sums."""
        if self._stacks:
            for level, (t0, ev, keep, rule) in list(self._stacks.items()):
                if ts - t0 >= rule.age_ns:
                    del self._stacks[level]
                    if size_now is None or size_now(*level) >= keep:
                        self._emit("stack", level[0], level[1], ts, dict(ev, rested_ms=int((ts - t0) // MS)), out)
        if self._acc:
            for key in [k for k, a in self._acc.items() if ts - a[0] > 10 * SEC]:
                del self._acc[key]
        if self._added:
            keep = {}
            for k, pieces in self._added.items():
                pieces = [p for p in pieces if ts - p[0] < 10 * SEC]
                if pieces:
                    keep[k] = pieces
            self._added = keep

    def reset(self, ts: int, out: list[Detection], reason: str = "resync") -> None:
        """Forget partial sums and unconfirmed stacks (nothing stays open)."""
        self._acc.clear()
        self._stacks.clear()
        self._added.clear()

    def open(self) -> list[Detection]:
        """Pulls and stacks never stay open."""
        return []
