"""The watchlist: one row per symbol, so a trader sees at a glance which small cap is liquid enough."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QAbstractItemView,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.events import NO_PRICE
from app.core.frame import Frame
from widgets import fmt
from widgets.theme import DARK, Palette, list_table

DEPTH_BAND = 0.005  # ±0.5 % of mid


@dataclass(frozen=True, slots=True)
class WatchRow:
    """The figures of one watchlist row (None = not known yet)."""

    symbol: str
    last: float | None = None
    change_24h: float | None = None  # fraction
    volume_24h: float | None = None  # quote currency
    spread_ticks: int | None = None
    spread_bps: float | None = None
    depth_notional: float | None = None  # bid + ask notional within ±0.5 % of mid
    funding_rate: float | None = None
    open_interest: float | None = None
    alerts: int = 0
    state: str = ""
    decimals: int = 6  # price digits of the instrument


def watch_row(key: str, frame: Frame | None, alerts: int = 0, change_24h: float | None = None,
              volume_24h: float | None = None) -> WatchRow:
    """Compute a row from a symbol's latest frame (spread, depth within ±0.5 %, funding, OI)."""
    if frame is None:
        return WatchRow(key, alerts=alerts, change_24h=change_24h, volume_24h=volume_24h)
    inst = frame.instrument
    last = None
    if frame.last_trade_tick != NO_PRICE:
        last = float(inst.to_price(frame.last_trade_tick))
    spread_ticks = spread_bps = depth = None
    mid = frame.mid_tick
    if mid is not None:
        spread_ticks = frame.best_ask_tick - frame.best_bid_tick
        spread_bps = spread_ticks / mid * 1e4
        band = mid * DEPTH_BAND
        ticks = frame.ladder_ticks
        inside = (ticks >= mid - band) & (ticks <= mid + band)
        size = frame.ladder_bid[inside] + frame.ladder_ask[inside]
        depth = float(np.sum(size * ticks[inside]) * inst.tick_size * inst.multiplier)
        if last is None:
            last = float(mid * inst.tick_size)
    funding = frame.funding
    return WatchRow(
        symbol=key,
        last=last,
        change_24h=change_24h,
        volume_24h=volume_24h,
        spread_ticks=spread_ticks,
        spread_bps=spread_bps,
        depth_notional=depth,
        funding_rate=funding.rate if funding else None,
        open_interest=funding.open_interest if funding and funding.open_interest else None,
        alerts=alerts,
        state=frame.state,
        decimals=inst.price_decimals,
    )


class WatchlistWidget(QWidget):
    """Symbols with last, 24 h change/volume, spread, depth ±0.5 %, funding, OI, alerts; click opens one."""

    symbol_activated = Signal(str)

    HEADERS = ("Symbol", "Last", "24h", "Vol 24h", "Spread", "Depth ±0.5%", "Funding", "OI", "Alerts")

    def __init__(self, parent: QWidget | None = None, palette: Palette = DARK) -> None:
        super().__init__(parent)
        self._palette = palette
        self._rows: dict[str, WatchRow] = {}
        self._order: list[str] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.table = list_table(self.HEADERS, self)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        layout.addWidget(self.table)
        self.table.cellClicked.connect(self._on_cell_clicked)

    @property
    def symbols(self) -> list[str]:
        """Symbols listed, in order."""
        return list(self._order)

    def row(self, key: str) -> WatchRow:
        """The figures shown for a symbol."""
        return self._rows[key]

    def set_palette_theme(self, palette: Palette) -> None:
        """Recolour with another theme."""
        self._palette = palette
        for key in self._order:
            self.set_row(self._rows[key])

    def add_symbol(self, key: str) -> None:
        """List a symbol (no-op when listed)."""
        if key not in self._rows:
            self.set_row(WatchRow(key))

    def remove_symbol(self, key: str) -> None:
        """Stop listing a symbol."""
        if key not in self._rows:
            return
        i = self._order.index(key)
        self._order.pop(i)
        del self._rows[key]
        self.table.removeRow(i)

    def set_row(self, row: WatchRow) -> None:
        """Show new figures for a listed symbol (adds it when missing)."""
        if row.symbol not in self._rows:
            self._order.append(row.symbol)
            self.table.insertRow(len(self._order) - 1)
        self._rows[row.symbol] = row
        r = self._order.index(row.symbol)
        p = self._palette

        def num(v: float | None, text: str) -> str:
            return "—" if v is None else text

        cells = (
            row.symbol,
            num(row.last, f"{row.last:.{row.decimals}f}" if row.last is not None else ""),
            num(row.change_24h, fmt.percent(row.change_24h or 0.0)),
            num(row.volume_24h, fmt.notional(row.volume_24h or 0.0)),
            num(row.spread_ticks, f"{row.spread_ticks}t {row.spread_bps or 0:.1f}bp"),
            num(row.depth_notional, fmt.notional(row.depth_notional or 0.0)),
            num(row.funding_rate, fmt.percent(row.funding_rate or 0.0, 4)),
            num(row.open_interest, fmt.qty(row.open_interest or 0.0)),
            str(row.alerts) if row.alerts else "",
        )
        for col, text in enumerate(cells):
            item = self.table.item(r, col)
            if item is None:
                item = QTableWidgetItem()
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, col, item)
            if item.text() != text:  # unchanged cells stay quiet: no dataChanged, no column re-fit
                item.setText(text)
            colour = p.q("text")
            if col == 2 and row.change_24h:
                colour = p.q("buy" if row.change_24h > 0 else "sell")
            elif col == 6 and row.funding_rate:
                colour = p.q("buy" if row.funding_rate > 0 else "sell")
            elif col == 8 and row.alerts:
                colour = p.q("alert")
            elif col == 0 and row.state and row.state not in ("live", "replay"):
                colour = p.q("stale")
            if item.foreground().color() != colour:
                item.setForeground(QBrush(colour))

    def _on_cell_clicked(self, row: int, _col: int) -> None:
        if 0 <= row < len(self._order):
            self.symbol_activated.emit(self._order[row])
