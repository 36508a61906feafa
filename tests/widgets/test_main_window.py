"""The main window: shortcuts, price-click alerts, alert flash/mute, theme, layout persistence."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTextBrowser

from app.settings import Settings
from widgets.alerts import AlertRecord, RuleSpec
from widgets.main_window import SHORTCUTS, MainWindow
from widgets.sample import make_frame

BIDS, ASKS = {1000: 5.0, 999: 7.0}, {1001: 3.0, 1002: 9.0}


@pytest.fixture
def window(qtbot, config_dir):
    w = MainWindow(Settings())
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.set_active_symbol("demo:ALTUSDT")
    w.show()
    qtbot.waitExposed(w)
    w.show_frame(make_frame(BIDS, ASKS))
    return w


def test_frame_reaches_ladder_and_title_says_live(window):
    assert window.ladder.view.bid[window.ladder.view.row_of(999)] == 7.0
    window.tick_1hz(100.0, 3.0, 60.0, 0.1)
    assert "demo:ALTUSDT" in window.windowTitle() and "LIVE" in window.windowTitle()
    window.set_session("REPLAY", (1, 2))
    assert "REPLAY" in window.windowTitle()


def test_ladder_shortcuts(window, qtbot):
    ladder = window.ladder
    ladder.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Plus)
    assert ladder.group == 2
    qtbot.keyClick(window, Qt.Key.Key_Minus)
    assert ladder.group == 1
    centre = ladder.centre_tick
    qtbot.keyClick(window, Qt.Key.Key_PageUp)
    assert ladder.centre_tick == centre + 10 and not ladder.auto_centre
    qtbot.keyClick(window, Qt.Key.Key_C)
    assert ladder.centre_tick == centre
    qtbot.keyClick(window, Qt.Key.Key_A)
    assert ladder.auto_centre


def test_theme_mute_and_help_shortcuts(window, qtbot):
    assert window.theme == "dark"
    qtbot.keyClick(window, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    assert window.theme == "light" and window.settings.theme == "light"
    qtbot.keyClick(window, Qt.Key.Key_M)
    assert window.alerts.muted
    window.apply_theme("dark")
    help_dialog = window.shortcut_help()
    browser = help_dialog.findChild(QTextBrowser)
    text = browser.toPlainText()
    help_dialog.show()
    assert browser.grab().toImage().pixelColor(20, browser.height() - 20).lightness() < 80  # dark, readable
    for _keys, what in SHORTCUTS:
        assert what in text
    assert {"C", "A", "Space", "Ctrl+O", "Ctrl+R", "F1", "M"} <= set(window.shortcuts)


def test_symbol_shortcut_requests_nth_watchlist_symbol(window, qtbot):
    window.watchlist.add_symbol("demo:MEMEUSDT")
    with qtbot.waitSignal(window.symbol_requested) as blocker:
        qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args == ["demo:MEMEUSDT"]


def test_clicking_a_price_creates_a_price_alert_rule(window, qtbot):
    rect = window.ladder.cell_rect(window.ladder.view.row_of(1002), "price")
    with qtbot.waitSignal(window.rules_changed) as blocker:
        qtbot.mouseClick(window.ladder, Qt.MouseButton.LeftButton, pos=rect.center())
    (rule,) = blocker.args[0]
    assert rule == RuleSpec(kind="price", symbol="demo:ALTUSDT", side=-1, price_tick=1002, once=True,
                            cooldown_s=0.0)
    window.ladder.size_alert_requested.emit(999, 1, 7.0)
    assert window.rules[-1].kind == "size_at_level" and window.rules[-1].min_size == 14.0


def test_alert_flashes_ladder_unless_muted(window):
    window.sound_on = False
    window.add_alert(AlertRecord(1, "demo:ALTUSDT", "iceberg", 1, 999, "0.0999", 5.0, ""))
    assert 999 in window.ladder._alert_flashes
    window.ladder._alert_flashes.clear()
    window.alerts.mute_button.setChecked(True)
    window.add_alert(AlertRecord(2, "demo:ALTUSDT", "iceberg", 1, 1000, "0.1000", 5.0, ""))
    assert not window.ladder._alert_flashes
    assert window.alerts.table.rowCount() == 2  # muted alerts are still listed


def test_alert_click_jumps_the_ladder(window, qtbot):
    window.add_alert(AlertRecord(1, "demo:ALTUSDT", "iceberg", 1, 1500, "0.1500", 5.0, ""))
    window.alerts.table.cellClicked.emit(0, 0)
    assert window.ladder.centre_tick == 1500 and not window.ladder.auto_centre


def test_forced_disconnect_shows_stale(window):
    assert not window.ladder.stale
    window.set_feed_state("demo", "ALTUSDT", "disconnected", "socket closed")
    assert window.ladder.stale and window.status.feed_state("demo") == "disconnected"
    window.set_feed_state("demo", "ALTUSDT", "live")
    assert not window.ladder.stale


def test_layout_and_settings_round_trip_through_a_restart(qtbot, config_dir):
    first = MainWindow(Settings())
    qtbot.addWidget(first)
    first.resize(1400, 900)
    first.show()
    qtbot.waitExposed(first)
    first.docks["tape"].hide()
    first.removeDockWidget(first.docks["alerts"])
    first.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, first.docks["alerts"])
    first.docks["alerts"].show()
    first.apply_theme("light")
    first.watchlist.add_symbol("binance-usdm:BTCUSDT")
    first.set_rules([RuleSpec(kind="iceberg", min_size=500.0), RuleSpec(kind="price", price_tick=42)])
    first.ladder.set_group(5)
    first.tape.set_filter(2.5, 40.0)
    geometry = first.saveGeometry()
    first.close()  # closeEvent saves
    assert Settings().layout()[0] == geometry  # (offscreen clamps a restored size to its 800 px screen)

    second = MainWindow(Settings())
    qtbot.addWidget(second)
    second.show()
    qtbot.waitExposed(second)
    assert second.theme == "light"
    assert "binance-usdm:BTCUSDT" in second.watchlist.symbols
    assert second.rules == first.rules
    assert second.ladder.group == 5
    assert second.tape.min_size.value() == 2.5 and second.tape.big_size.value() == 40.0
    assert not second.docks["tape"].isVisible()
    assert second.dockWidgetArea(second.docks["alerts"]) == Qt.DockWidgetArea.LeftDockWidgetArea
    second.reset_layout()
    assert second.docks["tape"].isVisible()
    assert second.dockWidgetArea(second.docks["alerts"]) == Qt.DockWidgetArea.BottomDockWidgetArea


def test_session_shortcuts(window, qtbot):
    with qtbot.waitSignal(window.record_toggled) as blocker:
        qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args == [True]
    window.session_bar.set_recording(False)
    window.set_session("REPLAY", (1, 10**12))
    with qtbot.waitSignal(window.play_toggled) as blocker:
        qtbot.keyClick(window, Qt.Key.Key_Space)
    assert blocker.args == [True]
    with qtbot.waitSignal(window.step_requested):
        qtbot.keyClick(window, Qt.Key.Key_Period)
    with qtbot.waitSignal(window.speed_changed) as blocker:
        qtbot.keyClick(window, Qt.Key.Key_BracketRight)
    assert blocker.args == [2.0]
