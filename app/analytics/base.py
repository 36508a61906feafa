"""Plumbing shared by the detectors: detection ids, the emitter, config reading and the per-window view."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.core.detection import Detection
from app.core.instrument import Instrument

MS = 1_000_000  # ns per millisecond
SEC = 1_000_000_000


class Emitter:
    """Builds :class:`Detection` objects for one instrument with ids unique across all detectors."""

    __slots__ = ("venue", "symbol", "_ids")

    def __init__(self, instrument: Instrument, ids: itertools.count | None = None) -> None:
        self.venue = instrument.venue
        self.symbol = instrument.symbol
        self._ids = ids if ids is not None else itertools.count(1)

    def new_id(self) -> int:
        """A fresh detection id (open → update → close share it)."""
        return next(self._ids)

    def make(self, det_id: int, kind: str, side: int, price_tick: int, exch_ts: int, state: str,
             evidence: dict[str, Any], price_far_tick: int | None = None) -> Detection:
        """One detection record."""
        return Detection(id=det_id, kind=kind, venue=self.venue, symbol=self.symbol, side=int(side),
                         price_tick=int(price_tick), exch_ts=int(exch_ts), state=state,
                         price_far_tick=None if price_far_tick is None else int(price_far_tick),
                         evidence={k: _plain(v) for k, v in evidence.items()})


def _plain(v: Any) -> Any:
    """Evidence as JSON-ready Python values: numpy scalars unwrapped, NaN/inf as None."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


class Section:
    """A detector's config table with typed getters that fail with the key's full name."""

    __slots__ = ("name", "raw", "_used")

    def __init__(self, name: str, raw: Any) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValueError(f"[detectors.{name}] must be a table, got {type(raw).__name__}")
        self.name = name
        self.raw = raw
        self._used: set[str] = set()

    def where(self, key: str) -> str:
        """The full config name of ``key``."""
        return f"detectors.{self.name}.{key}"

    def get(self, key: str, default: Any) -> Any:
        """The raw value of ``key`` (or ``default``), marking the key as known."""
        self._used.add(key)
        return self.raw.get(key, default)

    def num(self, key: str, default: float, lo: float = 0.0, hi: float = math.inf) -> float:
        """A finite number within ``[lo, hi]``."""
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(f"{self.where(key)}: must be a number in [{lo}, {hi}], got {v!r}")
        return float(v)

    def int(self, key: str, default: int, lo: int = 0, hi: int = 10**9) -> int:
        """An integer within ``[lo, hi]``."""
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"{self.where(key)}: must be an integer in [{lo}, {hi}], got {v!r}")
        return v

    def flag(self, key: str, default: bool) -> bool:
        """A boolean."""
        v = self.get(key, default)
        if not isinstance(v, bool):
            raise ValueError(f"{self.where(key)}: must be true or false, got {v!r}")
        return v

    def check_unknown(self) -> None:
        """Raise on keys no getter asked for (a typo would otherwise be silently ignored)."""
        unknown = set(self.raw) - self._used
        if unknown:
            raise ValueError(f"[detectors.{self.name}]: unknown key(s) {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class Window:
    """One depth update aligned with the trades that happened up to it (exchange time).

    Depth arrays are the rows of the update (``before`` is the size we knew, NaN when unknown);
    trade arrays are the fills with exchange time in ``(previous window, ts]``, ``book_side`` being the
    side they hit (an aggressive buy hits the ask, -1).
    """

    ts: int
    d_side: np.ndarray
    d_tick: np.ndarray
    d_before: np.ndarray
    d_after: np.ndarray
    t_ts: np.ndarray
    t_side: np.ndarray
    t_tick: np.ndarray
    t_qty: np.ndarray
    lv_side: np.ndarray  # fills summed per (book side, tick), computed once per window
    lv_tick: np.ndarray
    lv_qty: np.ndarray

    @classmethod
    def build(cls, ts: int, d_side: np.ndarray, d_tick: np.ndarray, d_before: np.ndarray, d_after: np.ndarray,
              t_ts: np.ndarray, t_side: np.ndarray, t_tick: np.ndarray, t_qty: np.ndarray) -> Window:
        """A window with its per-level fill sums."""
        return cls(ts, d_side, d_tick, d_before, d_after, t_ts, t_side, t_tick, t_qty,
                   *_sum_by_level(t_side, t_tick, t_qty))


def level_key(side: np.ndarray, tick: np.ndarray) -> np.ndarray:
    """One int64 per (side, tick), for vector matching."""
    return tick * 2 + (side > 0)


def _sum_by_level(t_side: np.ndarray, t_tick: np.ndarray, t_qty: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(t_qty)
    if n == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e, np.empty(0)
    if n == 1:
        return t_side.astype(np.int64), t_tick, t_qty
    if n <= 32:  # the usual window: a dict is several times cheaper than np.unique at this size
        acc: dict[int, float] = {}
        for k, q in zip((t_tick * 2 + (t_side > 0)).tolist(), t_qty.tolist(), strict=True):
            acc[k] = acc.get(k, 0.0) + q
        uk = np.array(sorted(acc), dtype=np.int64)
        return np.where(uk & 1, 1, -1), (uk - (uk & 1)) // 2, np.array([acc[k] for k in uk.tolist()])
    key = level_key(t_side, t_tick)
    uk, inv = np.unique(key, return_inverse=True)
    qty = np.bincount(inv, weights=t_qty)
    side = np.where(uk & 1, 1, -1)
    tick = (uk - (uk & 1)) // 2
    return side, tick, qty


def traded_by_level(w: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trades of a window summed per (book side, tick): ``(side, tick, qty)``."""
    return w.lv_side, w.lv_tick, w.lv_qty


def lookup(keys: np.ndarray, table_keys: np.ndarray) -> np.ndarray:
    """Index into ``table_keys`` of each of ``keys`` (the last occurrence), -1 when absent."""
    if len(table_keys) == 0 or len(keys) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    order = np.argsort(table_keys, kind="stable")
    sk = table_keys[order]
    pos = np.searchsorted(sk, keys, side="right") - 1
    posc = np.clip(pos, 0, len(sk) - 1)
    hit = (pos >= 0) & (sk[posc] == keys)
    return np.where(hit, order[posc], -1)


@dataclass(frozen=True, slots=True)
class BookView:
    """What the book-state detectors look at, computed once per evaluation.

    ``ticks`` descend one by one from ``best_ask + span`` to ``best_bid - span``; ``bid``/``ask`` are the sizes at
    those ticks; ``median`` is the median size of the non-empty levels in that window.
    """

    ts: int
    best_bid: int
    best_ask: int
    mid2: int  # best_bid + best_ask (twice the mid, so it stays an integer)
    ticks: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    median: float

    def ask_side(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Ask ticks and sizes from the best ask outwards, ``n`` ticks."""
        i = int(self.ticks[0]) - self.best_ask  # ticks descend one by one from ticks[0]
        lo = max(0, i - n + 1)
        return self.ticks[lo:i + 1][::-1], self.ask[lo:i + 1][::-1]

    def bid_side(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Bid ticks and sizes from the best bid outwards, ``n`` ticks."""
        i = int(self.ticks[0]) - self.best_bid
        return self.ticks[i:i + n], self.bid[i:i + n]
