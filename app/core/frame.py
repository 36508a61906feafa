"""The immutable snapshot the GUI draws: the engine builds one on request, widgets only read it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.core.detection import Detection
from app.core.events import NO_PRICE
from app.core.funding import FundingState  # re-exported: it lived here first
from app.core.instrument import Instrument

__all__ = ["Frame", "FundingState"]


@dataclass(frozen=True, slots=True)
class Frame:
    """Everything one symbol's views need for one paint; arrays are private copies, never live state.

    Ladder arrays are aligned rows, highest price first; ``ladder_ticks`` are (grouped) tick prices.
    """

    version: int
    instrument: Instrument
    state: str
    exch_ts: int
    local_ts: int
    best_bid_tick: int = NO_PRICE
    best_bid_qty: float = 0.0
    best_ask_tick: int = NO_PRICE
    best_ask_qty: float = 0.0
    last_trade_tick: int = NO_PRICE
    last_trade_side: int = 0  # +1 aggressive buy, -1 aggressive sell
    ladder_ticks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ladder_bid: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ladder_ask: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ladder_traded_buy: np.ndarray = field(default_factory=lambda: np.zeros(0))  # session volume per row
    ladder_traded_sell: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ladder_size_change: np.ndarray = field(default_factory=lambda: np.zeros(0))  # + stacked / - pulled, last N s
    trades: np.ndarray = field(default_factory=lambda: np.zeros(0))  # latest trade rows (EVENT_DTYPE)
    detections: tuple[Detection, ...] = ()  # currently open
    funding: FundingState | None = None
    message_rate: float = 0.0
    ring_fill: float = 0.0

    @property
    def mid_tick(self) -> float | None:
        """Mid in (fractional) ticks, or None while either side is empty."""
        if self.best_bid_tick == NO_PRICE or self.best_ask_tick == NO_PRICE:
            return None
        return (self.best_bid_tick + self.best_ask_tick) / 2.0
