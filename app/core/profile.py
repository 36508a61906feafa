"""Volume profile: traded volume per tick (aggressive buys and sells apart), POC, value area, nodes.

Rules (documented because charting packages differ):

* **POC** is the level with the most volume; on a tie, the one closest to the centre of the traded
  range (the Market Profile rule), and of two equally close, the lower.
* **Value area** (Mind over Markets, appendix 1; "method A" of Investor/RT): start with the POC, then
  repeatedly compare the summed volume of the next ``step`` (default 2, the CBOT dual-price rule)
  levels above the area with the next ``step`` below it and add the larger group; on a tie add the
  group above. When one side has reached the edge of the traded range, the other side is taken. Stop
  as soon as the area holds at least ``fraction`` of the volume (so it usually holds a little more).
* **High/low volume nodes**: peaks and valleys of the profile smoothed over ``window`` levels; a peak
  is a high volume node when it reaches ``high`` x the highest smoothed level, a valley (strictly inside
  the range) is a low volume node when it stays below ``low`` x that level.

Input order does not matter to a profile (sums commute); trade rows are validated first and a bad
batch changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.events import BUY_EVENT, EVENT_DTYPE, KIND_MASK, NO_PRICE, SELL_EVENT, SIDE_MASK, TRADE_EVENT

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


def poc_index(volume: np.ndarray) -> int | None:
    """Index of the point of control (see module rules), or None when there is no volume."""
    nz = np.flatnonzero(volume > 0)
    if nz.size == 0:
        return None
    best = np.flatnonzero(volume == volume.max())
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
        if lo > 0 and (hi >= top or down > up):
            acc += down
            lo = new_lo
        else:
            acc += up
            hi = new_hi
    return lo + first, hi + first


def volume_nodes(
    volume: np.ndarray, window: int = 5, high: float = 0.5, low: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (high volume nodes, low volume nodes) of a profile (see module rules)."""
    if window < 1:
        raise ValueError(f"node window must be >= 1, got {window!r}")
    nz = np.flatnonzero(volume > 0)
    if nz.size == 0:
        return _EMPTY_I, _EMPTY_I
    first, last = int(nz[0]), int(nz[-1])
    v = volume[first:last + 1].astype(np.float64)
    smooth = np.convolve(v, np.ones(window) / window, mode="same") if window > 1 else v
    # collapse plateaus to one point (their middle) so a flat top is one peak, not none or many
    change = np.flatnonzero(np.diff(smooth) != 0) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [smooth.size])) - 1
    level = smooth[starts]
    middle = (starts + ends) // 2
    padded = np.concatenate(([-np.inf], level, [-np.inf]))
    peaks = (padded[1:-1] > padded[:-2]) & (padded[1:-1] > padded[2:])
    inner = np.zeros(level.size, bool)
    if level.size >= 3:
        inner[1:-1] = (level[1:-1] < level[:-2]) & (level[1:-1] < level[2:])
    top = smooth.max()
    hvn = middle[peaks & (level >= high * top)] + first
    lvn = middle[inner & (level <= low * top)] + first
    return hvn.astype(np.int64), lvn.astype(np.int64)


@dataclass(frozen=True, slots=True)
class ProfileRange:
    """A profile over ticks ``lo_tick..hi_tick`` (dense, ascending): private copies, safe to keep."""

    lo_tick: int
    hi_tick: int
    ticks: np.ndarray
    buy: np.ndarray  # aggressive-buy volume per tick (traded at the ask)
    sell: np.ndarray  # aggressive-sell volume per tick (traded at the bid)

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

    def nodes(self, window: int = 5, high: float = 0.5, low: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
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

    def volume_at(self, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(buy, sell) volume at each given tick (0 where nothing traded): a ladder column."""
        ticks = np.asarray(ticks, dtype=np.int64)
        buy = np.zeros(ticks.shape)
        sell = np.zeros(ticks.shape)
        if self._buy.size:
            idx = ticks - self._base
            ok = (idx >= 0) & (idx < self._buy.size)
            buy[ok] = self._buy[idx[ok]]
            sell[ok] = self._sell[idx[ok]]
        return buy, sell

    def range(self, lo_tick: int, hi_tick: int) -> ProfileRange:
        """The profile restricted to ticks lo_tick..hi_tick inclusive (a visible-range profile)."""
        if hi_tick < lo_tick:
            raise ValueError(f"range({lo_tick}, {hi_tick}): high below low")
        ticks = np.arange(lo_tick, hi_tick + 1, dtype=np.int64)
        buy, sell = self.volume_at(ticks)
        return ProfileRange(int(lo_tick), int(hi_tick), ticks, buy, sell)

    def session(self) -> ProfileRange | None:
        """The whole traded range, or None before the first trade."""
        if self._lo == NO_PRICE:
            return None
        return self.range(self._lo, self._hi)

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

    def nodes(self, window: int = 5, high: float = 0.5, low: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
        """(high volume node ticks, low volume node ticks) of the session."""
        if self._lo == NO_PRICE:
            return _EMPTY_I, _EMPTY_I
        hvn, lvn = volume_nodes(self._view(), window, high, low)
        return hvn + self._lo, lvn + self._lo
