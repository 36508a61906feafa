"""While the desk catches up with a burst, widgets hold still on their own clocks; afterwards they resume."""

from __future__ import annotations

import pytest
from pixels import pixel
from PySide6.QtCore import QEvent, QObject

from app.settings import Settings
from widgets.alerts import AlertPanel, AlertRecord
from widgets.ladder import FLASH_TICK_MS, LadderWidget
from widgets.main_window import MainWindow
from widgets.sample import make_frame

BIDS = {1000: 5.0, 999: 7.0, 997: 2.0}
ASKS = {1001: 3.0, 1002: 9.0, 1005: 4.0}
KEY = "demo:ALTUSDT"


class PaintCounter(QObject):
    """Counts the paint events a widget really gets."""

    def __init__(self, widget) -> None:
        super().__init__()
        self.n = 0
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Paint:
            self.n += 1
        return False


@pytest.fixture
def ladder(qtbot):
    w = LadderWidget()
    qtbot.addWidget(w)
    w.resize(700, 500)
    w.show()
    qtbot.waitExposed(w)
    return w


def record(tick: int = 997) -> AlertRecord:
    return AlertRecord(1_764_072_000_000_000_000, KEY, "price", 1, tick, f"0.{tick}", 1.0, "traded")


def alert_red(ladder: LadderWidget, tick: int) -> int:
    rect = ladder.cell_rect(ladder.view.row_of(tick), "sold")
    return pixel(ladder.grab().toImage(), rect.center().x(), rect.center().y()).red()


def test_trade_flash_animates_normally_but_not_while_catching_up(ladder, qtbot):
    ladder.set_frame(make_frame(BIDS, ASKS, version=1, last_trade=(1001, 1)))
    assert ladder.flash_animating
    paints = PaintCounter(ladder)
    qtbot.wait(8 * FLASH_TICK_MS)
    assert paints.n >= 3 and ladder.flash_paints >= 3  # no frames came: the timer repainted the fade

    ladder.set_catching_up(True)
    assert not ladder.flash_animating
    qtbot.wait(50)
    paints.n, timer_paints = 0, ladder.flash_paints
    ladder.set_frame(make_frame(BIDS, ASKS, version=2, last_trade=(1000, -1)))  # a new trade
    assert not ladder.flash_animating
    qtbot.wait(12 * FLASH_TICK_MS)
    assert ladder.flash_paints == timer_paints
    assert paints.n == 1  # the new frame only: nothing repaints on the flash's clock
    rendered = ladder.paint_count
    qtbot.wait(6 * FLASH_TICK_MS)
    assert paints.n == 1 and ladder.paint_count == rendered  # nothing changed: nothing painted

    ladder.set_catching_up(False)
    ladder.set_frame(make_frame(BIDS, ASKS, version=3, last_trade=(1001, 1)))
    assert ladder.flash_animating
    qtbot.wait(8 * FLASH_TICK_MS)
    assert ladder.flash_paints > timer_paints and paints.n >= 3


def test_timer_does_not_repaint_on_top_of_frame_paints(ladder, qtbot):
    """A frame painted since the last tick already moved the fade on: the tick asks for no extra paint."""
    ladder.set_frame(make_frame(BIDS, ASKS, version=1, last_trade=(1001, 1)))
    qtbot.wait(FLASH_TICK_MS)
    start = ladder.flash_paints
    for v in range(2, 14):  # frames at ~100 Hz, each a new trade
        ladder.set_frame(make_frame(BIDS, ASKS, version=v, last_trade=(1000 + v % 2, 1)))
        ladder.repaint()
        qtbot.wait(10)
    assert ladder.flash_paints - start <= 1


def test_alert_during_catch_up_shows_steady_then_blinks_after(ladder, qtbot):
    ladder.set_frame(make_frame(BIDS, ASKS, version=1))
    qtbot.wait(20)
    before = alert_red(ladder, 997)
    ladder.set_catching_up(True)
    paints = PaintCounter(ladder)
    ladder.flash_price(997, seconds=1.0)
    qtbot.wait(5 * FLASH_TICK_MS)
    assert not ladder.flash_animating and paints.n == 0  # waits for the next frame
    ladder.set_frame(make_frame(BIDS, ASKS, version=2))
    assert alert_red(ladder, 997) > before + 40  # lit, steady, on the catch-up frame
    qtbot.wait(1200)  # longer than the flash: still lit while catching up (nothing blinks it away)
    assert alert_red(ladder, 997) > before + 40

    ladder.set_catching_up(False)
    assert ladder.flash_animating  # blinks now, for its whole second
    seen = set()
    for _ in range(12):
        seen.add(alert_red(ladder, 997) > before + 40)
        qtbot.wait(40)
    assert seen == {True, False}  # on and off: blinking
    qtbot.wait(1000)
    assert not ladder.flash_animating and alert_red(ladder, 997) == before


def test_alert_panel_lists_during_catch_up_and_unlights_after(qtbot):
    panel = AlertPanel()
    qtbot.addWidget(panel)
    panel._unflash.setInterval(60)  # the test does not wait ROW_FLASH_MS
    panel.add_alert(record(990))
    panel.set_catching_up(True)
    panel.add_alert(record(997))
    assert [r.tick for r in panel.records] == [997, 990] and panel.table.rowCount() == 2  # listed at once
    lit = panel.table.item(0, 0).background().color()
    assert lit.alpha() > 0
    qtbot.wait(200)
    assert panel.flash_pending and panel.table.item(0, 0).background().color() == lit  # still lit
    assert panel.table.item(1, 0).background().color() == lit  # the older one was not unlit meanwhile
    panel.set_catching_up(False)
    qtbot.waitUntil(lambda: not panel.flash_pending, timeout=1000)
    assert panel.table.item(0, 0).background().color().alpha() == 0


def test_main_window_forwards_catch_up_and_alerts_flash_after_it(qtbot, config_dir):
    window = MainWindow(Settings())
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    window.set_active_symbol(KEY)
    window.show_frame(make_frame(BIDS, ASKS, version=1))
    window.set_catching_up(True)
    assert window.ladder.catching_up and window.alerts.catching_up
    window.sound_on = window.tray_on = False
    window.add_alert(record(997))
    assert window.alerts.records[0].tick == 997  # the trader sees it listed during the burst
    assert not window.ladder.flash_animating
    window.set_catching_up(False)
    assert window.ladder.flash_animating and window.alerts.flash_pending
