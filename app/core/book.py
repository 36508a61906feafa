"""The depth book: one instrument's resting size per price tick, bids and asks.

Layout (DESIGN.md §2). Both sides share one dense float64 array over a *region of interest* (ROI)
of ``roi_ticks`` consecutive ticks: ``[bid trash | bids | asks | ask trash]``, each block ticks
ascending. The *far levels* outside the ROI are two sorted arrays a side (ticks ascending, sizes).
Venues send far levels all the time (in the Binance BTCUSDT capture 6,531 of 6,551 diffs touch a
level more than 4,096 ticks from the mid, e.g. bids at 5,000 on a 61,800 market), so far levels are
written on the hot path too: a message's rows go to a preallocated log shared by both sides (flat
positions the book computes straight into it, and copied sizes: the book never keeps references to
caller arrays) and are merged into the far arrays with a few vector operations (stable sort, last
write wins, zeros dropped) when something reads them, when a best price needs them, or when the log
is full. In flat positions a far bid is below the bid block and a far ask above the ask block, so one
``put(..., "clip")`` sends both to their side's trash cell while it writes the ROI rows.

``apply_diff`` takes a whole venue diff (bids and asks) with one fixed set of numpy calls, since a
numpy call costs ~0.2-0.6 us whatever its size: sizes copied into the log and validated there by one
``argmax`` over their bits, tick ranges by ``argmin``/``argmax``, positions by one subtraction a side,
one ``put``. ``apply_side`` is ``apply_diff`` with one side empty. Off that path (an empty book, rows
beyond the ROI on a side's better side, a best outside the ROI) each side is written on its own
(``_write``), as are ``apply`` batches; same rules.

The ROI is placed around the first prices seen and moved (*recentred*) around the mid when the mid
drifts more than a quarter of the ROI from its centre: the ticks stay, only the array/far split
changes (O(levels), rare). A book whose spread is wider than the ROI stays correct, only slower.

Positions. Each side sees its block through a view in which "higher position = better price" (the
bid view ascending by tick, the ask view descending), so one rule maintains both best prices: the
best is the highest non-zero position. Cell 0 of each view is its trash cell. Best bid/ask are kept
incrementally: a level better than the best becomes the best; when the best level is deleted the
next one is found by a vectorised search in growing windows just below it (never a full scan per
message). Rows beyond the ROI on the better side while the best is inside it are deletes of nothing
(nothing rests beyond the best; venues send such stale deletes) and are dropped.

Input rules (apply the whole batch or nothing):

* ``qty`` must be finite and >= 0 (NaN, inf or negative -> ``ValueError``); 0 deletes the level;
  ``-0.0`` counts as 0 (reads return +0.0).
* Ticks are integers within ±2**62 (the ``NO_PRICE`` sentinel and beyond are rejected);
  ``apply_diff``/``apply_side`` take int64/float64 arrays as they are and convert other
  integer/number arrays (and lists).
* ``apply`` rows: depth rows (``DEPTH_EVENT``, ``DEPTH_SNAPSHOT_EVENT``) need exactly one side flag
  (``BUY_EVENT`` = bid, ``SELL_EVENT`` = ask); their ``ival`` is the price in ticks and, when
  ``px != 0``, must match it: ``|px / tick_size - ival| <= 1e-6`` (plus float rounding of huge tick
  counts), so a price off the grid or a wrong tick is rejected. ``DEPTH_CLEAR_EVENT`` clears its
  side, or both sides with no side flag (or both flags). Other kinds are ignored.
* ``exch_ts`` must not decrease within a batch (an unsorted batch is rejected).
* A tick repeated within one batch or one side of an ``apply_diff``/``apply_side`` call: the last
  row wins.
* Any violation raises ``ValueError`` naming the problem and the first bad row, and leaves the book
  unchanged: a batch (or both sides of a diff) is validated completely before the first write.
* A crossed book (best bid >= best ask) is *not* an error of the book: venues are transiently crossed
  in partial data; :meth:`DepthBook.is_crossed` tells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.core.events import (
    ASK,
    BID,
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_DTYPE,
    KIND_MASK,
    NO_PRICE,
    SELL_EVENT,
    SIDE_MASK,
)
from app.core.instrument import Instrument

__all__ = ["DepthBook", "WalkResult", "TICK_LIMIT"]

TICK_LIMIT = 2**62  # valid ticks satisfy -TICK_LIMIT < tick < TICK_LIMIT

_ND = np.ndarray
_I64 = np.dtype(np.int64)
_F64 = np.dtype(np.float64)
_U64 = np.dtype(np.uint64)  # a dtype object: ndarray.view() takes it without a conversion
_UMAX = np.maximum.reduce
_SMAX = np.maximum.reduce
_SMIN = np.minimum.reduce
_ADD_REDUCE = np.add.reduce
_SUB = np.subtract
# Any float64 whose bit pattern, read as uint64, is >= this is NaN, +inf, negative or -0.0.
_BAD_QTY_BITS = np.uint64(0x7FF0000000000000)
_KEY_MASK = KIND_MASK | SIDE_MASK
_BID_DIFF = DEPTH_EVENT | BUY_EVENT  # kind and side of a diff's bid row, and of an ask row
_ASK_DIFF = DEPTH_EVENT | SELL_EVENT
_NONE = -(2**62)  # position sentinel: side empty (lower than any position)
_LOG_FOLD = 32768  # far-level log capacity in rows: folded into the far arrays when full
_INF = math.inf
_EMPTY_T = np.empty(0, dtype=np.int64)
_EMPTY_Q = np.empty(0, dtype=np.float64)
_SCAN = 64  # first window searched below a deleted best level


@dataclass(frozen=True, slots=True)
class WalkResult:
    """A market order walking one side of the book: what fills, at what average and worst tick."""

    filled: float
    avg_tick: float
    worst_tick: int
    slippage_ticks: float


class _Side:
    """One side: a view of the shared ROI array (higher position = better), far levels, best position."""

    __slots__ = ("arr", "arr_mv", "far_t", "far_q", "best")

    def __init__(self, arr: np.ndarray) -> None:
        self.arr = arr  # a view of DepthBook._flat: cell 0 is this side's trash cell
        # A Python-level read through a memoryview costs a few tens of ns, a numpy scalar read more.
        self.arr_mv = memoryview(arr)
        self.far_t = _EMPTY_T  # far levels outside the ROI: ticks ascending, unique
        self.far_q = _EMPTY_Q  # their sizes, all > 0
        self.best = _NONE


class DepthBook:
    """Market-by-price depth of one instrument: dense ticks around the mid, sparse far levels."""

    def __init__(self, instrument: Instrument, roi_ticks: int = 8192) -> None:
        if isinstance(roi_ticks, bool) or not isinstance(roi_ticks, int | np.integer) or roi_ticks < 16:
            raise ValueError(f"roi_ticks must be an integer >= 16, got {roi_ticks!r}")
        self.instrument = instrument
        self._tick_size = float(instrument.tick_size)
        roi = self._roi = int(roi_ticks)
        # One array for both sides, ticks ascending: [bid trash | bids | asks | ask trash] (module doc).
        self._flat = np.zeros(2 * roi + 2, dtype=np.float64)
        self._flat_mv = memoryview(self._flat)
        self._bid = _Side(self._flat[: roi + 1])
        self._ask = _Side(self._flat[2 * roi + 1 : roi : -1])  # reversed: higher position = lower tick
        # Rows of messages with far levels, not yet folded, in arrival order: flat positions (computed
        # straight into the buffer) and copied sizes. A buffer, not a list of arrays: concatenating
        # thousands of small arrays at each fold cost more than the writes themselves.
        self._log_pos = np.empty(_LOG_FOLD, dtype=np.int64)
        self._log_qty = np.empty(_LOG_FOLD, dtype=np.float64)
        self._log_bits = self._log_qty.view(_U64)  # the same sizes as bits: one argmax validates them
        self._log_n = 0
        self._anchored = False
        self._set_base(0)
        self.best_bid_tick: int = NO_PRICE
        self.best_ask_tick: int = NO_PRICE
        self.update_id: int = 0
        self.version: int = 0
        self.recentres: int = 0  # how many times the ROI moved (diagnostics, benchmarks)

    @property
    def log(self) -> np.ndarray:
        """Flat positions of the logged rows not yet folded (diagnostics, tests)."""
        return self._log_pos[: self._log_n]

    # ------------------------------------------------------------------ geometry

    def _set_base(self, base: int) -> None:
        """Place the ROI at ticks [base, base + roi)."""
        self._base = base
        self._top = base + self._roi - 1  # highest ROI tick
        self._bid_origin = base - 1  # bid position (= flat index) = tick - origin, in 1..roi
        self._ask_origin = base + self._roi  # ask position = origin - tick, in 1..roi
        self._ask_flat = base - self._roi - 1  # flat index of an ask = tick - this, in roi+1..2*roi
        # The same as numpy scalars: a ufunc converts a Python int operand on every call.
        self._bid_origin_i64 = np.int64(self._bid_origin)
        self._ask_flat_i64 = np.int64(self._ask_flat)
        self._centre = base + self._roi // 2
        # apply_diff's vector path: int64 position arithmetic is exact while |base| < 2**61 (always,
        # for sane ticks); beyond that the per-side path runs. Not anchored: the per-side path places it.
        self._hot = self._anchored and abs(base) < 2**61

    def _pos(self, side: int, tick: int) -> int:
        return tick - self._bid_origin if side == BID else self._ask_origin - tick

    def _tick(self, side: int, pos: int) -> int:
        return pos + self._bid_origin if side == BID else self._ask_origin - pos

    def _side(self, side: int) -> _Side:
        if side == BID:
            return self._bid
        if side == ASK:
            return self._ask
        raise ValueError(f"side must be BID (+1) or ASK (-1), got {side!r}")

    # ------------------------------------------------------------------ writing

    def apply_side(self, side: int, ticks: np.ndarray, qty: np.ndarray) -> None:
        """Set absolute sizes on one side (0 deletes): ``apply_diff`` with the other side empty."""
        if side == BID:
            self.apply_diff(ticks, qty, _EMPTY_T, _EMPTY_Q)
        elif side == ASK:
            self.apply_diff(_EMPTY_T, _EMPTY_Q, ticks, qty)
        else:
            raise ValueError(f"apply_side: side must be BID (+1) or ASK (-1), got {side!r}")

    def apply_diff(
        self, bid_ticks: np.ndarray, bid_qty: np.ndarray, ask_ticks: np.ndarray, ask_qty: np.ndarray
    ) -> None:
        """One venue diff, absolute sizes on both sides (0 deletes): validated whole, then written."""
        bt, bq, at, aq = bid_ticks, bid_qty, ask_ticks, ask_qty
        if (
            type(bt) is not _ND
            or type(bq) is not _ND
            or type(at) is not _ND
            or type(aq) is not _ND
            or bt.dtype is not _I64
            or at.dtype is not _I64
            or bq.dtype is not _F64
            or aq.dtype is not _F64
            or bt.shape != bq.shape
            or at.shape != aq.shape
            or bt.ndim != 1
            or at.ndim != 1
        ):
            bt, bq = _coerce(bt, bq, "bid")
            at, aq = _coerce(at, aq, "ask")
        nb = bt.shape[0]
        na = at.shape[0]
        n = nb + na
        a = self._log_n
        b = a + n
        if b > _LOG_FOLD:
            self._fold()
            a, b = 0, n
        if not self._hot or b > _LOG_FOLD or not n:
            self._diff_by_side(bt, bq, at, aq)
            self.version += 1
            return
        # One vector pass over the whole message (a numpy call costs ~0.2-0.6 us whatever its size, so
        # the count of calls is the cost; positional arguments: keywords cost ~0.1 us each): sizes
        # copied into the log and checked as bits by one argmax, tick ranges by argmin/argmax,
        # positions computed into the log, one clipped put for both sides.
        m = a + nb
        lq = self._log_qty
        lq[a:m] = bq
        lq[m:b] = aq
        bits = self._log_bits[a:b]
        if bits.item(bits.argmax()) >= _BAD_QTY_BITS:  # NaN, inf, negative or -0.0 somewhere
            _checked_qty(bq, "bid")
            _checked_qty(aq, "ask")
            np.add(lq[a:b], 0.0, lq[a:b])  # only -0.0 remains: it means 0
        base = self._base
        top = self._top
        bid = self._bid
        ask = self._ask
        bp = bid.best
        ap = ask.best
        far = False
        if nb:
            bhi = bt.item(bt.argmax())
            blo = bt.item(bt.argmin())
            # A bid above the ROI (or beyond the tick limit): the per-side path; so is a side whose
            # best is not in the ROI (empty, or a far level).
            if bhi > top or blo <= -TICK_LIMIT or bp < 1 or bp > self._roi:
                self._diff_off_path(bt, bq, at, aq, BID, bhi, blo)
                return
            far = blo < base
        if na:
            alo = at.item(at.argmin())
            ahi = at.item(at.argmax())
            if alo < base or ahi >= TICK_LIMIT or ap < 1 or ap > self._roi:
                self._diff_off_path(bt, bq, at, aq, ASK, ahi, alo)
                return
            far = far or ahi > top
        lp = self._log_pos
        if nb:
            _SUB(bt, self._bid_origin_i64, lp[a:m])
        if na:
            _SUB(at, self._ask_flat_i64, lp[m:b])
        # Far bids clip to cell 0, far asks to the last cell (the trash cells); the log keeps them.
        # put() writes in order, so the last row of a repeated tick wins.
        self._flat.put(lp[a:b], lq[a:b], "clip")
        if far:
            self._log_n = b
        # Best prices: unchanged unless a row is better than the best or the best was deleted.
        moved = False
        if nb:
            hp = bhi - self._bid_origin
            mv = bid.arr_mv
            if hp > bp or mv[bp] == 0.0:
                bid.best = self._new_best(bid, bp, hp)
                moved = bid.best != bp
        if na:
            hp = self._ask_origin - alo
            mv = ask.arr_mv
            if hp > ap or mv[ap] == 0.0:
                ask.best = self._new_best(ask, ap, hp)
                moved = moved or ask.best != ap
        if moved:
            self._bests_moved()
        self.version += 1

    def _diff_off_path(
        self, bt: np.ndarray, bq: np.ndarray, at: np.ndarray, aq: np.ndarray, side: int, hi: int, lo: int
    ) -> None:
        """``apply_diff`` when one side's rows leave the ROI on its better side or its best is not in it."""
        st = self._bid if side == BID else self._ask
        if 1 <= st.best <= self._roi and -TICK_LIMIT < lo and hi < TICK_LIMIT:
            # Rows beyond the ROI on the better side while the best is inside it: deletes of nothing
            # (venues send such stale deletes now and then) are dropped; a size set there is real.
            if side == BID:
                kept = _without_stale_deletes(bt, bq, bt <= self._top)
                if kept is not None:
                    self.apply_diff(kept[0], kept[1], at, aq)
                    return
            else:
                kept = _without_stale_deletes(at, aq, at >= self._base)
                if kept is not None:
                    self.apply_diff(bt, bq, kept[0], kept[1])
                    return
        self._diff_by_side(bt, bq, at, aq)
        self.version += 1

    def _new_best(self, st: _Side, bp: int, hp: int) -> int:
        """A side's best position after a write whose best row is at position ``hp`` (``bp`` in the ROI)."""
        mv = st.arr_mv
        if hp > bp:
            if mv[hp] > 0.0:
                return hp
            # The top of the update is a delete: look between the old best and it.
            begin = bp + 1
            if begin < hp:
                nz = st.arr[begin:hp].nonzero()[0]
                if nz.shape[0]:
                    return begin + nz.item(-1)
        if mv[bp] == 0.0:
            side = BID if st is self._bid else ASK
            return self._below(side, st, bp)
        return bp

    def _diff_by_side(self, bt: np.ndarray, bq: np.ndarray, at: np.ndarray, aq: np.ndarray) -> None:
        """``apply_diff`` off the vector path: both sides validated completely, then written one by one."""
        checked = []
        for what, ticks, qty in (("bid", bt, bq), ("ask", at, aq)):
            if not ticks.shape[0]:
                checked.append(None)
                continue
            if _UMAX(qty.view(_U64)) >= _BAD_QTY_BITS:
                qty = _checked_qty(qty, what)
            lo, hi = _tick_range(ticks)
            if lo <= -TICK_LIMIT or hi >= TICK_LIMIT:
                _check_ticks(ticks, what)
            checked.append((ticks, qty, lo, hi))
        for side, st, rows in ((BID, self._bid, checked[0]), (ASK, self._ask, checked[1])):
            if rows is not None:
                self._write(side, st, *rows)

    def _write(self, side: int, st: _Side, ticks: np.ndarray, qty: np.ndarray, lo: int, hi: int) -> None:
        """Apply validated sizes to one side; ``lo``/``hi`` are the min/max tick."""
        if not self._anchored and not self._anchor(side, ticks, qty):
            return
        if side == BID:
            if hi > self._top:  # a bid above the ROI: exact slow path
                self._apply_general(side, st, ticks, qty)
                return
            hp = hi - self._bid_origin  # highest position touched
            far = lo < self._base
            flat_origin = self._bid_origin
        else:
            if lo < self._base:  # an ask below the ROI
                self._apply_general(side, st, ticks, qty)
                return
            hp = self._ask_origin - lo
            far = hi > self._top
            flat_origin = self._ask_flat
        bp = st.best
        if far:
            # Far levels on the worse side only: the flat positions are computed into the log, ROI
            # cells get their sizes, the far ones land in the trash cell (clip), and the fold later
            # keeps the logged far rows.
            n = ticks.shape[0]
            if self._log_n + n > _LOG_FOLD:
                self._fold()
            a = self._log_n
            b = a + n
            if b <= _LOG_FOLD:
                pos = self._log_pos[a:b]
                np.subtract(ticks, flat_origin, out=pos)
                self._log_qty[a:b] = qty
                self._log_n = b
            else:  # one message bigger than the log: its far rows are merged on their own
                pos = ticks - flat_origin
                out = pos < 1 if side == BID else pos > 2 * self._roi
                self._merge_far(st, ticks[out], qty[out])
            self._flat.put(pos, qty, mode="clip")
            if bp < 1:  # this side's best is (or may become) a far level: settle it exactly
                self._fold()
                self._settle_best(side, st)
                return
            if hp < 1:
                return
        else:
            self._flat[ticks - flat_origin] = qty
        if bp < 1:  # the side had no ROI level: the best is its best new level, if any, or stays
            if hp < 1:
                return
            bp = hp if st.arr_mv[hp] > 0.0 else self._below(side, st, hp + 1)
        elif bp <= self._roi:
            bp = self._new_best(st, bp, hp)
        # else the best is a far level better than the ROI: ROI rows cannot change it
        if bp != st.best:
            st.best = bp
            self._bests_moved()

    def _apply_general(self, side: int, st: _Side, ticks: np.ndarray, qty: np.ndarray) -> None:
        """Rows beyond the ROI on the better side (or a best outside the ROI): exact, slower."""
        roi = self._roi
        pos = ticks - self._bid_origin if side == BID else self._ask_origin - ticks
        inside = (pos >= 1) & (pos <= roi)
        st.arr[pos[inside]] = qty[inside]
        worse = pos < 1
        if worse.any():  # logged as flat positions, like every far row
            self._log_rows(pos[worse] if side == BID else 2 * roi + 1 - pos[worse], qty[worse])
        better = pos > roi
        bp = st.best
        if 1 <= bp <= roi and not (better & (qty > 0)).any():
            # The best was inside the ROI, so nothing rests beyond it: those rows delete nothing and
            # are dropped, and the new best is the best ROI level (venues send such stale deletes).
            nz = st.arr[1:].nonzero()[0]
            if nz.shape[0]:
                new = nz.item(-1) + 1
                if new != bp:
                    st.best = new
                    self._bests_moved()
                return
        self._fold()
        if better.any():
            self._merge_far(st, ticks[better], qty[better])
        self._settle_best(side, st)

    def _anchor(self, side: int, ticks: np.ndarray, qty: np.ndarray) -> bool:
        """Place the ROI around the first prices seen; False when there is nothing to place."""
        live = ticks[qty > 0]
        if not live.shape[0]:
            return False
        first = int(live.max()) if side == BID else int(live.min())
        self._anchored = True
        self._set_base(first - self._roi // 2)
        self._bid.best = self._ask.best = _NONE
        return True

    def _below(self, side: int, st: _Side, bp: int) -> int:
        """The best position strictly below ``bp`` (whose level was just deleted)."""
        arr = st.arr
        # Windows growing downward (the next level is usually a few ticks away, sometimes hundreds).
        end = bp
        width = _SCAN
        while end > 1:
            start = end - width if end > width else 1
            nz = arr[start:end].nonzero()[0]  # the method: no Python wrapper on this path
            if nz.shape[0]:
                return start + nz.item(-1)
            end = start
            width *= 8
        # The ROI side is empty: the best, if any, is the best far level (all are worse here).
        self._fold()
        return self._best_far_pos(side, st)

    def _best_far_pos(self, side: int, st: _Side) -> int:
        """Position of the best far level (highest bid / lowest ask), or _NONE."""
        if not st.far_t.shape[0]:
            return _NONE
        return self._pos(side, int(st.far_t[-1] if side == BID else st.far_t[0]))

    def _settle_best(self, side: int, st: _Side) -> None:
        """Recompute one side's best from scratch (ROI and far levels); used off the hot path."""
        nz = np.flatnonzero(st.arr[1:])
        bp = max(int(nz[-1]) + 1 if nz.shape[0] else _NONE, self._best_far_pos(side, st))
        if bp != st.best:
            st.best = bp
            self._bests_moved()

    def _bests_moved(self) -> None:
        """Best ticks from the sides' best positions; recentre the ROI when the mid drifted away."""
        bp = self._bid.best
        bb = NO_PRICE if bp == _NONE else bp + self._bid_origin
        ap = self._ask.best
        ba = NO_PRICE if ap == _NONE else self._ask_origin - ap
        self.best_bid_tick = bb
        self.best_ask_tick = ba
        if bb == NO_PRICE:
            if ba == NO_PRICE:
                return
            centre = ba
        elif ba == NO_PRICE:
            centre = bb
        else:
            centre = (bb + ba) // 2
        if abs(centre - self._centre) > self._roi // 4:
            self._recentre(centre)

    def _recentre(self, centre: int) -> None:
        """Rebuild the window around ``centre``: levels move between the array and far levels."""
        roi = self._roi
        self._fold()
        parts = []
        for side, st in ((BID, self._bid), (ASK, self._ask)):
            pos = np.flatnonzero(st.arr[1:]) + 1
            ticks = pos + self._bid_origin if side == BID else self._ask_origin - pos
            parts.append((np.concatenate([ticks, st.far_t]), np.concatenate([st.arr[pos], st.far_q])))
        self._set_base(centre - roi // 2)
        self._flat.fill(0.0)
        for (side, st), (ticks, qty) in zip(((BID, self._bid), (ASK, self._ask)), parts, strict=True):
            pos = ticks - self._bid_origin if side == BID else self._ask_origin - ticks
            inside = (pos >= 1) & (pos <= roi)
            st.arr[pos[inside]] = qty[inside]
            order = np.argsort(ticks[~inside], kind="stable")
            st.far_t = ticks[~inside][order]
            st.far_q = qty[~inside][order]
            best_tick = self.best_bid_tick if side == BID else self.best_ask_tick
            st.best = _NONE if best_tick == NO_PRICE else self._pos(side, best_tick)
        self.recentres += 1

    def _fold(self) -> None:
        """Merge the logged far rows into both sides' far levels, in order (last wins), vectorised."""
        n = self._log_n
        if not n:
            return
        self._log_n = 0
        self._merge_flat(self._log_pos[:n], self._log_qty[:n])

    def _merge_flat(self, pos: np.ndarray, qty: np.ndarray) -> None:
        """Merge rows given by flat position (in arrival order) into the far levels; ROI rows skipped."""
        # Positions are under the current origin (a recentre folds before it moves). Below the bid
        # block: far bids; above the ask block: far asks; the rows in between were written in place.
        low = pos < 1
        if low.any():
            self._merge_far(self._bid, pos[low] + self._bid_origin, qty[low])
        high = pos > 2 * self._roi
        if high.any():
            self._merge_far(self._ask, pos[high] + self._ask_flat, qty[high])

    def _log_rows(self, pos: np.ndarray, qty: np.ndarray) -> None:
        """Append far rows (flat positions, sizes; copied) to the log, folding it when full."""
        n = pos.shape[0]
        if self._log_n + n > _LOG_FOLD:
            self._fold()
            if n > _LOG_FOLD:
                self._merge_flat(pos, qty)
                return
        a = self._log_n
        self._log_pos[a : a + n] = pos
        self._log_qty[a : a + n] = qty
        self._log_n = a + n

    def _merge_far(self, st: _Side, ticks: np.ndarray, qty: np.ndarray) -> None:
        """Merge far rows (ticks, sizes; in arrival order) into one side's sorted far levels."""
        # Old far levels first, then the updates in arrival order; a stable sort keeps that order
        # within one tick, so the last of each run of equal ticks is the value that stands.
        all_t = np.concatenate([st.far_t, ticks])
        all_q = np.concatenate([st.far_q, qty])
        order = np.argsort(all_t, kind="stable")
        all_t = all_t[order]
        all_q = all_q[order]
        keep = np.empty(all_t.shape[0], dtype=bool)
        keep[-1] = True
        np.not_equal(all_t[1:], all_t[:-1], out=keep[:-1])
        keep &= all_q != 0
        st.far_t = all_t[keep]
        st.far_q = all_q[keep]

    def apply(self, batch: np.ndarray) -> None:
        """Apply one batch of EVENT_DTYPE rows atomically (see the module rules); others ignored."""
        if not isinstance(batch, np.ndarray) or batch.dtype != EVENT_DTYPE:
            got = batch.dtype if isinstance(batch, np.ndarray) else type(batch).__name__
            raise ValueError(f"DepthBook.apply: batch must be an array of EVENT_DTYPE rows, got {got}")
        if batch.ndim != 1:
            batch = batch.reshape(-1)
        n = batch.shape[0]
        if not n:
            return
        if n == 1 and self.apply_row(batch.item(0)):
            return
        ev = batch["ev"]
        key = ev & _KEY_MASK  # kind and side flags of each row
        if n > 1:
            ts = batch["exch_ts"]
            if (ts[1:] < ts[:-1]).any():
                i = int((ts[1:] < ts[:-1]).nonzero()[0][0]) + 1
                raise ValueError(
                    f"DepthBook.apply: unsorted batch: exch_ts decreases at row {i} "
                    f"({int(ts[i - 1])} -> {int(ts[i])}); book unchanged"
                )
            cuts = ((key[1:] != key[:-1]).nonzero()[0] + 1).tolist()
            # A venue diff (depth rows, bids then asks): one apply_diff, validated once.
            if len(cuts) <= 1 and self._apply_diff_rows(batch, n, cuts, key.item(0), key.item(n - 1)):
                return
        else:
            cuts = []
        # Runs of rows with the same kind and side: a venue message is typically two (bids, asks).
        runs: list[tuple[bool, int, int, int]] = []  # (is a clear, side (0 = both), first row, end row)
        depth_rows = 0
        for a, b in zip([0, *cuts], [*cuts, n], strict=True):
            k = int(key[a])
            kind = k & KIND_MASK
            flag = k & SIDE_MASK
            if kind == DEPTH_EVENT or kind == DEPTH_SNAPSHOT_EVENT:
                if flag != BUY_EVENT and flag != SELL_EVENT:
                    what = "no side flag" if flag == 0 else "both side flags"
                    raise ValueError(
                        f"DepthBook.apply: depth row {a} has {what} (need BUY_EVENT or SELL_EVENT); book unchanged"
                    )
                runs.append((False, BID if flag == BUY_EVENT else ASK, a, b))
                depth_rows += b - a
            elif kind == DEPTH_CLEAR_EVENT:
                runs.append((True, BID if flag == BUY_EVENT else ASK if flag == SELL_EVENT else 0, a, b))
        if not runs:
            return
        ival = batch["ival"]
        qty = batch["qty"]
        ranges = []
        if depth_rows:
            # Whole-batch checks first (a few vector operations); the exact row-by-row diagnosis
            # runs only when one fails, so its message can name the row.
            if depth_rows == n:
                rows = None
                suspect = _UMAX(qty.view(_U64)) >= _BAD_QTY_BITS
                dev = _SMAX(np.abs(batch["px"] * (1.0 / self._tick_size) - ival))
            else:
                rows = np.concatenate([np.arange(a, b) for is_clear, _, a, b in runs if not is_clear])
                suspect = True
                dev = 0.0
            for is_clear, _, a, b in runs:
                if not is_clear:
                    lo, hi = _tick_range(ival[a:b])
                    ranges.append((lo, hi))
                    suspect = suspect or lo <= -TICK_LIMIT or hi >= TICK_LIMIT
            biggest = max(max(-lo, hi) for lo, hi in ranges)
            if suspect or not dev <= 1e-6 + biggest * 4e-16:  # `not <=`: a NaN px fails too
                if rows is None:
                    rows = np.arange(n)
                _validate_depth_rows(batch, rows, ev & SIDE_MASK, self._tick_size)
                qty = qty + 0.0  # validated: only -0.0 can remain, and it means 0
        version = self.version
        ranges.reverse()
        last_row = -1
        for is_clear, side, a, b in runs:
            if is_clear:
                self.clear(side)
            else:
                lo, hi = ranges.pop()
                self._write(side, self._bid if side == BID else self._ask, ival[a:b], qty[a:b], lo, hi)
                last_row = b - 1
        if last_row >= 0:
            self.update_id = int(batch["order_id"][last_row])
        self.version = version + 1

    def _apply_diff_rows(self, batch: np.ndarray, n: int, cuts: list[int], first: int, last: int) -> bool:
        """``apply`` of a batch of ``DEPTH_EVENT`` rows, bids then asks (one run a side at most; ``first`` and
        ``last`` the kind+side keys of its first and last row), through ``apply_diff``: True when done.
        False leaves it to the general path: another layout, or a row that fails a check (it names it)."""
        if first == _BID_DIFF:
            nb = cuts[0] if cuts else n
            if cuts and last != _ASK_DIFF:
                return False
        elif first == _ASK_DIFF and not cuts:
            nb = 0
        else:
            return False
        ival = batch["ival"]
        # px must be the tick: a stricter bound than the general path's, which diagnoses any doubt
        if not _SMAX(np.abs(batch["px"] * (1.0 / self._tick_size) - ival)) <= 1e-6:
            return False
        qty = batch["qty"]
        version = self.version
        try:
            self.apply_diff(ival[:nb], qty[:nb], ival[nb:], qty[nb:])
        except ValueError:  # validated before any write: the book is as it was
            return False
        self.update_id = batch["order_id"].item(n - 1)
        self.version = version + 1
        return True

    def apply_row(self, row: tuple) -> bool:
        """``apply`` of a one-row batch given as its tuple (``batch.item(0)``), with scalar work (a venue's
        typical small diff): True when done; False when ``apply`` must judge the batch (another kind, a
        bad row, a far level, an unplaced ROI), the book unchanged."""
        ev, _, _, px, qty, order_id, tick, _ = row
        key = ev & _KEY_MASK
        kind = key & KIND_MASK
        if kind != DEPTH_EVENT and kind != DEPTH_SNAPSHOT_EVENT:
            return False
        # `not <`: NaN fails too; -0.0 passes and is made +0.0
        if not (0.0 <= qty < _INF) or not (-TICK_LIMIT < tick < TICK_LIMIT) or not self._anchored:
            return False
        if px != 0.0 and not abs(px * (1.0 / self._tick_size) - tick) <= 1e-6 + abs(tick) * 4e-16:
            return False
        flag = key & SIDE_MASK
        if flag == BUY_EVENT:
            st = self._bid
            hp = tick - self._bid_origin
        elif flag == SELL_EVENT:
            st = self._ask
            hp = self._ask_origin - tick
        else:
            return False
        if not 1 <= hp <= self._roi:  # a far level or one beyond the ROI: the general path
            return False
        st.arr_mv[hp] = qty + 0.0
        bp = st.best
        if bp < 1:  # the side had no ROI level: the best is the new level, if it is one, as in _write
            bp = hp if qty > 0.0 else self._below(BID if st is self._bid else ASK, st, hp + 1)
        elif bp <= self._roi:
            bp = self._new_best(st, bp, hp)
        # else the best is a far level better than the ROI: an ROI row cannot change it
        if bp != st.best:
            st.best = bp
            self._bests_moved()
        self.update_id = order_id
        self.version += 1
        return True

    def clear(self, side: int = 0) -> None:
        """Remove every level of one side (``BID``/``ASK``) or, with 0, of both."""
        if side == 0:
            self._flat.fill(0.0)
            self._log_n = 0
            sides = (self._bid, self._ask)
            self._anchored = False  # the next data (maybe far away after a resync) places the ROI
            self._hot = False
        else:
            st = self._side(side)
            self._fold()  # the log holds both sides' rows: the other side's must stay
            st.arr.fill(0.0)
            sides = (st,)
        for st in sides:
            st.far_t = _EMPTY_T
            st.far_q = _EMPTY_Q
            st.best = _NONE
        self.best_bid_tick = NO_PRICE if self._bid.best == _NONE else self.best_bid_tick
        self.best_ask_tick = NO_PRICE if self._ask.best == _NONE else self.best_ask_tick
        self.version += 1

    # ------------------------------------------------------------------ reading

    def best_bid(self) -> tuple[int, float] | None:
        """(tick, size) of the best bid, or None when there are no bids."""
        tick = self.best_bid_tick
        if tick == NO_PRICE:
            return None
        pos = tick - self._bid_origin
        if 1 <= pos <= self._roi:
            return tick, self._bid.arr_mv[pos]
        return tick, self.qty_at(BID, tick)

    def best_ask(self) -> tuple[int, float] | None:
        """(tick, size) of the best ask, or None when there are no asks."""
        tick = self.best_ask_tick
        if tick == NO_PRICE:
            return None
        pos = self._ask_origin - tick
        if 1 <= pos <= self._roi:
            return tick, self._ask.arr_mv[pos]
        return tick, self.qty_at(ASK, tick)

    def best_sizes(self) -> tuple[float, float]:
        """(best bid size, best ask size); 0.0 for an empty side (one call for a ``top`` line)."""
        roi = self._roi
        tick = self.best_bid_tick
        if tick == NO_PRICE:
            bq = 0.0
        else:
            pos = tick - self._bid_origin
            bq = self._bid.arr_mv[pos] + 0.0 if 1 <= pos <= roi else self.qty_at(BID, tick)
        tick = self.best_ask_tick
        if tick == NO_PRICE:
            aq = 0.0
        else:
            pos = self._ask_origin - tick
            aq = self._ask.arr_mv[pos] + 0.0 if 1 <= pos <= roi else self.qty_at(ASK, tick)
        return bq, aq

    def is_crossed(self) -> bool:
        """True when both sides exist and best bid >= best ask (transient in venue data)."""
        return (
            self.best_bid_tick != NO_PRICE
            and self.best_ask_tick != NO_PRICE
            and self.best_bid_tick >= self.best_ask_tick
        )

    def qty_at(self, side: int, tick: int) -> float:
        """Resting size at one tick of one side (0.0 when no level)."""
        st = self._side(side)
        tick = int(tick)
        pos = self._pos(side, tick)
        if 1 <= pos <= self._roi:
            return float(st.arr[pos]) + 0.0  # + 0.0: a stored -0.0 reads as 0.0
        far_t, far_q = self._far(side, st)
        i = int(np.searchsorted(far_t, tick))
        return float(far_q[i]) if i < far_t.shape[0] and far_t[i] == tick else 0.0

    def _far(self, side: int, st: _Side) -> tuple[np.ndarray, np.ndarray]:
        """The far levels (outside the ROI) of one side, ticks ascending, log folded in."""
        self._fold()
        return st.far_t, st.far_q

    def _roi_levels(self, side: int, st: _Side, n: int | None) -> tuple[np.ndarray, np.ndarray]:
        """ROI levels best-first, at most ``n``: windows grow downward from the best."""
        arr = st.arr
        top = min(st.best, self._roi)
        if top < 1:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        if n is None:
            pos = np.flatnonzero(arr[1 : top + 1])[::-1] + 1
        else:
            width = max(256, 4 * n)
            while True:
                start = max(1, top + 1 - width)
                pos = np.flatnonzero(arr[start : top + 1])[::-1] + start
                if pos.shape[0] >= n or start == 1:
                    pos = pos[:n]
                    break
                width *= 8
        ticks = pos + self._bid_origin if side == BID else self._ask_origin - pos
        return ticks, arr[pos]

    def levels(self, side: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ticks, sizes) of one side best-first (bids descending, asks ascending), at most ``n``."""
        st = self._side(side)
        if n is not None:
            n = _count(n, "n")
        far_t, far_q = self._far(side, st)
        # Far levels split into the ones better than the ROI (a best-first prefix) and the worse ones
        # (a suffix); far_t is sorted, so one binary search finds the split.
        if side == BID:
            k = int(np.searchsorted(far_t, self._top, side="right"))
            better_t, better_q = far_t[k:][::-1], far_q[k:][::-1]
            worse_t, worse_q = far_t[:k][::-1], far_q[:k][::-1]
        else:
            k = int(np.searchsorted(far_t, self._base, side="left"))
            better_t, better_q = far_t[:k], far_q[:k]
            worse_t, worse_q = far_t[k:], far_q[k:]
        nb = better_t.shape[0]
        if n is not None and nb >= n:
            return better_t[:n].copy(), better_q[:n].copy()
        want = None if n is None else n - nb
        rt, rq = self._roi_levels(side, st, want)
        if want is not None:
            rest = want - rt.shape[0]
            worse_t, worse_q = worse_t[:rest], worse_q[:rest]
        return np.concatenate([better_t, rt, worse_t]), np.concatenate([better_q, rq, worse_q])

    def ladder(self, top_tick: int, rows: int, group: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row ticks descending from ``top_tick``, bid size, ask size); ``group`` ticks summed per row."""
        # Row r is labelled top_tick - r*group and sums ticks top_tick - r*group - group + 1 .. label.
        rows = _count(rows, "rows")
        group = _count(group, "group")
        if group < 1:
            raise ValueError(f"ladder: group must be >= 1, got {group}")
        top_tick = int(top_tick)
        span = rows * group
        lo = top_tick - span + 1  # the window is ticks lo..top_tick
        row_ticks = top_tick - np.arange(rows, dtype=np.int64) * group
        out = []
        for side, st in ((BID, self._bid), (ASK, self._ask)):
            dense = np.zeros(span, dtype=np.float64)  # ascending ticks lo..top_tick
            if span:
                # ROI part: positions of lo..top_tick clipped to 1..roi.
                a = max(lo, self._base)
                b = min(top_tick, self._base + self._roi - 1)
                if a <= b:
                    if side == BID:
                        dense[a - lo : b - lo + 1] = st.arr[a - self._bid_origin : b - self._bid_origin + 1]
                    else:
                        pa, pb = self._ask_origin - b, self._ask_origin - a
                        dense[a - lo : b - lo + 1] = st.arr[pa : pb + 1][::-1]
                if lo < self._base or top_tick > self._base + self._roi - 1:
                    far_t, far_q = self._far(side, st)
                    i = np.searchsorted(far_t, lo, side="left")
                    j = np.searchsorted(far_t, top_tick, side="right")
                    dense[far_t[i:j] - lo] = far_q[i:j]
            # Descending ticks, then `group` ticks per row.
            # initial=0.0: a stored -0.0 sums to +0.0 (0.0 + -0.0), at no extra pass.
            out.append(_ADD_REDUCE(dense[::-1].reshape(rows, group), axis=1, initial=0.0))
        return row_ticks, out[0], out[1]

    def cumulative_depth(self, side: int, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
        """(ticks, cumulative size) of the best ``n_levels`` levels of one side, best-first."""
        ticks, qty = self.levels(side, _count(n_levels, "n_levels"))
        return ticks, np.cumsum(qty)

    def depth_within(self, side: int, n_ticks: int) -> float:
        """Total size of one side within ``n_ticks`` ticks of its best (inclusive; 0 = best only)."""
        st = self._side(side)
        n_ticks = _count(n_ticks, "n_ticks")
        best = self.best_bid_tick if side == BID else self.best_ask_tick
        if best == NO_PRICE:
            return 0.0
        lo, hi = (best - n_ticks, best) if side == BID else (best, best + n_ticks)
        total = 0.0
        a = max(lo, self._base)
        b = min(hi, self._base + self._roi - 1)
        if a <= b:
            pa, pb = sorted((self._pos(side, a), self._pos(side, b)))
            total += float(st.arr[pa : pb + 1].sum())
        if lo < self._base or hi > self._base + self._roi - 1:
            far_t, far_q = self._far(side, st)
            i = np.searchsorted(far_t, lo, side="left")
            j = np.searchsorted(far_t, hi, side="right")
            total += float(far_q[i:j].sum())
        return total

    def walk(self, side: int, qty: float) -> WalkResult:
        """A market order of ``qty`` consuming ``side`` (ASK for a buy): filled, avg/worst tick, slippage."""
        qty = float(qty)
        if not (math.isfinite(qty) and qty > 0):
            raise ValueError(f"walk: qty must be a finite number > 0, got {qty!r}")
        self._side(side)
        n = 256
        while True:
            ticks, sizes = self.levels(side, n)
            if not ticks.shape[0]:
                return WalkResult(0.0, math.nan, NO_PRICE, math.nan)
            cum = np.cumsum(sizes)
            if cum[-1] >= qty or ticks.shape[0] < n:
                break
            n *= 8
        k = int(np.searchsorted(cum, qty, side="left"))
        if k >= ticks.shape[0]:  # the side holds less than qty: take it all
            k = ticks.shape[0] - 1
            take = sizes
            filled = float(cum[-1])
        else:
            take = sizes[: k + 1].copy()
            take[k] = qty - (float(cum[k - 1]) if k else 0.0)
            filled = qty
        best = int(ticks[0])
        away = np.abs(ticks[: k + 1] - best).astype(np.float64)  # ticks away from best, small
        slippage = float(np.dot(away, take)) / filled
        avg = best + slippage if side == ASK else best - slippage
        return WalkResult(filled, avg, int(ticks[k]), slippage)

    def __repr__(self) -> str:
        return (
            f"DepthBook({self.instrument.key}, bid={self.best_bid_tick if self.best_bid_tick != NO_PRICE else None}, "
            f"ask={self.best_ask_tick if self.best_ask_tick != NO_PRICE else None}, version={self.version})"
        )


# ---------------------------------------------------------------------- validation helpers


def _count(value: int, name: str) -> int:
    """A non-negative integer argument, or ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def _tick_range(ticks: np.ndarray) -> tuple[int, int]:
    """(min, max) tick as Python ints: exact range checks, no int64 wrap-around. Short arrays (the
    median venue diff has ~17 levels a side; up to ~40 measured) are quicker through a list than
    through two reductions."""
    if ticks.shape[0] <= 40:
        listed = ticks.tolist()
        return min(listed), max(listed)
    return int(_SMIN(ticks)), int(_SMAX(ticks))


def _without_stale_deletes(
    ticks: np.ndarray, qty: np.ndarray, inside: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """One side's rows without those beyond the ROI on its better side, when all of them are deletes.

    The side's best is in the ROI, so no level rests beyond it: such rows (venues send them now and
    then) change nothing. None when one sets a size (or is NaN): the exact path must see it.
    """
    if (qty[~inside] != 0.0).any():
        return None
    return ticks[inside], qty[inside]


def _coerce(ticks: object, qty: object, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate/convert one side's inputs to 1-D int64 ticks and float64 sizes of one length."""
    t = np.asarray(ticks)
    q = np.asarray(qty)
    if t.ndim != 1 or q.ndim != 1 or t.shape != q.shape:
        raise ValueError(
            f"DepthBook: {what} ticks and qty must be 1-D of one length, got {t.shape} and {q.shape}"
        )
    if t.dtype.kind not in "iu" and (t.shape[0] or t.dtype.kind != "f"):  # np.asarray([]) is float
        raise ValueError(f"DepthBook: {what} ticks must be an integer array, got dtype {t.dtype}")
    if t.dtype.kind == "u" and t.shape[0] and int(t.max()) >= TICK_LIMIT:
        raise ValueError(f"DepthBook: {what} tick {int(t.max())} out of range (|tick| < 2**62)")
    if q.dtype.kind not in "iuf":
        raise ValueError(f"DepthBook: {what} qty must be numbers, got dtype {q.dtype}")
    return np.ascontiguousarray(t, dtype=np.int64), np.ascontiguousarray(q, dtype=np.float64)


def _checked_qty(qty: np.ndarray, what: str) -> np.ndarray:
    """Raise on NaN/inf/negative sizes; turn -0.0 into 0.0 (the bit test flags it too)."""
    bad = np.isnan(qty)
    if bad.any():
        raise ValueError(f"{what} qty is NaN at index {int(np.flatnonzero(bad)[0])}; book unchanged")
    bad = np.isinf(qty)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what} qty is infinite ({qty[i]}) at index {i}; book unchanged")
    bad = qty < 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what} qty is negative ({qty[i]}) at index {i}; book unchanged")
    return qty + 0.0  # -0.0 + 0.0 == +0.0


