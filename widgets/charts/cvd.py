"""Price with EMA(20), cumulative volume delta (session reset) and RSI(14), on one exchange-time axis.

Series come from the heatmap history's columns (mid at each bucket's end, CVD at each bucket's end), so a
gap in the data is a gap in every line. Redrawn when a column closed, not on every frame.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.core.chartframe import ChartFrame
from app.core.heatmap import HeatmapSnapshot
from app.core.indicators import ema, rsi
from widgets.charts.common import NS, pen, style_plot, style_widget
from widgets.theme import DARK, Palette

RESOLUTIONS_S = (1, 5, 15, 60)
BUCKETS = 600


def bucket_series(snap: HeatmapSnapshot, bucket_cols: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bucket end times s, mid price, CVD) of the newest ``n`` buckets of ``bucket_cols`` columns each.

    A bucket's value is its last column's that is not a gap; a bucket with only gap columns is NaN in both.
    """
    hist = snap.history
    last_bucket = snap.last // bucket_cols
    first_bucket = last_bucket - n + 1
    c0 = max(first_bucket * bucket_cols, snap.first)
    cols, mid = hist.mid_series(c0, snap.last)
    _c, cvd = hist.cvd(c0, snap.last)
    if cols.size == 0:
        e = np.zeros(0)
        return e, e, e
    b = cols // bucket_cols
    ok = np.isfinite(mid)
    nb = int(last_bucket - b[0] + 1)
    idx = b - b[0]
    # last valid column of each bucket: max column index among valid ones (columns ascend)
    pos = np.full(nb, -1)
    np.maximum.at(pos, idx[ok], np.flatnonzero(ok))
    has = pos >= 0
    price = np.full(nb, np.nan)
    cv = np.full(nb, np.nan)
    price[has] = mid[pos[has]]
    cv[has] = cvd[pos[has]]
    ends = (np.arange(b[0], last_bucket + 1) + 1) * bucket_cols * hist.column_ns / NS
    return ends, price * snap.tick_size, cv


