"""Colours and style sheets of the desk: one palette object per theme, dark by default."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QFont, QFontDatabase
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QWidget

THEMES = ("dark", "light")


@dataclass(frozen=True, slots=True)
class Palette:
    """Every colour a view paints with; widgets read these, never literal colours."""

    name: str
    window: str
    panel: str
    panel_alt: str
    grid: str
    text: str
    text_dim: str
    price_bg: str
    bid: str
    bid_bar: str
    bid_best: str
    ask: str
    ask_bar: str
    ask_best: str
    buy: str  # aggressive buy prints
    sell: str
    large: str  # large resting order outline/fill
    iceberg: str
    absorption: str
    gap: str  # liquidity gap shading
    flash: str
    alert: str
    stale: str
    stack: str
    pull: str
    accent: str

    def q(self, attr: str, alpha: int | None = None) -> QColor:
        """The named colour as a QColor, optionally with alpha 0..255."""
        colour = QColor(getattr(self, attr))
        if alpha is not None:
            colour.setAlpha(alpha)
        return colour


DARK = Palette(
    name="dark",
    window="#101318",
    panel="#151a21",
    panel_alt="#1a2029",
    grid="#232a35",
    text="#d5dbe3",
    text_dim="#7c8797",
    price_bg="#1d232d",
    bid="#4fa3ff",
    bid_bar="#1f5fa8",
    bid_best="#2d7fe0",
    ask="#ff6b6b",
    ask_bar="#a8323a",
    ask_best="#e04550",
    buy="#3ecf8e",
    sell="#ff6b6b",
    large="#f5c542",
    iceberg="#39d0e0",
    absorption="#c792ea",
    gap="#3a2f12",
    flash="#ffffff",
    alert="#ffb020",
    stale="#ff9f1a",
    stack="#3ecf8e",
    pull="#ff8a65",
    accent="#4fa3ff",
)

LIGHT = Palette(
    name="light",
    window="#f4f6f9",
    panel="#ffffff",
    panel_alt="#f0f3f7",
    grid="#dde3ea",
    text="#1c2330",
    text_dim="#6a7586",
    price_bg="#e8edf3",
    bid="#1560bd",
    bid_bar="#9cc3f0",
    bid_best="#5b9be6",
    ask="#c62828",
    ask_bar="#f0a8a8",
    ask_best="#e26a6a",
    buy="#138a54",
    sell="#c62828",
    large="#d49b00",
    iceberg="#00838f",
    absorption="#7b3fa0",
    gap="#fbeec8",
    flash="#202020",
    alert="#d97a00",
    stale="#d46a00",
    stack="#138a54",
    pull="#d84315",
    accent="#1560bd",
)


def palette(name: str) -> Palette:
    """The palette of a theme name; raises on an unknown theme."""
    if name == "dark":
        return DARK
    if name == "light":
        return LIGHT
    raise ValueError(f"unknown theme {name!r}: choose one of {', '.join(THEMES)}")


def mono_font(point_size: float = 9.0) -> QFont:
    """The fixed-pitch font numbers are drawn in, so digits line up in columns."""
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setPointSizeF(point_size)
    font.setStyleHint(QFont.StyleHint.Monospace)
    return font


def style_sheet(p: Palette) -> str:
    """The application style sheet for a palette (docks, tables, toolbars, status bar)."""
    return f"""
QMainWindow, QDialog {{ background: {p.window}; color: {p.text}; }}
QWidget {{ color: {p.text}; }}
QDockWidget {{ color: {p.text_dim}; titlebar-close-icon: none; }}
QDockWidget::title {{ background: {p.panel_alt}; padding: 3px 6px; border-bottom: 1px solid {p.grid}; }}
QTableWidget, QTableView, QListWidget, QTreeView {{
    background: {p.panel}; alternate-background-color: {p.panel_alt}; gridline-color: {p.grid};
    border: 1px solid {p.grid}; selection-background-color: {p.grid}; selection-color: {p.text};
}}
QTextBrowser, QTextEdit, QPlainTextEdit {{
    background: {p.panel}; color: {p.text}; border: 1px solid {p.grid};
}}
QHeaderView::section {{
    background: {p.panel_alt}; color: {p.text_dim}; border: none; border-right: 1px solid {p.grid};
    border-bottom: 1px solid {p.grid}; padding: 2px 4px;
}}
QToolBar {{ background: {p.panel_alt}; border: none; border-bottom: 1px solid {p.grid}; spacing: 4px; padding: 2px; }}
QStatusBar {{ background: {p.panel_alt}; color: {p.text_dim}; border-top: 1px solid {p.grid}; }}
QStatusBar QLabel {{ padding: 0 6px; }}
QPushButton, QToolButton {{
    background: {p.panel}; border: 1px solid {p.grid}; border-radius: 3px; padding: 2px 8px; color: {p.text};
}}
QPushButton:hover, QToolButton:hover {{ border-color: {p.accent}; }}
QPushButton:checked, QToolButton:checked {{ background: {p.grid}; border-color: {p.accent}; }}
QComboBox, QSpinBox, QDoubleSpinBox, QLineEdit {{
    background: {p.panel}; border: 1px solid {p.grid}; border-radius: 3px; padding: 1px 4px; color: {p.text};
}}
QAbstractSpinBox QLineEdit {{ border: none; padding: 0; background: transparent; }}
QAbstractSpinBox {{ min-height: 18px; }}
QSlider::groove:horizontal {{ height: 4px; background: {p.grid}; border-radius: 2px; }}
QSlider::handle:horizontal {{ width: 10px; margin: -5px 0; background: {p.accent}; border-radius: 5px; }}
QSlider::sub-page:horizontal {{ background: {p.accent}; border-radius: 2px; }}
QMenuBar {{ background: {p.panel_alt}; color: {p.text}; }}
QMenuBar::item:selected, QMenu::item:selected {{ background: {p.grid}; }}
QMenu {{ background: {p.panel}; color: {p.text}; border: 1px solid {p.grid}; }}
QTabBar::tab {{ background: {p.panel_alt}; color: {p.text_dim}; padding: 3px 10px; border: 1px solid {p.grid}; }}
QTabBar::tab:selected {{ color: {p.text}; background: {p.panel}; }}
"""


def list_table(headers: tuple[str, ...], parent: QWidget) -> QTableWidget:
    """A read-only table of whole-row records (alerts, watchlist): compact rows, no grid, last column stretched."""
    table = QTableWidget(0, len(headers), parent)
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(20)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table
