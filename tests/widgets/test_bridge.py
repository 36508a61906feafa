"""The bridge: frame clock pulls and skips unchanged versions, engine-thread events become signals."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from PySide6.QtCore import QObject, Signal

import app.bridge as bridge_module
from app.analytics.alerts import Alert
from app.bridge import (
    CATCH_UP_CHART_S,
    CATCH_UP_HOLD_S,
    CATCH_UP_HZ,
    EXIT_WINDOW_S,
    Bridge,
    LevelAlerts,
    RuleMatcher,
    TransitWatch,
)
from app.core.detection import Detection
from app.settings import Settings
from widgets.alerts import RuleSpec
from widgets.main_window import MainWindow
from widgets.sample import ALT, make_frame, make_trades

BIDS, ASKS = {1000: 5.0, 999: 7.0}, {1001: 3.0, 1002: 9.0}
T0 = 1_764_072_000_000_000_000
KEY = "demo:ALTUSDT"


class FakeEngine:
    """Engine stand-in with the calls the bridge makes; frames set by the test."""

    def __init__(self) -> None:
        self.listeners: dict[str, list] = {}
        self.frames: dict[str, object] = {}
        self.states: dict[str, tuple[str, str]] = {}
        self.added: list[str] = []
        self.frame_calls: list[tuple] = []

    def listen(self, kind, callback):
        self.listeners.setdefault(kind, []).append(callback)

    def add_source(self, source):
        if source.startswith("nope:"):
            raise ValueError("unknown venue 'nope'")
        self.added.append(source)
        self.states[source] = ("connecting", "")

    def keys(self):
        return list(self.frames)

    def statuses(self):
        return dict(self.states)

    def frame(self, symbol, ladder_rows=40, group=1, centre_tick=None, trades=200):
        self.frame_calls.append((symbol, ladder_rows, group, centre_tick))
        return self.frames.get(symbol)

    def version(self, symbol):
        f = self.frames.get(symbol)
        return -1 if f is None else f.version

    def status(self, symbol):
        return self.states.get(symbol, ("live", ""))

    def stats(self, now_ns=None):
        return []

    def fire(self, kind, *args):
        for cb in self.listeners.get(kind, []):
            cb(*args)


@pytest.fixture
def desk(qtbot, config_dir):
    engine = FakeEngine()
    window = MainWindow(Settings())
    qtbot.addWidget(window)
    window.resize(1200, 800)
    bridge = Bridge(engine, window)
    bridge.open_symbol(KEY)
    assert engine.added == [KEY]
    return engine, window, bridge


def test_frame_clock_shows_new_versions_only(desk):
    engine, window, bridge = desk
    engine.frames[KEY] = make_frame(BIDS, ASKS, version=1)
    bridge._on_frame_clock()
    assert window.ladder.frame.version == 1 and bridge.frames_shown == 1
    # the first frame placed the ladder's centre: pulled once more for exactly that window
    bridge._on_frame_clock()
    assert bridge.frames_shown == 2 and engine.frame_calls[-1][3] == window.ladder.centre_tick
    for _ in range(5):
        bridge._on_frame_clock()
    assert bridge.frames_shown == 2 and bridge.frames_skipped == 5
    engine.frames[KEY] = make_frame({**BIDS, 1000: 8.0}, ASKS, version=2)
    bridge._on_frame_clock()
    assert bridge.frames_shown == 3 and window.ladder.view.bid[window.ladder.view.row_of(1000)] == 8.0
    # the view asked for the ladder's rows and grouping; a scroll re-pulls with the same version
    _sym, rows, group, _centre = engine.frame_calls[-1]
    assert rows >= window.ladder.row_count and group == 1
    window.ladder.scroll_rows(3)
    bridge._on_frame_clock()
    assert bridge.frames_shown == 4 and engine.frame_calls[-1][3] == window.ladder.centre_tick


def test_status_from_engine_thread_turns_ladder_stale(desk, qtbot):
    engine, window, bridge = desk
    engine.frames[KEY] = make_frame(BIDS, ASKS, version=1)
    bridge._on_frame_clock()
    worker = threading.Thread(target=engine.fire, args=("status", "demo", "ALTUSDT", "disconnected", "forced"))
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: window.ladder.stale, timeout=2000)
    assert window.status.feed_state("demo") == "disconnected"


def test_engine_alert_lands_in_panel(desk, qtbot):
    engine, window, _bridge = desk
    window.sound_on = False
    det = Detection(7, "iceberg", "demo", "ALTUSDT", 1, 999, T0, "open",
                    evidence={"executed": 900.0, "visible": 100.0, "hidden": 800.0})
    alert = Alert("icebergs", det, T0, 999, False, "iceberg")
    worker = threading.Thread(target=engine.fire, args=("alert", ALT, alert))
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: window.alerts.table.rowCount() == 1, timeout=2000)
    rec = window.alerts.records[0]
    assert (rec.kind, rec.side, rec.tick, rec.size) == ("iceberg", 1, 999, 800.0)
    assert "executed" in rec.evidence


def test_desk_rules_match_engine_detections(desk, qtbot):
    engine, window, bridge = desk
    window.sound_on = False
    window.set_rules([RuleSpec(kind="absorption", side=-1, min_size=1000.0)])
    small = Detection(8, "absorption", "demo", "ALTUSDT", -1, 1001, T0, "open", evidence={"absorbed": 500.0})
    big = Detection(9, "absorption", "demo", "ALTUSDT", -1, 1001, T0, "open", evidence={"absorbed": 5000.0})
    for det in (small, big):
        worker = threading.Thread(target=engine.fire, args=("detection", ALT, det))
        worker.start()
        worker.join()
    qtbot.waitUntil(lambda: window.alerts.table.rowCount() == 1, timeout=2000)
    assert window.alerts.records[0].size == 5000.0 and window.alerts.records[0].kind == "absorption"


def test_bad_symbol_is_a_message_not_a_crash(desk):
    engine, window, bridge = desk
    bridge.open_symbol("nope:XYZ")
    assert bridge.active == KEY
    assert "unknown venue" in window.statusBar().currentMessage()


def test_price_alert_fires_when_price_trades_there(desk):
    engine, window, bridge = desk
    window.sound_on = False
    engine.frames[KEY] = make_frame(BIDS, ASKS, version=1, trades=make_trades([(T0, 1, 1.0, 1001)]))
    bridge._on_frame_clock()
    window._on_price_clicked(1002)  # what a click on the 1002 row does
    assert [r.kind for r in bridge.level_alerts.rules] == ["price"]
    trades = make_trades([(T0, 1, 1.0, 1001), (T0 + 1, 1, 2.0, 1001)])
    engine.frames[KEY] = make_frame(BIDS, ASKS, version=2, trades=trades)
    bridge._on_frame_clock()
    assert window.alerts.table.rowCount() == 0
    trades = make_trades([(T0, 1, 1.0, 1001), (T0 + 1, 1, 2.0, 1001), (T0 + 2, 1, 4.0, 1002)])
    engine.frames[KEY] = make_frame(BIDS, ASKS, version=3, trades=trades)
    bridge._on_frame_clock()
    assert window.alerts.table.rowCount() == 1
    rec = window.alerts.records[0]
    assert rec.kind == "price" and rec.tick == 1002 and rec.size == 4.0
    assert window.rules == [] and bridge.level_alerts.rules == []  # a price alert fires once


def test_level_alerts_size_rule_and_trade_through():
    alerts = LevelAlerts()
    alerts.rules = [RuleSpec(kind="size_at_level", symbol=KEY, side=1, price_tick=999, min_size=10.0,
                             cooldown_s=60.0),
                    RuleSpec(kind="price", price_tick=1005)]
    assert alerts.check(make_frame(BIDS, ASKS, trades=make_trades([(T0, 1, 1.0, 1001)]))) == []
    fired = alerts.check(make_frame({999: 12.0}, ASKS, trades=make_trades([(T0, 1, 1.0, 1001),
                                                                         (T0 + 1, 1, 1.0, 1009)])))
    kinds = sorted(r.kind for r, _ in fired)
    assert kinds == ["price", "size_at_level"]  # 1001 -> 1009 traded through 1005
    assert alerts.check(make_frame({999: 12.0}, ASKS)) == []  # cooldown


def test_rule_matcher_filters_and_cools_down():
    m = RuleMatcher([RuleSpec(kind="iceberg", symbol=KEY, side=1, min_size=500.0, cooldown_s=10.0),
                     RuleSpec(kind="price", price_tick=5)])
    det = Detection(1, "iceberg", "demo", "ALTUSDT", 1, 999, T0, "open", evidence={"hidden": 800.0})
    assert len(m(det)) == 1
    assert m(det) == []  # inside the cooldown
    later = Detection(1, "iceberg", "demo", "ALTUSDT", 1, 999, T0 + 11 * 10**9, "update", evidence={"hidden": 800.0})
    assert len(m(later)) == 1
    small = Detection(2, "iceberg", "demo", "ALTUSDT", 1, 999, T0 + 99 * 10**9, "open", evidence={"hidden": 100.0})
    ask = Detection(3, "iceberg", "demo", "ALTUSDT", -1, 999, T0 + 99 * 10**9, "open", evidence={"hidden": 900.0})
    assert m(small) == [] and m(ask) == []


class _Emitter(QObject):
    ping = Signal(int)


def test_200k_signals_do_not_abort_the_interpreter(qapp):
    """PySide6 6.12.0 on Python < 3.12 leaks a reference per emit and aborts after thousands (pinned)."""
    emitter = _Emitter()
    seen = [0]

    def on_ping(v: int) -> None:
        seen[0] += v

    emitter.ping.connect(on_ping)
    for _ in range(200_000):
        emitter.ping.emit(1)
    assert seen[0] == 200_000


def test_prefetcher_pulls_off_the_gui_thread_and_stops(qtbot, config_dir):
    engine = FakeEngine()
    window = MainWindow(Settings())
    qtbot.addWidget(window)
    bridge = Bridge(engine, window, prefetch=True)
    bridge.open_symbol(KEY)
    engine.frames[KEY] = make_frame(BIDS, ASKS, version=1)
    pulled_on = []
    original = engine.frame

    def frame(*args, **kwargs):
        pulled_on.append(threading.current_thread().name)
        return original(*args, **kwargs)

    engine.frame = frame
    bridge.start()
    try:
        qtbot.waitUntil(lambda: window.ladder.frame is not None, timeout=3000)
        engine.frames[KEY] = make_frame({**BIDS, 1000: 9.0}, ASKS, version=2)
        qtbot.waitUntil(lambda: window.ladder.frame.version == 2, timeout=3000)
        assert set(pulled_on) == {"depthdesk-frames"}
    finally:
        bridge.stop()
    assert not any(t.name == "depthdesk-frames" for t in threading.enumerate())


def test_transit_watch_sees_a_backlog_not_a_clock_offset():
    watch = TransitWatch(window_s=5)
    ms = 1_000_000
    # the venue's clock runs 30 ms ahead of ours: receive - exchange is negative, yet nothing is late
    for i in range(20):
        assert watch.note(T0 + i * ms, T0 + i * ms - 30 * ms, now_s=100.0 + i * 0.1) == 0.0
    # data now arrives 400 ms later than usual: a backlog in the socket
    assert watch.note(T0, T0 + 370 * ms, now_s=102.5) == pytest.approx(400.0)
    assert watch.note(0, T0, now_s=102.6) == pytest.approx(400.0)  # no exchange time: unchanged


def test_catch_up_is_judged_on_the_worst_recent_frame(desk, monkeypatch):
    """The depth stream queues up while a quieter stream (trades) stays on time: frames whose newest
    message is a trade must neither keep the desk from shedding nor end the shedding."""
    engine, window, bridge = desk
    clock = [100.0]
    monkeypatch.setattr(bridge_module.time, "monotonic", lambda: clock[0])
    ms = 1_000_000
    version = 0

    def show(late_ms: float) -> None:
        nonlocal version
        version += 1
        frame = make_frame(BIDS, ASKS, version=version)
        engine.frames[KEY] = dataclasses.replace(frame, local_ts=frame.exch_ts + int((2 + late_ms) * ms))
        bridge._on_frame_clock()
        clock[0] += 1 / 60

    for _ in range(30):
        show(0)
    assert not bridge.catching_up
    for i in range(int(CATCH_UP_HOLD_S * 60) + 5):  # late and on-time frames alternate
        show(600 if i % 2 else 0)
    assert bridge.catching_up and bridge.catch_ups == 1
    for i in range(int(EXIT_WINDOW_S * 60) - 10):  # on time but for one late frame: still behind
        show(600 if i == 5 else 0)
    assert bridge.catching_up
    for _ in range(int(EXIT_WINDOW_S * 60) + 2):  # on time for a whole exit window: caught up
        show(0)
    assert not bridge.catching_up and bridge.catch_ups == 1


def test_charts_are_shed_while_catching_up(desk, monkeypatch):
    engine, window, bridge = desk
    clock = [100.0]
    monkeypatch.setattr(bridge_module.time, "monotonic", lambda: clock[0])
    shown: list[object] = []
    monkeypatch.setattr(window.charts, "show_chart_frame", shown.append)
    monkeypatch.setattr(window.charts, "visible", lambda: True)

    class Puller:  # a new chart frame on every tick
        running = False

        def request(self, key, leaders=()):
            pass

        def pull_once(self):
            pass

        def latest(self, key):
            return object()

    bridge.chart_puller = Puller()

    def one_second() -> int:
        before = len(shown)
        for _ in range(60):
            bridge._show_charts()
            clock[0] += 1 / 60
        return len(shown) - before

    assert one_second() == 60  # at the full rate every frame reaches the charts
    bridge.catching_up = True
    assert one_second() == pytest.approx(1 / CATCH_UP_CHART_S, abs=1)
    bridge.catching_up = False
    assert one_second() == 60


def test_desk_paints_slower_while_the_engine_catches_up(desk, monkeypatch):
    engine, window, bridge = desk
    real_monotonic = time.monotonic
    ms = 1_000_000
    full = bridge.frame_clock.interval()

    def show(version: int, late_ms: float) -> None:
        frame = make_frame(BIDS, ASKS, version=version)
        engine.frames[KEY] = dataclasses.replace(frame, local_ts=frame.exch_ts + int((2 + late_ms) * ms))
        bridge._on_frame_clock()

    for v in range(1, 6):
        show(v, 0)
    assert not bridge.catching_up and bridge.frame_clock.interval() == full
    show(6, 600)  # what is applied now left the venue 600 ms later than the usual delay: one hiccup...
    show(7, 20)
    assert not bridge.catching_up
    show(8, 600)
    monkeypatch.setattr(bridge_module.time, "monotonic", lambda: real_monotonic() + CATCH_UP_HOLD_S + 0.1)
    show(9, 700)  # ...or late for longer: the engine is behind
    assert bridge.catching_up and bridge.catch_ups == 1
    assert window.ladder.catching_up and window.alerts.catching_up  # told before the frame was shown
    assert bridge.frame_clock.interval() == int(1000 / CATCH_UP_HZ) > full
    bridge._on_slow_clock()
    assert "catching up" in window.statusBar().currentMessage()
    show(10, 150)  # better, not yet caught up
    assert bridge.catching_up
    show(11, 10)  # one frame on time (its newest message from a quiet stream) is not caught up yet...
    assert bridge.catching_up
    later = real_monotonic() + CATCH_UP_HOLD_S + EXIT_WINDOW_S + 0.2
    monkeypatch.setattr(bridge_module.time, "monotonic", lambda: later)
    show(12, 10)  # ...on time for a whole exit window is
    assert not bridge.catching_up and bridge.frame_clock.interval() == full
    assert not window.ladder.catching_up and not window.alerts.catching_up
