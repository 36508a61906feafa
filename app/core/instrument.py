"""Instrument metadata and the one place prices become integer ticks."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np


class OffGridPrice(ValueError):
    """A price that is not a whole number of ticks."""


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable contract: venue, symbol, tick size, lot size and contract multiplier."""

    venue: str
    symbol: str
    tick_size: float
    lot_size: float = 0.0
    multiplier: float = 1.0
    quote: str = "USDT"

    def __post_init__(self) -> None:
        if not (self.tick_size > 0 and np.isfinite(self.tick_size)):
            raise ValueError(f"{self.key}: tick size must be a positive number, got {self.tick_size!r}")
        if self.lot_size < 0 or not np.isfinite(self.lot_size):
            raise ValueError(f"{self.key}: lot size must be >= 0, got {self.lot_size!r}")

    @property
    def key(self) -> str:
        """``venue:SYMBOL``, the way sources are written on the command line."""
        return f"{self.venue}:{self.symbol}"

    @property
    def price_decimals(self) -> int:
        """Digits after the point needed to print a price exactly."""
        return max(0, -Decimal(repr(self.tick_size)).normalize().as_tuple().exponent)  # type: ignore[operator]

    def to_tick(self, price: float | str) -> int:
        """Price -> ticks; raises :class:`OffGridPrice` when it is off the tick grid."""
        return int(self.to_ticks(np.asarray([float(price)]))[0])

    def to_ticks(self, prices: np.ndarray) -> np.ndarray:
        """Vector of prices -> int64 ticks; raises on NaN/inf or a price off the tick grid.

        A price within 1e-6 of a tick counts as on it: venue decimals are exact, floats are not.
        """
        prices = np.asarray(prices, dtype=np.float64)
        if not np.all(np.isfinite(prices)):
            raise ValueError(f"{self.key}: non-finite price in {prices[~np.isfinite(prices)][:3]}")
        raw = prices / self.tick_size
        ticks = np.rint(raw)
        off = np.abs(raw - ticks) > 1e-6
        if off.any():
            bad = prices[off][:3]
            raise OffGridPrice(f"{self.key}: price(s) {bad.tolist()} not on tick grid {self.tick_size}")
        return ticks.astype(np.int64)

    def to_price(self, ticks: int | np.ndarray) -> float | np.ndarray:
        """Ticks -> price, rounded to the tick's decimals so it prints as the venue does."""
        return np.round(np.asarray(ticks, dtype=np.float64) * self.tick_size, self.price_decimals)

    def format_price(self, ticks: int) -> str:
        """The price of a tick as text with the instrument's decimals."""
        return f"{ticks * self.tick_size:.{self.price_decimals}f}"
