"""Alert panel, rule editor, watchlist, session bar and status bar."""

from __future__ import annotations

import pytest

from app.core.frame import FundingState
from widgets.alerts import AlertPanel, AlertRecord, RuleEditor, RuleSpec
from widgets.sample import make_frame
from widgets.session_bar import SessionBar
from widgets.status_bar import DeskStatusBar
from widgets.watchlist import WatchlistWidget, watch_row

T0 = 1_764_072_000_000_000_000


def record(symbol: str = "demo:ALTUSDT", tick: int = 4320) -> AlertRecord:
    return AlertRecord(T0, symbol, "iceberg", 1, tick, "0.4320", 1500.0, "executed 1.5k")


def test_alert_panel_lists_newest_first_and_click_jumps(qtbot):
    panel = AlertPanel()
    qtbot.addWidget(panel)
    panel.add_alert(record(tick=4320))
    panel.add_alert(record(symbol="demo:MEMEUSDT", tick=77))
    assert panel.table.rowCount() == 2
    assert panel.table.item(0, 1).text() == "demo:MEMEUSDT"
    assert panel.table.item(1, 2).text() == "iceberg" and panel.table.item(1, 3).text() == "bid"
    assert panel.alert_count("demo:ALTUSDT") == 1
    with qtbot.waitSignal(panel.alert_activated) as blocker:
        panel.table.cellClicked.emit(1, 0)
    assert blocker.args == ["demo:ALTUSDT", 4320]
    with qtbot.waitSignal(panel.mute_toggled) as blocker:
        panel.mute_button.click()
    assert blocker.args == [True] and panel.muted
    panel.clear()
    assert panel.table.rowCount() == 0 and panel.alert_count("demo:ALTUSDT") == 0


def test_rule_spec_validates_and_round_trips():
    rule = RuleSpec(kind="price", symbol="demo:ALTUSDT", side=-1, price_tick=4330, once=True)
    assert RuleSpec.from_dict({**rule.to_dict(), "future_key": 1}) == rule
    with pytest.raises(ValueError, match="needs a price"):
        RuleSpec(kind="price")
    with pytest.raises(ValueError, match="unknown alert kind"):
        RuleSpec(kind="moon")
    with pytest.raises(ValueError):
        RuleSpec(kind="iceberg", side=2)


def test_rule_editor_edits_adds_and_removes(qtbot):
    rules = [RuleSpec(kind="iceberg", min_size=100.0), RuleSpec(kind="price", price_tick=10)]
    editor = RuleEditor(rules)
    qtbot.addWidget(editor)
    assert editor.rules() == rules
    editor.table.cellWidget(0, 5).setValue(250.0)
    editor.table.cellWidget(0, 3).setCurrentText("ask")
    editor.add_rule(RuleSpec(kind="absorption"))
    out = editor.rules()
    assert out[0].min_size == 250.0 and out[0].side == -1 and out[2].kind == "absorption"
    editor.table.selectRow(1)
    editor.remove_selected()
    assert [r.kind for r in editor.rules()] == ["iceberg", "absorption"]
    editor.table.cellWidget(0, 1).setCurrentText("price")  # a price rule without a price
    with pytest.raises(ValueError, match="rule 1"):
        editor.rules()


def test_watch_row_figures_from_a_frame():
    bids = {4320: 1000.0, 4310: 500.0, 4000: 9e9}  # 4000 is far outside ±0.5 %
    asks = {4322: 2000.0}
    frame = make_frame(bids, asks, last_trade=(4321, 1), rows_around=5,
                       funding=FundingState(rate=0.0001, open_interest=5e6))
    row = watch_row(frame.instrument.key, frame, alerts=3)
    assert row.last == pytest.approx(0.4321)
    assert row.spread_ticks == 2 and row.spread_bps == pytest.approx(2 / 4321 * 1e4)
    expected = (4320 * 1000 + 4310 * 500 + 4322 * 2000) * 0.0001
    assert row.depth_notional == pytest.approx(expected)
    assert row.funding_rate == 0.0001 and row.open_interest == 5e6 and row.alerts == 3


