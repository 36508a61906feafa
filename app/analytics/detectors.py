"""``DetectorSet``: runs every enabled detector on each applied batch of one instrument.

The engine calls :meth:`DetectorSet.on_batch` once per batch, *after* the batch was applied to the
book, or :meth:`DetectorSet.on_run` once for a stretch of quote/trade messages (a replay at full speed:
the same detections after the same messages). Per batch the set does as little as it can (a quote
batch costs a couple of scalar reads):

* fills are appended to a small buffer and fed one by one to the sweep grouping (scalar work);
* depth rows are diffed against a dense mirror of the sizes near mid (one vector op) and queued as a
  *window*; a window is processed ``align_ms`` of exchange time later, together with the fills up to its
  exchange time, because fills and depth come on different streams and a fill may arrive a little
  after the depth update that already shows it (≤ 24 ms on the real BTCUSDT capture);
* the book-state detectors (gaps, thin book, large orders, absorption) run every ``eval_interval_ms``.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.analytics.absorption import AbsorptionDetector
from app.analytics.base import MS, BookView, Emitter, Section, Window, level_key
from app.analytics.gaps import GapDetector, ThinBookDetector
from app.analytics.iceberg import IcebergDetector
from app.analytics.large_orders import LargeOrderDetector
from app.analytics.pulls import PullStackDetector
from app.analytics.sweeps import SweepDetector
from app.core.detection import KINDS, Detection
from app.core.events import (
    BUY_EVENT,
    DEPTH_BBO_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    GAP_EVENT,
    KIND_MASK,
    NO_PRICE,
    TRADE_EVENT,
)
from app.core.instrument import Instrument

_TOP_KEYS = {"eval_interval_ms", "align_ms", "window_ms", "mirror_ticks", "view_ticks", "window_ticks"}


class DetectorSet:
    """All enabled detectors of one instrument, fed batch by batch."""

    def __init__(self, instrument: Instrument, config: dict[str, Any] | None = None) -> None:
        cfg = dict(config or {})
        if isinstance(cfg.get("detectors"), dict):  # the whole app config was passed
            cfg = dict(cfg["detectors"])
        unknown = set(cfg) - _TOP_KEYS - set(KINDS)
        if unknown:
            raise ValueError(f"[detectors]: unknown key(s) {sorted(unknown)} (kinds are {', '.join(KINDS)})")
        top = Section("", {k: cfg[k] for k in _TOP_KEYS if k in cfg})
        self.instrument = instrument
        self.eval_ns = int(top.num("eval_interval_ms", 250.0, 1.0) * MS)
        self.align_ns = int(top.num("align_ms", 50.0, 0.0) * MS)
        # Depth updates closer than this are taken together as one window (cheaper; Binance's
        # standard diff stream is 100 ms anyway).
        self.drain_ns = int(top.num("window_ms", 100.0, 0.0) * MS)
        self._half = top.int("mirror_ticks", 4096, 64) // 2
        self.view_ticks = top.int("view_ticks", 64, 4)
        # Depth rows farther than this from mid are not queued for the window detectors (pulls,
        # icebergs, absorption look at most band/distance ticks away).
        self.window_ticks = top.int("window_ticks", 128, 4)
        sections = {k: Section(k, cfg.get(k)) for k in KINDS}
        enabled = {k: sections[k].flag("enabled", True) for k in KINDS}
        self.enabled = tuple(k for k in KINDS if enabled[k])
        em = Emitter(instrument, itertools.count(1))
        self.iceberg = IcebergDetector(em, sections["iceberg"]) if enabled["iceberg"] else None
        self.absorption = AbsorptionDetector(em, sections["absorption"]) if enabled["absorption"] else None
        self.gaps = GapDetector(em, sections["liquidity_gap"]) if enabled["liquidity_gap"] else None
        self.thin = ThinBookDetector(em, sections["thin_book"]) if enabled["thin_book"] else None
        self.pulls = (PullStackDetector(em, sections["pull"], sections["stack"], pull=enabled["pull"],
                                        stack=enabled["stack"]) if enabled["pull"] or enabled["stack"] else None)
        self.sweeps = (SweepDetector(em, sections["sweep"], sections["big_trade"], sweep=enabled["sweep"],
                                     big=enabled["big_trade"])
                       if enabled["sweep"] or enabled["big_trade"] else None)
        self.large = (LargeOrderDetector(em, instrument, sections["large_order"])
                      if enabled["large_order"] else None)
        for k, s in sections.items():
            if enabled[k]:  # a disabled detector's table is not read: do not judge its keys
                s.check_unknown()
        top.check_unknown()
        self._all = [d for d in (self.iceberg, self.absorption, self.gaps, self.thin, self.pulls,
                                 self.sweeps, self.large) if d is not None]
        # Dense mirror of level sizes around mid (NaN = unknown) to know each changed level's size before.
        self._base = 0
        # One flat array (asks, then bids) so a batch of both sides is read and written in one go.
        self._flat = np.full(4 * self._half, np.nan)
        self._mirror = {1: self._flat[2 * self._half:], -1: self._flat[:2 * self._half]}
        self._flat_mv = memoryview(self._flat)  # scalar reads/writes of one-row diffs, no numpy scalars
        self._synced = False
        # (ts, side, tick, size before, size after) per depth message: arrays, or scalars for one row
        self._pending: deque[tuple[int, Any, Any, Any, Any]] = deque()
        cap = 1024
        self._tn = 0
        self._tts = np.empty(cap, dtype=np.int64)
        self._tside = np.empty(cap, dtype=np.int64)
        self._ttick = np.empty(cap, dtype=np.int64)
        self._tqty = np.empty(cap)
        self._now = -(2**62)
        self._next_eval = -(2**62)
        self._next_drain = -(2**62)
        self._ticks = 0

    # -- the engine's interface --------------------------------------------------------------------
    def on_batch(self, batch: np.ndarray, book: Any) -> list[Detection]:
        """Detections caused by one batch (already applied to ``book``)."""
        n = len(batch)
        if n == 0:
            return []
        out: list[Detection] = []
        # One tuple read is ~3x cheaper than field-by-field access of a numpy record.
        ev, ts, _, _, qty, _, tick, _ = batch.item(0)
        kind = ev & KIND_MASK
        if kind == DEPTH_BBO_EVENT and n <= 2:
            # Quotes carry nothing the book does not have: they only move the clock (the common case).
            if ts <= self._now or (ts < self._next_drain and ts < self._next_eval):
                if ts > self._now:
                    self._now = ts
                return out
        elif n == 1:
            if kind == TRADE_EVENT:
                self._fill(ts, 1 if ev & BUY_EVENT else -1, tick, qty, out)
            elif kind == DEPTH_EVENT:
                self._depth_one(ev, ts, tick, qty, book)
            elif kind in (DEPTH_SNAPSHOT_EVENT, DEPTH_CLEAR_EVENT, GAP_EVENT):
                self._resync(ts, book, out)
        else:
            kinds = batch["ev"] & KIND_MASK
            ts = int(batch["exch_ts"].max())
            k_lo = int(kinds.min())
            if k_lo == DEPTH_EVENT and int(kinds.max()) == DEPTH_EVENT:
                self._depth(batch, ts, book, out)  # a venue's depth message (the common multi-row batch)
            elif ((kinds == DEPTH_SNAPSHOT_EVENT) | (kinds == DEPTH_CLEAR_EVENT) | (kinds == GAP_EVENT)).any():
                self._resync(ts, book, out)
            else:
                trades = np.flatnonzero(kinds == TRADE_EVENT)
                for i in trades:
                    r = batch[i]
                    self._fill(int(r["exch_ts"]), 1 if int(r["ev"]) & BUY_EVENT else -1, int(r["ival"]),
                               float(r["qty"]), out)
                if len(trades) < n:
                    depth = batch[kinds == DEPTH_EVENT]
                    if len(depth):
                        self._depth(depth, ts, book, out)
        self._advance(ts, book, out)
        return out

    def on_run(self, rows: np.ndarray, ends: Sequence[int], book: Any) -> list[tuple[int, list[Detection]]]:
        """``on_batch`` on each message of a run of messages that leave the book as it is (quotes, trades),
        for the cost of the few that do something.

        Message ``k`` is ``rows[ends[k - 1]:ends[k]]`` (``ends`` ascending, the last one ``len(rows)``); ``book``
        is the book they all saw. Returns ``(k, detections)`` for the messages that gave some, in order.
        A quote message (one or two BBO rows) only moves the clock unless it crosses a drain or evaluation
        time; a one-row trade is a fill; any other message goes through ``on_batch`` itself.
        """
        ends_l = np.asarray(ends, dtype=np.int64).tolist()
        if not ends_l:
            return []
        starts_l = [0, *ends_l[:-1]]
        firsts = rows[starts_l].tolist()  # each message's first row as a tuple: one call for the run
        found: list[tuple[int, list[Detection]]] = []
        now, nd, ne = self._now, self._next_drain, self._next_eval
        for k, (ev, t, _, _, qty, _, tick, _) in enumerate(firsts):
            kind = ev & KIND_MASK
            n = ends_l[k] - starts_l[k]
            if kind == DEPTH_BBO_EVENT and n <= 2:
                if t <= now or (t < nd and t < ne):
                    if t > now:
                        now = t
                    continue
                out: list[Detection] = []
                self._now = now
                self._advance(t, book, out)
            elif kind == TRADE_EVENT and n == 1:
                out = []
                self._fill(t, 1 if ev & BUY_EVENT else -1, tick, qty, out)
                if now <= t < nd and t < ne:  # nothing falls due, and the fill is not late (no sweep flush)
                    now = t
                    if out:
                        found.append((k, out))
                    continue
                self._now = now
                self._advance(t, book, out)
            else:
                self._now = now
                out = self.on_batch(rows[starts_l[k]:ends_l[k]], book)
            now, nd, ne = self._now, self._next_drain, self._next_eval
            if out:
                found.append((k, out))
        self._now = now
        return found

    def _advance(self, ts: int, book: Any, out: list[Detection]) -> None:
        """After a message: move the clock to ``ts`` and do what falls due (sweep, windows, evaluation)."""
        if ts > self._now:
            self._now = ts
        now = self._now
        sw = self.sweeps
        if sw is not None and sw._ts >= 0 and now > sw._ts:
            sw.flush(out)
        if now >= self._next_drain:
            if self._pending and now - self._pending[0][0] >= self.align_ns:
                self._next_drain = now + self.drain_ns
                self._drain(now, book, out)
            elif self._tn and now - self._tts[0] >= self.align_ns:
                self._next_drain = now + self.drain_ns
                self._drain(now, book, out)  # fills but no depth update for a while
        if now >= self._next_eval:
            self._next_eval = now + self.eval_ns
            self._evaluate(now, book, out)

    def close_all(self, exch_ts: int) -> list[Detection]:
        """End of stream: process what is queued and close every open detection."""
        out: list[Detection] = []
        ts = max(int(exch_ts), self._now)
        self._drain(ts, None, out, force=True)
        for d in self._all:
            d.reset(ts, out, "end")
        return out

    def open(self) -> tuple[Detection, ...]:
        """The latest record of every detection that is open now."""
        return tuple(d for det in self._all for d in det.open())

    # -- fills ---------------------------------------------------------------------------------------
    def _fill(self, ts: int, aggressor: int, tick: int, qty: float, out: list[Detection]) -> None:
        if self.sweeps is not None:
            self.sweeps.on_fill(ts, aggressor, tick, qty, out)
        n = self._tn
        if n == len(self._tts):
            self._tts = np.resize(self._tts, 2 * n)
            self._tside = np.resize(self._tside, 2 * n)
            self._ttick = np.resize(self._ttick, 2 * n)
            self._tqty = np.resize(self._tqty, 2 * n)
        self._tts[n] = ts
        self._tside[n] = -aggressor  # the book side the fill hit
        self._ttick[n] = tick
        self._tqty[n] = qty
        self._tn = n + 1

    # -- depth ---------------------------------------------------------------------------------------
    def _depth(self, rows: np.ndarray, ts: int, book: Any, out: list[Detection]) -> None:
        if not self._synced:
            self._rebuild(book)
            return
        width = 2 * self._half
        is_bid = ((rows["ev"] >> _BUY_SHIFT) & 1).astype(np.int64)  # BUY_EVENT = the bid side
        tick = rows["ival"]
        qty = rows["qty"]
        flat = tick - self._base + is_bid * width
        lo, hi = int(tick.min()) - self._base, int(tick.max()) - self._base
        if lo >= 0 and hi < width:  # the usual case: every row inside the mirror
            before = self._flat[flat]
            self._flat[flat] = qty
        else:
            inside = (tick - self._base >= 0) & (tick - self._base < width)
            before = np.full(len(rows), np.nan)
            before[inside] = self._flat[flat[inside]]
            self._flat[flat[inside]] = qty[inside]
        bb, ba = book.best_bid_tick, book.best_ask_tick
        if bb != NO_PRICE and ba != NO_PRICE:
            mid = (bb + ba) // 2
            wt = self.window_ticks
            # Windows carry only the rows near mid: every window detector looks there, and a venue's
            # diff is mostly far levels (Binance: ~67 rows a message, a handful near the touch).
            if mid - wt > lo + self._base or mid + wt < hi + self._base:
                near = np.flatnonzero(np.abs(tick - mid) <= wt)
                is_bid, tick, before, qty = is_bid[near], tick[near], before[near], qty[near]
            else:  # views into the caller's batch: it may reuse that memory before the window is built
                tick, qty = tick.copy(), qty.copy()
            self._pending.append((ts, is_bid * 2 - 1, tick, before, qty))
            if abs(mid - self._base - self._half) > self._half // 2:
                self._rebuild(book)
        else:
            self._pending.append((ts, is_bid * 2 - 1, tick.copy(), before, qty.copy()))

    def _depth_one(self, ev: int, ts: int, tick: int, qty: float, book: Any) -> None:
        """``_depth`` of a one-row diff (the simulator's and small venues' usual message) with scalars."""
        if not self._synced:
            self._rebuild(book)
            return
        width = 2 * self._half
        side = 1 if (ev >> _BUY_SHIFT) & 1 else -1
        i = tick - self._base
        if 0 <= i < width:
            if side == 1:
                i += width
            mv = self._flat_mv
            before = mv[i]
            mv[i] = qty
        else:
            before = math.nan
        bb, ba = book.best_bid_tick, book.best_ask_tick
        if bb != NO_PRICE and ba != NO_PRICE:
            mid = (bb + ba) // 2
            if abs(tick - mid) <= self.window_ticks:
                self._pending.append((ts, side, tick, before, qty))
            else:  # as _depth: the window keeps its time, not the far row
                self._pending.append((ts, _E_I, _E_I, _E_F, _E_F))
            if abs(mid - self._base - self._half) > self._half // 2:
                self._rebuild(book)
        else:
            self._pending.append((ts, side, tick, before, qty))

    def _rebuild(self, book: Any) -> None:
        """Refill the mirror from the book around its mid (first sync, resync, mid drifted away)."""
        bb, ba = book.best_bid_tick, book.best_ask_tick
        if bb == NO_PRICE or ba == NO_PRICE:
            return
        mid = (bb + ba) // 2
        self._base = mid - self._half
        ticks, bq, aq = book.ladder(self._base + 2 * self._half - 1, 2 * self._half)
        order = np.argsort(ticks)
        self._mirror[1][:] = np.asarray(bq, dtype=np.float64)[order]
        self._mirror[-1][:] = np.asarray(aq, dtype=np.float64)[order]
        self._synced = True

    def _known_size(self, side: int, tick: int) -> float:
        i = tick - self._base
        if 0 <= i < 2 * self._half:
            v = float(self._mirror[side][i])
            return 0.0 if math.isnan(v) else v
        return 0.0

    def _resync(self, ts: int, book: Any, out: list[Detection]) -> None:
        """The book was (re)built from a snapshot or cleared: close everything and start over."""
        self._drain(ts, None, out, force=True)
        for d in self._all:
            d.reset(ts, out, "resync")
        self._synced = False
        for arr in self._mirror.values():
            arr[:] = np.nan
        self._rebuild(book)

    def _drain(self, now: int, book: Any, out: list[Detection], force: bool = False) -> None:
        """Process the queued depth windows whose fills have had time to arrive."""
        pend = self._pending
        mid = None
        if book is not None and book.best_bid_tick != NO_PRICE and book.best_ask_tick != NO_PRICE:
            mid = (book.best_bid_tick + book.best_ask_tick) // 2
        if not pend and self._tn:
            # Fills with no depth update around them still have to reach the detectors.
            pend.append((now - self.align_ns if not force else now, _E_I, _E_I, _E_F, _E_F))
        while pend and (force or now - pend[0][0] >= self.align_ns):
            ts, side, tick, before, after = pend.popleft()
            if pend and (force or now - pend[0][0] >= self.align_ns):
                # Several updates are ready: one window from the first size before to the last after.
                parts = [(side, tick, before, after)]
                while pend and (force or now - pend[0][0] >= self.align_ns):
                    ts, *rest = pend.popleft()
                    parts.append(rest)
                side, tick, before, after = _joined(parts)
                # Each level's first and last row, from one stable sort (np.unique twice costs more).
                key = level_key(side, tick)
                order = np.argsort(key, kind="stable")
                sk = key[order]
                step = sk[1:] != sk[:-1]
                if len(sk) and not step.all():
                    first = order[np.concatenate(([True], step))]
                    last = order[np.concatenate((step, [True]))]
                    side, tick, before, after = side[first], tick[first], before[first], after[last]
                else:  # no level twice: keep the rows (in level order, as before)
                    side, tick, before, after = side[order], tick[order], before[order], after[order]
            elif type(side) is int:  # one one-row update
                side, tick = np.array([side], np.int64), np.array([tick], np.int64)
                before, after = np.array([before], np.float64), np.array([after], np.float64)
            n = self._tn
            k = 0
            if n and int(self._tts[:n].max()) <= ts:
                # Every buffered fill belongs to this window (the usual case): take them whole.
                t_ts, t_side, t_tick, t_qty = (self._tts[:n].copy(), self._tside[:n].copy(),
                                               self._ttick[:n].copy(), self._tqty[:n].copy())
                self._tn = 0
                k = n
            elif n:
                m = self._tts[:n] <= ts
                k = int(m.sum())
                t_ts, t_side, t_tick, t_qty = (self._tts[:n][m], self._tside[:n][m], self._ttick[:n][m],
                                               self._tqty[:n][m])
                if k:
                    keep = ~m
                    rest = n - k
                    self._tts[:rest] = self._tts[:n][keep]
                    self._tside[:rest] = self._tside[:n][keep]
                    self._ttick[:rest] = self._ttick[:n][keep]
                    self._tqty[:rest] = self._tqty[:n][keep]
                    self._tn = rest
            else:
                t_ts, t_side, t_tick, t_qty = _E_I, _E_I, _E_I, _E_F
            w = Window.build(ts, side, tick, before, after, t_ts, t_side, t_tick, t_qty)
            if self.iceberg is not None:
                self.iceberg.on_window(w, self._known_size, out)
            if self.pulls is not None:
                self.pulls.on_window(w, mid, out)
            if k:
                if self.absorption is not None:
                    self.absorption.on_window(w, self._known_size)
                if self.large is not None:
                    self.large.on_window(w)
            if force and not pend and self._tn:
                last = int(self._tts[:self._tn].max())
                if last > ts:
                    pend.append((last, _E_I, _E_I, _E_F, _E_F))
                else:
                    self._tn = 0  # cannot happen (fills are ≤ ts here); never loop on it

    # -- book state ----------------------------------------------------------------------------------
    def _evaluate(self, now: int, book: Any, out: list[Detection]) -> None:
        if self.iceberg is not None:
            self.iceberg.on_tick(now, out)
        if self.pulls is not None:
            self.pulls.on_tick(now, out, self._known_size)
        view = self._view(now, book)
        if self.absorption is not None:
            self.absorption.on_tick(now, book, out, view.median if view is not None else None)
        if view is None:
            return
        self._ticks += 1
        slow = self._ticks % 2 == 0  # seconds-scale work (samples, thin book) runs every other tick
        if self.pulls is not None and slow:
            self.pulls.on_view(view)
        if self.gaps is not None:
            self.gaps.on_tick(view, out)
        if self.thin is not None and slow:
            self.thin.on_tick(view, book, out)
        if self.large is not None:
            self.large.on_tick(view, book, out)

    def _view(self, now: int, book: Any) -> BookView | None:
        bb, ba = book.best_bid_tick, book.best_ask_tick
        if bb == NO_PRICE or ba == NO_PRICE or bb >= ba:
            return None
        span = self.view_ticks
        top = ba + span
        rows = top - (bb - span) + 1
        if rows > 8 * span + 2:  # a very wide spread: look only near each best
            return None
        ticks, bq, aq = book.ladder(top, rows)
        sizes = np.concatenate((bq[bq > 0], aq[aq > 0]))
        # Median by partition: np.median costs ten times more on these small arrays.
        median = float(np.partition(sizes, len(sizes) // 2)[len(sizes) // 2]) if len(sizes) else 0.0
        return BookView(now, bb, ba, bb + ba, np.asarray(ticks), np.asarray(bq, dtype=np.float64),
                        np.asarray(aq, dtype=np.float64), median)


_BUY_SHIFT = BUY_EVENT.bit_length() - 1


def _joined(parts: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pending updates' (side, tick, before, after) in order, joined; a part is arrays or one row's scalars."""
    rows = [p for p in parts if type(p[0]) is int]
    if not rows:
        return tuple(np.concatenate(x) for x in zip(*parts, strict=True))  # type: ignore[return-value]
    if any(len(p[0]) for p in parts if type(p[0]) is not int):  # rows of both forms: in order, one by one
        rows = []
        for p in parts:
            if type(p[0]) is int:
                rows.append(p)
            else:
                rows.extend(zip(*(x.tolist() for x in p), strict=True))
    side, tick, before, after = zip(*rows, strict=True)  # the usual case: one-row updates, empty windows
    return (np.array(side, np.int64), np.array(tick, np.int64), np.array(before, np.float64),
            np.array(after, np.float64))


_E_I = np.empty(0, dtype=np.int64)
_E_F = np.empty(0)
