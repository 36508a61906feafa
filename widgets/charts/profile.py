"""Volume profile beside the heatmap: volume per price (sell and buy stacked), POC, value area (VAH/VAL,
70 %), high and low volume nodes; for the whole session or for the price range in view.

Its price axis can be linked to the heatmap's (``link_prices``) so the two read as one picture.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.core.chartframe import ChartFrame
from app.core.instrument import Instrument
from app.core.profile import ProfileRange
from widgets.charts.common import brush, make_plot, pen, settle, style_widget
from widgets.theme import DARK, Palette

MAX_ROWS = 150  # rows drawn at most: coarser rows beyond that keep bars a few pixels tall
NICE_GROUPS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000)


def regroup_profile(prof: ProfileRange, group: int) -> ProfileRange:
    """The profile summed into rows of ``group`` ticks (rows named by their lowest tick)."""
    if group <= prof.group:
        return prof
    rows = prof.ticks // group
    lo = int(rows[0])
    idx = rows - lo
    n = int(rows[-1]) - lo + 1
    buy = np.bincount(idx, weights=prof.buy, minlength=n)
    sell = np.bincount(idx, weights=prof.sell, minlength=n)
    ticks = np.arange(lo, lo + n, dtype=np.int64) * group
    return ProfileRange(int(ticks[0]), int(ticks[-1]), ticks, buy, sell, group)


def visible_profile(prof: ProfileRange, lo_tick: int, hi_tick: int) -> ProfileRange | None:
    """The rows of a (per-tick) profile within lo_tick..hi_tick, or None when none are."""
    keep = (prof.ticks >= lo_tick) & (prof.ticks <= hi_tick)
    if not keep.any():
        return None
    t = prof.ticks[keep]
    return ProfileRange(int(t[0]), int(t[-1]), t, prof.buy[keep], prof.sell[keep], prof.group)


class VolumeProfileWidget(QWidget):
    """Horizontal volume profile with POC / VAH / VAL lines and node marks."""

    def __init__(self, parent: QWidget | None = None, palette: Palette = DARK) -> None:
        super().__init__(parent)
        self._palette = palette
        self.mode = "session"  # or "visible"
        self.value_fraction = 0.70
        self.profile: ProfileRange | None = None  # the session, per tick
        self.shown: ProfileRange | None = None  # what is drawn (maybe a visible range, regrouped)
        self.instrument: Instrument | None = None
        self._version = -1
        self._drawn_key: tuple | None = None
        self.poc: int | None = None
        self.value_area: tuple[int, int] | None = None
        self.hvn = np.zeros(0, np.int64)
        self.lvn = np.zeros(0, np.int64)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        self.mode_box = QComboBox()
        self.mode_box.addItems(["Session", "Visible range"])
        self.info = QLabel("")
        self.info.setWordWrap(True)
        bar.addWidget(self.mode_box)
        bar.addStretch(1)
        layout.addLayout(bar)
        # under the selector, not beside it: beside, a narrow dock wrapped it into a column of words
        self.info.setContentsMargins(4, 0, 4, 2)
        layout.addWidget(self.info)
        self.plot = make_plot(palette, time_axis=False)
        self.item = self.plot.getPlotItem()
        self.item.hideAxis("bottom")
        self.vb = self.item.getViewBox()
        self.vb.setMouseEnabled(x=False, y=True)
        # inside / outside the value area, sell / buy: four items with one brush each (no brush per bar)
        self.bars = {k: pg.BarGraphItem(x0=[], y=[], height=[], width=[]) for k in
                     ("sell_in", "sell_out", "buy_in", "buy_out")}
        for it in self.bars.values():
            self.item.addItem(it)
        self._last_draw = 0.0
        self._pending = QTimer(self)
        self._pending.setSingleShot(True)
        self._pending.timeout.connect(self._redraw)
        self.poc_line = pg.InfiniteLine(angle=0, movable=False, label="POC", labelOpts={"position": 0.92})
        self.vah_line = pg.InfiniteLine(angle=0, movable=False, label="VAH", labelOpts={"position": 0.92})
        self.val_line = pg.InfiniteLine(angle=0, movable=False, label="VAL", labelOpts={"position": 0.92})
        for line in (self.poc_line, self.vah_line, self.val_line):
            self.item.addItem(line, ignoreBounds=True)
            line.hide()
        self.nodes = pg.ScatterPlotItem(pxMode=True, size=9)
        self.item.addItem(self.nodes)
        layout.addWidget(self.plot, 1)
        self.set_palette_theme(palette)
        self.mode_box.currentIndexChanged.connect(lambda i: self.set_mode("session" if i == 0 else "visible"))
        self.vb.sigYRangeChanged.connect(self._on_range)

    def set_palette_theme(self, palette: Palette) -> None:
        """Recolour."""
        self._palette = palette
        style_widget(self.plot, palette)
        self.vb.setBackgroundColor(palette.panel)
        for name, it in self.bars.items():
            it.setOpts(brush=brush(palette, name.split("_")[0], 230 if name.endswith("in") else 105),
                       pen=pg.mkPen(None))
        self.poc_line.setPen(pen(palette, "large", 2.0))
        self.vah_line.setPen(pen(palette, "accent", 1.2, None, Qt.PenStyle.DashLine))
        self.val_line.setPen(pen(palette, "accent", 1.2, None, Qt.PenStyle.DashLine))
        for line, attr in ((self.poc_line, "large"), (self.vah_line, "accent"), (self.val_line, "accent")):
            line.label.setColor(palette.q(attr))
        self._drawn_key = None
        self._redraw()

    def set_mode(self, mode: str) -> None:
        """``session`` or ``visible`` (the price range in view)."""
        if mode not in ("session", "visible"):
            raise ValueError(f"profile mode must be 'session' or 'visible', got {mode!r}")
        self.mode = mode
        self.mode_box.blockSignals(True)
        self.mode_box.setCurrentIndex(0 if mode == "session" else 1)
        self.mode_box.blockSignals(False)
        self._drawn_key = None
        self._redraw()

    def link_prices(self, other_viewbox: pg.ViewBox) -> None:
        """Share the price axis with another plot (the heatmap)."""
        self.vb.setYLink(other_viewbox)

    def set_chart_frame(self, frame: ChartFrame) -> None:
        """Take the session profile when its version changed."""
        self.instrument = frame.instrument
        if frame.profile_version == self._version and frame.profile is self.profile:
            return
        self._version = frame.profile_version
        self.set_profile(frame.profile, frame.instrument)

    def set_profile(self, profile: ProfileRange | None, instrument: Instrument) -> None:
        """Show a session profile (per tick)."""
        self.profile = profile
        self.instrument = instrument
        self._drawn_key = None
        # trades move the profile many times a second; a few redraws a second read the same
        wait = 0.25 - (time.monotonic() - self._last_draw)
        if wait > 0 and self.shown is not None:
            if not self._pending.isActive():
                self._pending.start(int(wait * 1000) + 1)
            return
        self._redraw()

    def _on_range(self, *_args: object) -> None:
        if self.mode == "visible":
            self._redraw()
        settle(self.vb)  # the heatmap moved the linked prices: one paint for it, not two

    def redraw(self) -> None:
        """Draw now (what the throttle would do a moment later)."""
        self._drawn_key = None
        self._redraw()

    def _clear_bars(self) -> None:
        for it in self.bars.values():
            it.setOpts(x0=[], y=[], height=[], width=[])

    def _redraw(self) -> None:
        self._last_draw = time.monotonic()
        prof, inst = self.profile, self.instrument
        if prof is None or inst is None or prof.ticks.size == 0:
            self._clear_bars()
            for line in (self.poc_line, self.vah_line, self.val_line):
                line.hide()
            self.info.setText("no trades yet")
            return
        tick = inst.tick_size
        y0, y1 = self.vb.viewRange()[1]
        if self.mode == "visible" and y1 > y0 and not (y0 == 0 and y1 == 1):
            lo_t, hi_t = int(np.ceil(y0 / tick)), int(np.floor(y1 / tick))
            key = ("v", id(prof), lo_t, hi_t)
        else:
            lo_t, hi_t = int(prof.ticks[0]), int(prof.ticks[-1])
            key = ("s", id(prof))
        if key == self._drawn_key:
            return
        self._drawn_key = key
        part = visible_profile(prof, lo_t, hi_t) if key[0] == "v" else prof
        if part is None or part.total <= 0:
            self.shown = None
            self._clear_bars()
            self.info.setText("nothing traded in view")
            return
        # statistics on the per-tick profile (exact), drawing on rows that stay a few pixels tall
        self.poc = part.poc()
        self.value_area = part.value_area(self.value_fraction)
        if part.ticks.size >= 3:
            self.hvn, self.lvn = part.nodes()
        else:  # volume_nodes' smoothing window (3) outgrows a 1-2 level profile (an IndexError in the core)
            self.hvn = self.lvn = np.zeros(0, np.int64)
        need = -(-part.ticks.size // MAX_ROWS)
        group = next((g for g in NICE_GROUPS if g >= need), need)
        shown = regroup_profile(part, group)
        self.shown = shown
        g = shown.group
        ys = (shown.ticks + (g - 1) / 2) * tick
        va_lo, va_hi = self.value_area if self.value_area else (lo_t, hi_t)
        inside = (shown.ticks + g - 1 >= va_lo) & (shown.ticks <= va_hi)
        pal = self._palette
        h = g * tick * 0.86
        for where, sel in (("in", inside), ("out", ~inside)):
            self.bars[f"sell_{where}"].setOpts(x0=np.zeros(int(sel.sum())), y=ys[sel], height=h, width=shown.sell[sel])
            self.bars[f"buy_{where}"].setOpts(x0=shown.sell[sel], y=ys[sel], height=h, width=shown.buy[sel])
        vmax = float(shown.volume.max())
        self.vb.setXRange(0, vmax * 1.12, padding=0)
        settle(self.vb)
        for line, t in ((self.poc_line, self.poc), (self.vah_line, va_hi), (self.val_line, va_lo)):
            if t is None:
                line.hide()
            else:
                line.setPos(t * tick)
                line.show()
        node_y = np.r_[self.hvn, self.lvn] * tick
        node_x = np.full(node_y.size, vmax * 1.06)
        symbols = ["t2"] * self.hvn.size + ["t3"] * self.lvn.size
        brushes = [brush(pal, "large", 230)] * self.hvn.size + [brush(pal, "text_dim", 230)] * self.lvn.size
        self.nodes.setData(node_x, node_y, symbol=symbols, brush=brushes, pen=pg.mkPen(None))
        fmt_p = inst.format_price
        self.info.setText(
            f"POC {fmt_p(self.poc) if self.poc is not None else '—'}   VA {fmt_p(va_lo)} – {fmt_p(va_hi)}\n"
            f"HVN ▸ {self.hvn.size}   LVN ◂ {self.lvn.size}   rows of {g} tick{'s' if g > 1 else ''}"
        )
