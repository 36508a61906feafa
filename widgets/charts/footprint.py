"""Footprint bars: per bar and price row, sell x buy volume, delta and total per bar, POC, diagonal
imbalances highlighted, stacked imbalances marked, cells coloured by delta.

Custom-painted like the ladder (numbers in cells read better than scaled text in a plot); the drawing is
cached in a pixmap rebuilt only when the bars' version or the view (size, grouping, ratio, scroll, theme)
changed. Rows are regrouped from the engine's bars (exact: sums of whole rows), and imbalances are
recomputed for the view's ratio and minimum volume with the core's rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPaintEvent, QPen, QPixmap, QWheelEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.core.chartframe import ChartFrame
from app.core.footprint import FootprintBar, diagonal_imbalances, stacked_runs
from app.core.instrument import Instrument
from app.core.profile import poc_index
from widgets import fmt
from widgets.theme import DARK, Palette, mono_font

GROUPS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
BAR_WIDTH = 116
ROW_HEIGHT = 15
HEADER = 18
FOOTER = 34
PRICE_WIDTH = 74


@dataclass(frozen=True, slots=True, eq=False)
class FootprintRows:
    """One bar regrouped for display: ascending rows with volumes, POC and imbalance flags."""

    bar: FootprintBar
    group: int
    ticks: np.ndarray  # lowest tick of each row, ascending, dense
    buy: np.ndarray
    sell: np.ndarray
    poc_tick: int
    buy_imbalance: np.ndarray
    sell_imbalance: np.ndarray
    stacked_buy: tuple[tuple[int, int], ...]  # (low tick, high tick) of each run
    stacked_sell: tuple[tuple[int, int], ...]

    @property
    def delta(self) -> float:
        """Buy minus sell volume of the bar."""
        return float(self.buy.sum() - self.sell.sum())

    @property
    def volume(self) -> float:
        """Total volume of the bar."""
        return float(self.buy.sum() + self.sell.sum())


def regroup(bar: FootprintBar, group: int, ratio: float = 3.0, min_volume: float = 0.0, stacked_min: int = 3
            ) -> FootprintRows:
    """The bar's rows summed into rows of ``group`` ticks (a multiple of the bar's own), imbalances recomputed."""
    if group < 1 or group % bar.group:
        raise ValueError(f"display grouping {group} must be a multiple of the bar's {bar.group} ticks")
    if bar.ticks.size == 0:
        e = np.zeros(0)
        return FootprintRows(bar, group, e.astype(np.int64), e, e, bar.poc_tick, e.astype(bool), e.astype(bool),
                             (), ())
    rows = bar.ticks // group
    lo, hi = int(rows[0]), int(rows[-1])
    idx = rows - lo
    buy = np.bincount(idx, weights=bar.buy, minlength=hi - lo + 1)
    sell = np.bincount(idx, weights=bar.sell, minlength=hi - lo + 1)
    ticks = np.arange(lo, hi + 1, dtype=np.int64) * group
    bi, si = diagonal_imbalances(buy, sell, ratio, min_volume)
    p = poc_index(buy + sell)
    return FootprintRows(
        bar, group, ticks, buy, sell, int(ticks[p]) if p is not None else bar.poc_tick, bi, si,
        tuple((int(ticks[a]), int(ticks[b])) for a, b in stacked_runs(bi, stacked_min)),
        tuple((int(ticks[a]), int(ticks[b])) for a, b in stacked_runs(si, stacked_min)),
    )


class _FootprintCanvas(QWidget):
    """The painted bars."""

    def __init__(self, owner: FootprintWidget) -> None:
        super().__init__(owner)
        self.owner = owner
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(300, 200)
        self._pixmap: QPixmap | None = None
        self._key: tuple | None = None

    def invalidate(self) -> None:
        self._key = None
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        o = self.owner
        key = (o.version_key(), self.width(), self.height(), self.devicePixelRatioF())
        if key != self._key or self._pixmap is None:
            self._key = key
            ratio = self.devicePixelRatioF()
            pm = QPixmap(int(self.width() * ratio), int(self.height() * ratio))
            pm.setDevicePixelRatio(ratio)
            pm.fill(o.palette_theme.q("panel"))
            p = QPainter(pm)
            try:
                o.draw(p, self.width(), self.height())
            finally:
                p.end()
            self._pixmap = pm
            o.paints += 1
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._pixmap)
        painter.end()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() // 120
        if steps:
            self.owner.scroll_rows(int(steps) * 3)


class FootprintWidget(QWidget):
    """Footprint chart of the newest bars; feed it :class:`ChartFrame` objects."""

    def __init__(self, parent: QWidget | None = None, palette: Palette = DARK) -> None:
        super().__init__(parent)
        self.palette_theme = palette
        self.group = 1
        self.auto_group = True  # rows sized so the bars in view fit the height
        self.ratio = 3.0
        self.min_volume = 0.0
        self.stacked_min = 3
        self.centre_tick: int | None = None  # row tick at the vertical centre (None: follow the close)
        self.instrument: Instrument | None = None
        self.bars: tuple[FootprintBar, ...] = ()
        self._version = -1
        self._view: list[FootprintRows] = []
        self._view_key: tuple | None = None
        self._fit_centre: int | None = None
        self.paints = 0
        self.font = mono_font(8.0)
        self.bold = QFont(self.font)
        self.bold.setBold(True)
        self.metrics = QFontMetrics(self.font)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        self.info = QLabel("")
        self.group_box = QComboBox()
        self.group_box.addItem("auto", 0)
        for g in GROUPS:
            self.group_box.addItem(f"{g} tick{'s' if g > 1 else ''}", g)
        self.ratio_spin = QDoubleSpinBox(decimals=1, minimum=1.0, maximum=50.0, singleStep=0.5, value=3.0,
                                         toolTip="diagonal imbalance ratio")
        self.min_spin = QDoubleSpinBox(decimals=2, maximum=1e12, value=0.0, toolTip="imbalance minimum volume")
        self.min_spin.setSpecialValueText("any")
        # the summary and the 1e12-capable spin box would otherwise set the dock's minimum width
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.min_spin.setMinimumWidth(56)
        bar.addWidget(self.info, 1)
        bar.addWidget(QLabel("Rows"))
        bar.addWidget(self.group_box)
        bar.addWidget(QLabel("Imbalance ×"))
        bar.addWidget(self.ratio_spin)
        bar.addWidget(QLabel("min"))
        bar.addWidget(self.min_spin)
        layout.addLayout(bar)
        self.canvas = _FootprintCanvas(self)
        layout.addWidget(self.canvas, 1)
        self.group_box.currentIndexChanged.connect(lambda _i: self.set_group(int(self.group_box.currentData())))
        self.ratio_spin.valueChanged.connect(lambda v: self.set_imbalance(v, self.min_volume))
        self.min_spin.valueChanged.connect(lambda v: self.set_imbalance(self.ratio, v))

    # ----------------------------------------------------------------- settings
    def set_palette_theme(self, palette: Palette) -> None:
        """Repaint in another theme."""
        self.palette_theme = palette
        self.canvas.invalidate()

    def set_group(self, group: int) -> None:
        """Ticks per row (rounded up to a multiple of the engine's bar rows); 0 = automatic."""
        if group < 0:
            raise ValueError(f"grouping must be >= 1 tick (0 = auto), got {group!r}")
        self.auto_group = group == 0
        if group:
            base = self.bars[-1].group if self.bars else 1
            self.group = max(base, -(-int(group) // base) * base)
        i = self.group_box.findData(0 if self.auto_group else self.group)
        if i >= 0 and i != self.group_box.currentIndex():
            self.group_box.blockSignals(True)
            self.group_box.setCurrentIndex(i)
            self.group_box.blockSignals(False)
        self.centre_tick = None
        self._view_key = None
        self.canvas.invalidate()

    def set_imbalance(self, ratio: float, min_volume: float = 0.0, stacked_min: int | None = None) -> None:
        """Diagonal imbalance ratio and minimum volume (and the stacked run length)."""
        if not ratio >= 1.0 or min_volume < 0:
            raise ValueError(f"imbalance ratio must be >= 1 and minimum volume >= 0, got {ratio!r}, {min_volume!r}")
        self.ratio, self.min_volume = float(ratio), float(min_volume)
        if stacked_min is not None:
            self.stacked_min = int(stacked_min)
        self._view_key = None
        self.canvas.invalidate()

    def scroll_rows(self, rows: int) -> None:
        """Move the price window by ``rows`` rows (up positive); stops following the close."""
        centre = self.centre_tick if self.centre_tick is not None else self._auto_centre()
        if centre is None:
            return
        self.centre_tick = centre + rows * self.group
        self.canvas.invalidate()

    def follow_close(self) -> None:
        """Centre on the newest bar's close again."""
        self.centre_tick = None
        self.canvas.invalidate()

    # ----------------------------------------------------------------- data
    def set_chart_frame(self, frame: ChartFrame) -> None:
        """Take new bars when their version changed."""
        if frame.instrument != self.instrument:
            self.instrument = frame.instrument
            self.centre_tick = None
            self._version = -1
        if frame.footprint_version == self._version and frame.footprint is self.bars:
            return
        self._version = frame.footprint_version
        self.set_bars(frame.footprint, frame.instrument)

    def set_bars(self, bars: tuple[FootprintBar, ...] | list[FootprintBar], instrument: Instrument) -> None:
        """Show these bars (oldest first)."""
        self.instrument = instrument
        self.bars = tuple(bars)
        if self.bars and self.group % self.bars[-1].group:
            self.group = self.bars[-1].group
        self._view_key = None
        self.canvas.invalidate()

    def version_key(self) -> tuple:
        """Everything the cached drawing depends on."""
        return (id(self.bars), len(self.bars), self._version, self.group, self.auto_group, self.ratio, self.min_volume,
                self.stacked_min, self.centre_tick, self.palette_theme.name)

    def rows(self) -> list[FootprintRows]:
        """The bars regrouped for the current settings (cached)."""
        key = (id(self.bars), self.group, self.ratio, self.min_volume, self.stacked_min)
        if key != self._view_key:
            self._view_key = key
            self._view = [regroup(b, self.group, self.ratio, self.min_volume, self.stacked_min) for b in self.bars]
        return self._view

    def _auto_centre(self) -> int | None:
        if not self.bars:
            return None
        if self.auto_group and self._fit_centre is not None:
            return self._fit_centre
        return self.bars[-1].close_tick // self.group * self.group

    # ----------------------------------------------------------------- painting
    def visible_bars(self, width: int) -> int:
        """How many bars fit in ``width`` pixels."""
        return max(1, (width - PRICE_WIDTH) // BAR_WIDTH)

    def fit_group(self, width: int, height: int) -> int:
        """The nice grouping whose rows fit the price range of the bars in view into the height."""
        if not self.bars:
            return self.group
        base = self.bars[-1].group
        shown = self.bars[-self.visible_bars(width):]
        span = max(b.high_tick for b in shown) - min(b.low_tick for b in shown) + 1
        rows_fit = max(4, (height - HEADER - FOOTER) // ROW_HEIGHT - 2)
        for g in GROUPS:
            if g % base == 0 and span / g <= rows_fit:
                return g
        return GROUPS[-1] // base * base

    def draw(self, p: QPainter, w: int, h: int) -> None:
        """Paint the bars that fit, newest on the right, with a price column."""
        pal = self.palette_theme
        if self.auto_group:
            self.group = self.fit_group(w, h)
            if self.centre_tick is None and self.bars:
                shown = self.bars[-self.visible_bars(w):]
                mid = (max(b.high_tick for b in shown) + min(b.low_tick for b in shown)) // 2
                self._fit_centre = mid // self.group * self.group
        views = self.rows()
        inst = self.instrument
        if not views or inst is None:
            p.setPen(pal.q("text_dim"))
            p.drawText(QRect(0, 0, w, h), Qt.AlignmentFlag.AlignCenter, "no trades yet")
            return
        n = min(len(views), self.visible_bars(w))
        shown = views[-n:]
        rows_fit = max(1, (h - HEADER - FOOTER) // ROW_HEIGHT)
        centre = self.centre_tick if self.centre_tick is not None else self._auto_centre()
        assert centre is not None
        top_tick = centre + (rows_fit // 2) * self.group
        g = self.group

        def y_of(tick: int) -> int:
            return HEADER + ((top_tick - tick) // g) * ROW_HEIGHT

        max_row = max((float((v.buy + v.sell).max()) for v in shown if v.ticks.size), default=1.0) or 1.0
        max_delta = max((float(np.abs(v.buy - v.sell).max()) for v in shown if v.ticks.size), default=1.0) or 1.0
        p.setFont(self.font)
        x_right = w - PRICE_WIDTH
        # price column
        p.fillRect(QRect(x_right, 0, PRICE_WIDTH, h), pal.q("price_bg"))
        p.setPen(pal.q("text_dim"))
        for r in range(rows_fit):
            tick = top_tick - r * g
            y = HEADER + r * ROW_HEIGHT
            p.drawText(QRect(x_right + 4, y, PRICE_WIDTH - 8, ROW_HEIGHT),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, inst.format_price(tick))
        prev_index = None
        for i, v in enumerate(shown):
            x = x_right - (n - i) * BAR_WIDTH
            bar = v.bar
            half = (BAR_WIDTH - 10) // 2
            # a quiet stretch with no bar is a gap: mark it on the left edge of the next bar
            if prev_index is not None and bar.index - prev_index > 1 and bar.end_ts - bar.start_ts > 0:
                p.fillRect(QRect(x, HEADER, 3, h - HEADER - FOOTER), pal.q("stale", 120))
            prev_index = bar.index
            p.setPen(pal.q("grid"))
            p.drawLine(x + BAR_WIDTH - 1, 0, x + BAR_WIDTH - 1, h)
            p.setPen(pal.q("text_dim"))
            p.drawText(QRect(x, 0, BAR_WIDTH, HEADER), Qt.AlignmentFlag.AlignCenter,
                       fmt.clock(bar.start_ts, millis=False) + ("" if bar.closed else " •"))
            # value area of the bar's body: high..low range line
            for j in range(v.ticks.size):
                tick = int(v.ticks[j])
                y = y_of(tick)
                if y < HEADER or y + ROW_HEIGHT > h - FOOTER:
                    continue
                b, s = float(v.buy[j]), float(v.sell[j])
                if b == 0 and s == 0:  # a price the bar crossed without trading there
                    p.fillRect(QRect(x + 4, y + 1, BAR_WIDTH - 10, ROW_HEIGHT - 2), pal.q("panel_alt"))
                    continue
                d = (b - s) / max_delta
                colour = pal.q("buy" if d >= 0 else "sell", int(22 + 88 * min(1.0, abs(d))))  # text stays legible
                cell = QRect(x + 4, y + 1, BAR_WIDTH - 10, ROW_HEIGHT - 2)
                p.fillRect(cell, colour)
                # a thin volume bar at the bottom of each cell: where the bar traded most
                p.fillRect(QRect(x + 4, y + ROW_HEIGHT - 3, int((BAR_WIDTH - 10) * (b + s) / max_row), 2),
                           pal.q("text_dim", 150))
                if tick == v.poc_tick:
                    p.setPen(QPen(pal.q("large"), 1.5))
                    p.drawRect(cell.adjusted(0, 0, -1, -1))
                p.setFont(self.bold if v.sell_imbalance[j] else self.font)
                p.setPen(pal.q("sell") if v.sell_imbalance[j] else pal.q("text"))
                p.drawText(QRect(x + 4, y, half - 6, ROW_HEIGHT),
                           Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, fmt.qty(s) or "0")
                p.setPen(pal.q("text_dim"))
                p.setFont(self.font)
                p.drawText(QRect(x + 4 + half - 6, y, 12, ROW_HEIGHT), Qt.AlignmentFlag.AlignCenter, "×")
                p.setFont(self.bold if v.buy_imbalance[j] else self.font)
                p.setPen(pal.q("buy") if v.buy_imbalance[j] else pal.q("text"))
                p.drawText(QRect(x + 4 + half + 6, y, half - 6, ROW_HEIGHT),
                           Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, fmt.qty(b) or "0")
            p.setFont(self.font)
            # stacked imbalances: a bar along the cell edge over the run
            for runs, colour, xx in ((v.stacked_buy, "buy", x + BAR_WIDTH - 6), (v.stacked_sell, "sell", x + 1)):
                for lo, hi in runs:
                    y0 = max(HEADER, y_of(hi))
                    y1 = min(h - FOOTER, y_of(lo) + ROW_HEIGHT)
                    if y1 > y0:
                        p.fillRect(QRect(xx, y0, 3, y1 - y0), pal.q(colour))
            # footer: delta and total
            delta = v.delta
            p.setPen(pal.q("buy" if delta >= 0 else "sell"))
            p.drawText(QRect(x, h - FOOTER, BAR_WIDTH, FOOTER // 2), Qt.AlignmentFlag.AlignCenter,
                       f"Δ {fmt.signed_qty(delta) or '0'}")
            p.setPen(pal.q("text_dim"))
            p.drawText(QRect(x, h - FOOTER // 2, BAR_WIDTH, FOOTER // 2), Qt.AlignmentFlag.AlignCenter,
                       f"Σ {fmt.qty(v.volume) or '0'}")
        p.setPen(pal.q("grid"))
        p.drawLine(0, h - FOOTER, w, h - FOOTER)
        p.drawLine(0, HEADER, w, HEADER)
        last = shown[-1]
        self.info.setText(f"{inst.symbol}  bar Δ {fmt.signed_qty(last.delta) or '0'}  vol {fmt.qty(last.volume)}"
                          f"  POC {inst.format_price(last.poc_tick)}")

    def cell_colour_attr(self, rows: FootprintRows, j: int) -> str:
        """'buy' or 'sell': the colour a row's cell is tinted with (by its delta)."""
        return "buy" if rows.buy[j] - rows.sell[j] >= 0 else "sell"
