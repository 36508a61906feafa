"""Iceberg / hidden liquidity: a level that keeps trading far more than it ever showed, and refills.

Per (side, price), over each window between two depth updates (trades aligned by exchange time):
``hidden = traded_into_level − (visible_before − visible_after)``. A *refill* is a window where the
level lost clearly less than was traded into it, or a level that emptied and came back at once. The
detection opens when ``executed ≥ ratio × max visible`` with ``≥ min_refills`` refills inside one
episode (trades no more than ``idle_s`` apart) and price has not traded through; it updates while the
level keeps absorbing and closes when the level is removed, traded through or goes idle.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from app.analytics.auto import AutoThreshold, ThresholdSpec
from app.analytics.base import MS, SEC, Emitter, Section, Window, level_key, traded_by_level
from app.core.detection import Detection


class _Level:
    """What we know about one traded level during one episode."""

    __slots__ = ("side", "tick", "visible", "max_visible", "executed", "hidden", "refills", "first_ts",
                 "last_trade_ts", "removed_ts", "det_id", "open_ts", "last_emit_ts", "last_emit_exec",
                 "last_emit_refills")

    def __init__(self, side: int, tick: int, visible: float, ts: int) -> None:
        self.side = side
        self.tick = tick
        self.visible = visible
        self.max_visible = visible
        self.executed = 0.0
        self.hidden = 0.0
        self.refills = 0
        self.first_ts = ts
        self.last_trade_ts = ts
        self.removed_ts = 0
        self.det_id = 0
        self.open_ts = 0
        self.last_emit_ts = 0
        self.last_emit_exec = 0.0
        self.last_emit_refills = 0


class IcebergDetector:
    """Finds levels whose executed volume far exceeds their visible size, with refills."""

    kinds = ("iceberg",)

    def __init__(self, emitter: Emitter, cfg: Section) -> None:
        self.em = emitter
        self.ratio = cfg.num("ratio", 3.0, 1.0)
        self.min_refills = cfg.int("min_refills", 3, 1)
        self.refill_tolerance = cfg.num("refill_tolerance", 0.2, 0.0, 1.0)
        self.idle_ns = int(cfg.num("idle_s", 10.0, 0.1) * SEC)
        self.regrow_ns = int(cfg.num("regrow_ms", 1000.0, 0.0) * MS)
        self.update_ns = int(cfg.num("update_ms", 500.0, 0.0) * MS)
        # Executed volume an iceberg must reach: auto = mean + k·sd of per-window volume into one level.
        self.min_executed = AutoThreshold(ThresholdSpec.parse(
            cfg.get("min_executed", "auto"), cfg.where("min_executed"), k=4.0, minutes=5.0, min_samples=20))
        self._levels: dict[tuple[int, int], _Level] = {}
        self._open: dict[int, Detection] = {}

    # -- events ------------------------------------------------------------------------------------
    def on_window(self, w: Window, known_size: Callable[[int, int], float], out: list[Detection]) -> None:
        """Account one depth window and its trades."""
        levels = self._levels
        t_side, t_tick, t_qty = traded_by_level(w)
        if not levels and not len(t_qty):
            return
        if len(t_qty):
            self.min_executed.add_many(t_qty, w.ts)
            if levels:
                # Price traded through a level: a fill beyond it on the same book side.
                bid_hit = t_side > 0
                lo_bid = int(t_tick[bid_hit].min()) if bid_hit.any() else None
                hi_ask = int(t_tick[~bid_hit].max()) if (~bid_hit).any() else None
                for lv in list(levels.values()):
                    if (lv.side > 0 and lo_bid is not None and lo_bid < lv.tick) or (
                            lv.side < 0 and hi_ask is not None and hi_ask > lv.tick):
                        self._finish(lv, w.ts, "traded_through", out)
        nd = len(w.d_tick)
        # Row of each level in this update (the last one wins): a dict is cheaper than numpy at this size.
        rowmap = dict(zip(level_key(w.d_side, w.d_tick).tolist(), range(nd), strict=True)) if nd else {}
        traded_keys = set()
        for i in range(len(t_qty)):
            side, tick = int(t_side[i]), int(t_tick[i])
            key = (side, tick)
            k2 = tick * 2 + (side > 0)
            traded_keys.add(k2)
            traded = float(t_qty[i])
            r = rowmap.get(k2, -1)
            lv = levels.get(key)
            if lv is None:
                b = float(w.d_before[r]) if r >= 0 else math.nan
                lv = _Level(side, tick, b if b == b else known_size(side, tick), w.ts)
                levels[key] = lv
            elif w.ts - lv.last_trade_ts > self.idle_ns and not lv.det_id:
                lv.__init__(side, tick, lv.visible, w.ts)  # a new episode at this level
            before = lv.visible
            after = float(w.d_after[r]) if r >= 0 else before
            lost = before - after
            hidden = traded - max(lost, 0.0)
            if hidden > self.refill_tolerance * traded:
                lv.refills += 1
                lv.hidden += hidden
            lv.executed += traded
            lv.visible = after
            if before > lv.max_visible:
                lv.max_visible = before
            if after > lv.max_visible:
                lv.max_visible = after
            lv.last_trade_ts = w.ts
            lv.removed_ts = w.ts if after <= 0.0 else 0
            self._check(lv, w.ts, out)
        if rowmap:
            # Followed levels that changed without trades in this window.
            for (side, tick), lv in levels.items():
                k2 = tick * 2 + (side > 0)
                r = rowmap.get(k2, -1)
                if r < 0 or k2 in traded_keys:
                    continue
                after = float(w.d_after[r])
                if 0.0 < after < lv.visible and not lv.det_id:
                    # Size cancelled without trades: what it showed before is gone, so the ratio of
                    # executed to visible starts over from what is left.
                    lv.__init__(side, tick, after, w.ts)
                    continue
                if after > 0.0 and lv.removed_ts and w.ts - lv.removed_ts <= self.regrow_ns:
                    lv.refills += 1  # emptied and came back at once: a refill
                    lv.removed_ts = 0
                elif after <= 0.0:
                    lv.removed_ts = w.ts
                lv.visible = after
                if after > lv.max_visible:
                    lv.max_visible = after

    def on_tick(self, ts: int, out: list[Detection]) -> None:
        """Close levels removed for good or idle; forget idle candidates."""
        for key in list(self._levels):
            lv = self._levels[key]
            if lv.removed_ts and ts - lv.removed_ts > self.regrow_ns:
                self._finish(lv, ts, "removed", out)
            elif ts - lv.last_trade_ts > self.idle_ns:
                self._finish(lv, ts, "idle", out)

    def reset(self, ts: int, out: list[Detection], reason: str = "resync") -> None:
        """Forget everything (book resync or end of stream), closing what is open."""
        for lv in list(self._levels.values()):
            self._finish(lv, ts, reason, out)

    def open(self) -> list[Detection]:
        """The latest record of each open iceberg."""
        return list(self._open.values())

    # -- internals ---------------------------------------------------------------------------------
    def _evidence(self, lv: _Level, ts: int) -> dict:
        return {"executed": round(lv.executed, 10), "visible": lv.visible, "max_visible": lv.max_visible,
                "refills": lv.refills, "hidden": round(lv.hidden, 10),
                "duration_ms": int((ts - lv.first_ts) // MS)}

    def _check(self, lv: _Level, ts: int, out: list[Detection]) -> None:
        if not lv.det_id:
            if (lv.refills >= self.min_refills and lv.executed >= self.ratio * max(lv.max_visible, 1e-12)
                    and lv.executed >= self.min_executed.value()):
                lv.det_id = self.em.new_id()
                lv.open_ts = lv.last_emit_ts = ts
                lv.last_emit_exec, lv.last_emit_refills = lv.executed, lv.refills
                self._emit(lv, ts, "open", out)
        elif ts - lv.last_emit_ts >= self.update_ns and (
                lv.refills > lv.last_emit_refills or lv.executed >= 1.25 * lv.last_emit_exec):
            lv.last_emit_ts = ts
            lv.last_emit_exec, lv.last_emit_refills = lv.executed, lv.refills
            self._emit(lv, ts, "update", out)

    def _emit(self, lv: _Level, ts: int, state: str, out: list[Detection], reason: str | None = None) -> None:
        ev = self._evidence(lv, ts)
        if reason:
            ev["reason"] = reason
        d = self.em.make(lv.det_id, "iceberg", lv.side, lv.tick, ts, state, ev)
        out.append(d)
        if state == "close":
            self._open.pop(lv.det_id, None)
        else:
            self._open[lv.det_id] = d

    def _finish(self, lv: _Level, ts: int, reason: str, out: list[Detection]) -> None:
        if lv.det_id:
            self._emit(lv, ts, "close", out, reason)
        self._levels.pop((lv.side, lv.tick), None)
