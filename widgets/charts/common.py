"""Shared pieces of the chart views: pyqtgraph setup, themed plots, UTC time axis, colour maps."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

from widgets.theme import Palette

pg.setConfigOptions(antialias=False, useOpenGL=False, exitCleanup=False)

NS = 1_000_000_000

# Heatmap colour stops (position 0..1 -> colour), per theme: cool for thin, hot for thick liquidity.
HEAT_STOPS = {
    "dark": ((0.0, "#0c1220"), (0.12, "#0f2a52"), (0.3, "#1565a8"), (0.5, "#1fa6b8"), (0.68, "#8fd16a"),
             (0.82, "#f2c84b"), (0.93, "#ff7a1a"), (1.0, "#fff4e0")),
    "light": ((0.0, "#fbfcfe"), (0.15, "#d9e8f7"), (0.35, "#8fbce6"), (0.55, "#3f8fd1"), (0.72, "#f2c84b"),
              (0.86, "#f08a24"), (1.0, "#b3261e")),
}
GAP_COLOUR = {"dark": "#3a2440", "light": "#e6d3ea"}  # gaps must read as "no data", not "no liquidity"

DETECTION_SYMBOLS = {  # kind -> (pyqtgraph symbol, palette colour attribute)
    "iceberg": ("d", "iceberg"),
    "absorption": ("o", "absorption"),
    "large_order": ("s", "large"),
    "liquidity_gap": ("t1", "stale"),
    "thin_book": ("t1", "stale"),
    "pull": ("x", "pull"),
    "stack": ("+", "stack"),
    "sweep": ("star", "alert"),
    "big_trade": ("star", "alert"),
}


def heat_lut(theme: str) -> np.ndarray:
    """256 x 4 RGBA lookup table; index 0 is the gap colour, 1..255 the colour scale."""
    stops = HEAT_STOPS.get(theme, HEAT_STOPS["dark"])
    pos = np.array([p for p, _ in stops])
    cols = np.array([QColor(c).getRgb() for _, c in stops], np.float64)
    x = np.linspace(0.0, 1.0, 255)
    lut = np.zeros((256, 4), np.uint8)
    for ch in range(4):
        lut[1:, ch] = np.interp(x, pos, cols[:, ch]).round().astype(np.uint8)
    lut[0] = QColor(GAP_COLOUR.get(theme, GAP_COLOUR["dark"])).getRgb()
    return lut


def quantise(img: np.ndarray, lo: float, hi: float, log: bool = True) -> np.ndarray:
    """Sizes -> LUT indices 1..255 with cut-offs (at or below lo -> 1, at or above hi -> 255); NaN (gap) -> 0.

    ``log``: the scale between the cut-offs is logarithmic (order sizes span decades; a linear scale
    shows one wall and a black book).
    """
    out = np.empty(img.shape, np.float32)
    if log and lo > 0:
        span = float(np.log(hi / lo)) if hi > lo else 1.0
        np.maximum(img, lo, out=out)  # NaN stays NaN, -inf and small sizes become lo
        np.log(out, out=out)
        np.subtract(out, np.float32(np.log(lo)), out=out)
        np.multiply(out, 254.0 / span, out=out)
    else:
        span = hi - lo if hi > lo else 1.0
        np.subtract(img, lo, out=out)
        np.multiply(out, 254.0 / span, out=out)
    np.clip(out, 0.0, 254.0, out=out)
    nan = np.isnan(out)
    np.add(out, 1.0, out=out)
    out[nan] = 0.0  # casting NaN to an integer is undefined: say what a gap is
    return out.astype(np.uint8)


def percentile_levels(img: np.ndarray, lo_pct: float, hi_pct: float, max_samples: int = 50_000
                      ) -> tuple[float, float]:
    """Colour cut-offs at two percentiles of the finite values > 0 (a strided sample of big images)."""
    flat = img.ravel()
    if flat.size > max_samples:
        flat = flat[:: flat.size // max_samples + 1]
    v = flat[np.isfinite(flat) & (flat > 0)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [lo_pct, hi_pct])
    return float(lo), float(max(hi, lo + 1e-12))


def make_plot(palette: Palette, time_axis: bool = True) -> pg.PlotWidget:
    """A themed PlotWidget with a UTC time axis at the bottom and prices on the right."""
    axes = {"bottom": pg.DateAxisItem(orientation="bottom", utcOffset=0)} if time_axis else {}
    plot = pg.PlotWidget(axisItems=axes)
    style_plot(plot.getPlotItem(), palette)
    return plot


def style_plot(item: pg.PlotItem, palette: Palette) -> None:
    """Colours, grid and axis placement of one plot item."""
    item.showAxis("right")
    item.hideAxis("left")
    # no grid: pyqtgraph draws grid lines as part of each axis picture with alpha over the whole plot,
    # which cost ~15 ms per paint of a three-pane chart (1 ms without)
    item.showGrid(x=False, y=False)
    for name in ("bottom", "right", "left"):
        ax = item.getAxis(name)
        ax.setPen(pg.mkPen(palette.grid))
        ax.setTextPen(pg.mkPen(palette.text_dim))
        ax.setStyle(tickTextOffset=4)
    item.getViewBox().setBackgroundColor(palette.panel)
    item.setMenuEnabled(False)


def settle(*boxes: pg.ViewBox) -> None:
    """Apply the view boxes' pending auto-range and transform now, after new data or ranges.

    pyqtgraph defers them to the start of the next paint, where changing the transform marks every item
    dirty again: Qt then paints the whole plot a second time for one change.
    """
    for vb in boxes:
        vb.prepareForPaint()


def style_widget(widget: pg.GraphicsView | pg.PlotWidget | pg.GraphicsLayoutWidget, palette: Palette) -> None:
    """Background of a pyqtgraph widget."""
    widget.setBackground(palette.panel)


def pen(palette: Palette, attr: str, width: float = 1.0, alpha: int | None = None,
        style: object = None) -> object:
    """A cosmetic pen in a palette colour."""
    p = pg.mkPen(palette.q(attr, alpha), width=width)
    if style is not None:
        p.setStyle(style)
    return p


def brush(palette: Palette, attr: str, alpha: int | None = None) -> object:
    """A brush in a palette colour."""
    return pg.mkBrush(palette.q(attr, alpha))


class CompactAxis(pg.AxisItem):
    """A value axis labelled in K/M/B units with as many decimals as the tick spacing needs.

    pyqtgraph's own labels switch to ``%g`` on big numbers, so an axis over 48,000,000 ± 2,000 reads
    "4.8e+07" on every tick.
    """

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802 - Qt API
        return [compact_number(v * scale, spacing * scale) for v in values]


def compact_number(value: float, spacing: float) -> str:
    """``value`` in K/M/B units, with enough decimals to tell ticks ``spacing`` apart."""
    div, unit = next(((d, u) for d, u in ((1e9, "B"), (1e6, "M"), (1e3, "K")) if abs(value) >= d), (1.0, ""))
    step = abs(spacing) / div if spacing else 1.0
    decimals = 0 if step >= 1 else min(6, int(np.ceil(-np.log10(step))))
    return f"{value / div:.{decimals}f}{unit}"


def padded_range(values: np.ndarray, min_fraction: float = 0.002) -> tuple[float, float] | None:
    """A y range around the finite ``values`` that never collapses (a flat series gets ± a small share
    of its level), or None when none is finite."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    lo, hi = float(finite.min()), float(finite.max())
    pad = max((hi - lo) * 0.08, abs(hi) * min_fraction, 1e-9)
    return lo - pad, hi + pad
