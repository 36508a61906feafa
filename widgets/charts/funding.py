"""Funding and open interest: rate and its annualised value, mark vs index premium, countdown to the next
funding, the cost or income of holding N contracts through it, open interest and its change,
liquidations, and the history of rate, premium and open interest.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from app.core.chartframe import ChartFrame
from app.core.events import ASK, BID, BUY_EVENT
from app.core.funding import FundingState
from widgets import fmt
from widgets.charts.common import NS, CompactAxis, padded_range, pen, settle, style_plot, style_widget
from widgets.theme import DARK, Palette

OI_WINDOW_NS = 3600 * NS
LIQ_WINDOW_NS = 300 * NS


def countdown_text(ns: int, known: bool = True) -> str:
    """``HH:MM:SS`` of a duration in ns; ``due`` at zero, ``—`` when the next funding time is unknown."""
    if not known:
        return "—"
    if ns <= 0:
        return "due"
    s = ns // NS
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class FundingWidget(QWidget):
    """Funding figures on top, history plots below; ``tick(now_ns)`` moves the countdown."""

    def __init__(self, parent: QWidget | None = None, palette: Palette = DARK) -> None:
        super().__init__(parent)
        self._palette = palette
        self.state: FundingState | None = None
        self.frame: ChartFrame | None = None
        self.now_ns = 0
        self._history_version = -1
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(2)
        grid = QGridLayout()
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(1)
        self.labels: dict[str, QLabel] = {}
        fields = (("rate", "Funding"), ("annual", "Annualised"), ("countdown", "Next in"), ("mark", "Mark"),
                  ("index", "Index"), ("premium", "Premium"), ("oi", "Open interest"), ("oi_change", "OI Δ 1 h"),
                  ("liq", "Liquidations 5 min"), ("cost", "Next funding"))
        for i, (key, title) in enumerate(fields):
            t = QLabel(title)
            t.setObjectName("dim")
            v = QLabel("—")
            v.setObjectName(f"funding_{key}")
            grid.addWidget(t, i // 2, (i % 2) * 2)
            grid.addWidget(v, i // 2, (i % 2) * 2 + 1)
            self.labels[key] = v
        layout.addLayout(grid)
        pos = QHBoxLayout()
        pos.addWidget(QLabel("Position"))
        self.side_box = QComboBox()
        self.side_box.addItems(["long", "short"])
        self.qty_spin = QDoubleSpinBox(decimals=3, maximum=1e12, value=1.0, singleStep=1.0,
                                       toolTip="contracts held through the next funding")
        pos.addWidget(self.side_box)
        pos.addWidget(self.qty_spin, 1)
        pos.addWidget(QLabel("contracts"))
        layout.addLayout(pos)
        self.view = pg.GraphicsLayoutWidget()
        self.rate_plot = self.view.addPlot(row=0, col=0, axisItems={"bottom": pg.DateAxisItem(utcOffset=0)})
        self.oi_plot = self.view.addPlot(row=1, col=0, axisItems={"bottom": pg.DateAxisItem(utcOffset=0),
                                                                  "left": CompactAxis("left")})
        self.oi_plot.setXLink(self.rate_plot)
        self.rate_plot.hideAxis("bottom")
        self.rate_plot.addLegend(offset=(4, 4), labelTextSize="7pt")
        self.rate_line = self.rate_plot.plot(connect="finite", name="rate %")
        self.premium_line = self.rate_plot.plot(connect="finite", name="premium %")
        self.oi_line = self.oi_plot.plot(connect="finite")
        self.oi_plot.setLabel("left", "OI")
        self.rate_plot.setLabel("left", "%")
        layout.addWidget(self.view, 1)
        self.set_palette_theme(palette)
        self.side_box.currentIndexChanged.connect(lambda _i: self._update_figures())
        self.qty_spin.valueChanged.connect(lambda _v: self._update_figures())

    def set_palette_theme(self, palette: Palette) -> None:
        """Recolour."""
        self._palette = palette
        style_widget(self.view, palette)
        for p in (self.rate_plot, self.oi_plot):
            style_plot(p, palette)
            p.showAxis("left")
            p.getAxis("left").setWidth(58)
            p.getAxis("left").setTextPen(pg.mkPen(palette.text_dim))
            p.getAxis("left").enableAutoSIPrefix(False)
            p.getAxis("right").setWidth(10)
            p.getAxis("right").setStyle(showValues=False)
        self.rate_line.setPen(pen(palette, "large", 1.0))  # 1 px: the raster engine's fast line path
        self.premium_line.setPen(pen(palette, "accent", 1.0))
        self.oi_line.setPen(pen(palette, "absorption", 1.0))
        self._history_version = -1
        if self.frame is not None:
            self.set_chart_frame(self.frame)

    def set_position(self, qty: float, side: int) -> None:
        """Contracts held and side (BID long, ASK short) for the cost figure."""
        if side not in (BID, ASK):
            raise ValueError(f"side must be BID (+1, long) or ASK (-1, short), got {side!r}")
        self.side_box.setCurrentIndex(0 if side == BID else 1)
        self.qty_spin.setValue(qty)

    def set_chart_frame(self, frame: ChartFrame) -> None:
        """Take funding state, history and liquidations."""
        self.frame = frame
        self.state = frame.funding
        self.now_ns = max(self.now_ns, frame.exch_ts)
        if frame.funding_version != self._history_version:
            self._history_version = frame.funding_version
            h = frame.funding_history
            if len(h):
                t = h["exch_ts"] / NS
                rate = np.where(h["next_funding_ts"] > 0, h["rate"] * 100, np.nan)  # before the first funding row
                self.rate_line.setData(t, rate, connect="finite")
                with np.errstate(invalid="ignore", divide="ignore"):
                    prem = np.where(h["index_px"] > 0, (h["mark_px"] - h["index_px"]) / h["index_px"] * 100, np.nan)
                self.premium_line.setData(t, prem, connect="finite")
                self.oi_line.setData(t, h["open_interest"], connect="finite")
                oi_range = padded_range(h["open_interest"])
                if oi_range is not None:  # set, not auto: a flat OI would auto-range to a sliver
                    self.oi_plot.setYRange(*oi_range, padding=0)
                settle(self.rate_plot.vb, self.oi_plot.vb)  # auto-range now, not inside the paint
            self._update_figures()

    def tick(self, now_ns: int) -> None:
        """The 1 Hz clock (exchange time): move the countdown."""
        self.now_ns = max(self.now_ns, int(now_ns))
        self._update_figures()

    def oi_change(self, window_ns: int = OI_WINDOW_NS) -> float:
        """Open interest now minus ``window_ns`` ago from the history (0 when unknown)."""
        if self.frame is None:
            return 0.0
        h = self.frame.funding_history
        known = h[np.isfinite(h["open_interest"])] if len(h) else h
        if len(known) == 0:
            return 0.0
        cutoff = int(known["exch_ts"][-1]) - window_ns
        i = int(np.searchsorted(known["exch_ts"], cutoff, side="right")) - 1
        return float(known["open_interest"][-1] - known["open_interest"][max(i, 0)])

    def liquidations(self, window_ns: int = LIQ_WINDOW_NS) -> tuple[int, float, float]:
        """(count, long liquidations qty, short liquidations qty) within ``window_ns`` of now.

        A liquidation row's side is the forced order's: a SELL closes a long.
        """
        if self.frame is None or len(self.frame.liquidations) == 0:
            return 0, 0.0, 0.0
        liq = self.frame.liquidations
        recent = liq[liq["exch_ts"] >= self.now_ns - window_ns]
        sells = (recent["ev"] & BUY_EVENT) == 0
        return int(len(recent)), float(recent["qty"][sells].sum()), float(recent["qty"][~sells].sum())

    def holding_cost(self) -> float | None:
        """Cost (> 0) or income (< 0) of the chosen position through the next funding; None when unknown."""
        s = self.state
        if s is None or s.mark_px <= 0:
            return None
        side = BID if self.side_box.currentIndex() == 0 else ASK
        return s.holding_cost(self.qty_spin.value(), side)

    def _update_figures(self) -> None:
        s = self.state
        lab = self.labels
        if s is None:
            for v in lab.values():
                v.setText("—")
            return
        pal = self._palette
        colour = pal.sell if s.rate > 0 else pal.buy  # positive: longs pay
        lab["rate"].setText(f"<span style='color:{colour}'>{s.rate * 100:+.4f} %</span> / {s.interval_hours:g} h")
        lab["annual"].setText(f"{s.annualised * 100:+.2f} %")
        lab["countdown"].setText(countdown_text(s.countdown_ns(self.now_ns), bool(s.next_funding_ts)))
        lab["mark"].setText(f"{s.mark_px:.6g}")
        lab["index"].setText(f"{s.index_px:.6g}" if s.index_px else "—")
        lab["premium"].setText(f"{s.premium * 100:+.4f} %" if s.index_px else "—")
        lab["oi"].setText(fmt.qty(s.open_interest) or "—")
        ch = self.oi_change()
        lab["oi_change"].setText(f"<span style='color:{pal.buy if ch >= 0 else pal.sell}'>{fmt.signed_qty(ch) or '0'}"
                                 "</span>")
        n, longs, shorts = self.liquidations()
        lab["liq"].setText(f"{n}  (longs {fmt.qty(longs) or '0'}, shorts {fmt.qty(shorts) or '0'})")
        cost = self.holding_cost()
        if cost is None:
            lab["cost"].setText("—")
        else:
            word = "pay" if cost > 0 else "receive"
            money = fmt.notional(abs(cost)) if abs(cost) >= 1000 else f"${abs(cost):.2f}"
            lab["cost"].setText(f"<span style='color:{pal.sell if cost > 0 else pal.buy}'>{word} {money}</span>")
