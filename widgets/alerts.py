"""The alert panel (what fired, click to jump the ladder) and the rule editor (what should fire)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.detection import KINDS
from widgets import fmt
from widgets.theme import DARK, Palette, list_table

# Rule kinds: the detector kinds plus the two the ladder creates by click.
RULE_KINDS = ("price", "size_at_level", *KINDS)
SIDES = {"any": 0, "bid": 1, "ask": -1}
MAX_ROWS = 500
ROW_FLASH_MS = 1500


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One user alert rule as the desk edits and stores it (converted to the engine's rule by the bridge)."""

    kind: str
    symbol: str = ""  # venue:SYMBOL, '' = every symbol
    side: int = 0  # +1 bid, -1 ask, 0 any
    price_tick: int | None = None  # price / size_at_level rules
    min_size: float = 0.0  # size threshold (size_at_level: fires when the level reaches it)
    band_ticks: int = 0
    cooldown_s: float = 30.0
    sound: bool = True
    enabled: bool = True
    once: bool = False  # price alerts fire once and disable themselves

    def __post_init__(self) -> None:
        if self.kind not in RULE_KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}")
        if self.side not in (-1, 0, 1):
            raise ValueError(f"alert side must be -1, 0 or +1, got {self.side!r}")
        if self.kind in ("price", "size_at_level") and self.price_tick is None:
            raise ValueError(f"a {self.kind} alert needs a price")
        if self.min_size < 0 or self.cooldown_s < 0 or self.band_ticks < 0:
            raise ValueError("alert size, cooldown and band must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the settings file."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleSpec:
        """Back from the settings file; unknown keys are ignored so old files keep loading."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def describe(self, format_price: Any = None) -> str:
        """One line for lists: ``price 0.4322 on demo:ALTUSDT``."""
        where = f" on {self.symbol}" if self.symbol else ""
        price = ""
        if self.price_tick is not None:
            price = f" {format_price(self.price_tick) if format_price else self.price_tick}"
        size = f" ≥ {fmt.qty(self.min_size)}" if self.min_size else ""
        return f"{self.kind}{price}{size}{where}"


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One fired alert as listed in the panel."""

    ts_ns: int
    symbol: str
    kind: str
    side: int
    tick: int
    price_text: str
    size: float
    evidence: str


class AlertPanel(QWidget):
    """Fired alerts, newest first: time, symbol, kind, side, price, size, evidence; click jumps the ladder."""

    alert_activated = Signal(str, "qint64")  # symbol, price tick
    rules_requested = Signal()
    sound_toggled = Signal(bool)
    tray_toggled = Signal(bool)
    mute_toggled = Signal(bool)

    HEADERS = ("Time", "Symbol", "Kind", "Side", "Price", "Size", "Evidence")

    def __init__(self, parent: QWidget | None = None, palette: Palette = DARK) -> None:
        super().__init__(parent)
        self._palette = palette
        self._records: list[AlertRecord] = []
        self._counts: Counter[str] = Counter()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        self.sound_box = QCheckBox("Sound", checked=True)
        self.tray_box = QCheckBox("Tray", checked=True)
        self.mute_button = QPushButton("Mute all", checkable=True)
        self.rules_button = QPushButton("Rules…")
        self.clear_button = QPushButton("Clear")
        for w in (self.sound_box, self.tray_box):
            bar.addWidget(w)
        bar.addStretch(1)
        for w in (self.mute_button, self.rules_button, self.clear_button):
            bar.addWidget(w)
        layout.addLayout(bar)
        self.table = list_table(self.HEADERS, self)
        layout.addWidget(self.table, 1)
        self.sound_box.toggled.connect(self.sound_toggled)
        self.tray_box.toggled.connect(self.tray_toggled)
        self.mute_button.toggled.connect(self._on_mute_toggled)
        self.rules_button.clicked.connect(self.rules_requested)
        self.clear_button.clicked.connect(self.clear)
        self.table.cellClicked.connect(self._on_cell_clicked)
        self._unflash = QTimer(self, singleShot=True, interval=ROW_FLASH_MS)
        self._unflash.timeout.connect(self._on_unflash)
        self._catching_up = False
        self._unflash_due = False  # rows flashed while catching up: they stay lit until it caught up

    @property
    def records(self) -> tuple[AlertRecord, ...]:
        """Alerts listed, newest first."""
        return tuple(self._records)

    @property
    def muted(self) -> bool:
        """Mute all: alerts are still listed but make no sound, tray message or ladder flash."""
        return self.mute_button.isChecked()

    def alert_count(self, symbol: str) -> int:
        """Alerts fired for a symbol since start (or the last clear)."""
        return self._counts[symbol]

    def set_palette_theme(self, palette: Palette) -> None:
        """Use another theme's colours for new rows."""
        self._palette = palette

    @property
    def catching_up(self) -> bool:
        """Whether the desk is catching up with a burst (alerts are listed, rows stay lit until it ends)."""
        return self._catching_up

    @property
    def flash_pending(self) -> bool:
        """Whether some listed rows are still lit (their unflash is timed or waits for catch-up's end)."""
        return self._unflash.isActive() or self._unflash_due

    def set_catching_up(self, on: bool) -> None:
        """Catching up with a burst: no unflash repaint of the table meanwhile; rows lit by then (or
        while catching up) are unlit ROW_FLASH_MS after it ended, so every new alert is seen lit."""
        if on == self._catching_up:
            return
        self._catching_up = on
        if on:
            if self._unflash.isActive():
                self._unflash.stop()
                self._unflash_due = True
        elif self._unflash_due:
            self._unflash_due = False
            self._unflash.start()

    def add_alert(self, record: AlertRecord) -> None:
        """List a fired alert at the top, flashing briefly."""
        self._records.insert(0, record)
        del self._records[MAX_ROWS:]
        self._counts[record.symbol] += 1
        p = self._palette
        side_text = {1: "bid", -1: "ask"}.get(record.side, "")
        side_colour = p.q("bid") if record.side == 1 else p.q("ask") if record.side == -1 else p.q("text")
        values = (
            fmt.clock(record.ts_ns), record.symbol, record.kind, side_text, record.price_text,
            fmt.qty(record.size), record.evidence,
        )
        self.table.insertRow(0)
        for col, text in enumerate(values):
            item = QTableWidgetItem(text)
            if col == 3:
                item.setForeground(QBrush(side_colour))
            if col in (4, 5):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            item.setBackground(QBrush(p.q("alert", 90)))
            self.table.setItem(0, col, item)
        while self.table.rowCount() > MAX_ROWS:
            self.table.removeRow(self.table.rowCount() - 1)
        if self._catching_up:
            self._unflash_due = True
        else:
            self._unflash.start()

    def clear(self) -> None:
        """Remove every listed alert and reset counts."""
        self._records.clear()
        self._counts.clear()
        self.table.setRowCount(0)

    def _on_unflash(self) -> None:
        for row in range(min(self.table.rowCount(), 50)):
            for col in range(self.table.columnCount()):
                item = self.table.item(row, col)
                if item is not None:
                    item.setBackground(QBrush(QColor(0, 0, 0, 0)))

    def _on_cell_clicked(self, row: int, _col: int) -> None:
        if 0 <= row < len(self._records):
            rec = self._records[row]
            self.alert_activated.emit(rec.symbol, rec.tick)

    def _on_mute_toggled(self, on: bool) -> None:
        self.mute_button.setText("Muted" if on else "Mute all")
        self.mute_toggled.emit(on)


class RuleEditor(QDialog):
    """Edit the list of alert rules: add, remove, enable, thresholds, cooldown, sound."""

    HEADERS = ("On", "Kind", "Symbol", "Side", "Price tick", "Min size", "Band", "Cooldown s", "Sound")

    def __init__(self, rules: list[RuleSpec], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Alert rules")
        self.resize(820, 360)
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, len(self.HEADERS), self)
        self.table.setHorizontalHeaderLabels(self.HEADERS)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        add = QPushButton("Add rule")
        remove = QPushButton("Remove selected")
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        layout.addLayout(row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        layout.addWidget(buttons)
        add.clicked.connect(lambda: self.add_rule(RuleSpec(kind="large_order", min_size=10_000.0)))
        remove.clicked.connect(self.remove_selected)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self._originals: list[RuleSpec] = []
        for rule in rules:
            self.add_rule(rule)

    def add_rule(self, rule: RuleSpec) -> None:
        """Append a row editing ``rule``."""
        r = self.table.rowCount()
        self.table.insertRow(r)
        self._originals.append(rule)
        on = QCheckBox(checked=rule.enabled)
        kind = QComboBox()
        kind.addItems(RULE_KINDS)
        kind.setCurrentText(rule.kind)
        symbol = QLineEdit(rule.symbol, placeholderText="any")
        side = QComboBox()
        side.addItems(list(SIDES))
        side.setCurrentText({v: k for k, v in SIDES.items()}[rule.side])
        price = QSpinBox(minimum=-1, maximum=2_000_000_000, specialValueText="—")
        price.setValue(rule.price_tick if rule.price_tick is not None else -1)
        size = QDoubleSpinBox(decimals=3, maximum=1e12, value=rule.min_size)
        band = QSpinBox(maximum=1000, value=rule.band_ticks)
        cooldown = QDoubleSpinBox(decimals=1, maximum=86_400, value=rule.cooldown_s)
        sound = QCheckBox(checked=rule.sound)
        for col, w in enumerate((on, kind, symbol, side, price, size, band, cooldown, sound)):
            self.table.setCellWidget(r, col, w)

    def remove_selected(self) -> None:
        """Delete the selected rows."""
        for r in sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(r)
            del self._originals[r]

    def rules(self) -> list[RuleSpec]:
        """The rules as edited; raises ValueError naming the row of an invalid one."""
        out = []
        for r in range(self.table.rowCount()):
            cell = self.table.cellWidget
            price = cell(r, 4).value()
            try:
                out.append(
                    replace(
                        self._originals[r],
                        enabled=cell(r, 0).isChecked(),
                        kind=cell(r, 1).currentText(),
                        symbol=cell(r, 2).text().strip(),
                        side=SIDES[cell(r, 3).currentText()],
                        price_tick=None if price < 0 else int(price),
                        min_size=float(cell(r, 5).value()),
                        band_ticks=int(cell(r, 6).value()),
                        cooldown_s=float(cell(r, 7).value()),
                        sound=cell(r, 8).isChecked(),
                    )
                )
            except ValueError as exc:
                raise ValueError(f"rule {r + 1}: {exc}") from None
        return out
