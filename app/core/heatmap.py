"""Liquidity heatmap history: resting size per price over time, as a ring texture of fixed-width columns.

Columns are ``column_ns`` of exchange time (default 100 ms), numbered ``exch_ts // column_ns`` and stored
in slot ``column % columns``, so time maps to a slot without a search and memory is fixed by
``columns x rows`` float32 (the default 72,000 x 256 = 73.7 MB, two hours; allocated with calloc, so
pages are committed only as history is written).

Sampling rule: the engine calls :meth:`HeatmapHistory.sample` *before* it applies each batch. When the
batch's exchange time enters a new column, every column still open (the previous one and any the market
was quiet through) is closed with the book as it stands, i.e. the book at the end of those columns, so
a column shows what rested when it ended, and live and replay draw the same picture. The book is read
once per new column (``book.ladder``), never per message. When the feed was not live (``live=False``:
resyncing, disconnected, after a ``GAP_EVENT``) the closed columns are gaps (NaN) and are drawn as such.

Rows: ``rows`` price rows of ``group`` ticks; each column keeps its own lowest row (``base``). The
window is recentred (mid back to the middle) only when the mid leaves the central band
``[recentre, 1 - recentre]`` of the rows, so most neighbouring columns share a base. ``group=0`` picks
the grouping at the first live sample so that the rows span about ``AUTO_SPAN`` (1 %) of the price, on a
1-2-5 step (BTCUSDT at $61,600 and a 0.1 tick: 10 ticks, $1 rows, ±$128 around mid; a small cap whose tick
is a large part of its price: 1 tick); fixed from then on, so columns stay comparable.

Trades are aggregated per column and aggressor side (volume and volume x tick, for a VWAP bubble), which
keeps the visible window's trades at bounded memory; the same columns give the CVD (session reset) and a
mid-price series for indicators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.core.events import NO_PRICE

DAY_NS = 86_400_000_000_000
DEFAULT_COLUMN_NS = 100_000_000
DEFAULT_COLUMNS = 72_000  # two hours of 100 ms columns
DEFAULT_ROWS = 256
AUTO_SPAN = 0.01  # fraction of the price the rows cover when the grouping is automatic
NICE_GROUPS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
GAP_BASE = -(2**61)  # base row of a block whose columns were all gaps (not live): drawn as a gap
EMPTY_BASE = -(2**61) + 1  # base row of a block with no column written at all (before the history): empty


class HeatmapHistory:
    """Ring texture of resting size per (column, price row) plus per-column best prices and trade sums."""

    def __init__(
        self,
        columns: int = DEFAULT_COLUMNS,
        rows: int = DEFAULT_ROWS,
        column_ns: int = DEFAULT_COLUMN_NS,
        group: int = 1,
        recentre: float = 0.25,
        session_ns: int = DAY_NS,
        session_offset_ns: int = 0,
    ) -> None:
        for name, value in (("columns", columns), ("rows", rows), ("column_ns", column_ns),
                            ("group", group + 1), ("session_ns", session_ns)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"heatmap {name} must be an int >= 1 (group >= 0: 0 = auto), got {value!r}")
        if rows < 8:
            raise ValueError(f"heatmap rows must be >= 8, got {rows}")
        if not 0.0 < recentre < 0.5:
            raise ValueError(f"recentre band must be in (0, 0.5), got {recentre!r}")
        self.columns = int(columns)
        self.rows = int(rows)
        self.column_ns = int(column_ns)
        self.group = int(group)  # 0 until the automatic grouping is chosen
        self.recentre = float(recentre)
        self.session_ns = int(session_ns)
        self.session_offset_ns = int(session_offset_ns)
        cap = self.columns
        self.tex = np.zeros((cap, self.rows), np.float32)  # calloc: untouched pages cost nothing
        self.base = np.zeros(cap, np.int64)  # lowest row (in rows of `group` ticks) of each slot
        self.col = np.full(cap, -1, np.int64)  # absolute column number a slot holds (-1: never written)
        self.live = np.zeros(cap, bool)  # False: a gap (or never written)
        self.bid = np.full(cap, NO_PRICE, np.int64)  # best bid / ask tick at the column's end
        self.ask = np.full(cap, NO_PRICE, np.int64)
        self.buy = np.zeros(cap)  # aggressive volume per column
        self.sell = np.zeros(cap)
        self.buy_tq = np.zeros(cap)  # sum of tick x qty: VWAP = buy_tq / buy
        self.sell_tq = np.zeros(cap)
        self.open_col: int | None = None  # the column trades still add to; closed columns are final
        self._base: int | None = None
        self._carry = 0.0  # delta of evicted columns of session `_carry_session` (CVD continuity)
        self._carry_session: int | None = None
        self.version = 0

    # -- properties --------------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes the history can hold once full (texture plus per-column arrays)."""
        return int(self.tex.nbytes + self.columns * (8 * 9 + 1))

    @property
    def last_closed(self) -> int:
        """Number of the newest closed column (-1 before any)."""
        return -1 if self.open_col is None else self.open_col - 1

    @property
    def first_kept(self) -> int:
        """Oldest column still in the ring (may be older than the first written)."""
        return self.last_closed - self.columns + 2 if self.open_col is not None else 0

    def column_of(self, exch_ts: int) -> int:
        """The column number of an exchange time."""
        return int(exch_ts) // self.column_ns

    def row_of(self, tick: int) -> int:
        """The price row (of ``group`` ticks) holding a tick."""
        return int(tick) // max(1, self.group)

    # -- writing -----------------------------------------------------------------------------------
    def sample(self, book: Any, exch_ts: int, live: bool = True) -> bool:
        """Close the open column(s) when ``exch_ts`` enters a new one; True if columns were closed.

        Call before applying each batch; ``live`` says whether the book was valid (synced) until now.
        """
        c = int(exch_ts) // self.column_ns
        if self.open_col is None:
            self._open(c, c)
            return False
        if c <= self.open_col:
            return False  # same column (or a late row): nothing to do, the cheap common case
        cap = self.columns
        was_open = self.open_col
        self._open(max(was_open + 1, c - cap + 1), c)
        self._write(max(was_open, c - cap + 1), c - 1, book if live else None)
        self.version += 1
        return True

    def _write(self, first: int, last: int, book: Any) -> None:
        cols = np.arange(first, last + 1, dtype=np.int64)
        slots = cols % self.columns
        self.col[slots] = cols
        bid = book.best_bid_tick if book is not None else NO_PRICE
        ask = book.best_ask_tick if book is not None else NO_PRICE
        if book is None or (bid == NO_PRICE and ask == NO_PRICE):
            self.tex[slots] = np.nan
            self.live[slots] = False
            self.bid[slots] = NO_PRICE
            self.ask[slots] = NO_PRICE
            return
        mid_tick = (bid + ask) // 2 if bid != NO_PRICE and ask != NO_PRICE else (bid if bid != NO_PRICE else ask)
        if self.group == 0:
            self.group = auto_group(mid_tick, self.rows)
        mid_row = mid_tick // self.group
        base = self._base
        lo_band = int(self.rows * self.recentre)
        if base is None or not base + lo_band <= mid_row < base + self.rows - lo_band:
            base = mid_row - self.rows // 2
            self._base = base
        top_tick = (base + self.rows) * self.group - 1
        _t, b, a = book.ladder(top_tick, self.rows, self.group)
        values = (b + a)[::-1].astype(np.float32)  # ascending rows from `base`
        self.tex[slots] = values
        self.base[slots] = base
        self.live[slots] = True
        self.bid[slots] = bid
        self.ask[slots] = ask

    def _open(self, first: int, last: int) -> None:
        """Columns first..last enter the ring (their slots' older columns leave); ``last`` is the open one."""
        if last - first + 1 > self.columns:
            first = last - self.columns + 1
        cols = np.arange(first, last + 1, dtype=np.int64)
        slots = cols % self.columns
        old = self.col[slots]
        gone = old >= 0
        if gone.any():
            # evicted columns keep counting in the CVD of their session
            ses = self.session_of_columns(old[gone])
            delta = self.buy[slots[gone]] - self.sell[slots[gone]]
            for s in np.unique(ses).tolist():
                if s != self._carry_session:
                    if self._carry_session is None or s > self._carry_session:
                        self._carry_session, self._carry = int(s), 0.0
                    else:
                        continue
                self._carry += float(delta[ses == s].sum())
        self.col[slots] = cols
        self.buy[slots] = 0.0
        self.sell[slots] = 0.0
        self.buy_tq[slots] = 0.0
        self.sell_tq[slots] = 0.0
        s = last % self.columns  # the open column draws as nothing until it is closed
        self.tex[s] = np.nan
        self.live[s] = False
        self.bid[s] = NO_PRICE
        self.ask[s] = NO_PRICE
        if self.open_col is None or last > self.open_col:
            self.open_col = int(last)

    def add_trades(self, exch_ts: np.ndarray, ticks: np.ndarray, qty: np.ndarray, is_buy: np.ndarray) -> int:
        """Add trades to their columns (times past the open column count in it); returns how many were kept."""
        if len(exch_ts) == 0:
            return 0
        cols = np.asarray(exch_ts, np.int64) // self.column_ns
        if self.open_col is None:
            self._open(int(cols.min()), int(cols.max()))
        cols = np.minimum(cols, self.open_col)
        slots = cols % self.columns
        keep = self.col[slots] == cols  # trades older than the ring are gone
        if not keep.all():
            slots, ticks, qty, is_buy = slots[keep], ticks[keep], qty[keep], is_buy[keep]
        qty = np.asarray(qty, np.float64)
        tq = qty * np.asarray(ticks, np.float64)
        b = np.asarray(is_buy, bool)
        np.add.at(self.buy, slots[b], qty[b])
        np.add.at(self.buy_tq, slots[b], tq[b])
        np.add.at(self.sell, slots[~b], qty[~b])
        np.add.at(self.sell_tq, slots[~b], tq[~b])
        self.version += 1
        return int(slots.size)

    # -- reading -----------------------------------------------------------------------------------
    def session_of_columns(self, cols: np.ndarray) -> np.ndarray:
        """Session number of each column (sessions of ``session_ns`` starting at ``session_offset_ns``)."""
        return (np.asarray(cols, np.int64) * self.column_ns - self.session_offset_ns) // self.session_ns

    def span(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(columns, slots) of first..last clipped to what the ring keeps (closed or open)."""
        if self.open_col is None:
            e = np.zeros(0, np.int64)
            return e, e
        first = max(int(first), self.open_col - self.columns + 1)
        last = min(int(last), self.open_col)
        cols = np.arange(first, last + 1, dtype=np.int64)
        return cols, cols % self.columns

    def value_at(self, column: int, tick: int) -> float:
        """Resting size in the row holding ``tick`` at the end of ``column`` (NaN: gap or outside)."""
        if self.open_col is None or not self.open_col - self.columns < column <= self.last_closed:
            return float("nan")
        s = column % self.columns
        if self.col[s] != column or not self.live[s]:
            return float("nan")
        r = self.row_of(tick) - int(self.base[s])
        return float(self.tex[s, r]) if 0 <= r < self.rows else float("nan")

    def best_prices(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(columns, best bid ticks, best ask ticks) of closed columns first..last; NaN where a gap."""
        cols, slots = self.span(first, min(last, self.last_closed))
        ok = (self.col[slots] == cols) & self.live[slots]
        bid = np.where(ok & (self.bid[slots] != NO_PRICE), self.bid[slots], np.nan)
        ask = np.where(ok & (self.ask[slots] != NO_PRICE), self.ask[slots], np.nan)
        return cols, bid.astype(np.float64), ask.astype(np.float64)

    def mid_series(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(columns, mid in ticks) of closed columns first..last; NaN in gaps or one-sided books."""
        cols, bid, ask = self.best_prices(first, last)
        return cols, (bid + ask) / 2.0

    def trade_columns(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                                np.ndarray]:
        """(columns, buy volume, sell volume, buy VWAP tick, sell VWAP tick) of first..last (NaN VWAP: none)."""
        cols, slots = self.span(first, last)
        ok = self.col[slots] == cols
        buy = np.where(ok, self.buy[slots], 0.0)
        sell = np.where(ok, self.sell[slots], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            bvw = np.where(buy > 0, self.buy_tq[slots] / buy, np.nan)
            svw = np.where(sell > 0, self.sell_tq[slots] / sell, np.nan)
        return cols, buy, sell, bvw, svw

    def cvd(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(columns, cumulative volume delta at each column's end), reset at each session start."""
        cols, slots = self.span(self.open_col - self.columns + 1 if self.open_col is not None else 0, last)
        if cols.size == 0:
            return cols, np.zeros(0)
        ok = self.col[slots] == cols
        delta = np.where(ok, self.buy[slots] - self.sell[slots], 0.0)
        ses = self.session_of_columns(cols)
        total = np.cumsum(delta)
        # subtract the running total at each session's start: a reset without a Python loop
        starts = np.r_[True, ses[1:] != ses[:-1]]
        before = np.where(starts, total - delta, 0.0)
        start_total = np.maximum.accumulate(np.where(starts, np.arange(cols.size), 0))
        out = total - before[start_total]
        if self._carry_session is not None:
            out = out + np.where(ses == self._carry_session, self._carry, 0.0)
        keep = cols >= first
        return cols[keep], out[keep]


def auto_group(mid_tick: int, rows: int, span: float = AUTO_SPAN) -> int:
    """Ticks per row so ``rows`` rows cover about ``span`` of the price (the nice step at or below)."""
    want = abs(int(mid_tick)) * span / rows
    return max(g for g in NICE_GROUPS if g <= max(1.0, want))


@dataclass(frozen=True, slots=True, eq=False)
class HeatmapSnapshot:
    """What a frame carries of the heatmap: the shared history and the columns that were final then.

    Closed columns are never rewritten until the ring wraps round, so a view may read columns
    ``first..last`` without the engine's lock; it must not read beyond ``last``.
    """

    history: HeatmapHistory
    last: int  # newest closed column when the frame was built
    open_col: int
    version: int
    tick_size: float
    column_ns: int

    @property
    def first(self) -> int:
        """Oldest column safe to read: a slack of a tenth of the ring (at most a minute of 100 ms columns)
        before the writer could overwrite it while a view reads."""
        slack = min(600, self.history.columns // 10)
        return self.last - self.history.columns + 1 + slack


BLOCK_FIELDS = ("bid", "ask", "lo", "hi", "buy", "buy_tq", "sell", "sell_tq")


@dataclass(frozen=True, slots=True, eq=False)
class BlockView:
    """Blocks of ``k`` columns over a view: max sizes and bases for the image, plus per block the best bid /
    ask of its newest valid column, the lowest bid and highest ask it saw (NaN in gaps), and its trade sums."""

    ids: np.ndarray
    k: int
    cache: np.ndarray  # the renderer's (slots, rows) float32 block maxima; read through values()
    slots: np.ndarray  # cache row of each block
    bases: np.ndarray  # GAP_BASE for a block without a valid column
    bid: np.ndarray
    ask: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    buy: np.ndarray
    buy_tq: np.ndarray
    sell: np.ndarray
    sell_tq: np.ndarray

    def values(self, which: np.ndarray | None = None) -> np.ndarray:
        """Max size per row of the blocks ``which`` (indices into ``ids``; all by default): (n, rows) copy."""
        return self.cache[self.slots if which is None else self.slots[which]]


class HeatmapRenderer:
    """Reduces the history to a display image: ``k`` columns per pixel (max), blocks cached once final.

    Blocks are aligned to absolute column numbers (block ``j`` = columns ``j*k .. j*k+k-1``), so as the
    view follows the market only the newest block or two are reduced again each frame. A block is final
    ``slack`` columns after its last one closed: trades are folded in lazily and may land a little late.
    """

    def __init__(self, slack: int = 5) -> None:
        self.slack = int(slack)
        self._hist: HeatmapHistory | None = None
        self._k = 0
        self._ids = np.zeros(0, np.int64)
        self._vals = np.zeros((0, 0), np.float32)
        self._bases = np.zeros(0, np.int64)
        self._f = np.zeros((len(BLOCK_FIELDS), 0))
        self.blocks_reduced = 0  # cumulative, for tests and the bench

    def reset(self) -> None:
        """Forget cached blocks."""
        self._k = 0

    def _prepare(self, hist: HeatmapHistory, k: int) -> None:
        if hist is not self._hist or k != self._k:
            self._hist, self._k = hist, k
            n = hist.columns // k + 64  # more than a view over the whole ring can ask for: no thrashing
            self._ids = np.full(n, -(2**62), np.int64)
            self._vals = np.full((n, hist.rows), np.nan, np.float32)
            self._bases = np.zeros(n, np.int64)
            self._f = np.zeros((len(BLOCK_FIELDS), n))

    def view(self, hist: HeatmapHistory, first_block: int, n_blocks: int, k: int, last_col: int) -> BlockView:
        """The blocks ``first_block ..`` over closed columns up to ``last_col`` (cached where final)."""
        self._prepare(hist, k)
        ids = np.arange(first_block, first_block + n_blocks, dtype=np.int64)
        nb = self._ids.size
        slot = ids % nb
        final = (ids + 1) * k - 1 <= last_col - self.slack
        need = ids[(self._ids[slot] != ids) | ~final]
        if need.size:
            vals, bases, fields = self._reduce(hist, need, k, last_col)
            s = need % nb
            self._vals[s] = vals
            self._bases[s] = bases
            self._f[:, s] = fields
            done = (need + 1) * k - 1 <= last_col - self.slack
            self._ids[s] = np.where(done, need, -(2**62))  # partial blocks are redone next time
            self.blocks_reduced += int(need.size)
        f = self._f[:, slot]
        return BlockView(ids, k, self._vals, slot, self._bases[slot], *f)

    def blocks(self, hist: HeatmapHistory, first_block: int, n_blocks: int, k: int, last_col: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(block ids, max values per block (n, rows), base row per block) for blocks over closed columns."""
        v = self.view(hist, first_block, n_blocks, k, last_col)
        return v.ids, v.values(), v.bases

    @staticmethod
    def _reduce(hist: HeatmapHistory, ids: np.ndarray, k: int, last_col: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Max over each block's columns (NaN-ignoring), shifted to the block's newest base when they differ."""
        n = ids.size
        vals = np.full((n, hist.rows), np.nan, np.float32)
        bases = np.zeros(n, np.int64)
        fields = np.full((len(BLOCK_FIELDS), n), np.nan)
        lo = hist.open_col - hist.columns + 1 if hist.open_col is not None else 0
        # contiguous runs of block ids reduce with one reshape each
        breaks = np.flatnonzero(np.diff(ids) != 1) + 1
        for run in np.split(np.arange(n), breaks):
            j0, j1 = int(ids[run[0]]), int(ids[run[-1]])
            c0, c1 = j0 * k, (j1 + 1) * k - 1
            cols = np.arange(c0, c1 + 1, dtype=np.int64)
            slots = cols % hist.columns
            kept = (cols >= lo) & (hist.col[slots] == cols)
            valid = kept & (cols <= last_col) & hist.live[slots]
            block_valid = valid.reshape(-1, k)
            base = hist.base[slots].reshape(-1, k)
            last_valid = k - 1 - np.argmax(block_valid[:, ::-1], axis=1)
            rows_i = np.arange(base.shape[0])
            newest = base[rows_i, last_valid]  # base of each block's newest valid column
            any_valid = block_valid.any(axis=1)
            uniform = ((base == newest[:, None]) | ~block_valid).all(axis=1)
            simple = any_valid & uniform & block_valid.all(axis=1)
            tex = hist.tex[slots].reshape(-1, k, hist.rows)  # one gather per run
            idx = np.flatnonzero(simple)
            if idx.size:
                vals[run[idx]] = np.fmax.reduce(tex[idx], axis=1)
            for i in np.flatnonzero(any_valid & ~simple).tolist():  # block edges, gaps, recentres: rare
                vals[run[i]] = _shifted_max(tex[i], base[i], block_valid[i], int(newest[i]), hist.rows)
            written = (kept & (cols <= last_col)).reshape(-1, k).any(axis=1)
            bases[run] = np.where(any_valid, newest, np.where(written, GAP_BASE, EMPTY_BASE))
            bid = np.where(valid & (hist.bid[slots] != NO_PRICE), hist.bid[slots], np.nan).reshape(-1, k)
            ask = np.where(valid & (hist.ask[slots] != NO_PRICE), hist.ask[slots], np.nan).reshape(-1, k)
            with np.errstate(invalid="ignore"):
                fields[0, run] = np.where(any_valid, bid[rows_i, last_valid], np.nan)
                fields[1, run] = np.where(any_valid, ask[rows_i, last_valid], np.nan)
                fields[2, run] = np.fmin.reduce(bid, axis=1)
                fields[3, run] = np.fmax.reduce(ask, axis=1)
            tr = kept & (cols <= last_col + 1)  # trades count up to the open column
            for fi, arr in ((4, hist.buy), (5, hist.buy_tq), (6, hist.sell), (7, hist.sell_tq)):
                fields[fi, run] = np.where(tr, arr[slots], 0.0).reshape(-1, k).sum(axis=1)
        return vals, bases, fields


def _shifted_max(tex: np.ndarray, base: np.ndarray, valid: np.ndarray, target: int, rows: int) -> np.ndarray:
    """Max of the valid columns of a block, each moved to the rows of ``target`` base."""
    out = np.full(rows, np.nan, np.float32)
    for b in np.unique(base[valid]).tolist():
        sel = tex[valid & (base == b)]
        m = np.fmax.reduce(sel, axis=0)
        shift = int(b) - target  # source row r sits at target row r + shift
        lo, hi = max(0, shift), min(rows, rows + shift)
        if lo < hi:
            out[lo:hi] = np.fmax(out[lo:hi], m[lo - shift:hi - shift])
    return out


def compose(vals: np.ndarray, bases: np.ndarray, row_lo: int, n_rows: int, step: int = 1) -> np.ndarray:
    """Place block values (n, rows) with their base rows into an image (n, n_rows // step) over absolute
    rows ``row_lo ..``; ``step`` rows per pixel (max). Gap blocks are NaN whole; blocks before the history
    and rows outside a block's window are -inf (nothing known there, drawn as the empty end of the scale)."""
    n, rows = vals.shape
    h = n_rows // step
    img = np.full((n, h), -np.inf, np.float32)
    if n == 0 or h == 0:
        return img
    for b in np.unique(bases).tolist():
        sel = np.flatnonzero(bases == b)
        if b == GAP_BASE:
            img[sel] = np.nan
            continue
        if b == EMPTY_BASE:
            continue
        v = vals[sel]
        off = int(b) - row_lo  # image row (before step) of source row 0
        if step > 1:
            pad = off % step  # align the source rows to pixel boundaries
            start = off - pad
            width = -(-(rows + pad) // step) * step
            tmp = np.full((sel.size, width), np.nan, np.float32)
            tmp[:, pad:pad + rows] = v
            v = np.fmax.reduce(tmp.reshape(sel.size, -1, step), axis=2)
            off = start // step
        lo, hi = max(0, off), min(h, off + v.shape[1])
        if lo < hi:
            img[sel, lo:hi] = v[:, lo - off:hi - off]
    return img


def bubbles(cols: np.ndarray, buy: np.ndarray, sell: np.ndarray, buy_vwap: np.ndarray, sell_vwap: np.ndarray,
            k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Trade bubbles of ``k`` columns each: (first column, VWAP tick, volume, side +1 buy / -1 sell)."""
    if cols.size == 0:
        e = np.zeros(0)
        return e.astype(np.int64), e, e, e.astype(np.int64)
    block = cols // k
    uniq, inv = np.unique(block, return_inverse=True)
    m = uniq.size
    out_c, out_t, out_q, out_s = [], [], [], []
    for vol, vw, side in ((buy, buy_vwap, 1), (sell, sell_vwap, -1)):
        q = np.bincount(inv, weights=vol, minlength=m)
        tq = np.bincount(inv, weights=np.where(vol > 0, vw * vol, 0.0), minlength=m)
        has = q > 0
        out_c.append(uniq[has] * k)
        out_t.append(tq[has] / q[has])
        out_q.append(q[has])
        out_s.append(np.full(int(has.sum()), side, np.int64))
    return (np.concatenate(out_c), np.concatenate(out_t), np.concatenate(out_q), np.concatenate(out_s))
