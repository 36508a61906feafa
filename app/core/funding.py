"""Perpetual funding, mark/index and open interest: the tracker fed event batches, and its snapshot.

Rows read (see :mod:`app.core.events`): ``MARK_PRICE_EVENT`` (``px`` = mark price, ``fval`` = index
price, 0 when the venue sent none), ``FUNDING_EVENT`` (``fval`` = funding rate per interval, ``ival`` =
next funding time in ns, 0 when unknown), ``OPEN_INTEREST_EVENT`` (``qty`` = open interest in base
units/contracts). Every other kind is ignored.

Rules: a batch is validated whole before anything changes (NaN, negative price or open interest raise
ValueError). Sources poll at different rhythms (Binance sends mark/funding on a stream and open interest
by REST), so time order is required per kind: a row older than the previous row of the same kind raises
ValueError. The funding interval is learnt from the jump of the next funding time when a funding passes
(Binance does not send it on the stream), else the configured default; a jump first seen more than half
an interval after the funding (an outage that may have skipped fundings) teaches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.events import (
    ASK,
    BID,
    EVENT_DTYPE,
    FUNDING_EVENT,
    KIND_MASK,
    MARK_PRICE_EVENT,
    OPEN_INTEREST_EVENT,
)
from app.core.ring import EventRing

_HOUR_NS = 3_600_000_000_000

FUNDING_HISTORY_DTYPE = np.dtype(
    [
        ("exch_ts", "<i8"),  # running max of the rows' exchange times: monotonic, chartable
        ("rate", "<f8"),
        ("next_funding_ts", "<i8"),
        ("mark_px", "<f8"),
        ("index_px", "<f8"),
        ("open_interest", "<f8"),
    ]
)


@dataclass(frozen=True, slots=True)
class FundingState:
    """Perpetual funding and mark/index state of one symbol."""

    rate: float = 0.0
    next_funding_ts: int = 0  # ns
    mark_px: float = 0.0
    index_px: float = 0.0
    open_interest: float = 0.0
    interval_hours: float = 8.0
    open_interest_change: float = 0.0  # since the previous open interest reading
    exch_ts: int = 0  # newest row that built this state
    multiplier: float = 1.0  # contract size in base units

    @property
    def premium(self) -> float:
        """Mark over index, as a fraction of index (0 when unknown)."""
        return (self.mark_px - self.index_px) / self.index_px if self.index_px else 0.0

    @property
    def annualised(self) -> float:
        """The funding rate compounded simply over a year of intervals."""
        return self.rate * (24.0 / self.interval_hours) * 365.0

    def countdown_ns(self, now_ns: int) -> int:
        """Nanoseconds until the next funding (0 when it is due or unknown)."""
        return max(0, self.next_funding_ts - now_ns) if self.next_funding_ts else 0

    def holding_cost(self, qty_contracts: float, side: int) -> float:
        """Quote-currency cost of holding ``qty_contracts`` through the next funding (< 0: income).

        Cost = side x contracts x multiplier x mark x rate, side BID (+1) for a long, ASK (-1) for a
        short: longs pay shorts when the rate is positive.
        """
        if side not in (BID, ASK):
            raise ValueError(f"side must be BID (+1, long) or ASK (-1, short), got {side!r}")
        if not (qty_contracts >= 0 and np.isfinite(qty_contracts)):
            raise ValueError(f"position size must be a finite number >= 0, got {qty_contracts!r}")
        if self.mark_px <= 0:
            raise ValueError("no mark price yet: the funding cost is unknown")
        return side * qty_contracts * self.multiplier * self.mark_px * self.rate


class FundingTracker:
    """Folds mark, funding and open-interest rows into a :class:`FundingState` plus a bounded history."""

    def __init__(self, multiplier: float = 1.0, interval_hours: float = 8.0, history: int = 16_384) -> None:
        if not (multiplier > 0 and np.isfinite(multiplier)):
            raise ValueError(f"multiplier must be a finite number > 0, got {multiplier!r}")
        if not 0 < interval_hours <= 24:
            raise ValueError(f"funding interval must be in (0, 24] hours, got {interval_hours!r}")
        self._history = EventRing(history, FUNDING_HISTORY_DTYPE)
        self._multiplier = float(multiplier)
        self._default_interval = float(interval_hours)
        self._last_ts = {MARK_PRICE_EVENT: -(2**63), FUNDING_EVENT: -(2**63), OPEN_INTEREST_EVENT: -(2**63)}
        self._state = FundingState(interval_hours=self._default_interval, multiplier=self._multiplier)
        self._has_oi = False
        self.version = 0

    @property
    def state(self) -> FundingState:
        """The current snapshot (immutable)."""
        return self._state

    def history(self, n: int | None = None) -> np.ndarray:
        """The newest ``n`` (default all retained) history rows, oldest first: a live view, copy to keep."""
        return self._history.latest(n)

    def add(self, batch: np.ndarray) -> int:
        """Fold an event batch in; returns how many mark/funding/open-interest rows it held."""
        if batch.dtype != EVENT_DTYPE:
            raise TypeError(f"expected EVENT_DTYPE rows, got {batch.dtype}")
        kind = batch["ev"] & KIND_MASK
        is_mark = kind == MARK_PRICE_EVENT
        is_fund = kind == FUNDING_EVENT
        is_oi = kind == OPEN_INTEREST_EVENT
        mine = is_mark | is_fund | is_oi
        if not mine.any():
            return 0
        rows = batch[mine]
        is_mark, is_fund, is_oi = is_mark[mine], is_fund[mine], is_oi[mine]
        self._validate(rows, is_mark, is_fund, is_oi)

        s = self._state
        n = rows.size
        # forward-fill each field over the rows: the state after every row, no loop per row
        idx = np.arange(n)

        def filled(mask: np.ndarray, values: np.ndarray, before: float | int) -> np.ndarray:
            last = np.maximum.accumulate(np.where(mask, idx, -1))
            return np.where(last >= 0, values[np.maximum(last, 0)], before)

        hist = np.zeros(n, FUNDING_HISTORY_DTYPE)
        hist["exch_ts"] = np.maximum.accumulate(np.maximum(rows["exch_ts"], s.exch_ts))
        # unknown mark / open interest stay NaN in the history (charts draw a gap), 0 in the state
        hist["mark_px"] = filled(is_mark, rows["px"], s.mark_px if s.mark_px else np.nan)
        hist["index_px"] = filled(is_mark, rows["fval"], s.index_px)
        hist["rate"] = filled(is_fund, rows["fval"], s.rate)
        hist["next_funding_ts"] = filled(is_fund, rows["ival"], s.next_funding_ts)
        hist["open_interest"] = filled(is_oi, rows["qty"], s.open_interest if self._has_oi else np.nan)
        self._history.extend(hist)

        oi_change = s.open_interest_change
        oi_values = rows["qty"][is_oi]
        if oi_values.size:
            prev = np.concatenate(([s.open_interest], oi_values)) if self._has_oi else oi_values
            oi_change = float(prev[-1] - prev[-2]) if prev.size >= 2 else 0.0
            self._has_oi = True
        interval = s.interval_hours
        known = is_fund & (rows["ival"] > 0)
        if known.any():
            nft = rows["ival"][known]
            seen = rows["exch_ts"][known]
            prev = np.concatenate(([s.next_funding_ts], nft[:-1]))
            jump = nft - prev
            # a jump is one interval only if we saw it early in the new interval: after an outage that
            # skipped fundings it spans several, so it must not be taken for the interval
            ok = (prev > 0) & (jump > 0) & (jump <= 24 * _HOUR_NS) & (seen >= prev) & (seen - prev < jump // 2)
            if ok.any():
                interval = float(jump[ok][-1]) / _HOUR_NS
        last = hist[-1]
        self._state = FundingState(
            rate=float(last["rate"]),
            next_funding_ts=int(last["next_funding_ts"]),
            mark_px=float(np.nan_to_num(last["mark_px"])),
            index_px=float(last["index_px"]),
            open_interest=float(np.nan_to_num(last["open_interest"])),
            interval_hours=interval,
            open_interest_change=oi_change,
            exch_ts=int(last["exch_ts"]),
            multiplier=self._multiplier,
        )
        self.version += 1
        return int(n)

    def _validate(self, rows: np.ndarray, is_mark: np.ndarray, is_fund: np.ndarray, is_oi: np.ndarray) -> None:
        mark, index = rows["px"][is_mark], rows["fval"][is_mark]
        if not (np.isfinite(mark).all() and (mark > 0).all()):
            raise ValueError(f"mark price must be a finite number > 0, got {mark[~(mark > 0)][:3].tolist()}")
        if not (np.isfinite(index).all() and (index >= 0).all()):
            raise ValueError(f"index price must be finite and >= 0 (0 = unknown), got {index.tolist()[:3]}")
        rate = rows["fval"][is_fund]
        if not np.isfinite(rate).all():
            raise ValueError("funding rate must be a finite number")
        if (np.abs(rate) >= 1.0).any():
            raise ValueError(f"funding rate {rate[np.abs(rate) >= 1.0][0]!r} is 100 % or more: a unit mistake?")
        if (rows["ival"][is_fund] < 0).any():
            raise ValueError("next funding time must be >= 0 ns (0 = unknown)")
        oi = rows["qty"][is_oi]
        if not (np.isfinite(oi).all() and (oi >= 0).all()):
            raise ValueError(f"open interest must be a finite number >= 0, got {oi.tolist()[:3]}")
        for kind, mask in ((MARK_PRICE_EVENT, is_mark), (FUNDING_EVENT, is_fund), (OPEN_INTEREST_EVENT, is_oi)):
            ts = rows["exch_ts"][mask]
            if ts.size and ((np.diff(ts) < 0).any() or ts[0] < self._last_ts[kind]):
                raise ValueError(f"event kind {kind} rows go back in exchange time")
        for kind, mask in ((MARK_PRICE_EVENT, is_mark), (FUNDING_EVENT, is_fund), (OPEN_INTEREST_EVENT, is_oi)):
            ts = rows["exch_ts"][mask]
            if ts.size:
                self._last_ts[kind] = int(ts[-1])

    def open_interest_change(self, window_ns: int) -> float:
        """Open interest now minus its value ``window_ns`` ago (the oldest retained row if history is shorter)."""
        if window_ns < 0:
            raise ValueError(f"window must be >= 0 ns, got {window_ns!r}")
        hist = self._history.latest()
        known = hist[~np.isnan(hist["open_interest"])]
        if known.size == 0:
            return 0.0
        cutoff = int(known["exch_ts"][-1]) - int(window_ns)
        i = int(np.searchsorted(known["exch_ts"], cutoff, side="right")) - 1
        then = known["open_interest"][max(i, 0)]
        return float(known["open_interest"][-1] - then)

    def clear(self) -> None:
        """Forget state and history (a new session)."""
        self._history.clear()
        self._last_ts = dict.fromkeys(self._last_ts, -(2**63))
        self._state = FundingState(interval_hours=self._default_interval, multiplier=self._multiplier)
        self._has_oi = False
        self.version += 1
