"""Footprint bars: per bar and per (grouped) price, aggressive buy and sell volume, delta, trade count.

Bars are either time bars (``bar_ns``: aligned to multiples of the length since the epoch, so a 1-minute
bar starts on the minute, in exchange time) or volume bars (``bar_volume``: a bar closes with the trade
that brings it to at least that volume; trades are never split, so a bar holds the volume of its last
trade in full). Only bars that traded exist: a quiet interval is a gap, not an empty bar.

Rows are groups of ``group`` ticks; a row is named by the lowest tick in it (``tick // group * group``).
Each bar's arrays are dense and ascending from its lowest to its highest traded row.

Imbalances (diagonal, as footprint charts read them): a row is a *buy imbalance* when the aggressive
buy volume there is at least ``imbalance_ratio`` x the aggressive sell volume one row below, and a
*sell imbalance* when the sell volume there is at least ratio x the buy volume one row above; the row's
own volume must also reach ``imbalance_min_volume`` and be > 0. A partner row with no volume counts as an
infinite ratio; rows whose partner lies outside the bar's range are never flagged. A *stacked*
imbalance is a run of at least ``stacked_min`` consecutive rows flagged on the same side.

A batch whose trades (with the open bar) span more than ``max_span_ticks`` is rejected: that is a bad
tick or tick size, and a bar's rows are dense arrays.

Order: trades must arrive in exchange-time order (equal times allowed). A batch that goes back in time
within itself or against the previous batch raises ValueError and changes nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from app.core.events import EVENT_DTYPE
from app.core.profile import poc_index, single_trade, trades_of

_MARGIN_ROWS = 32  # spare rows allocated around a bar's range: prices wander, regrowth stays rare


def diagonal_imbalances(
    buy: np.ndarray, sell: np.ndarray, ratio: float, min_volume: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(buy imbalance, sell imbalance) row masks of one bar's dense ascending rows (module rules)."""
    n = buy.size
    buy_imb = np.zeros(n, bool)
    sell_imb = np.zeros(n, bool)
    ratio = ratio * (1 - 1e-9)  # exactly 3x stays 3x whatever order the volumes were summed in
    if n >= 2:
        # buy at row i vs sell at row i-1; sell at row i vs buy at row i+1
        buy_imb[1:] = (buy[1:] >= ratio * sell[:-1]) & (buy[1:] >= min_volume) & (buy[1:] > 0)
        sell_imb[:-1] = (sell[:-1] >= ratio * buy[1:]) & (sell[:-1] >= min_volume) & (sell[:-1] > 0)
    return buy_imb, sell_imb


