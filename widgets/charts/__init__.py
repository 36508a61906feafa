"""Order-flow charts: liquidity heatmap, footprint, volume profile, CVD/price, funding, correlation."""

from __future__ import annotations

from widgets.charts.correlation import CorrelationWidget
from widgets.charts.cvd import CvdPriceWidget
from widgets.charts.docks import CHART_DOCKS, ChartDocks
from widgets.charts.footprint import FootprintWidget
from widgets.charts.funding import FundingWidget
from widgets.charts.heatmap import HeatmapWidget
from widgets.charts.profile import VolumeProfileWidget

__all__ = [
    "CHART_DOCKS",
    "ChartDocks",
    "CorrelationWidget",
    "CvdPriceWidget",
    "FootprintWidget",
    "FundingWidget",
    "HeatmapWidget",
    "VolumeProfileWidget",
]
