"""Liquidity heatmap (Bookmap-style): resting size per price over exchange time, best bid/ask lines,
trade bubbles sized by volume and coloured by aggressor, detection markers, zoom/pan and a crosshair.

The image is the history reduced to the view: ``k`` columns per pixel (max), blocks cached once final by
:class:`~app.core.heatmap.HeatmapRenderer`, so following the market costs one or two new blocks per frame.
The image is redrawn only when the history's version or the view changed.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.chartframe import ChartFrame
from app.core.heatmap import HeatmapRenderer, HeatmapSnapshot, bubbles, compose
from widgets import fmt
from widgets.charts.common import (
    DETECTION_SYMBOLS,
    NS,
    brush,
    heat_lut,
    make_plot,
    pen,
    percentile_levels,
    quantise,
    style_widget,
)
from widgets.theme import DARK, Palette

WINDOWS_S = (60, 300, 900, 1800, 3600, 7200)


class HeatmapWidget(QWidget):
    """The heatmap view; feed it :class:`ChartFrame` objects with :meth:`set_chart_frame`."""

    price_clicked = Signal("qint64")

    def __init__(self, parent: QWidget | None = None, palette: Palette = DARK, window_s: float = 300.0) -> None:
        super().__init__(parent)
        self._palette = palette
        self.window_s = float(window_s)
        self.follow = True
        self.cutoff_mode = "percentile"  # or "absolute"
        self.cut_lo, self.cut_hi = 35.0, 99.7  # percentiles, or sizes when absolute
        self.renderer = HeatmapRenderer()
        self.snapshot: HeatmapSnapshot | None = None
        self.frame: ChartFrame | None = None
        self._drawn_key: tuple | None = None
        self._levels: tuple[float, float] = (0.0, 1.0)
        self._levels_key: tuple | None = None
        self._image_raw: np.ndarray | None = None  # last composed sizes (for tests and the readout)
        self._image_geom: tuple[float, float, float, float] = (0, 0, 1, 1)  # x0, y0, dx per px, dy per px
        self._ignore_range = False
        self._det_key = -1
        self._y_set = False  # the price axis was placed on the market once
        self.redraws = 0
        # sweeps and big trades already show as bubbles; pulls/stacks as the book changing colour
        self.marker_kinds = {"iceberg", "absorption", "large_order", "liquidity_gap"}

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        self.readout = QLabel("")
        self.readout.setMinimumWidth(280)
        self.window_box = QComboBox()
        for w in WINDOWS_S:
            self.window_box.addItem(f"{w // 60} min" if w < 3600 else f"{w // 3600} h", w)
        self.window_box.setCurrentIndex(WINDOWS_S.index(300) if int(window_s) not in WINDOWS_S
                                        else WINDOWS_S.index(int(window_s)))
        self.cut_box = QComboBox()
        self.cut_box.addItems(["percentile", "absolute"])
        self.lo_spin = QDoubleSpinBox(decimals=2, maximum=1e12, value=self.cut_lo, toolTip="lower colour cut-off")
        self.hi_spin = QDoubleSpinBox(decimals=2, maximum=1e12, value=self.cut_hi, toolTip="upper colour cut-off")
        for spin in (self.lo_spin, self.hi_spin):
            spin.setMaximumWidth(90)
        self.follow_button = QPushButton("Follow", checkable=True, checked=True)
        bar.addWidget(self.readout, 1)
        bar.addWidget(QLabel("Window"))
        bar.addWidget(self.window_box)
        bar.addWidget(QLabel("Cut-offs"))
        bar.addWidget(self.cut_box)
        bar.addWidget(self.lo_spin)
        bar.addWidget(self.hi_spin)
        bar.addWidget(self.follow_button)
        layout.addLayout(bar)

        self.plot = make_plot(palette)
        self.item = self.plot.getPlotItem()
        self.vb = self.item.getViewBox()
        self.image = pg.ImageItem(axisOrder="col-major")
        self.image.setZValue(-10)
        self.item.addItem(self.image)
        self.bid_line = pg.PlotDataItem(connect="finite", stepMode=None)
        self.ask_line = pg.PlotDataItem(connect="finite")
        self.buy_dots = pg.ScatterPlotItem(pxMode=True)
        self.sell_dots = pg.ScatterPlotItem(pxMode=True)
        self.markers = pg.ScatterPlotItem(pxMode=True, size=13)
        for it in (self.bid_line, self.ask_line, self.buy_dots, self.sell_dots, self.markers):
            self.item.addItem(it)
        self.cross_v = pg.InfiniteLine(angle=90, movable=False)
        self.cross_h = pg.InfiniteLine(angle=0, movable=False)
        for it in (self.cross_v, self.cross_h):
            it.setZValue(20)
            self.item.addItem(it, ignoreBounds=True)
        layout.addWidget(self.plot, 1)
        self.set_palette_theme(palette)

        self.vb.sigRangeChangedManually.connect(self._on_user_range)
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.plot.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self.follow_button.toggled.connect(self.set_follow)
        self.window_box.currentIndexChanged.connect(lambda _i: self.set_window(float(self.window_box.currentData())))
        self.cut_box.currentTextChanged.connect(self._on_cut_mode)
        self.lo_spin.valueChanged.connect(self._on_cut_values)
        self.hi_spin.valueChanged.connect(self._on_cut_values)

    # ----------------------------------------------------------------- settings
    def set_palette_theme(self, palette: Palette) -> None:
        """Recolour for a theme."""
        self._palette = palette
        style_widget(self.plot, palette)
        self.item.getViewBox().setBackgroundColor(palette.panel)
        self._lut = heat_lut(palette.name)
        self.bid_line.setPen(pen(palette, "bid", 1.6))
        self.ask_line.setPen(pen(palette, "ask", 1.6))
        self.buy_dots.setBrush(brush(palette, "buy", 170))
        self.buy_dots.setPen(pen(palette, "text", 0.8, 200))
        self.sell_dots.setBrush(brush(palette, "sell", 170))
        self.sell_dots.setPen(pen(palette, "text", 0.8, 200))
        for it in (self.cross_v, self.cross_h):
            it.setPen(pen(palette, "text_dim", 1.0, 140, Qt.PenStyle.DashLine))
        self._drawn_key = None
        self._det_key = -1
        self.redraw()

    def set_window(self, seconds: float) -> None:
        """Show the last ``seconds`` of history (and follow the market)."""
        if seconds <= 0:
            raise ValueError(f"heatmap window must be > 0 s, got {seconds!r}")
        self.window_s = float(seconds)
        self.set_follow(True)

    def set_follow(self, on: bool) -> None:
        """Keep the newest column at the right edge and the mid in view (off after a manual pan/zoom)."""
        self.follow = bool(on)
        if self.follow_button.isChecked() != self.follow:
            self.follow_button.setChecked(self.follow)
        self._drawn_key = None
        self.redraw()

    def set_cutoffs(self, mode: str, lo: float, hi: float) -> None:
        """Colour cut-offs: ``percentile`` (of the sizes in view) or ``absolute`` sizes."""
        if mode not in ("percentile", "absolute"):
            raise ValueError(f"cut-off mode must be 'percentile' or 'absolute', got {mode!r}")
        if not hi > lo or (mode == "percentile" and not 0 <= lo < hi <= 100):
            raise ValueError(f"cut-offs need lo < hi (percentiles within 0..100), got {lo!r}, {hi!r}")
        self.cutoff_mode, self.cut_lo, self.cut_hi = mode, float(lo), float(hi)
        for w, v in ((self.cut_box, None), (self.lo_spin, lo), (self.hi_spin, hi)):
            w.blockSignals(True)
            if v is None:
                self.cut_box.setCurrentText(mode)
            else:
                w.setValue(v)
            w.blockSignals(False)
        self._levels_key = None
        self._drawn_key = None
        self.redraw()

    def _on_cut_mode(self, mode: str) -> None:
        if mode == "absolute":
            lo, hi = self._levels
            self.set_cutoffs("absolute", round(lo, 2), round(max(hi, lo + 0.01), 2))
        else:
            self.set_cutoffs("percentile", 35.0, 99.7)

    def _on_cut_values(self) -> None:
        lo, hi = self.lo_spin.value(), self.hi_spin.value()
        try:
            self.set_cutoffs(self.cutoff_mode, lo, hi)
        except ValueError:
            pass  # a half-typed pair (lo >= hi): wait for the other box

    # ----------------------------------------------------------------- data
    def set_chart_frame(self, frame: ChartFrame) -> None:
        """Take a new chart frame; redraws only when the heatmap or detections changed."""
        if self.frame is not None and frame.instrument != self.frame.instrument:
            self.renderer.reset()
        self.frame = frame
        self.snapshot = frame.heatmap
        self.redraw()

    def _on_user_range(self, *_args: object) -> None:
        if not self._ignore_range:
            self.follow = False
            self.follow_button.blockSignals(True)
            self.follow_button.setChecked(False)
            self.follow_button.blockSignals(False)
        self._drawn_key = None
        self.redraw()

    def resizeEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)  # type: ignore[arg-type]
        self._drawn_key = None

    # ----------------------------------------------------------------- drawing
    def _follow_range(self, snap: HeatmapSnapshot) -> None:
        """Right edge at the newest closed column; prices fitted to where bid and ask went in the window."""
        col_s = snap.column_ns / NS
        x1 = (snap.last + 1) * col_s
        hist = snap.history
        tick = snap.tick_size
        c0 = max(snap.first, int((x1 - self.window_s) / col_s))
        _c, bid, ask = hist.best_prices(c0, snap.last)
        both = np.r_[bid, ask]
        both = both[np.isfinite(both)]
        (_cx0, _cx1), (y0, y1) = self.vb.viewRange()
        if both.size:
            lo, hi = float(both.min()) * tick, float(both.max()) * tick
            pad = max((hi - lo) * 0.25, 12 * max(1, hist.group) * tick)
            y0, y1 = lo - pad, hi + pad
        self._ignore_range = True
        self.vb.setRange(xRange=(x1 - self.window_s, x1), yRange=(y0, y1), padding=0)
        self._ignore_range = False

    def redraw(self) -> None:
        """Recompute the image, lines and bubbles if the data or the view changed."""
        snap = self.snapshot
        if snap is None:
            return
        if self.follow:
            self._follow_range(snap)
        (x0, x1), (y0, y1) = self.vb.viewRange()
        w_px = max(16, int(self.vb.width()) or 16)
        h_px = max(16, int(self.vb.height()) or 16)
        key = (snap.version, snap.last, round(x0, 6), round(x1, 6), round(y0, 9), round(y1, 9), w_px, h_px,
               self.cutoff_mode, self.cut_lo, self.cut_hi)
        if key != self._drawn_key:
            self._drawn_key = key
            self._draw_image(snap, x0, x1, y0, y1, w_px, h_px)
            self.redraws += 1
        if self.frame is not None and self.frame.detections_version != self._det_key:
            self._det_key = self.frame.detections_version
            self._draw_detections()

    def _draw_image(self, snap: HeatmapSnapshot, x0: float, x1: float, y0: float, y1: float, w_px: int,
                    h_px: int) -> None:
        hist = snap.history
        if hist.group == 0:  # no live column yet
            return
        col_s = snap.column_ns / NS
        c0 = max(int(math.floor(x0 / col_s)), snap.first)
        c1 = min(int(math.ceil(x1 / col_s)), snap.last)
        if c1 < c0:
            self.image.clear()
            return
        k = max(1, math.ceil((c1 - c0 + 1) / w_px))
        b0, b1 = c0 // k, c1 // k
        _ids, vals, bases = self.renderer.blocks(hist, b0, b1 - b0 + 1, k, snap.last)
        row_h = hist.group * snap.tick_size
        r0 = int(math.floor(y0 / row_h + 0.5))
        r1 = int(math.ceil(y1 / row_h + 0.5))
        n_rows = max(1, r1 - r0)
        step = max(1, math.ceil(n_rows / h_px))
        n_rows = -(-n_rows // step) * step
        img = compose(vals, bases, r0, n_rows, step)
        self._image_raw = img
        lo, hi = self._cutoffs(img, snap, k, r0, step)
        self.image.setImage(quantise(img, lo, hi, log=self.cutoff_mode == "percentile" or lo > 0),
                            autoLevels=False, levels=(0, 255), lut=self._lut)
        self.image.setRect(QRectF(b0 * k * col_s, (r0 - 0.5) * row_h, (b1 - b0 + 1) * k * col_s, n_rows * row_h))
        self._image_geom = (b0 * k * col_s, (r0 - 0.5) * row_h, k * col_s, step * row_h)
        # best bid / ask lines and bubbles at the same column resolution
        tick = snap.tick_size
        cols, bid, ask = hist.best_prices(b0 * k, c1)
        if k > 1 and cols.size:
            pad = (-cols.size) % k
            bid = np.r_[bid, np.full(pad, np.nan)].reshape(-1, k)[:, -1]  # the block's last column
            ask = np.r_[ask, np.full(pad, np.nan)].reshape(-1, k)[:, -1]
            cols = cols[::k]
        xs = (cols + 1) * col_s
        self.bid_line.setData(xs, bid * tick, connect="finite")
        self.ask_line.setData(xs, ask * tick, connect="finite")
        tc, buy, sell, bvw, svw = hist.trade_columns(b0 * k, min(c1 + 1, snap.open_col))
        bc, bt, bq, bs = bubbles(tc, buy, sell, bvw, svw, k)
        if bq.size:
            ref = float(np.percentile(bq, 99)) or float(bq.max())
            size = np.clip(np.sqrt(bq / ref) * 20.0, 2.0, 30.0)
            bx = (bc + k / 2) * col_s
            by = bt * tick
            b = bs > 0
            self.buy_dots.setData(bx[b], by[b], size=size[b])
            self.sell_dots.setData(bx[~b], by[~b], size=size[~b])
        else:
            self.buy_dots.setData([], [])
            self.sell_dots.setData([], [])

    def _cutoffs(self, img: np.ndarray, snap: HeatmapSnapshot, k: int, r0: int, step: int) -> tuple[float, float]:
        if self.cutoff_mode == "absolute":
            self._levels = (self.cut_lo, self.cut_hi)
            return self._levels
        # percentiles of the view move slowly: recompute on a new zoom or every ~2 s of new columns
        key = (k, step, snap.last // max(1, 20 * k), r0 // 64)
        if key != self._levels_key:
            self._levels_key = key
            self._levels = percentile_levels(img, self.cut_lo, self.cut_hi)
        return self._levels

    def _draw_detections(self) -> None:
        frame = self.frame
        if frame is None or not frame.detections:
            self.markers.setData([])
            return
        tick = frame.instrument.tick_size
        spots = []
        for det in frame.detections:
            if det.state != "open" or det.kind not in self.marker_kinds:
                continue
            sym, colour = DETECTION_SYMBOLS.get(det.kind, ("o", "alert"))
            spots.append({"pos": (det.exch_ts / NS, det.price_tick * tick), "symbol": sym,
                          "brush": brush(self._palette, colour, 220), "pen": pen(self._palette, "window", 1.0),
                          "data": det.kind})
        self.markers.setData(spots)

    # ----------------------------------------------------------------- mouse
    def size_at(self, x_s: float, price: float) -> float:
        """Resting size shown at (time s, price): the history's value at that column and row (NaN: none)."""
        snap = self.snapshot
        if snap is None:
            return float("nan")
        col = int(math.floor(x_s * NS / snap.column_ns))
        if col > snap.last or col < snap.first:
            return float("nan")
        tick = int(round(price / snap.tick_size))
        return snap.history.value_at(col, tick)

    def readout_text(self, x_s: float, price: float) -> str:
        """'price  time  size' for the crosshair."""
        frame = self.frame
        if frame is None:
            return ""
        tick = int(round(price / frame.instrument.tick_size))
        size = self.size_at(x_s, price)
        size_text = "gap" if math.isnan(size) else (fmt.qty(size) or "0")
        return (f"{frame.instrument.format_price(tick)}   {fmt.clock(int(x_s * NS))} UTC   size {size_text}")

    def _on_mouse_moved(self, pos: QPointF) -> None:
        if not self.vb.sceneBoundingRect().contains(pos):
            return
        p = self.vb.mapSceneToView(pos)
        self.cross_v.setPos(p.x())
        self.cross_h.setPos(p.y())
        self.readout.setText(self.readout_text(p.x(), p.y()))

    def _on_mouse_clicked(self, event: object) -> None:
        if self.frame is None or event.button() != Qt.MouseButton.LeftButton or event.double():  # type: ignore[attr-defined]
            return
        pos = event.scenePos()  # type: ignore[attr-defined]
        if self.vb.sceneBoundingRect().contains(pos):
            p = self.vb.mapSceneToView(pos)
            self.price_clicked.emit(int(round(p.y() / self.frame.instrument.tick_size)))
