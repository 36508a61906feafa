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
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.core.chartframe import ChartFrame
from app.core.heatmap import BlockView, HeatmapRenderer, HeatmapSnapshot, compose
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
    settle,
    style_widget,
)
from widgets.theme import DARK, Palette

WINDOWS_S = (60, 300, 900, 1800, 3600, 7200)
MAX_BUBBLES = 400
MIN_REDRAW_S, MAX_REDRAW_S = 0.1, 0.5  # bounds of the redraw interval while following (one column: 0.1 s)


class HeatImageItem(pg.GraphicsObject):
    """The heatmap picture: a ring of opaque RGB32 pixel columns, one per block, blitted as it is.

    pyqtgraph's ImageItem hands Qt an indexed or RGBA image converted again on every paint, and rebuilding
    a 1600-pixel picture each frame costs more than the frame. Here a pixel column is written once per
    block (again only while its block is still filling), into slot ``block id % width``; painting is one or
    two blits of the ring (before and after its wrap). Any change of scale, rows or colours starts over.
    """

    def __init__(self) -> None:
        super().__init__()
        self.key: tuple | None = None
        self._pixels = np.zeros((0, 0), np.uint32)  # (rows from the lowest price, ring columns)
        self._ids = np.zeros(0, np.int64)
        self._final = np.zeros(0, bool)
        self._qimage: QImage | None = None
        self._view: tuple[int, int, int, float, float, float] | None = None  # b0, n, k, col_s, y0, height
        self._rect = QRectF()
        self.columns_written = 0

    def needs(self, key: tuple, ids: np.ndarray) -> np.ndarray:
        """Mask of the view's blocks whose pixel column must be (re)written."""
        if key != self.key or self._ids.size < ids.size + 2:
            return np.ones(ids.size, bool)
        slot = ids % self._ids.size
        return (self._ids[slot] != ids) | ~self._final[slot]

    def write(self, key: tuple, ids: np.ndarray, columns: np.ndarray, final: np.ndarray, n_view: int) -> None:
        """Store pixel columns (n, rows from the lowest price) of blocks ``ids``; ``n_view`` blocks are in view."""
        h = columns.shape[1]
        if key != self.key or self._ids.size < n_view + 2 or self._pixels.shape[0] != h:
            width = n_view + 64
            self._pixels = np.zeros((h, width), np.uint32)
            self._ids = np.full(width, -(2**62), np.int64)
            self._final = np.zeros(width, bool)
            self._qimage = QImage(self._pixels.data, width, h, width * 4, QImage.Format.Format_RGB32)
            self.key = key
        slot = ids % self._ids.size
        self._pixels[:, slot] = columns.T
        self._ids[slot] = ids
        self._final[slot] = final
        self.columns_written += int(ids.size)

    def show_view(self, b0: int, n: int, k: int, col_s: float, y0: float, height: float) -> None:
        """Show blocks b0 .. b0+n-1 (k columns of col_s seconds each) over prices y0 .. y0+height."""
        rect = QRectF(b0 * k * col_s, y0, n * k * col_s, height)
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect
        self._view = (b0, n, k, col_s, y0, height)
        self.update()

    def indices_view(self, lut32: np.ndarray) -> np.ndarray | None:
        """The shown picture as LUT indices (blocks x rows, row 0 the lowest price): for tests and readouts."""
        if self._view is None or self._qimage is None:
            return None
        b0, n, *_ = self._view
        slot = np.arange(b0, b0 + n) % self._ids.size
        pix = self._pixels[:, slot].T  # (blocks, rows from the lowest price)
        inverse = {int(v): i for i, v in enumerate(lut32.tolist())}
        flat = np.array([inverse.get(int(v), 0) for v in np.unique(pix)], np.uint8)
        return flat[np.searchsorted(np.unique(pix), pix)]

    @property
    def shown_blocks(self) -> int:
        """Pixel columns in view."""
        return 0 if self._view is None else self._view[1]

    def clear(self) -> None:
        """Show nothing."""
        self._view = None
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        return QRectF(self._rect)

    def paint(self, painter: QPainter, *_args: object) -> None:
        if self._view is None or self._qimage is None:
            return
        b0, n, k, col_s, y0, height = self._view
        width = self._ids.size
        h = self._pixels.shape[0]
        start = b0 % width
        first = min(n, width - start)  # blocks before the ring wraps
        painter.drawImage(QRectF(b0 * k * col_s, y0, first * k * col_s, height), self._qimage,
                          QRectF(start, 0, first, h))
        if first < n:
            painter.drawImage(QRectF((b0 + first) * k * col_s, y0, (n - first) * k * col_s, height), self._qimage,
                              QRectF(0, 0, n - first, h))


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
        self._image_geom: tuple[float, float, float, float] = (0, 0, 1, 1)  # x0, y0, dx per px, dy per px
        self._ignore_range = False
        self.blocks: BlockView | None = None
        self.bubble_data: tuple[np.ndarray, ...] | None = None
        self._det_key = -1
        self.redraws = 0
        self.pixel_s = 0.0  # seconds of history per pixel column at the last draw
        # sweeps and big trades already show as bubbles; pulls/stacks as the book changing colour
        self.marker_kinds = {"iceberg", "absorption", "large_order", "liquidity_gap"}

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        self.readout = QLabel("")
        # the readout takes what room is left (clipped when narrow) so the dock never widens the window
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
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
            spin.setMinimumWidth(56)
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
        self.image = HeatImageItem()
        self.image.setZValue(-10)
        self.item.addItem(self.image)
        self.bid_line = pg.PlotDataItem(connect="finite", stepMode=None)
        self.ask_line = pg.PlotDataItem(connect="finite")
        self.buy_dots = pg.ScatterPlotItem(pxMode=True)
        self.sell_dots = pg.ScatterPlotItem(pxMode=True)
        self.live_buy_dots = pg.ScatterPlotItem(pxMode=True)
        self.live_sell_dots = pg.ScatterPlotItem(pxMode=True)
        self._bubble_key: tuple | None = None
        self._bubble_ref = 1.0
        self.markers = pg.ScatterPlotItem(pxMode=True, size=13)
        for it in (self.bid_line, self.ask_line, self.buy_dots, self.sell_dots, self.live_buy_dots,
                   self.live_sell_dots, self.markers):
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
        lut = self._lut.astype(np.uint32)
        self._lut32 = (0xFF000000 | (lut[:, 0] << 16) | (lut[:, 1] << 8) | lut[:, 2]).astype(np.uint32)
        self.bid_line.setPen(pen(palette, "bid", 1.0))  # 1 px: the raster engine's fast line path
        self.ask_line.setPen(pen(palette, "ask", 1.0))
        for item, attr in ((self.buy_dots, "buy"), (self.live_buy_dots, "buy"), (self.sell_dots, "sell"),
                           (self.live_sell_dots, "sell")):
            item.setBrush(brush(palette, attr, 170))
            item.setPen(pen(palette, "text", 0.8, 200))
        self._bubble_key = None
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
    def redraw_interval_s(self) -> float:
        """How often following the market is worth a redraw: twice per pixel column of time (a pixel column
        holds k closed columns; redrawing each 100 ms column repaints the same pixels), 0.1 .. 0.5 s."""
        return min(MAX_REDRAW_S, max(MIN_REDRAW_S, self.pixel_s / 2))

    def redraw(self) -> None:
        """Recompute the image, lines and bubbles if the data or the view changed."""
        snap = self.snapshot
        if snap is None or snap.history.group == 0:  # nothing live sampled yet
            return
        (x0, x1), (y0, y1) = self.vb.viewRange()
        col_s = snap.column_ns / NS
        w_px = max(16, int(self.vb.width()) or 16)
        if self.follow:
            # the right edge steps a whole block (k columns, one pixel) at a time: between steps the axes
            # and every closed block stay where they are, so a frame repaints without relayout
            window_cols = self.window_s * NS / snap.column_ns
            k = max(1, math.ceil(window_cols / w_px))
            x1 = (snap.last // k + 1) * k * col_s
            x0 = x1 - self.window_s
        h_px = max(16, int(self.vb.height()) or 16)
        key = (snap.version, snap.last, self.follow or (round(x0, 6), round(x1, 6), round(y0, 9), round(y1, 9)),
               w_px, h_px, self.cutoff_mode, self.cut_lo, self.cut_hi, self.window_s)
        if key != self._drawn_key:
            self._drawn_key = key
            self._draw(snap, x0, x1, y0, y1, w_px, h_px)
            settle(self.vb)
            self.redraws += 1
        if self.frame is not None and self.frame.detections_version != self._det_key:
            self._det_key = self.frame.detections_version
            self._draw_detections()

    def _draw(self, snap: HeatmapSnapshot, x0: float, x1: float, y0: float, y1: float, w_px: int,
              h_px: int) -> None:
        hist = snap.history
        col_s = snap.column_ns / NS
        tick = snap.tick_size
        k = max(1, math.ceil((x1 - x0) / col_s / w_px))  # the same k the follow step used
        c0 = max(int(math.floor(x0 / col_s)), snap.first)
        c1 = min(int(math.ceil(x1 / col_s)) - 1, snap.last)
        if c1 < c0:
            self.image.clear()
            return
        b0, b1 = c0 // k, c1 // k
        v = self.renderer.view(hist, b0, b1 - b0 + 1, k, snap.last)
        self.blocks = v
        if self.follow:  # prices fitted to where bid and ask went in the window, with room around
            if np.isfinite(v.lo).any() and np.isfinite(v.hi).any():
                lo, hi = float(np.nanmin(v.lo)) * tick, float(np.nanmax(v.hi)) * tick
                pad = max((hi - lo) * 0.25, 12 * hist.group * tick)
                want0, want1 = lo - pad, hi + pad
                span = y1 - y0
                # sticky: move only when the market leaves the inner range or the range is far too wide,
                # so the price axis is not laid out again every frame
                if not (y0 + pad * 0.3 <= lo and hi <= y1 - pad * 0.3) or span > 1.8 * (want1 - want0):
                    y0, y1 = want0, want1
            self._ignore_range = True
            self.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
            self._ignore_range = False
        row_h = hist.group * tick
        r0 = int(math.floor(y0 / row_h + 0.5))
        r1 = int(math.ceil(y1 / row_h + 0.5))
        n_rows = max(1, r1 - r0)
        step = max(1, math.ceil(n_rows / h_px))
        n_rows = -(-n_rows // step) * step
        lo_c, hi_c = self._cutoffs(v, snap, k)
        log = self.cutoff_mode == "percentile" or lo_c > 0
        key = (id(hist), k, r0, n_rows, step, lo_c, hi_c, log, self._palette.name)
        need = self.image.needs(key, v.ids)
        if need.any():
            sel = np.flatnonzero(need)
            img = compose(v.values(sel), v.bases[sel], r0, n_rows, step)
            # the view's y axis points up: image row 0 lands on the rectangle's y0, the lowest price
            cols = self._lut32[quantise(img, lo_c, hi_c, log=log)]
            final = (v.ids[sel] + 1) * k - 1 <= snap.last - self.renderer.slack
            self.image.write(key, v.ids[sel], cols, final, v.ids.size)
        self.image.show_view(b0, b1 - b0 + 1, k, col_s, (r0 - 0.5) * row_h, n_rows * row_h)
        self._image_geom = (b0 * k * col_s, (r0 - 0.5) * row_h, k * col_s, step * row_h)
        self.pixel_s = k * col_s
        xs = (v.ids + 1) * k * col_s  # a block's line point sits at its end: the book then
        self.bid_line.setData(xs, v.bid * tick, connect="finite")
        self.ask_line.setData(xs, v.ask * tick, connect="finite")
        self._draw_bubbles(v, col_s, tick, snap.last)

    def _draw_bubbles(self, v: BlockView, col_s: float, tick: float, last: int) -> None:
        """Final blocks' bubbles are set again only when the blocks in view change; the filling ones each frame."""
        final = (v.ids + 1) * v.k - 1 <= last - self.renderer.slack
        n_final = int(final.sum())
        key = (id(v.cache), v.k, int(v.ids[0]) if v.ids.size else 0, n_final, col_s)
        if key != self._bubble_key:
            self._bubble_key = key
            data = self._bubbles(v, np.flatnonzero(final), col_s, tick, MAX_BUBBLES)
            self._bubble_ref = float(np.percentile(data[2], 99)) if data[2].size else 1.0
            self._set_dots(self.buy_dots, self.sell_dots, data)
        live = self._bubbles(v, np.flatnonzero(~final), col_s, tick, 50)
        self._set_dots(self.live_buy_dots, self.live_sell_dots, live)
        self.bubble_data = live

    @staticmethod
    def _bubbles(v: BlockView, which: np.ndarray, col_s: float, tick: float, limit: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x s, y price, volume, side) of the buy and sell bubbles of blocks ``which``, the biggest ``limit``."""
        parts = []
        for q, tq, side in ((v.buy[which], v.buy_tq[which], 1), (v.sell[which], v.sell_tq[which], -1)):
            has = q > 0
            parts.append(((v.ids[which][has] + 0.5) * v.k * col_s, tq[has] / q[has] * tick, q[has],
                          np.full(int(has.sum()), side)))
        bx, by, bq, bs = (np.concatenate([p[i] for p in parts]) for i in range(4))
        if bq.size > limit:  # zoomed out, the biggest prints tell the story; thousands of dots hide it
            keep = np.argpartition(bq, bq.size - limit)[-limit:]
            bx, by, bq, bs = bx[keep], by[keep], bq[keep], bs[keep]
        return bx, by, bq, bs

    def _set_dots(self, buy_item: pg.ScatterPlotItem, sell_item: pg.ScatterPlotItem,
                  data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
        bx, by, bq, bs = data
        if not bq.size:
            buy_item.setData([], [])
            sell_item.setData([], [])
            return
        # sizes on a few steps: pyqtgraph renders each distinct size once, not each dot
        size = np.clip(np.round(np.sqrt(bq / max(self._bubble_ref, 1e-12)) * 10.0) * 2.0, 2.0, 30.0)
        b = bs > 0
        buy_item.setData(bx[b], by[b], size=size[b])
        sell_item.setData(bx[~b], by[~b], size=size[~b])

    def _cutoffs(self, v: BlockView, snap: HeatmapSnapshot, k: int) -> tuple[float, float]:
        if self.cutoff_mode == "absolute":
            self._levels = (self.cut_lo, self.cut_hi)
            return self._levels
        # percentiles of the sizes in view move slowly: recompute on a new zoom or every ~20 pixels of time
        key = (id(snap.history), k, snap.last // max(1, 20 * k))
        if key != self._levels_key:
            self._levels_key = key
            self._levels = percentile_levels(v.values(np.arange(0, v.ids.size, max(1, v.ids.size // 400))),
                                             self.cut_lo, self.cut_hi)
        return self._levels

    def image_indices(self) -> np.ndarray | None:
        """LUT indices of the picture in view (blocks x rows, lowest price first; 0 = gap)."""
        return self.image.indices_view(self._lut32)

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
        if self.frame is None or event.button() != Qt.MouseButton.LeftButton or event.double():
            return
        pos = event.scenePos()
        if self.vb.sceneBoundingRect().contains(pos):
            p = self.vb.mapSceneToView(pos)
            self.price_clicked.emit(int(round(p.y() / self.frame.instrument.tick_size)))
