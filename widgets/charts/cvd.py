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
from app.core.heatmap import HeatmapHistory, HeatmapSnapshot
from app.core.indicators import ema, rsi
from widgets.charts.common import NS, pen, settle, style_plot, style_widget
from widgets.theme import DARK, Palette

RESOLUTIONS_S = (1, 5, 15, 60)
BUCKETS = 600


class CvdCarry:
    """The CVD just before the columns a redraw reads, carried over from the redraw before.

    ``HeatmapHistory.cvd`` sums the whole ring (two hours of columns) for every call; with this, a redraw
    reads only the columns in view and starts from the value the previous redraw had at the column before
    them. Closed columns are final (a trade reaching the history more than the view's span late would be
    missed); a new history, a jump or a changed bucket computes from the whole ring again.
    """

    def __init__(self) -> None:
        self.key: tuple | None = None  # (id of the history, bucket columns)
        self.cols = np.zeros(0, np.int64)  # the previous redraw's columns and CVD at each
        self.cvd = np.zeros(0)
        self.start: tuple[int, float, int] | None = None  # (first column, CVD before it, its session)
        self.full = 0  # redraws that summed the whole ring

    def series(self, snap: HeatmapSnapshot, c0: int, bucket_cols: int) -> tuple[np.ndarray, np.ndarray]:
        """(columns c0..last, CVD at each column's end), as ``history.cvd(c0, snap.last)``."""
        hist = snap.history
        key = (id(hist), bucket_cols)
        start = self._before(hist, c0) if key == self.key else None
        if start is None:
            cols, out = hist.cvd(c0, snap.last)
            self.full += 1
            if cols.size:  # what came before the first column: its CVD less its own delta
                _c, buy, sell, _bv, _sv = hist.trade_columns(int(cols[0]), int(cols[0]))
                start = (float(out[0] - (buy[0] - sell[0])), int(hist.session_of_columns(cols[:1])[0]))
        else:
            cols, buy, sell, _bv, _sv = hist.trade_columns(c0, snap.last)
            out = _cvd_from(start[0], start[1], buy - sell, hist.session_of_columns(cols))
        self.key, self.cols, self.cvd = key, cols, out
        self.start = (c0, *start) if start is not None and cols.size and cols[0] == c0 else None
        return cols, out

    def _before(self, hist: HeatmapHistory, c0: int) -> tuple[float, int] | None:
        """(CVD at the end of column c0 - 1, its session) from the previous redraw; None when it did not have it."""
        if self.start is not None and self.start[0] == c0:
            return self.start[1], self.start[2]
        i = int(np.searchsorted(self.cols, c0 - 1))
        if i < self.cols.size and self.cols[i] == c0 - 1:
            return float(self.cvd[i]), int(hist.session_of_columns(self.cols[i:i + 1])[0])
        return None


def _cvd_from(start: float, start_session: int, delta: np.ndarray, ses: np.ndarray) -> np.ndarray:
    """Running delta of columns that follow one whose CVD is ``start``, reset where the session changes."""
    if delta.size == 0:
        return np.zeros(0)
    total = np.cumsum(delta)
    starts = np.r_[ses[0] != start_session, ses[1:] != ses[:-1]]
    before = np.where(starts, total - delta, 0.0)
    seg = np.maximum.accumulate(np.where(starts, np.arange(delta.size), -1))  # latest session start, -1: none
    return total - np.where(seg >= 0, before[np.maximum(seg, 0)], -start)


def bucket_series(snap: HeatmapSnapshot, bucket_cols: int, n: int, carry: CvdCarry | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bucket end times s, mid price, CVD) of the newest ``n`` buckets of ``bucket_cols`` columns each.

    A bucket's value is its last column's that is not a gap; a bucket with only gap columns is NaN in both.
    ``carry`` (kept between calls) reads only the columns in view for the CVD.
    """
    hist = snap.history
    last_bucket = snap.last // bucket_cols
    first_bucket = last_bucket - n + 1
    c0 = max(first_bucket * bucket_cols, snap.first)
    cols, mid = hist.mid_series(c0, snap.last)
    _c, cvd = carry.series(snap, c0, bucket_cols) if carry is not None else hist.cvd(c0, snap.last)
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
        self._drawn: dict[str, np.ndarray] | None = None  # the series the plots show
        self.carry = CvdCarry()
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
        bar.addWidget(QLabel("Bucket"))
        bar.addWidget(self.res_box)
        bar.addStretch(1)
        layout.addLayout(bar)
        # under the selector, not beside it: beside, a narrow dock cut the figures mid-word against it
        self.info.setContentsMargins(4, 0, 4, 2)
        layout.addWidget(self.info)
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
        # 1 px lines: the raster engine's fast path (wider cosmetic pens cost several times more per paint)
        self.price_line.setPen(pen(palette, "text", 1.0))
        self.ema_line.setPen(pen(palette, "large", 1.0))
        self.cvd_line.setPen(pen(palette, "accent", 1.0))
        self.cvd_zero.setPen(pen(palette, "grid", 1.0))
        self.rsi_line.setPen(pen(palette, "absorption", 1.0))
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
        self.prepare_chart_frame(frame)
        self.draw_prepared()

    def prepare_chart_frame(self, frame: ChartFrame) -> bool:
        """First half of :meth:`set_chart_frame`: the series (True when they changed and want drawing).

        The docks run the two halves in two frames, so neither frame carries the whole cost.
        """
        self.snapshot = frame.heatmap
        return self._compute()

    def draw_prepared(self) -> None:
        """Second half: hand the computed series to the plots (nothing when they were drawn already)."""
        if self.series and self._drawn is not self.series:
            self._draw(self.series)

    def _redraw(self) -> None:
        self._compute()
        self.draw_prepared()

    def _compute(self) -> bool:
        snap = self.snapshot
        if snap is None:
            return False
        bucket_cols = max(1, int(round(self.resolution_s * NS / snap.column_ns)))
        key = (id(snap.history), snap.last, bucket_cols)
        if key == self._key:
            return False
        self._key = key
        t, price, cvd = bucket_series(snap, bucket_cols, BUCKETS, self.carry)
        self.series = {"t": t, "price": price, "ema": ema(price, self.ema_n), "cvd": cvd,
                       "rsi": rsi(price, self.rsi_n)}
        return True

    def _draw(self, series: dict[str, np.ndarray]) -> None:
        self._drawn = series
        t, price, e, cvd, r = (series[k] for k in ("t", "price", "ema", "cvd", "rsi"))
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
        settle(self.price_plot.vb, self.cvd_plot.vb, self.rsi_plot.vb)
        if fin.any():
            last = np.flatnonzero(fin)[-1]
            self.info.setText(f"price {price[last]:.6g}   EMA({self.ema_n}) {e[last]:.6g}   CVD {cvd[last]:+.4g}"
                              f"   RSI({self.rsi_n}) {r[last]:.1f}")