class CvdPriceWidget(QWidget):
    """Three linked panes: price + EMA(20), CVD, RSI(14)."""

    def __init__(self, parent: QWidget | None = None, palette: Palette = DARK, ema_n: int = 20,
                 rsi_n: int = 14) -> None:
        super().__init__(parent)
        self._palette = palette
        self.ema_n, self.rsi_n = ema_n, rsi_n
        self.resolution_s = 1
        self.snapshot: HeatmapSnapshot | None = None
        self._key: tuple | None = None
        self.series: dict[str, np.ndarray] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        self.info = QLabel("")
        # the figures take what room is left (clipped when narrow): their text must not widen the window
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.res_box = QComboBox()
        for r in RESOLUTIONS_S:
            self.res_box.addItem(f"{r} s" if r < 60 else f"{r // 60} min", r)
        bar.addWidget(self.info, 1)
        bar.addWidget(QLabel("Bucket"))
        bar.addWidget(self.res_box)
        layout.addLayout(bar)
        self.view = pg.GraphicsLayoutWidget()
        self.price_plot = self.view.addPlot(row=0, col=0, axisItems={"bottom": pg.DateAxisItem(utcOffset=0)})
        self.cvd_plot = self.view.addPlot(row=1, col=0, axisItems={"bottom": pg.DateAxisItem(utcOffset=0)})
        self.rsi_plot = self.view.addPlot(row=2, col=0, axisItems={"bottom": pg.DateAxisItem(utcOffset=0)})
        lay = self.view.ci.layout
        lay.setRowStretchFactor(0, 5)
        lay.setRowStretchFactor(1, 3)
        lay.setRowStretchFactor(2, 2)
        for p in (self.cvd_plot, self.rsi_plot):
            p.setXLink(self.price_plot)
        for p in (self.price_plot, self.cvd_plot, self.rsi_plot):
            p.disableAutoRange()  # ranges are set once per redraw: auto-range would relayout and repaint again
        self.price_plot.hideAxis("bottom")
        self.cvd_plot.hideAxis("bottom")
        self.price_line = self.price_plot.plot(connect="finite")
        self.ema_line = self.price_plot.plot(connect="finite")
        self.cvd_line = self.cvd_plot.plot(connect="finite")
        self.cvd_zero = pg.InfiniteLine(angle=0, pos=0, movable=False)
        self.cvd_plot.addItem(self.cvd_zero, ignoreBounds=True)
        self.rsi_line = self.rsi_plot.plot(connect="finite")
        self.rsi_plot.setYRange(0, 100, padding=0)
        self.rsi_plot.setMouseEnabled(y=False)
        self.rsi_bands = [pg.InfiniteLine(angle=0, pos=v, movable=False) for v in (30, 70)]
        for line in self.rsi_bands:
            self.rsi_plot.addItem(line, ignoreBounds=True)
        for p, name in ((self.price_plot, "Price"), (self.cvd_plot, "CVD"), (self.rsi_plot, f"RSI({rsi_n})")):
            p.setLabel("left", name)
        layout.addWidget(self.view, 1)
        self.set_palette_theme(palette)
        self.res_box.currentIndexChanged.connect(lambda _i: self.set_resolution(int(self.res_box.currentData())))

    def set_palette_theme(self, palette: Palette) -> None:
        """Recolour."""
        self._palette = palette
        style_widget(self.view, palette)
        for p in (self.price_plot, self.cvd_plot, self.rsi_plot):
            style_plot(p, palette)
            p.showAxis("left")
            left = p.getAxis("left")
            left.setStyle(showValues=False)
            left.setWidth(20)
            left.setTextPen(pg.mkPen(palette.text_dim))
            left.setPen(pg.mkPen(palette.grid))
            left.label.setDefaultTextColor(palette.q("text_dim"))
            p.getAxis("right").setWidth(64)
        self.price_line.setPen(pen(palette, "text", 1.4))
        self.ema_line.setPen(pen(palette, "large", 1.2))
        self.cvd_line.setPen(pen(palette, "accent", 1.5))
        self.cvd_zero.setPen(pen(palette, "grid", 1.0))
        self.rsi_line.setPen(pen(palette, "absorption", 1.3))
        for line in self.rsi_bands:
            line.setPen(pen(palette, "text_dim", 1.0, 120, Qt.PenStyle.DashLine))
        self._key = None
        self._redraw()

    def set_resolution(self, seconds: int) -> None:
        """Bucket length (multiple of the heatmap column)."""
        if seconds <= 0:
            raise ValueError(f"bucket must be > 0 s, got {seconds!r}")
        self.resolution_s = int(seconds)
        self._key = None
        self._redraw()

    def set_chart_frame(self, frame: ChartFrame) -> None:
        """Take a frame; redraws when a heatmap column closed."""
        self.snapshot = frame.heatmap
        self._redraw()

    def _redraw(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        bucket_cols = max(1, int(round(self.resolution_s * NS / snap.column_ns)))
        key = (id(snap.history), snap.last, bucket_cols)
        if key == self._key:
            return
        self._key = key
        t, price, cvd = bucket_series(snap, bucket_cols, BUCKETS)
        e = ema(price, self.ema_n)
        r = rsi(price, self.rsi_n)
        self.series = {"t": t, "price": price, "ema": e, "cvd": cvd, "rsi": r}
        self.price_line.setData(t, price, connect="finite")
        self.ema_line.setData(t, e, connect="finite")
        self.cvd_line.setData(t, cvd, connect="finite")
        self.rsi_line.setData(t, r, connect="finite")
        fin = np.isfinite(price)
        if fin.any():  # from the first bucket with data: an empty left half says nothing
            first = np.flatnonzero(fin)[0]
            self.price_plot.setXRange(t[first], t[-1], padding=0.01)
            for plot, ys in ((self.price_plot, np.r_[price, e]), (self.cvd_plot, np.r_[cvd, 0.0])):
                ys = ys[np.isfinite(ys)]
                lo, hi = float(ys.min()), float(ys.max())
                pad = (hi - lo) * 0.08 or abs(hi) * 1e-4 or 1.0
                plot.setYRange(lo - pad, hi + pad, padding=0)
        if fin.any():
            last = np.flatnonzero(fin)[-1]
            self.info.setText(f"price {price[last]:.6g}   EMA({self.ema_n}) {e[last]:.6g}   CVD {cvd[last]:+.4g}"
                              f"   RSI({self.rsi_n}) {r[last]:.1f}")