def _check_ticks(ticks: np.ndarray, what: str) -> None:
    """Raise when a tick is outside ±2**62 (garbage or the NO_PRICE sentinel)."""
    bad = (ticks <= -TICK_LIMIT) | (ticks >= TICK_LIMIT)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{what} tick {int(ticks[i])} at index {i} out of range (|tick| < 2**62); book unchanged"
        )


def _validate_depth_rows(batch: np.ndarray, rows: np.ndarray, flags: np.ndarray, tick_size: float) -> None:
    """Every depth row: one side flag, finite size >= 0, tick in range and matching px."""
    f = flags[rows]
    bad = (f != BUY_EVENT) & (f != SELL_EVENT)
    if bad.any():
        i = int(rows[np.flatnonzero(bad)[0]])
        what = "no side flag" if flags[i] == 0 else "both side flags"
        raise ValueError(
            f"DepthBook.apply: depth row {i} has {what} (need BUY_EVENT or SELL_EVENT); book unchanged"
        )
    qty = batch["qty"][rows]
    bad = ~(np.isfinite(qty) & (qty >= 0))
    if bad.any():
        i = int(rows[np.flatnonzero(bad)[0]])
        q = float(batch["qty"][i])
        what = "NaN" if math.isnan(q) else "infinite" if math.isinf(q) else "negative"
        raise ValueError(f"DepthBook.apply: depth row {i}: qty is {what} ({q}); book unchanged")
    ival = batch["ival"][rows]
    bad = (ival <= -TICK_LIMIT) | (ival >= TICK_LIMIT)
    if bad.any():
        i = int(rows[np.flatnonzero(bad)[0]])
        raise ValueError(
            f"DepthBook.apply: depth row {i}: tick {int(batch['ival'][i])} out of range; book unchanged"
        )
    px = batch["px"][rows]
    priced = px != 0
    if priced.any():
        p = px[priced]
        t = ival[priced].astype(np.float64)
        off = ~(np.abs(p / tick_size - t) <= 1e-6 + np.abs(t) * 4e-16)  # also catches NaN px
        if off.any():
            k = int(np.flatnonzero(priced)[np.flatnonzero(off)[0]])
            i = int(rows[k])
            raise ValueError(
                f"DepthBook.apply: depth row {i}: px {float(batch['px'][i])!r} is not tick "
                f"{int(batch['ival'][i])} x {tick_size} (off the tick grid or wrong ival); book unchanged"
            )
