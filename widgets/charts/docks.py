"""The chart docks of the main window: builds the six chart widgets, docks them, feeds them frames.

The window calls :meth:`ChartDocks.show_chart_frame` from the frame clock (only while a chart is visible)
and :meth:`ChartDocks.tick_1hz` from the slow clock with the leaders' price series.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMainWindow, QWidget

from app.core.chartframe import ChartFrame
from widgets.charts.correlation import CorrelationWidget
from widgets.charts.cvd import CvdPriceWidget
from widgets.charts.footprint import FootprintWidget
from widgets.charts.funding import FundingWidget
from widgets.charts.heatmap import HeatmapWidget
from widgets.charts.profile import VolumeProfileWidget
from widgets.theme import Palette

# Shortest time between two redraws of a chart while frames arrive (s). The heatmap's columns are 100 ms,
# so 10 redraws a second show every column as it closes (zoomed out, where one pixel column holds several,
# it asks for less: HeatmapWidget.redraw_interval_s); the others change with each trade
# but are read at a glance, and plots redrawn 60 times a second would take the frame rate from the ladder.
MIN_INTERVAL_S = {"heatmap": 0.1, "profile": 0.5, "footprint": 0.5, "cvd": 1.0, "funding": 1.0,
                  "correlation": 1.0}
SLICE_S = 0.016  # one slow chart per frame: their redraws are spread over frames, never stacked in one

# name, dock title
CHART_DOCKS: tuple[tuple[str, str], ...] = (
    ("heatmap", "Liquidity heatmap"),
    ("profile", "Volume profile"),
    ("footprint", "Footprint"),
    ("cvd", "CVD / price"),
    ("funding", "Funding && OI"),
    ("correlation", "Correlation"),
)


class ChartDocks:
    """Owns the chart widgets; ``add_dock(name, title, widget, area)`` is the window's own dock maker."""

    def __init__(self, window: QMainWindow, palette: Palette,
                 add_dock: Callable[[str, str, QWidget, Qt.DockWidgetArea], None],
                 docks: dict[str, QDockWidget]) -> None:
        self.window = window
        self.heatmap = HeatmapWidget(palette=palette)
        self.profile = VolumeProfileWidget(palette=palette)
        self.footprint = FootprintWidget(palette=palette)
        self.cvd = CvdPriceWidget(palette=palette)
        self.funding = FundingWidget(palette=palette)
        self.correlation = CorrelationWidget(palette=palette)
        self.profile.link_prices(self.heatmap.vb)
        self.widgets: dict[str, QWidget] = {
            "heatmap": self.heatmap, "profile": self.profile, "footprint": self.footprint, "cvd": self.cvd,
            "funding": self.funding, "correlation": self.correlation,
        }
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        for name, title in CHART_DOCKS:
            add_dock(f"chart_{name}", title, self.widgets[name], left)
        self.docks = {name: docks[f"chart_{name}"] for name, _ in CHART_DOCKS}
        d = self.docks
        # The ladder stays the centre of the desk: the heatmap (with its price-linked profile) takes the
        # left column, the slower charts share one tabbed dock under it (all open, one shown at a time).
        window.splitDockWidget(d["heatmap"], d["profile"], Qt.Orientation.Horizontal)
        window.splitDockWidget(d["heatmap"], d["footprint"], Qt.Orientation.Vertical)
        for name in ("cvd", "funding", "correlation"):
            window.tabifyDockWidget(d["footprint"], d[name])
        d["footprint"].raise_()
        window.resizeDocks([d["heatmap"], d["profile"]], [400, 100], Qt.Orientation.Horizontal)
        window.resizeDocks([d["heatmap"], d["footprint"]], [400, 290], Qt.Orientation.Vertical)
        self.frames_shown = 0
        self._shown_at: dict[str, float] = dict.fromkeys(self.widgets, 0.0)
        self._pending: ChartFrame | None = None
        self._prepared: QWidget | None = None  # a chart whose series are computed but not drawn yet
        self._late = QTimer(window)
        self._late.setSingleShot(True)
        self._late.timeout.connect(self._on_late)

    def open_all(self) -> None:
        """Every chart in view at once (the GUI benchmark's layout): nothing hidden behind a tab.

        The heatmap, profile and footprint keep the left column, CVD/price goes beside the footprint,
        correlation under the time & sales, funding beside the alerts (the bottom row grows for it).
        """
        w, d = self.window, self.docks
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        for name in ("footprint", "cvd", "funding", "correlation"):
            w.removeDockWidget(d[name])  # out of the tab group: a split of a tabbed dock would add a tab
        w.addDockWidget(left, d["footprint"])
        w.splitDockWidget(d["heatmap"], d["footprint"], Qt.Orientation.Vertical)
        w.splitDockWidget(d["footprint"], d["cvd"], Qt.Orientation.Horizontal)
        tape, alerts, watch = w.findChild(QDockWidget, "dock_tape"), w.findChild(QDockWidget, "dock_alerts"), \
            w.findChild(QDockWidget, "dock_watchlist")
        w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, d["correlation"])
        w.splitDockWidget(tape, d["correlation"], Qt.Orientation.Vertical)
        w.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, d["funding"])
        w.splitDockWidget(alerts, d["funding"], Qt.Orientation.Horizontal)
        for dock in (*d.values(), tape, alerts, watch):
            dock.show()
        w.resizeDocks([d["heatmap"], d["profile"]], [470, 110], Qt.Orientation.Horizontal)
        w.resizeDocks([d["footprint"], d["cvd"]], [300, 280], Qt.Orientation.Horizontal)
        w.resizeDocks([d["heatmap"], d["footprint"]], [360, 300], Qt.Orientation.Vertical)
        w.resizeDocks([tape, d["correlation"]], [330, 330], Qt.Orientation.Vertical)
        w.resizeDocks([watch, alerts, d["funding"]], [380, 560, 660], Qt.Orientation.Horizontal)
        w.resizeDocks([alerts], [270], Qt.Orientation.Vertical)

    def visible(self) -> bool:
        """Whether any chart dock is open (frames are pulled for the charts only then)."""
        return any(d.isVisible() for d in self.docks.values())

    def set_palette_theme(self, palette: Palette) -> None:
        """Restyle every chart."""
        for w in self.widgets.values():
            w.set_palette_theme(palette)  # type: ignore[attr-defined]

    def interval_s(self, name: str) -> float:
        """Shortest time between two redraws of a chart (the heatmap: at its pixels' pace, not faster)."""
        rate = getattr(self.widgets[name], "redraw_interval_s", None)
        return max(MIN_INTERVAL_S[name], rate()) if rate is not None else MIN_INTERVAL_S[name]

    def show_chart_frame(self, frame: ChartFrame) -> None:
        """Hand a chart frame to the visible charts, each at most as often as MIN_INTERVAL_S allows (a chart
        skipped now gets the newest frame a moment later); each redraws only what changed.

        One chart's work per frame: the heatmap when its interval is up, else one slow chart, else the
        drawing half of a chart that computed its series the frame before; the rest wait a frame.
        """
        now = time.monotonic()
        wait = None
        busy = False
        for name, w in self.widgets.items():
            if not self.docks[name].isVisible():
                continue
            due = self._shown_at[name] + self.interval_s(name) - now
            if due <= 0 and busy:
                due = SLICE_S  # a chart already redrew in this frame: the next frame
            if due > 0:
                wait = due if wait is None else min(wait, due)
                continue
            self._shown_at[name] = now
            busy = True
            prepare = getattr(w, "prepare_chart_frame", None)
            if prepare is None:
                w.set_chart_frame(frame)  # type: ignore[attr-defined]
            elif prepare(frame):  # computed now, drawn in a later frame
                self._prepared = w
        if self._prepared is not None:
            if not busy:
                self._prepared.draw_prepared()  # type: ignore[attr-defined]
                self._prepared = None
            else:
                wait = SLICE_S if wait is None else min(wait, SLICE_S)
        self.frames_shown += 1
        self._pending = frame if wait is not None else None
        if wait is not None and not self._late.isActive():
            self._late.start(int(wait * 1000) + 1)

    def _on_late(self) -> None:
        frame, self._pending = self._pending, None
        if frame is not None:
            self.show_chart_frame(frame)

    def wanted_leaders(self) -> tuple[str, ...]:
        """Leader symbols the correlation chart compares against."""
        return self.correlation.wanted_leaders() if self.docks["correlation"].isVisible() else ()

    def tick_1hz(self, now_ns: int, own: tuple[np.ndarray, np.ndarray] | None,
                 leaders: dict[str, Any]) -> None:
        """Slow clock: funding countdown and the correlation figures."""
        self.funding.tick(now_ns)
        if self.docks["correlation"].isVisible():
            self.correlation.set_series(own, leaders)
