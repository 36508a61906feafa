"""The desk: ladder in the middle, tape/alerts/watchlist as dock panels, session bar, status bar.

The window knows nothing of the engine: the bridge pushes frames and events in through the public
methods and listens to the window's command signals.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QLabel,
    QLineEdit,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QSystemTrayIcon,
    QTextBrowser,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.core.events import ASK, BID
from app.core.frame import Frame
from app.settings import Settings
from widgets import fmt
from widgets.alerts import AlertPanel, AlertRecord, RuleEditor, RuleSpec
from widgets.charts.docks import ChartDocks
from widgets.ladder import TICK_GROUPS, LadderWidget
from widgets.session_bar import SessionBar
from widgets.status_bar import DeskStatusBar
from widgets.tape import TimeAndSalesWidget
from widgets.theme import Palette, palette, style_sheet
from widgets.watchlist import WatchlistWidget, watch_row

VENUES = ("demo", "binance-usdm", "bybit-linear")

# (key sequence, what it does) — the help dialog lists exactly these.
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("C", "Centre the ladder on the market"),
    ("A", "Toggle auto-centre"),
    ("+  /  =", "Coarser tick grouping"),
    ("-", "Finer tick grouping"),
    ("Up / Down", "Scroll the ladder one row"),
    ("PgUp / PgDown", "Scroll the ladder ten rows"),
    ("Space", "Replay: play / pause"),
    (".", "Replay: step one message"),
    ("[  /  ]", "Replay: slower / faster"),
    ("Ctrl+O", "Open a capture for replay"),
    ("Ctrl+R", "Record the live session (toggle)"),
    ("Ctrl+K", "Add a symbol (source picker)"),
    ("Ctrl+1 … Ctrl+9", "Open the n-th watchlist symbol"),
    ("Ctrl+Shift+A", "Edit alert rules"),
    ("M", "Mute all alerts (toggle)"),
    ("Ctrl+T", "Switch dark / light theme"),
    ("Ctrl+Shift+R", "Reset the panel layout"),
    ("F1  /  ?", "This help"),
    ("Ctrl+Q", "Quit"),
)


class SourcePicker(QDialog):
    """Pick venue + symbol; the symbol list is searchable and comes from the venue's instruments."""

    def __init__(self, instruments: Callable[[str], list[str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add symbol")
        self.resize(360, 420)
        self._instruments = instruments
        layout = QVBoxLayout(self)
        self.venue_box = QComboBox()
        self.venue_box.addItems(VENUES)
        self.filter_edit = QLineEdit(placeholderText="search symbol, or type one (e.g. SOLUSDT)")
        self.list = QListWidget()
        layout.addWidget(QLabel("Venue"))
        layout.addWidget(self.venue_box)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.list, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        layout.addWidget(buttons)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.venue_box.currentTextChanged.connect(self._reload)
        self.filter_edit.textChanged.connect(self._refilter)
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        self._all: list[str] = []
        self._reload(self.venue_box.currentText())

    def _reload(self, venue: str) -> None:
        try:
            self._all = sorted(self._instruments(venue))
        except Exception as exc:  # noqa: BLE001 - a venue's list failing must not close the dialog
            self._all = []
            self.list.clear()
            self.list.addItem(f"(instrument list unavailable: {exc})")
            return
        self._refilter(self.filter_edit.text())

    def _refilter(self, text: str) -> None:
        self.list.clear()
        needle = text.strip().upper()
        self.list.addItems([s for s in self._all if needle in s.upper()][:500])
        if self.list.count():
            self.list.setCurrentRow(0)

    def source(self) -> str | None:
        """``venue:SYMBOL`` chosen, or None."""
        item = self.list.currentItem()
        symbol = item.text() if item and not item.text().startswith("(") else self.filter_edit.text().strip().upper()
        return f"{self.venue_box.currentText()}:{symbol}" if symbol else None


class MainWindow(QMainWindow):
    """DepthDesk's main window; the bridge drives it through ``show_frame``/``add_alert``/``set_*``."""

    symbol_requested = Signal(str)  # the user wants this symbol's ladder (added when new)
    rules_changed = Signal(list)  # list[RuleSpec]
    open_capture_requested = Signal(str)
    record_toggled = Signal(bool)
    play_toggled = Signal(bool)
    speed_changed = Signal(float)
    step_requested = Signal()
    seek_requested = Signal("qint64")

    def __init__(self, settings: Settings | None = None,
                 instruments: Callable[[str], list[str]] | None = None) -> None:
        super().__init__()
        self.settings = settings
        self._instruments = instruments or (lambda venue: [])
        self._theme = settings.theme if settings else "dark"
        p = palette(self._theme)
        self.setWindowTitle("DepthDesk")
        self.setObjectName("DepthDeskMainWindow")
        self.resize(1600, 1000)
        self.active_symbol: str | None = None
        self.rules: list[RuleSpec] = []
        self.sound_on = True
        self.tray_on = True
        self._last_frames: dict[str, Frame] = {}  # latest shown, per symbol
        self._watch_frames: dict[str, Frame] = {}  # latest pulled for the watchlist
        self._session_mode = "LIVE"
        self._session_ns = 0

        self.ladder = LadderWidget(palette=p)
        self.setCentralWidget(self.ladder)
        self.tape = TimeAndSalesWidget(palette=p)
        self.alerts = AlertPanel(palette=p)
        self.watchlist = WatchlistWidget(palette=p)
        self.session_bar = SessionBar(palette=p)
        self.status = DeskStatusBar(palette=p)
        self.setStatusBar(self.status)
        self.symbol_label = QLabel("—")
        self.symbol_label.setStyleSheet("font-weight: bold; padding: 0 8px;")

        toolbar = QToolBar("Session", self)
        toolbar.setObjectName("session_toolbar")
        toolbar.setMovable(False)
        toolbar.addWidget(self.symbol_label)
        toolbar.addWidget(self.session_bar)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
        self.docks: dict[str, QDockWidget] = {}
        self._add_dock("tape", "Time && Sales", self.tape, Qt.DockWidgetArea.RightDockWidgetArea)
        self._add_dock("watchlist", "Watchlist", self.watchlist, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._add_dock("alerts", "Alerts", self.alerts, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.splitDockWidget(self.docks["watchlist"], self.docks["alerts"], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["tape"]], [400], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["watchlist"], self.docks["alerts"]], [760, 840], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["alerts"]], [230], Qt.Orientation.Vertical)
        self.charts = ChartDocks(self, p, self._add_dock, self.docks)  # left of the ladder, open by default
        self._default_state = self.saveState()

        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            icon = QPixmap(16, 16)
            icon.fill(p.q("accent"))
            self.tray = QSystemTrayIcon(QIcon(icon), self)
            self.tray.show()

        self._build_menus()
        self._build_shortcuts()
        self._wire()
        self.apply_theme(self._theme)
        if settings is not None:
            self.restore_settings()

    # ----------------------------------------------------------------- building
    def _add_dock(self, name: str, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        self.docks[name] = dock

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "Add symbol…", self.pick_source)
        self._action(file_menu, "Open capture…", self.session_bar.open_button.click)
        file_menu.addSeparator()
        self._action(file_menu, "Quit", self.close)
        view = bar.addMenu("&View")
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())
        view.addSeparator()
        self._action(view, "Dark / light theme", self.toggle_theme)
        self._action(view, "Reset layout", self.reset_layout)
        ladder = bar.addMenu("&Ladder")
        self._action(ladder, "Centre on market", self.ladder.centre_now)
        self.auto_centre_action = QAction("Auto-centre", self, checkable=True, checked=True)
        self.auto_centre_action.toggled.connect(self.ladder.set_auto_centre)
        ladder.addAction(self.auto_centre_action)
        group_menu = ladder.addMenu("Tick grouping")
        for g in TICK_GROUPS:
            self._action(group_menu, f"{g} tick{'s' if g > 1 else ''}", lambda g=g: self.ladder.set_group(g))
        alerts = bar.addMenu("&Alerts")
        self._action(alerts, "Rules…", self.edit_rules)
        alerts.addAction(self._checkable("Mute all", self.alerts.mute_button))
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "Keyboard shortcuts", self.show_shortcuts)

    def _action(self, menu, text: str, slot: Callable[[], object]) -> QAction:  # noqa: ANN001 - QMenu
        act = QAction(text, self)
        act.triggered.connect(lambda _checked=False: slot())
        menu.addAction(act)
        return act

    def _checkable(self, text: str, button) -> QAction:  # noqa: ANN001 - a checkable QAbstractButton
        act = QAction(text, self, checkable=True)
        act.toggled.connect(button.setChecked)
        button.toggled.connect(act.setChecked)
        return act

    def _build_shortcuts(self) -> None:
        lad = self.ladder
        bindings: list[tuple[str, Callable[[], object]]] = [
            ("C", lad.centre_now),
            ("A", lambda: lad.set_auto_centre(not lad.auto_centre)),
            ("+", lad.group_coarser),
            ("=", lad.group_coarser),
            ("-", lad.group_finer),
            ("Up", lambda: lad.scroll_rows(1)),
            ("Down", lambda: lad.scroll_rows(-1)),
            ("PgUp", lambda: lad.scroll_rows(10)),
            ("PgDown", lambda: lad.scroll_rows(-10)),
            ("Space", self.session_bar.toggle_play),
            (".", lambda: self.session_bar.step_button.isEnabled() and self.session_bar.step_button.click()),
            ("[", lambda: self._nudge_speed(-1)),
            ("]", lambda: self._nudge_speed(1)),
            ("Ctrl+O", self.session_bar.open_button.click),
            ("Ctrl+R", lambda: self.session_bar.record_button.isEnabled() and self.session_bar.record_button.toggle()),
            ("Ctrl+K", self.pick_source),
            ("Ctrl+Shift+A", self.edit_rules),
            ("M", self.alerts.mute_button.toggle),
            ("Ctrl+T", self.toggle_theme),
            ("Ctrl+Shift+R", self.reset_layout),
            ("F1", self.show_shortcuts),
            ("?", self.show_shortcuts),
            ("Ctrl+Q", self.close),
        ]
        for n in range(1, 10):
            bindings.append((f"Ctrl+{n}", lambda n=n: self._open_nth(n)))
        self.shortcuts: dict[str, QShortcut] = {}
        for keys, slot in bindings:
            sc = QShortcut(QKeySequence(keys), self)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(lambda slot=slot: slot())
            self.shortcuts[keys] = sc

    def _wire(self) -> None:
        self.ladder.price_clicked.connect(self._on_price_clicked)
        self.ladder.size_alert_requested.connect(self._on_size_alert_requested)
        self.ladder.auto_centre_changed.connect(self.auto_centre_action.setChecked)
        self.tape.print_clicked.connect(self.ladder.jump_to)
        self.charts.heatmap.price_clicked.connect(self.ladder.jump_to)
        self.alerts.alert_activated.connect(self._on_alert_activated)
        self.alerts.rules_requested.connect(self.edit_rules)
        self.alerts.sound_toggled.connect(lambda on: setattr(self, "sound_on", on))
        self.alerts.tray_toggled.connect(lambda on: setattr(self, "tray_on", on))
        self.watchlist.symbol_activated.connect(self.symbol_requested)
        sb = self.session_bar
        sb.open_requested.connect(self.open_capture_requested)
        sb.record_toggled.connect(self.record_toggled)
        sb.play_toggled.connect(self.play_toggled)
        sb.speed_changed.connect(self.speed_changed)
        sb.step_requested.connect(self.step_requested)
        sb.seek_requested.connect(self.seek_requested)

    # ----------------------------------------------------------------- what the bridge calls
    def set_active_symbol(self, key: str) -> None:
        """Show this symbol's ladder and tape (frames for it follow through ``show_frame``)."""
        self.active_symbol = key
        self.watchlist.add_symbol(key)
        self.symbol_label.setText(key)
        self.tape.clear()
        self._update_title()

    def show_frame(self, frame: Frame) -> None:
        """Draw the active symbol's new frame (called by the frame clock, at most once per version)."""
        self.ladder.set_frame(frame)
        self.tape.set_frame(frame)
        self._last_frames[frame.instrument.key] = frame
        self._session_ns = frame.local_ts  # replay: the capture's receive clock, as its timeline

    def note_frame(self, frame: Frame) -> None:
        """Remember a symbol's latest watchlist frame (wide ladder: depth within ±0.5 %)."""
        self._watch_frames[frame.instrument.key] = frame

    def tick_1hz(self, msgs_per_s: float, lag_ms: float | None, fps: float, ring_fill: float) -> None:
        """Slow clock: status figures, watchlist rows, session clock and window title."""
        self.status.set_rates(msgs_per_s, lag_ms, fps, ring_fill)
        for key in self.watchlist.symbols:
            frame = self._watch_frames.get(key) or self._last_frames.get(key)
            self.watchlist.set_row(watch_row(key, frame, self.alerts.alert_count(key)))
        self.session_bar.set_time(self._session_ns)
        self._update_title()

    def set_catching_up(self, on: bool) -> None:
        """The engine is behind a burst (the bridge paints at its catch-up rate): widgets that animate or
        repaint on their own clocks hold still until it caught up."""
        self.ladder.set_catching_up(on)
        self.alerts.set_catching_up(on)

    def set_feed_state(self, venue: str, symbol: str, state: str, reason: str = "") -> None:
        """A feed state change: status badge, and STALE on the ladder when it is the active symbol's."""
        self.status.set_feed_state(venue, state, reason)
        if self.active_symbol in (f"{venue}:{symbol}", None) or not symbol:
            self.ladder.set_feed_state(state)

    def set_session(self, mode: str, span: tuple[int, int] = (0, 0)) -> None:
        """LIVE or REPLAY (with the capture's time span)."""
        self._session_mode = mode
        self.session_bar.set_mode(mode, span)
        self._update_title()

    def add_alert(self, record: AlertRecord, sound: bool = True) -> None:
        """A fired alert: list it; unless muted flash the ladder row, beep and notify the tray."""
        self.alerts.add_alert(record)
        if self.alerts.muted:
            return
        if record.symbol == self.active_symbol:
            self.ladder.flash_price(record.tick)
        if sound and self.sound_on:
            QApplication.beep()
        if self.tray is not None and self.tray_on:
            self.tray.showMessage(
                f"{record.kind} {record.symbol}", f"{record.price_text} {fmt.qty(record.size)} {record.evidence}",
                QSystemTrayIcon.MessageIcon.Information, 4000,
            )

    def set_rules(self, rules: list[RuleSpec]) -> None:
        """Replace the alert rules (and tell the bridge)."""
        self.rules = list(rules)
        self.rules_changed.emit(list(self.rules))

    # ----------------------------------------------------------------- user actions
    def pick_source(self) -> None:
        """Open the source picker; the chosen ``venue:SYMBOL`` is requested."""
        dialog = SourcePicker(self._instruments, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            source = dialog.source()
            if source:
                self.symbol_requested.emit(source)

    def edit_rules(self) -> None:
        """Open the rule editor; an invalid rule is reported and nothing changes."""
        editor = RuleEditor(self.rules, self)
        if editor.exec() != QDialog.DialogCode.Accepted:
            return
        try:
            self.set_rules(editor.rules())
        except ValueError as exc:
            QMessageBox.warning(self, "Alert rules", str(exc))

    def show_shortcuts(self) -> None:
        """The keyboard shortcut help dialog."""
        self.shortcut_help().show()

    def shortcut_help(self) -> QDialog:
        """Build the help dialog listing :data:`SHORTCUTS`."""
        dialog = QDialog(self)
        dialog.setWindowTitle("Keyboard shortcuts")
        dialog.resize(460, 520)
        layout = QVBoxLayout(dialog)
        text = QTextBrowser(dialog)
        rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in SHORTCUTS)
        text.setHtml(
            "<h3>Keyboard shortcuts</h3><table>" + rows + "</table>"
            "<p>Mouse: click a price to set a price alert; right-click a level for "
            "“alert on size at this level”; wheel scrolls the ladder.</p>"
        )
        layout.addWidget(text)
        return dialog

    def toggle_theme(self) -> None:
        """Switch dark/light."""
        self.apply_theme("light" if self._theme == "dark" else "dark")

    def apply_theme(self, name: str) -> None:
        """Restyle every panel with a theme."""
        p: Palette = palette(name)
        self._theme = name
        self.setStyleSheet(style_sheet(p))
        for w in (self.ladder, self.tape, self.alerts, self.watchlist, self.session_bar, self.status):
            w.set_palette_theme(p)
        self.charts.set_palette_theme(p)
        if self.settings is not None:
            self.settings.theme = name

    @property
    def theme(self) -> str:
        """Current theme name."""
        return self._theme

    def reset_layout(self) -> None:
        """Put every panel back where it starts."""
        self.restoreState(self._default_state)
        for dock in self.docks.values():
            dock.show()

    def _open_nth(self, n: int) -> None:
        symbols = self.watchlist.symbols
        if 0 < n <= len(symbols):
            self.symbol_requested.emit(symbols[n - 1])

    def _nudge_speed(self, step: int) -> None:
        box = self.session_bar.speed_box
        if box.isEnabled():
            box.setCurrentIndex(max(0, min(box.count() - 1, box.currentIndex() + step)))

    def _on_price_clicked(self, tick: int) -> None:
        if self.active_symbol is None:
            return
        frame = self.ladder.frame
        side = 0
        if frame is not None and frame.mid_tick is not None:
            side = ASK if tick > frame.mid_tick else BID
        rule = RuleSpec(kind="price", symbol=self.active_symbol, side=side, price_tick=tick, once=True,
                        cooldown_s=0.0)
        self.set_rules([*self.rules, rule])
        price = frame.instrument.format_price(tick) if frame else str(tick)
        self.statusBar().showMessage(f"price alert set at {price}", 4000)

    def _on_size_alert_requested(self, tick: int, side: int, size: float) -> None:
        if self.active_symbol is None:
            return
        # fire when the level grows to twice what rests there now (or any size on an empty level)
        rule = RuleSpec(kind="size_at_level", symbol=self.active_symbol, side=side, price_tick=tick,
                        min_size=max(size * 2.0, 0.0) or 1.0, cooldown_s=30.0)
        self.set_rules([*self.rules, rule])

    def _on_alert_activated(self, symbol: str, tick: int) -> None:
        if symbol and symbol != self.active_symbol:
            self.symbol_requested.emit(symbol)
        self.ladder.jump_to(tick)

    def _update_title(self) -> None:
        clock = fmt.clock(self._session_ns, millis=False) if self._session_ns else ""
        symbol = self.active_symbol or "no symbol"
        self.setWindowTitle(f"DepthDesk — {symbol} — {self._session_mode} {clock}".rstrip())

    # ----------------------------------------------------------------- persistence
    def restore_settings(self) -> None:
        """Layout, theme, symbols, rules and options from the settings file."""
        s = self.settings
        if s is None:
            return
        geometry, state = s.layout()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        self.apply_theme(s.theme)
        for key in s.symbols:
            self.watchlist.add_symbol(key)
        rules = []
        for raw in s.alert_rules:
            try:
                rules.append(RuleSpec.from_dict(raw))
            except (TypeError, ValueError):
                continue  # one bad rule in a hand-edited file must not lose the others
        self.rules = rules
        self.alerts.sound_box.setChecked(s.flag("sound", True))
        self.alerts.tray_box.setChecked(s.flag("tray", True))
        self.alerts.mute_button.setChecked(s.flag("muted", False))
        group = int(s.number("ladder_group", 1))
        if group in TICK_GROUPS:
            self.ladder.set_group(group)
        self.ladder.set_auto_centre(s.flag("auto_centre", True))
        self.tape.set_filter(s.number("tape_min_size", 0.0), s.number("tape_big_size", 0.0))

    def save_settings(self) -> None:
        """Write layout and options to the settings file."""
        s = self.settings
        if s is None:
            return
        s.set_layout(self.saveGeometry(), self.saveState())
        s.theme = self._theme
        s.symbols = self.watchlist.symbols
        s.active_symbol = self.active_symbol
        s.alert_rules = [r.to_dict() for r in self.rules]
        s.set_flag("sound", self.alerts.sound_box.isChecked())
        s.set_flag("tray", self.alerts.tray_box.isChecked())
        s.set_flag("muted", self.alerts.muted)
        s.set_flag("auto_centre", self.ladder.auto_centre)
        s.set_number("ladder_group", self.ladder.group)
        s.set_number("tape_min_size", self.tape.min_size.value())
        s.set_number("tape_big_size", self.tape.big_size.value())
        s.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        try:
            self.save_settings()
        except OSError as exc:
            QMessageBox.warning(self, "DepthDesk", f"settings not saved: {exc}")
        if self.tray is not None:
            self.tray.hide()
        super().closeEvent(event)

    def saved_state(self) -> QByteArray:
        """Dock layout blob (tests compare it across a restart)."""
        return self.saveState()