def stacked_runs(mask: np.ndarray, min_len: int = 3) -> list[tuple[int, int]]:
    """(first, last) indices of every run of at least ``min_len`` consecutive True values."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    keep = (ends - starts + 1) >= min_len
    return [(int(a), int(b)) for a, b in zip(starts[keep], ends[keep], strict=True)]


@dataclass(frozen=True, slots=True, eq=False)
class FootprintBar:
    """One footprint bar: dense ascending rows with their volumes, plus totals and imbalance marks.

    Its arrays are read-only: closed bars are built once and shared by every caller of ``bars()``.
    Bars compare by identity (arrays have no single truth value).
    """

    index: int  # time bars: start_ts // bar_ns; volume bars: running bar number
    start_ts: int  # time bars: bucket start; volume bars: first trade time (ns)
    end_ts: int  # time bars: bucket end (exclusive); volume bars: last trade time (ns)
    first_ts: int
    last_ts: int
    group: int  # ticks per row
    ticks: np.ndarray  # int64 lowest tick of each row, ascending, dense
    buy: np.ndarray  # aggressive-buy volume per row (traded at the ask)
    sell: np.ndarray  # aggressive-sell volume per row (traded at the bid)
    count: np.ndarray  # trades per row
    open_tick: int
    high_tick: int
    low_tick: int
    close_tick: int
    buy_volume: float
    sell_volume: float
    trade_count: int
    poc_tick: int
    buy_imbalance: np.ndarray  # bool per row
    sell_imbalance: np.ndarray
    stacked_buy: tuple[tuple[int, int], ...]  # (low tick, high tick) of each stacked run
    stacked_sell: tuple[tuple[int, int], ...]
    closed: bool

    @property
    def volume(self) -> float:
        """Total volume of the bar."""
        return self.buy_volume + self.sell_volume

    @property
    def delta(self) -> float:
        """Buy minus sell volume of the bar."""
        return self.buy_volume - self.sell_volume

    @property
    def row_volume(self) -> np.ndarray:
        """Total volume per row."""
        return self.buy + self.sell

    @property
    def row_delta(self) -> np.ndarray:
        """Buy minus sell volume per row."""
        return self.buy - self.sell


class _OpenBar:
    """The bar still filling: growable dense row arrays (mutable, private)."""

    __slots__ = ("index", "start_ts", "end_ts", "first_ts", "last_ts", "base", "buy", "sell", "count",
                 "lo", "hi", "open_tick", "high_tick", "low_tick", "close_tick", "volume", "trades")

    def __init__(self, index: int, start_ts: int, end_ts: int, first_ts: int, open_tick: int) -> None:
        self.index = index
        self.start_ts = start_ts
        self.end_ts = end_ts
        self.first_ts = first_ts
        self.last_ts = first_ts
        self.base = 0  # row number of array slot 0
        self.buy = np.zeros(0)
        self.sell = np.zeros(0)
        self.count = np.zeros(0, np.int64)
        self.lo = self.hi = 0  # traded row range (inclusive); empty while trades == 0
        self.open_tick = self.high_tick = self.low_tick = self.close_tick = open_tick
        self.volume = 0.0
        self.trades = 0

    def add(self, ts: np.ndarray, ticks: np.ndarray, rows: np.ndarray, qty: np.ndarray,
            is_buy: np.ndarray) -> None:
        """Accumulate one time-ordered slice of trades (all belonging to this bar)."""
        r_lo = int(rows.min())
        r_hi = int(rows.max())
        if self.trades:
            lo, hi = min(r_lo, self.lo), max(r_hi, self.hi)
        else:
            lo, hi = r_lo, r_hi
        if self.buy.size == 0 or lo < self.base or hi >= self.base + self.buy.size:
            self._grow(lo, hi)
        n = r_hi - r_lo + 1
        local = rows - r_lo
        buy_q = np.where(is_buy, qty, 0.0)
        i0 = r_lo - self.base
        self.buy[i0:i0 + n] += np.bincount(local, weights=buy_q, minlength=n)
        self.sell[i0:i0 + n] += np.bincount(local, weights=qty - buy_q, minlength=n)
        self.count[i0:i0 + n] += np.bincount(local, minlength=n)
        self.lo, self.hi = lo, hi
        self.high_tick = max(self.high_tick, int(ticks.max()))
        self.low_tick = min(self.low_tick, int(ticks.min()))
        self.close_tick = int(ticks[-1])
        self.last_ts = int(ts[-1])
        self.volume += float(qty.sum())
        self.trades += int(ts.size)

    def add_one(self, ts: int, tick: int, row: int, qty: float, is_buy: bool) -> bool:
        """Accumulate one trade with scalars when its row already has a slot; False if it needs the array path."""
        i = row - self.base
        if not self.trades or not 0 <= i < self.buy.size:
            return False
        if is_buy:
            self.buy[i] += qty
        else:
            self.sell[i] += qty
        self.count[i] += 1
        if row < self.lo:
            self.lo = row
        elif row > self.hi:
            self.hi = row
        if tick > self.high_tick:
            self.high_tick = tick
        elif tick < self.low_tick:
            self.low_tick = tick
        self.close_tick = tick
        self.last_ts = ts
        self.volume += qty
        self.trades += 1
        return True

    def _grow(self, lo: int, hi: int) -> None:
        size = hi - lo + 1 + 2 * _MARGIN_ROWS
        base = lo - _MARGIN_ROWS
        buy, sell, count = np.zeros(size), np.zeros(size), np.zeros(size, np.int64)
        if self.trades:
            src = slice(self.lo - self.base, self.hi - self.base + 1)
            dst = slice(self.lo - base, self.hi - base + 1)
            buy[dst], sell[dst], count[dst] = self.buy[src], self.sell[src], self.count[src]
        self.base, self.buy, self.sell, self.count = base, buy, sell, count

    def freeze(self, group: int, closed: bool, ratio: float, min_volume: float, stacked_min: int
               ) -> FootprintBar:
        """An immutable copy of the bar as it stands."""
        sl = slice(self.lo - self.base, self.hi - self.base + 1)
        buy, sell, count = self.buy[sl].copy(), self.sell[sl].copy(), self.count[sl].copy()
        ticks = np.arange(self.lo, self.hi + 1, dtype=np.int64) * group
        return _with_imbalances(
            FootprintBar(
                index=self.index, start_ts=self.start_ts, end_ts=self.end_ts if self.end_ts else self.last_ts,
                first_ts=self.first_ts, last_ts=self.last_ts, group=group, ticks=ticks,
                buy=buy, sell=sell, count=count, open_tick=self.open_tick, high_tick=self.high_tick,
                low_tick=self.low_tick, close_tick=self.close_tick, buy_volume=float(buy.sum()),
                sell_volume=float(sell.sum()), trade_count=self.trades,
                poc_tick=int(ticks[poc_index(buy + sell) or 0]),
                buy_imbalance=np.zeros(0, bool), sell_imbalance=np.zeros(0, bool),
                stacked_buy=(), stacked_sell=(), closed=closed,
            ),
            ratio, min_volume, stacked_min,
        )


def _with_imbalances(bar: FootprintBar, ratio: float, min_volume: float, stacked_min: int) -> FootprintBar:
    buy_imb, sell_imb = diagonal_imbalances(bar.buy, bar.sell, ratio, min_volume)
    for arr in (bar.ticks, bar.buy, bar.sell, bar.count, buy_imb, sell_imb):
        arr.flags.writeable = False
    t = bar.ticks
    return replace(
        bar,
        buy_imbalance=buy_imb,
        sell_imbalance=sell_imb,
        stacked_buy=tuple((int(t[a]), int(t[b])) for a, b in stacked_runs(buy_imb, stacked_min)),
        stacked_sell=tuple((int(t[a]), int(t[b])) for a, b in stacked_runs(sell_imb, stacked_min)),
    )


class FootprintAggregator:
    """Builds footprint bars from trade rows, one vectorised accumulation per bar touched by a batch."""

    def __init__(
        self,
        *,
        bar_ns: int | None = None,
        bar_volume: float | None = None,
        group: int = 1,
        imbalance_ratio: float = 3.0,
        imbalance_min_volume: float = 0.0,
        stacked_min: int = 3,
        max_bars: int = 1000,
        max_span_ticks: int = 2_000_000,
    ) -> None:
        if (bar_ns is None) == (bar_volume is None):
            raise ValueError("give exactly one of bar_ns (time bars) or bar_volume (volume bars)")
        if bar_ns is not None and (not isinstance(bar_ns, (int, np.integer)) or bar_ns <= 0):
            raise ValueError(f"bar_ns must be a positive int of nanoseconds, got {bar_ns!r}")
        if bar_volume is not None and not (bar_volume > 0 and np.isfinite(bar_volume)):
            raise ValueError(f"bar_volume must be a finite number > 0, got {bar_volume!r}")
        if not isinstance(group, (int, np.integer)) or group < 1:
            raise ValueError(f"group must be an int >= 1, got {group!r}")
        if max_bars < 1:
            raise ValueError(f"max_bars (closed bars kept) must be >= 1, got {max_bars!r}")
        if max_span_ticks < 1:
            raise ValueError(f"max_span_ticks must be >= 1, got {max_span_ticks!r}")
        self._max_rows = max(1, int(max_span_ticks) // int(group))
        self.bar_ns = None if bar_ns is None else int(bar_ns)
        self.bar_volume = None if bar_volume is None else float(bar_volume)
        self.group = int(group)
        self._check_imbalance(imbalance_ratio, imbalance_min_volume, stacked_min)
        self.imbalance_ratio = float(imbalance_ratio)
        self.imbalance_min_volume = float(imbalance_min_volume)
        self.stacked_min = int(stacked_min)
        self._closed: deque[FootprintBar] = deque(maxlen=int(max_bars))  # oldest closed bars fall off
        self._open: _OpenBar | None = None
        self._open_frozen: FootprintBar | None = None  # cache of the open bar, dropped on each change
        self._last_ts: int | None = None
        self._next_index = 0  # volume bars' running number
        self.version = 0

    @staticmethod
    def _check_imbalance(ratio: float, min_volume: float, stacked_min: int) -> None:
        if not (ratio >= 1.0 and np.isfinite(ratio)):
            raise ValueError(f"imbalance ratio must be a finite number >= 1, got {ratio!r}")
        if not (min_volume >= 0.0 and np.isfinite(min_volume)):
            raise ValueError(f"imbalance minimum volume must be >= 0, got {min_volume!r}")
        if stacked_min < 1:
            raise ValueError(f"stacked_min must be >= 1, got {stacked_min!r}")

    def configure_imbalance(self, ratio: float, min_volume: float = 0.0, stacked_min: int = 3) -> None:
        """Change the imbalance rule; bars already built are re-marked."""
        self._check_imbalance(ratio, min_volume, stacked_min)
        self.imbalance_ratio = float(ratio)
        self.imbalance_min_volume = float(min_volume)
        self.stacked_min = int(stacked_min)
        args = (self.imbalance_ratio, self.imbalance_min_volume, self.stacked_min)
        self._closed = deque((_with_imbalances(b, *args) for b in self._closed), maxlen=self._closed.maxlen)
        self._open_frozen = None
        self.version += 1

    # -- accumulation -------------------------------------------------------------------------------
    def add(self, batch: np.ndarray) -> int:
        """Add the trade rows of an event batch (other kinds ignored); returns how many were trades."""
        if batch.shape == (1,) and batch.dtype is EVENT_DTYPE:
            one = single_trade(batch)
            if one is None:
                return 0
            if self._add_one(*one):
                return 1
        ts, ticks, qty, is_buy = trades_of(batch)
        n = ts.size
        if n == 0:
            return 0
        if n > 1 and (np.diff(ts) < 0).any():
            raise ValueError("trade batch is not in exchange-time order")
        if self._last_ts is not None and ts[0] < self._last_ts:
            raise ValueError(f"trade at {int(ts[0])} ns is older than the last one seen ({self._last_ts} ns)")
        rows = ticks // self.group
        r_lo, r_hi = int(rows.min()), int(rows.max())
        if self._open is not None and self._open.trades:  # the batch may extend the open bar
            r_lo, r_hi = min(r_lo, self._open.lo), max(r_hi, self._open.hi)
        if r_hi - r_lo + 1 > self._max_rows:  # checked before anything changes: a bad tick, not a market
            raise ValueError(
                f"trade ticks span {(r_hi - r_lo + 1) * self.group} ticks, more than max_span_ticks"
                f" ({self._max_rows * self.group}): a bad tick size or price?"
            )
        if self.bar_ns is not None:
            self._add_time(ts, ticks, rows, qty, is_buy)
        else:
            self._add_volume(ts, ticks, rows, qty, is_buy)
        self._last_ts = int(ts[-1])
        self._open_frozen = None
        self.version += 1
        return int(n)

    def _add_one(self, ts: int, tick: int, qty: float, is_buy: bool) -> bool:
        """The one-trade live path on scalars; False sends the trade down the array path instead."""
        bar = self._open
        if bar is None:
            return False
        if self._last_ts is not None and ts < self._last_ts:
            raise ValueError(f"trade at {ts} ns is older than the last one seen ({self._last_ts} ns)")
        if self.bar_ns is not None:
            if ts // self.bar_ns != bar.index:
                return False
        elif self.bar_volume is not None and bar.volume + qty >= self.bar_volume * (1 - 1e-9):
            return False  # this trade closes the volume bar: the array path does the closing
        if not bar.add_one(ts, tick, tick // self.group, qty, is_buy):
            return False
        self._last_ts = ts
        self._open_frozen = None
        self.version += 1
        return True

    def _add_time(self, ts: np.ndarray, ticks: np.ndarray, rows: np.ndarray, qty: np.ndarray,
                  is_buy: np.ndarray) -> None:
        bar_ns = self.bar_ns
        assert bar_ns is not None
        ids = ts // bar_ns
        if ids[0] == ids[-1]:  # the usual case: the whole batch falls in one bar
            cuts = [0, ts.size]
        else:
            cuts = [0, *(np.flatnonzero(np.diff(ids)) + 1).tolist(), ts.size]
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):  # one iteration per bar, not per trade
            bar_id = int(ids[a])
            if self._open is not None and self._open.index != bar_id:
                self._close()
            if self._open is None:
                self._open = _OpenBar(bar_id, bar_id * bar_ns, (bar_id + 1) * bar_ns, int(ts[a]), int(ticks[a]))
            self._open.add(ts[a:b], ticks[a:b], rows[a:b], qty[a:b], is_buy[a:b])

    def _add_volume(self, ts: np.ndarray, ticks: np.ndarray, rows: np.ndarray, qty: np.ndarray,
                    is_buy: np.ndarray) -> None:
        target = self.bar_volume
        assert target is not None
        eps = target * 1e-9  # sizes are decimal lots summed in floats: 0.1+0.2 must reach 0.3
        cum = np.cumsum(qty)
        a = 0
        n = ts.size
        while a < n:  # one iteration per bar closed, not per trade
            if self._open is None:
                self._open = _OpenBar(self._next_index, int(ts[a]), 0, int(ts[a]), int(ticks[a]))
                self._next_index += 1
            before = cum[a - 1] if a else 0.0
            need = target - self._open.volume
            b = int(np.searchsorted(cum, before + need - eps, side="left")) + 1  # first trade reaching it
            b = min(b, n)
            self._open.add(ts[a:b], ticks[a:b], rows[a:b], qty[a:b], is_buy[a:b])
            if self._open.volume >= target - eps:
                self._close()
            a = b

    def _close(self) -> None:
        bar = self._open
        assert bar is not None
        frozen = bar.freeze(self.group, True, self.imbalance_ratio, self.imbalance_min_volume, self.stacked_min)
        self._closed.append(frozen)
        self._open = None

    def close_until(self, exch_ts: int) -> bool:
        """Close the open time bar if ``exch_ts`` is at or past its end (a quiet market); True if it closed.

        Later trades older than ``exch_ts`` are then rejected like any out-of-order trade, so a bar is
        never reopened.
        """
        if self.bar_ns is None or self._open is None or exch_ts < self._open.end_ts:
            return False
        self._close()
        self._last_ts = max(self._last_ts or exch_ts, exch_ts)
        self._open_frozen = None
        self.version += 1
        return True

    def clear(self) -> None:
        """Drop every bar (a new session); the order check restarts too."""
        self._closed.clear()
        self._open = None
        self._open_frozen = None
        self._last_ts = None
        self.version += 1

    # -- queries ------------------------------------------------------------------------------------
    def current(self) -> FootprintBar | None:
        """The bar still filling (``closed`` False), or None."""
        if self._open is None:
            return None
        if self._open_frozen is None:
            self._open_frozen = self._open.freeze(
                self.group, False, self.imbalance_ratio, self.imbalance_min_volume, self.stacked_min
            )
        return self._open_frozen

    def bars(self, last: int | None = None) -> list[FootprintBar]:
        """The retained bars oldest first, the open one last; ``last`` keeps only the newest N."""
        out = list(self._closed)
        cur = self.current()
        if cur is not None:
            out.append(cur)
        if last is not None:
            if last < 0:
                raise ValueError(f"bars(last) needs last >= 0, got {last}")
            out = out[len(out) - last:] if last else []
        return out

    def __len__(self) -> int:
        return len(self._closed) + (self._open is not None)
