"""What the chart views draw of one symbol: a snapshot pulled on the frame clock beside the ladder's Frame.

Like :class:`~app.core.frame.Frame` it holds private copies or immutable objects only, with one documented
exception: the heatmap history is shared, and a view reads only the columns the snapshot calls closed
(closed columns are never rewritten until the ring wraps round, two hours later). Each part carries the
version of its source so a view redraws only what changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.core.detection import Detection
from app.core.events import EVENT_DTYPE, NO_PRICE
from app.core.footprint import FootprintBar
from app.core.funding import FUNDING_HISTORY_DTYPE, FundingState
from app.core.heatmap import HeatmapSnapshot
from app.core.instrument import Instrument
from app.core.profile import ProfileRange

__all__ = ["ChartFrame"]


@dataclass(frozen=True, slots=True, eq=False)
class ChartFrame:
    """Heatmap window, footprint bars, session profile, funding history, liquidations, detections."""

    version: int
    instrument: Instrument
    state: str
    exch_ts: int
    best_bid_tick: int = NO_PRICE
    best_ask_tick: int = NO_PRICE
    last_trade_tick: int = NO_PRICE
    heatmap: HeatmapSnapshot | None = None
    footprint: tuple[FootprintBar, ...] = ()
    footprint_version: int = 0
    profile: ProfileRange | None = None  # the session's traded range, one row per tick
    profile_version: int = 0
    funding: FundingState | None = None
    funding_history: np.ndarray = field(default_factory=lambda: np.zeros(0, FUNDING_HISTORY_DTYPE))
    funding_version: int = 0
    liquidations: np.ndarray = field(default_factory=lambda: np.zeros(0, EVENT_DTYPE))
    detections: tuple[Detection, ...] = ()  # recent detection events (open/update/close), oldest first
    detections_version: int = 0
