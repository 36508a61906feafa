"""Volume profile: traded volume per tick (aggressive buys and sells apart), POC, value area, nodes.

Rules (documented because charting packages differ):

* Volumes equal within a relative 1e-9 count as equal (float sums of the same trades differ in their
  last bits with batching), so live and replay agree on POC and value area.
* **POC** is the level with the most volume; on a tie, the one closest to the centre of the traded
  range (the Market Profile rule), and of two equally close, the lower.
* **Value area** (Mind over Markets, appendix 1; "method A" of Investor/RT): start with the POC, then
  repeatedly compare the summed volume of the next ``step`` (default 2, the CBOT dual-price rule)
  levels above the area with the next ``step`` below it and add the larger group; on a tie add the
  group above. When one side has reached the edge of the traded range, the other side is taken. Stop
  as soon as the area holds at least ``fraction`` of the volume (so it usually holds a little more).
* **High/low volume nodes**, on the profile smoothed over ``window`` levels: each stretch where the
  smoothed volume reaches ``high`` x its maximum is a high volume node (at its peak), and two such
  stretches are one node unless the profile between them falls to ``low`` x the maximum or below; that
  lowest point between two nodes is a low volume node.

Input order does not matter to a profile (sums commute); trade rows are validated first and a bad
batch changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.events import BUY_EVENT, EVENT_DTYPE, KIND_MASK, NO_PRICE, SELL_EVENT, SIDE_MASK, TRADE_EVENT

_TIE_REL = 1e-9  # relative difference below which two volumes are equal (float summation noise)
_EMPTY_I = np.zeros(0, np.int64)
_EMPTY_F = np.zeros(0, np.float64)


def trades_of(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The trade rows of an event batch as (exch_ts, tick, qty, is_buy); raises ValueError on bad rows.

    Other kinds are skipped. A trade needs exactly one side flag (its aggressor), a finite size > 0 and a
    price tick.
    """
    if batch.dtype != EVENT_DTYPE:
        raise TypeError(f"expected EVENT_DTYPE rows, got {batch.dtype}")
    ev = batch["ev"]
    is_trade = (ev & KIND_MASK) == TRADE_EVENT
    if not is_trade.all():
        if not is_trade.any():
            return _EMPTY_I, _EMPTY_I, _EMPTY_F, np.zeros(0, bool)
        batch = batch[is_trade]
        ev = batch["ev"]
    side = ev & SIDE_MASK
    is_buy = side == BUY_EVENT
    if not (is_buy | (side == SELL_EVENT)).all():
        raise ValueError("trade row without exactly one aggressor side flag (BUY_EVENT or SELL_EVENT)")
    qty = batch["qty"]
    if not (qty > 0).all() or not np.isfinite(qty).all():  # `> 0` is False for NaN too
        bad = qty[~((qty > 0) & np.isfinite(qty))][:3]
        raise ValueError(f"trade size must be finite and > 0, got {bad.tolist()}")
    ticks = batch["ival"]
    if (ticks == NO_PRICE).any():
        raise ValueError("trade row without a price tick (ival is NO_PRICE)")
    return batch["exch_ts"], ticks, qty, is_buy


def single_trade(batch: np.ndarray) -> tuple[int, int, float, bool] | None:
    """(exch_ts, tick, qty, is_buy) of a one-row batch when it is a trade, else None; same checks as trades_of.

    The live path: Binance sends one trade per message, and numpy's per-call overhead would cost ten
    times the work for a single row.
    """
    ev, exch_ts, _, _, qty, _, tick, _ = batch.item()  # one call for all fields: 4x cheaper than indexing
    if ev & KIND_MASK != TRADE_EVENT:
        return None
    side = ev & SIDE_MASK
    if side != BUY_EVENT and side != SELL_EVENT:
        raise ValueError("trade row without exactly one aggressor side flag (BUY_EVENT or SELL_EVENT)")
    if not (qty > 0 and qty != np.inf):  # NaN fails `> 0`
        raise ValueError(f"trade size must be finite and > 0, got {[qty]}")
    if tick == NO_PRICE:
        raise ValueError("trade row without a price tick (ival is NO_PRICE)")
    return exch_ts, tick, qty, side == BUY_EVENT


