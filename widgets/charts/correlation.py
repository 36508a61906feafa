"""Correlation with the market leader: rolling correlation and beta of the watched symbol's returns to
BTCUSDT (or ETHUSDT) on aligned time buckets, the leader's recent move, and a loud warning when the
leader drops sharply while a long small-cap position is exposed.

Series are mid prices per heatmap column (the symbol's from its chart frame, the leaders' pulled by the
1 Hz clock); recomputed once a second, not per frame.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from app.core.chartframe import ChartFrame
from app.core.indicators import LeaderWarning, aligned_returns, leader_warning, recent_move, rolling_corr_beta
from widgets.charts.common import NS, pen, settle, style_plot, style_widget
from widgets.theme import DARK, Palette

LEADERS = ("BTCUSDT", "ETHUSDT")
WINDOWS_S = (300, 900, 3600)
BUCKETS_S = (1, 5, 15)
MOVE_WINDOW_S = 300


class CorrelationWidget(QWidget):
    """Rolling correlation / beta plot, figures and the exposure warning."""

    def __init__(self, parent: QWidget | None = None, palette: Palette = DARK) -> None:
        super().__init__(parent)
        self._palette = palette
        self.symbol = ""
        self.own: tuple[np.ndarray, np.ndarray] | None = None  # (times ns, mid price)
        self.leaders: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.window_s = 900
        self.bucket_s = 5
        self.move_window_s = MOVE_WINDOW_S
        self.result: dict[str, float] = {}
        self.warning: LeaderWarning | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(2)
        row = QHBoxLayout()
        self.leader_box = QComboBox()
        self.leader_box.addItems(LEADERS)
        self.window_box = QComboBox()
        for w in WINDOWS_S:
            self.window_box.addItem(f"{w // 60} min", w)
        self.window_box.setCurrentIndex(WINDOWS_S.index(900))
        self.bucket_box = QComboBox()
        for b in BUCKETS_S:
            self.bucket_box.addItem(f"{b} s", b)
        self.bucket_box.setCurrentIndex(BUCKETS_S.index(5))
        row.addWidget(QLabel("vs"))
        row.addWidget(self.leader_box)
        row.addWidget(QLabel("window"))
        row.addWidget(self.window_box)
        row.addWidget(self.bucket_box)
        row.addStretch(1)
        layout.addLayout(row)
        opts = QHBoxLayout()
        self.long_box = QCheckBox("long position", checked=True)
        self.small_box = QCheckBox("small cap", checked=True)
        self.drop_spin = QDoubleSpinBox(decimals=2, minimum=0.05, maximum=20.0, value=0.5, singleStep=0.1,
                                        suffix=" %", toolTip="leader drop over 5 min that warns")
        opts.addWidget(self.long_box)
        opts.addWidget(self.small_box)
        opts.addWidget(QLabel("warn at"))
        opts.addWidget(self.drop_spin)
        opts.addStretch(1)
        layout.addLayout(opts)
        grid = QGridLayout()
        self.labels: dict[str, QLabel] = {}
        for i, (key, title) in enumerate((("corr", "Correlation"), ("beta", "Beta"), ("move", "Leader 5 min"),
                                          ("expected", "Implied move"))):
            grid.addWidget(QLabel(title), 0, i)
            v = QLabel("—")
            v.setObjectName(f"corr_{key}")
            v.setStyleSheet("font-size: 13pt; font-weight: bold;")
            grid.addWidget(v, 1, i)
            self.labels[key] = v
        layout.addLayout(grid)
        self.banner = QLabel("")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setWordWrap(True)
        layout.addWidget(self.banner)
        self.view = pg.GraphicsLayoutWidget()
        self.plot = self.view.addPlot(axisItems={"bottom": pg.DateAxisItem(utcOffset=0)})
        self.plot.addLegend(offset=(4, 4), labelTextSize="7pt")
        self.corr_line = self.plot.plot(connect="finite", name="correlation")
        self.beta_line = self.plot.plot(connect="finite", name="beta")
        self.zero = pg.InfiniteLine(angle=0, pos=0, movable=False)
        self.plot.addItem(self.zero, ignoreBounds=True)
        layout.addWidget(self.view, 1)
        self.set_palette_theme(palette)
        for box in (self.leader_box, self.window_box, self.bucket_box):
            box.currentIndexChanged.connect(lambda _i: self._read_controls())
        for w in (self.long_box, self.small_box):
            w.toggled.connect(lambda _on: self.recompute())
        self.drop_spin.valueChanged.connect(lambda _v: self.recompute())

    def set_palette_theme(self, palette: Palette) -> None:
        """Recolour."""
        self._palette = palette
        style_widget(self.view, palette)
        style_plot(self.plot, palette)
        self.corr_line.setPen(pen(palette, "accent", 1.0))  # 1 px: the raster engine's fast line path
        self.beta_line.setPen(pen(palette, "large", 1.0))
        self.zero.setPen(pen(palette, "grid", 1.0))
        self._show_warning()

    def _read_controls(self) -> None:
        self.window_s = int(self.window_box.currentData())
        self.bucket_s = int(self.bucket_box.currentData())
        self.recompute()

    @property
    def leader(self) -> str:
        """The leader compared against."""
        return self.leader_box.currentText()

    def wanted_leaders(self) -> tuple[str, ...]:
        """Leader symbols whose series the clock should pull (not the symbol itself)."""
        return tuple(sym for sym in LEADERS if sym != self.symbol)

    def set_chart_frame(self, frame: ChartFrame) -> None:
        """Remember the symbol (its series come through :meth:`set_series`)."""
        self.symbol = frame.instrument.symbol

    def set_series(self, own: tuple[np.ndarray, np.ndarray] | None,
                   leaders: dict[str, tuple[np.ndarray, np.ndarray] | None]) -> None:
        """(times ns, mid prices) of the symbol and of each leader; then recompute."""
        self.own = own
        self.leaders = {k: v for k, v in leaders.items() if v is not None}
        self.recompute()

    def recompute(self) -> None:
        """Correlation, beta, move and warning from the current series."""
        lab = self.labels
        lead = self.leaders.get(self.leader)
        self.result = {}
        if self.own is None or lead is None or self.leader == self.symbol:
            for v in lab.values():
                v.setText("—")
            why = "this is the leader" if self.leader == self.symbol else f"no {self.leader} data: add it to the watchlist"
            self.banner.setText(why)
            self.warning = None
            self._show_warning()
            self.corr_line.setData([], [])
            self.beta_line.setData([], [])
            return
        bucket_ns = self.bucket_s * NS
        window = max(2, self.window_s // self.bucket_s)
        buckets, rs, rl = aligned_returns(self.own[0], self.own[1], lead[0], lead[1], bucket_ns)
        corr, beta, _n = rolling_corr_beta(rs, rl, window)
        t = buckets * self.bucket_s + self.bucket_s
        self.corr_line.setData(t, corr, connect="finite")
        self.beta_line.setData(t, beta, connect="finite")
        fin = np.flatnonzero(np.isfinite(corr) | np.isfinite(beta))
        if fin.size:
            self.plot.setXRange(t[fin[0]], t[fin[-1]], padding=0.02)
        settle(self.plot.vb)
        c = float(corr[-1]) if corr.size else float("nan")
        b = float(beta[-1]) if beta.size else float("nan")
        move = recent_move(lead[0], lead[1], self.move_window_s * NS)
        self.result = {"corr": c, "beta": b, "move": move}
        self.warning = leader_warning(self.leader, move, b, c, long_position=self.long_box.isChecked(),
                                      small_cap=self.small_box.isChecked(),
                                      drop_threshold=self.drop_spin.value() / 100.0)
        lab["corr"].setText("—" if np.isnan(c) else f"{c:+.2f}")
        lab["beta"].setText("—" if np.isnan(b) else f"{b:.2f}")
        lab["move"].setText("—" if np.isnan(move) else f"{move * 100:+.2f} %")
        exp = self.warning.expected_move
        lab["expected"].setText("—" if np.isnan(exp) else f"{exp * 100:+.2f} %")
        self._show_warning()

    def _show_warning(self) -> None:
        pal = self._palette
        w = self.warning
        if w is not None and w.active:
            self.banner.setText(f"⚠  {w.text}")
            self.banner.setStyleSheet(f"background: {pal.sell}; color: {pal.window}; font-weight: bold;"
                                      " padding: 4px; border-radius: 3px;")
        else:
            if w is not None:
                self.banner.setText(w.text or f"{w.leader} calm")
            self.banner.setStyleSheet(f"color: {pal.text_dim}; padding: 4px;")
        move = self.result.get("move", float("nan"))
        if not np.isnan(move):
            self.labels["move"].setStyleSheet(f"font-size: 13pt; font-weight: bold; color: "
                                              f"{pal.buy if move >= 0 else pal.sell};")
