"""The real desk on the real engine (engine thread, bridge, frame clock), fed by the paced feed."""

from __future__ import annotations

import argparse
import threading

import pytest

from app.core.events import ASK, BID
from benchmarks.bench_gui import KEY, PacedFeed


@pytest.fixture
def live_desk(qtbot, tmp_path):
    from app.main import build_desk

    engine, window, bridge, _symbols, _settings = build_desk(demo=True, settings_dir=tmp_path / "cfg")
    qtbot.addWidget(window)
    feed = PacedFeed(rate=400.0)
    engine.add_feed(feed, label=KEY)
    window.resize(1200, 800)
    window.show()
    engine.start()
    bridge.open_symbol(KEY)
    bridge.start()
    yield engine, window, bridge, feed
    bridge.stop()
    engine.stop()
    assert not any(t.name == "depthdesk-engine" for t in threading.enumerate())  # closes cleanly


def test_ladder_shows_the_engine_book(live_desk, qtbot):
    engine, window, bridge, feed = live_desk
    qtbot.waitUntil(lambda: window.ladder.frame is not None and window.ladder.frame.version > 50, timeout=5000)
    feed.rate = 0.0  # the market pauses: the book stops changing
    qtbot.wait(150)
    bridge._on_frame_clock()
    bridge._on_frame_clock()  # (the second pull follows a re-centre, if any)
    view = window.ladder.view
    book = engine.market(KEY).book
    checked = 0
    for i, tick in enumerate(view.ticks.tolist()):
        assert view.bid[i] == pytest.approx(book.qty_at(BID, tick)), tick
        assert view.ask[i] == pytest.approx(book.qty_at(ASK, tick)), tick
        checked += view.bid[i] > 0 or view.ask[i] > 0
    assert checked > 10
    frame = window.ladder.frame
    assert view.bid[view.row_of(frame.best_bid_tick)] > 0 and view.ask[view.row_of(frame.best_ask_tick)] > 0
    assert len(window.tape.prints) > 0


def test_price_alert_fires_when_the_market_trades_there(live_desk, qtbot):
    _engine, window, _bridge, _feed = live_desk
    window.sound_on = False
    qtbot.waitUntil(lambda: window.ladder.frame is not None and window.ladder.frame.best_ask_tick > 0, timeout=5000)
    frame = window.ladder.frame
    for tick in (frame.best_ask_tick, frame.best_bid_tick):  # as a click on these rows does
        window._on_price_clicked(tick)
    qtbot.waitUntil(lambda: window.alerts.table.rowCount() >= 1, timeout=10_000)
    assert window.alerts.records[0].kind == "price"
    assert window.alerts.records[0].tick in (frame.best_ask_tick, frame.best_bid_tick)


def test_forced_disconnect_turns_the_ladder_stale(live_desk, qtbot):
    _engine, window, _bridge, feed = live_desk
    qtbot.waitUntil(lambda: window.ladder.frame is not None and not window.ladder.stale, timeout=5000)
    feed.pending_state = "disconnected"
    qtbot.waitUntil(lambda: window.ladder.stale, timeout=3000)
    assert window.ladder.stale_reason == "disconnected"
    assert window.status.feed_state("demo") == "disconnected"
    feed.pending_state = "live"
    qtbot.waitUntil(lambda: not window.ladder.stale, timeout=3000)


def test_no_display_runs_the_headless_view(monkeypatch, capsys):
    import app.commands.watch as watch
    import app.main as main

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert not main.has_display()
    seen = {}
    monkeypatch.setattr(watch, "run", lambda args: seen.setdefault("sources", args.sources) and 0)
    assert main.run(argparse.Namespace(demo=True, config=None, headless=False)) == 0
    assert seen["sources"] == ["demo:ALTUSDT"]
    assert "no display: running the headless live view" in capsys.readouterr().err
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert main.has_display()