def test_watchlist_rows_and_click(qtbot):
    wl = WatchlistWidget()
    qtbot.addWidget(wl)
    wl.add_symbol("demo:ALTUSDT")
    wl.add_symbol("demo:MEMEUSDT")
    wl.add_symbol("demo:ALTUSDT")
    assert wl.symbols == ["demo:ALTUSDT", "demo:MEMEUSDT"] and wl.table.rowCount() == 2
    frame = make_frame({4320: 10.0}, {4321: 10.0}, last_trade=(4321, 1))
    wl.set_row(watch_row("demo:MEMEUSDT", frame, alerts=2))
    assert wl.table.item(1, 1).text() == "0.4321"
    assert wl.table.item(1, 4).text().startswith("1t")
    assert wl.table.item(1, 8).text() == "2"
    with qtbot.waitSignal(wl.symbol_activated) as blocker:
        wl.table.cellClicked.emit(1, 2)
    assert blocker.args == ["demo:MEMEUSDT"]
    wl.remove_symbol("demo:ALTUSDT")
    assert wl.symbols == ["demo:MEMEUSDT"] and wl.table.rowCount() == 1


def test_session_bar_modes_and_commands(qtbot):
    bar = SessionBar()
    qtbot.addWidget(bar)
    assert bar.mode == "LIVE" and not bar.play_button.isEnabled() and bar.record_button.isEnabled()
    with qtbot.waitSignal(bar.record_toggled) as blocker:
        bar.record_button.click()
    assert blocker.args == [True]
    bar.set_mode("REPLAY", (T0, T0 + 100_000_000_000))
    assert bar.play_button.isEnabled() and not bar.record_button.isEnabled()
    with qtbot.waitSignal(bar.play_toggled) as blocker:
        bar.toggle_play()
    assert blocker.args == [True] and bar.playing
    with qtbot.waitSignal(bar.speed_changed) as blocker:
        bar.speed_box.setCurrentIndex(bar.speed_box.findData(5.0))
    assert blocker.args == [5.0]
    bar.set_time(T0 + 50_000_000_000)
    assert bar.timeline.value() == 5000 and bar.time_label.text() != "--:--:--"
    bar.timeline.setValue(2500)
    with qtbot.waitSignal(bar.seek_requested) as blocker:
        bar.timeline.sliderReleased.emit()
    assert blocker.args == [T0 + 25_000_000_000]
    with qtbot.waitSignal(bar.step_requested):
        bar.step_button.click()
    with pytest.raises(ValueError):
        bar.set_mode("PAPER")


def test_status_bar_shows_states_and_rates(qtbot):
    sb = DeskStatusBar()
    qtbot.addWidget(sb)
    sb.set_feed_state("binance-usdm", "live")
    sb.set_feed_state("bybit-linear", "resyncing", "gap in u")
    assert sb.feed_state("bybit-linear") == "resyncing"
    assert "resyncing" in sb._feeds["bybit-linear"].text()
    sb.set_rates(2013.4, 250.0, 59.6, 0.42)
    assert sb.rate_label.text() == "2,013 msg/s"
    assert "250 ms" in sb.lag_label.text() and sb.fps_label.text() == "60 fps"
    assert sb.ring_label.text() == "ring 42%"


def test_source_picker_filters_and_accepts_typed_symbols(qtbot):
    from widgets.main_window import SourcePicker

    lists = {"demo": ["ALTUSDT", "BTCUSDT", "ETHUSDT"], "binance-usdm": []}
    picker = SourcePicker(lambda venue: lists.get(venue, []))
    qtbot.addWidget(picker)
    picker.filter_edit.setText("eth")
    assert picker.list.count() == 1 and picker.source() == "demo:ETHUSDT"
    picker.venue_box.setCurrentText("binance-usdm")
    picker.filter_edit.setText("solusdt")
    assert picker.list.count() == 0 and picker.source() == "binance-usdm:SOLUSDT"

    def broken(venue):
        raise OSError("venue unreachable")

    failing = SourcePicker(broken)
    qtbot.addWidget(failing)
    assert "unavailable" in failing.list.item(0).text()