def poc_index(volume: np.ndarray) -> int | None:
    """Index of the point of control (see module rules), or None when there is no volume."""
    nz = np.flatnonzero(volume > 0)
    if nz.size == 0:
        return None
    top = volume.max()
    # volumes within float noise of the max are ties, so a different batching (summation order) of the
    # same trades cannot move the POC: replay must draw what live drew
    best = np.flatnonzero(volume >= top - top * _TIE_REL)
    if best.size == 1:
        return int(best[0])
    centre2 = nz[0] + nz[-1]  # twice the centre, to stay in integers
    dist2 = np.abs(2 * best - centre2)
    return int(best[np.argmin(dist2)])  # argmin takes the first (lowest) of equal distances


def value_area_indices(volume: np.ndarray, fraction: float = 0.70, step: int = 2) -> tuple[int, int] | None:
    """(low, high) indices of the value area (see module rules), or None when there is no volume."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"value area fraction must be in (0, 1], got {fraction!r}")
    if step < 1:
        raise ValueError(f"value area step must be >= 1, got {step!r}")
    poc = poc_index(volume)
    if poc is None:
        return None
    nz = np.flatnonzero(volume > 0)
    first, last = int(nz[0]), int(nz[-1])
    # prefix sums make each group sum O(1); the walk itself is a short loop over groups, not trades
    cs = np.concatenate(([0.0], np.cumsum(volume[first:last + 1], dtype=np.float64))).tolist()
    total = cs[-1]
    target = fraction * total * (1.0 - 1e-12)  # tolerate float summation error at fraction=1
    lo = hi = poc - first
    top = last - first
    acc = cs[hi + 1] - cs[lo]
    while acc < target and (lo > 0 or hi < top):
        if hi < top:
            new_hi = min(hi + step, top)
            up = cs[new_hi + 1] - cs[hi + 1]
        if lo > 0:
            new_lo = max(lo - step, 0)
            down = cs[lo] - cs[new_lo]
        if lo > 0 and (hi >= top or down > up + total * _TIE_REL):  # a tie (to float noise) goes up
            acc += down
            lo = new_lo
        else:
            acc += up
            hi = new_hi
    return lo + first, hi + first


def _middle_of_best(values: np.ndarray, best: float) -> int:
    """Index of the middle of the values equal (to float noise) to ``best``: a flat top is one node."""
    hits = np.flatnonzero(np.abs(values - best) <= abs(best) * _TIE_REL)
    return int(hits[hits.size // 2])


def volume_nodes(
    volume: np.ndarray, window: int | None = None, high: float = 0.5, low: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (high volume nodes, low volume nodes) of a profile (see module rules).

    ``window`` levels of smoothing (default: a thirtieth of the traded range, at least 3) keep
    tick-level noise from making every other tick a node.
    """
    if window is not None and window < 1:
        raise ValueError(f"node window must be >= 1, got {window!r}")
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"node thresholds need 0 <= low < high <= 1, got low={low!r}, high={high!r}")
    nz = np.flatnonzero(volume > 0)
    if nz.size == 0:
        return _EMPTY_I, _EMPTY_I
    first, last = int(nz[0]), int(nz[-1])
    v = volume[first:last + 1].astype(np.float64)
    if window is None:
        window = max(3, (v.size // 30) | 1)
    smooth = np.convolve(v, np.ones(window) / window, mode="same") if window > 1 else v
    top = smooth.max()
    above = np.concatenate(([0], (smooth >= high * top * (1 - _TIE_REL)).astype(np.int8), [0]))
    edges = np.diff(above)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # exclusive
    # two high stretches are one node unless a low valley separates them (hysteresis: noise around the
    # high threshold must not split a node); the loop runs per stretch, a handful, not per level
    regions: list[list[int]] = []
    valleys: list[int] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        if regions:
            gap = smooth[regions[-1][1]:a]
            if gap.min() > low * top:
                regions[-1][1] = b
                continue
            valleys.append(regions[-1][1] + _middle_of_best(gap, gap.min()))
        regions.append([a, b])
    hvn = [a + _middle_of_best(smooth[a:b], smooth[a:b].max()) for a, b in regions]
    return np.asarray(hvn, np.int64) + first, np.asarray(valleys, np.int64) + first


@dataclass(frozen=True, slots=True, eq=False)
class ProfileRange:
    """A profile over rows ``lo_tick..hi_tick`` (dense, ascending): private copies, safe to keep."""

    lo_tick: int
    hi_tick: int
    ticks: np.ndarray
    buy: np.ndarray  # aggressive-buy volume per tick (traded at the ask)
    sell: np.ndarray  # aggressive-sell volume per tick (traded at the bid)
    group: int = 1  # ticks per row; each row is named by its lowest tick

    @property
    def volume(self) -> np.ndarray:
        """Total volume per tick."""
        return self.buy + self.sell

    @property
    def delta(self) -> np.ndarray:
        """Buy minus sell volume per tick."""
        return self.buy - self.sell

    @property
    def total(self) -> float:
        """Volume in the range."""
        return float(self.buy.sum() + self.sell.sum())

    def poc(self) -> int | None:
        """The point of control tick, or None when the range traded nothing."""
        i = poc_index(self.volume)
        return None if i is None else int(self.ticks[i])

    def value_area(self, fraction: float = 0.70, step: int = 2) -> tuple[int, int] | None:
        """(VAL, VAH) ticks, or None when the range traded nothing."""
        va = value_area_indices(self.volume, fraction, step)
        return None if va is None else (int(self.ticks[va[0]]), int(self.ticks[va[1]]))

    def nodes(self, window: int | None = None, high: float = 0.5, low: float = 0.25
              ) -> tuple[np.ndarray, np.ndarray]:
        """(high volume node ticks, low volume node ticks)."""
        hvn, lvn = volume_nodes(self.volume, window, high, low)
        return self.ticks[hvn], self.ticks[lvn]


class VolumeProfile:
    """Session volume per tick, buy and sell apart, accumulated per batch without a loop per trade."""

    def __init__(self, max_span_ticks: int = 2_000_000) -> None:
        if max_span_ticks < 1:
            raise ValueError(f"max_span_ticks must be >= 1, got {max_span_ticks!r}")
        self._max_span = int(max_span_ticks)
        self._base = 0  # tick of array index 0
        self._buy = _EMPTY_F
        self._sell = _EMPTY_F
        self._lo = NO_PRICE  # lowest / highest traded tick
        self._hi = NO_PRICE
        self._buy_total = 0.0
        self._sell_total = 0.0
        self._trades = 0
        self.version = 0  # +1 per batch that added volume

    # -- accumulation -------------------------------------------------------------------------------
    def add(self, batch: np.ndarray) -> int:
        """Add the trade rows of an event batch (other kinds ignored); returns how many were trades."""
        if batch.shape == (1,) and batch.dtype is EVENT_DTYPE:
            one = single_trade(batch)
            if one is None:
                return 0
            _, tick, q, buy = one
            i = tick - self._base
            if self._buy.size and 0 <= i < self._buy.size:  # the usual case: a known price, no growth
                if buy:
                    self._buy[i] += q
                    self._buy_total += q
                else:
                    self._sell[i] += q
                    self._sell_total += q
                self._trades += 1
                if self._lo == NO_PRICE:
                    self._lo = self._hi = tick
                elif tick < self._lo:
                    self._lo = tick
                elif tick > self._hi:
                    self._hi = tick
                self.version += 1
                return 1
        _, ticks, qty, is_buy = trades_of(batch)
        if ticks.size:
            self._accumulate(ticks, qty, is_buy)
        return int(ticks.size)

    def add_trades(self, ticks: np.ndarray, qty: np.ndarray, is_buy: np.ndarray) -> None:
        """Fast path: parallel arrays of trade ticks, sizes (> 0) and aggressor (True = buy)."""
        ticks = np.asarray(ticks, dtype=np.int64)
        qty = np.asarray(qty, dtype=np.float64)
        is_buy = np.asarray(is_buy, dtype=bool)
        if not (ticks.shape == qty.shape == is_buy.shape) or ticks.ndim != 1:
            raise ValueError("ticks, qty and is_buy must be 1-D arrays of one length")
        if not ((qty > 0) & np.isfinite(qty)).all():
            raise ValueError("trade size must be finite and > 0")
        if ticks.size:
            self._accumulate(ticks, qty, is_buy)

    def _accumulate(self, ticks: np.ndarray, qty: np.ndarray, is_buy: np.ndarray) -> None:
        t_lo = int(ticks.min())
        t_hi = int(ticks.max())
        self._ensure(t_lo, t_hi)
        local = ticks - t_lo
        n = t_hi - t_lo + 1
        buy_q = np.where(is_buy, qty, 0.0)
        sell_q = qty - buy_q
        i0 = t_lo - self._base
        self._buy[i0:i0 + n] += np.bincount(local, weights=buy_q, minlength=n)
        self._sell[i0:i0 + n] += np.bincount(local, weights=sell_q, minlength=n)
        self._buy_total += float(buy_q.sum())
        self._sell_total += float(sell_q.sum())
        self._trades += int(ticks.size)
        self._lo = t_lo if self._lo == NO_PRICE else min(self._lo, t_lo)
        self._hi = t_hi if self._hi == NO_PRICE else max(self._hi, t_hi)
        self.version += 1

    def _ensure(self, t_lo: int, t_hi: int) -> None:
        """Grow the dense arrays (doubling, centred) so ticks t_lo..t_hi have a slot."""
        size = self._buy.size
        if size and self._base <= t_lo and t_hi < self._base + size:
            return
        lo = t_lo if self._lo == NO_PRICE else min(t_lo, self._lo)
        hi = t_hi if self._hi == NO_PRICE else max(t_hi, self._hi)
        span = hi - lo + 1
        if span > self._max_span:
            raise ValueError(
                f"trade ticks {lo}..{hi} span {span} ticks, more than max_span_ticks={self._max_span}"
                " (a bad tick size or price?)"
            )
        new_size = min(max(1024, 2 * span, 2 * size), max(self._max_span, span))
        base = lo - (new_size - span) // 2
        buy = np.zeros(new_size)
        sell = np.zeros(new_size)
        if self._lo != NO_PRICE:  # carry the traded range over (margins hold only zeros)
            src = slice(self._lo - self._base, self._hi - self._base + 1)
            dst = slice(self._lo - base, self._hi - base + 1)
            buy[dst] = self._buy[src]
            sell[dst] = self._sell[src]
        self._base, self._buy, self._sell = base, buy, sell

    def clear(self) -> None:
        """Start a new session (keeps the allocation)."""
        self._buy[:] = 0.0
        self._sell[:] = 0.0
        self._lo = self._hi = NO_PRICE
        self._buy_total = self._sell_total = 0.0
        self._trades = 0
        self.version += 1

    # -- queries ------------------------------------------------------------------------------------
    @property
    def buy_volume(self) -> float:
        """Aggressive-buy volume of the session."""
        return self._buy_total

    @property
    def sell_volume(self) -> float:
        """Aggressive-sell volume of the session."""
        return self._sell_total

    @property
    def total_volume(self) -> float:
        """All volume of the session."""
        return self._buy_total + self._sell_total

    @property
    def trade_count(self) -> int:
        """Trades accumulated this session."""
        return self._trades

    @property
    def lo_tick(self) -> int:
        """Lowest traded tick (NO_PRICE when empty)."""
        return self._lo

    @property
    def hi_tick(self) -> int:
        """Highest traded tick (NO_PRICE when empty)."""
        return self._hi

    def volume_at(self, ticks: np.ndarray, group: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(buy, sell) volume per given tick (0 where nothing traded): a ladder column.

        With ``group`` > 1 each tick ``t`` names the row of ticks ``t .. t + group - 1`` and gets their sum.
        """
        if group < 1:
            raise ValueError(f"group must be >= 1, got {group!r}")
        ticks = np.asarray(ticks, dtype=np.int64)
        buy = np.zeros(ticks.shape)
        sell = np.zeros(ticks.shape)
        if not self._buy.size:
            return buy, sell
        idx = ticks - self._base
        if group > 1:  # gather each row's ticks, then sum across: exact, no cumsum differences
            idx = idx[..., None] + np.arange(group)
        ok = (idx >= 0) & (idx < self._buy.size)
        safe = np.where(ok, idx, 0)
        b = np.where(ok, self._buy[safe], 0.0)
        s = np.where(ok, self._sell[safe], 0.0)
        if group > 1:
            b, s = b.sum(axis=-1), s.sum(axis=-1)
        return b, s

    def range(self, lo_tick: int, hi_tick: int, group: int = 1) -> ProfileRange:
        """The profile over ticks lo_tick..hi_tick (a visible-range profile), rows of ``group`` ticks.

        Rows are named by their lowest tick and aligned like footprint rows (``tick // group * group``),
        so the rows holding lo_tick and hi_tick are included whole.
        """
        if hi_tick < lo_tick:
            raise ValueError(f"range({lo_tick}, {hi_tick}): high below low")
        if group < 1:
            raise ValueError(f"group must be >= 1, got {group!r}")
        lo_row = lo_tick // group * group
        hi_row = hi_tick // group * group
        ticks = np.arange(lo_row, hi_row + 1, group, dtype=np.int64)
        buy, sell = self.volume_at(ticks, group)
        return ProfileRange(int(lo_row), int(hi_row), ticks, buy, sell, group)

    def session(self, group: int = 1) -> ProfileRange | None:
        """The whole traded range (rows of ``group`` ticks), or None before the first trade."""
        if self._lo == NO_PRICE:
            return None
        return self.range(self._lo, self._hi, group)

    def _view(self) -> np.ndarray:
        """Volume per tick over the traded range (a fresh array)."""
        i0 = self._lo - self._base
        i1 = self._hi - self._base + 1
        return self._buy[i0:i1] + self._sell[i0:i1]

    def poc(self) -> int | None:
        """The session point of control tick, or None before the first trade."""
        if self._lo == NO_PRICE:
            return None
        i = poc_index(self._view())
        return None if i is None else self._lo + i

    def value_area(self, fraction: float = 0.70, step: int = 2) -> tuple[int, int] | None:
        """(VAL, VAH) ticks of the session, or None before the first trade."""
        if self._lo == NO_PRICE:
            if not 0.0 < fraction <= 1.0:
                raise ValueError(f"value area fraction must be in (0, 1], got {fraction!r}")
            return None
        va = value_area_indices(self._view(), fraction, step)
        return None if va is None else (self._lo + va[0], self._lo + va[1])

    def nodes(self, window: int | None = None, high: float = 0.5, low: float = 0.25
              ) -> tuple[np.ndarray, np.ndarray]:
        """(high volume node ticks, low volume node ticks) of the session."""
        if self._lo == NO_PRICE:
            return _EMPTY_I, _EMPTY_I
        hvn, lvn = volume_nodes(self._view(), window, high, low)
        return hvn + self._lo, lvn + self._lo