def test_ladder_shows_the_simulator_book(qtbot, tmp_path):
    """`depthdesk --demo` wiring: embedded exchange -> Binance adapter -> engine -> bridge -> ladder."""
    from app.main import DEMO_SOURCE, build_desk

    engine, window, bridge, _symbols, _settings = build_desk(demo=True, settings_dir=tmp_path / "cfg")
    qtbot.addWidget(window)
    window.resize(1600, 1000)  # the default layout gives the ladder ~60 % of the height
    window.show()
    engine.add_sources([DEMO_SOURCE])
    sim = engine._source_factory.simulators[0]
    engine.start()
    try:
        bridge.open_symbol(DEMO_SOURCE)
        bridge.start()
        qtbot.waitUntil(lambda: window.ladder.frame is not None and window.ladder.frame.state == "live"
                        and window.ladder.frame.mid_tick is not None, timeout=10_000)
        sim.call(lambda server: setattr(server.model, "rate", 1e-9))  # the exchange goes quiet
        qtbot.wait(700)
        (bid_t, bid_q), (ask_t, ask_q) = sim.call(lambda server: server.levels("ALTUSDT"))
        bridge.stop()
        bridge._on_frame_clock()
        bridge._on_frame_clock()
        view = window.ladder.view
        bids = dict(zip(bid_t.tolist(), bid_q.tolist(), strict=True))
        asks = dict(zip(ask_t.tolist(), ask_q.tolist(), strict=True))
        frame = window.ladder.frame
        near = [i for i, t in enumerate(view.ticks.tolist()) if abs(t - frame.mid_tick) <= 15]
        assert len(near) >= 25
        for i in near:
            tick = int(view.ticks[i])
            assert view.bid[i] == pytest.approx(bids.get(tick, 0.0)), ("bid", tick)
            assert view.ask[i] == pytest.approx(asks.get(tick, 0.0)), ("ask", tick)
        assert frame.best_bid_tick == bid_t[0] and frame.best_ask_tick == ask_t[0]
        # the watchlist's depth within ±0.5 % of mid, against the exchange's own book
        bridge._on_slow_clock()
        row = window.watchlist.row(DEMO_SOURCE)
        mid = (bid_t[0] + ask_t[0]) / 2
        band = mid * 0.005
        expected = sum(t * q for t, q in [*bids.items(), *asks.items()] if abs(t - mid) <= band) * 0.0001
        assert row.depth_notional == pytest.approx(expected, rel=1e-9) and expected > 0
        assert row.spread_ticks == ask_t[0] - bid_t[0]
        assert row.open_interest and row.funding_rate is not None
    finally:
        bridge.stop()
        engine.stop()


def test_open_capture_replays_with_pause_step_and_title(qtbot, tmp_path, btc_capture, monkeypatch):
    """Session bar -> replay of a real Binance capture: REPLAY in the title, paused until play, step."""
    from app.main import build_desk

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    engine, window, bridge, _symbols, _settings = build_desk(demo=False, settings_dir=tmp_path / "cfg")
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    engine.start()
    try:
        bridge.start()
        import shutil

        capture = tmp_path / btc_capture.name
        shutil.copy(btc_capture, capture)  # the seek cache is written next to the capture
        window.open_capture_requested.emit(str(capture))
        assert bridge.active == "binance-usdm:BTCUSDT"
        assert window.session_bar.mode == "REPLAY" and window.session_bar.play_button.isEnabled()
        qtbot.waitUntil(lambda: window.ladder.frame is not None, timeout=10_000)
        window.session_bar.play_button.setChecked(True)
        qtbot.waitUntil(lambda: window.ladder.frame.mid_tick is not None, timeout=10_000)
        window.tick_1hz(0.0, None, 0.0, 0.0)
        assert "REPLAY" in window.windowTitle() and "BTCUSDT" in window.windowTitle()
        window.session_bar.play_button.setChecked(False)  # pause
        qtbot.wait(300)
        version = engine.version(bridge.active)
        qtbot.wait(300)
        assert engine.version(bridge.active) == version
        window.session_bar.step_button.click()
        qtbot.waitUntil(lambda: engine.version(bridge.active) > version, timeout=3000)
    finally:
        bridge.stop()
        engine.stop()


def test_record_button_writes_a_replayable_capture(qtbot, tmp_path, monkeypatch):
    """Record on the demo: the capture starts with the snapshot, is flushed on stop and replays."""
    from app.main import DEMO_SOURCE, build_desk
    from feeds.capture.replay import ReplayFeed

    monkeypatch.setenv("DEPTHDESK_CAPTURE_DIR", str(tmp_path / "captures"))
    engine, window, bridge, _symbols, _settings = build_desk(demo=True, settings_dir=tmp_path / "cfg")
    qtbot.addWidget(window)
    window.show()
    engine.add_sources([DEMO_SOURCE])
    engine.start()
    try:
        bridge.open_symbol(DEMO_SOURCE)
        bridge.start()
        qtbot.waitUntil(lambda: window.ladder.frame is not None and not window.ladder.stale, timeout=10_000)
        window.session_bar.record_button.click()
        assert bridge.recorder.recording
        qtbot.waitUntil(lambda: engine.status(DEMO_SOURCE)[0] == "live" and bridge.recorder.writer.lines > 50,
                        timeout=10_000)
        window.session_bar.record_button.click()
        assert not bridge.recorder.recording
        (path,) = list((tmp_path / "captures").glob("*.gz"))
        feed = ReplayFeed(path)
        assert feed.venue == "demo" and feed.symbols == ("ALTUSDT",)
        assert "recorded" in window.statusBar().currentMessage()
        import asyncio

        from app.engine import Engine

        replay = Engine({})
        replay.add_feed(feed)
        asyncio.run(replay.run_until(10))
        book = replay.market(DEMO_SOURCE).book
        assert book.best_bid() is not None and book.best_ask() is not None  # it began with the snapshot
    finally:
        bridge.stop()
        engine.stop()
