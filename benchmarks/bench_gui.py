"""GUI benchmark: the real desk (1600×1000, default panels, offscreen) on the real engine under load.

Load comes from the embedded demo exchange when this build has it (``demo:ALTUSDT`` with the
simulator's message rate set), else from :class:`PacedFeed`, an in-process feed that makes a random-walk
book and trades at a set message rate and hands them to the engine exactly as a venue adapter does
(one message = one batch). Either way the engine thread, bridge, frame clock and painting are the
shipping code. Rows: ``gui.fps_median``, ``gui.frame_ms_p99``, ``gui.lag_ms_p99``,
``gui.burst_block_ms_max``, ``gui.burst_recovery_s`` (``extra.source`` says which load ran).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.core.events import (
    ASK,
    BID,
    DEPTH_SNAPSHOT_EVENT,
    clear_row,
    depth_rows,
    trade_row,
)
from app.core.instrument import Instrument
from benchmarks import BenchResult
from feeds.base import LIVE, FeedCounters

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SYMBOL = "ALTUSDT"
VENUE = "demo"
KEY = f"{VENUE}:{SYMBOL}"
STEADY_RATE = 2_000.0
BURST_RATE = 20_000.0
LAG_OK_MS = 100.0
WINDOW = (1600, 1000)


class PacedFeed:
    """A feed producing depth diffs and trades at ``rate`` messages/s (changeable while running)."""

    def __init__(self, rate: float = STEADY_RATE, seed: int = 3, tick_size: float = 0.0001,
                 mid_tick: int = 4321) -> None:
        self.venue = VENUE
        self.symbols = (SYMBOL,)
        self.rate = rate
        self.instrument = Instrument(VENUE, SYMBOL, tick_size=tick_size, lot_size=1.0)
        self._rng = np.random.default_rng(seed)
        self._mid = mid_tick
        self.sent = 0
        self._update_id = 1
        self.pending_state: str | None = None  # set from any thread: reported on the next tick

    def counters(self) -> FeedCounters:
        """Messages delivered so far."""
        return FeedCounters(messages=self.sent)

    async def run(self, sink: Any) -> None:
        """Snapshot, then diffs and trades paced to ``rate`` until cancelled."""
        sink.on_instrument(self.instrument)
        now = time.time_ns()
        ticks = np.arange(1, 301, dtype=np.int64)
        rng = self._rng
        snap = np.concatenate([
            clear_row(now, now),
            depth_rows(BID, self._mid - ticks, rng.gamma(1.4, 900, 300).round(), self.instrument.tick_size, now, now,
                       self._update_id, DEPTH_SNAPSHOT_EVENT),
            depth_rows(ASK, self._mid + ticks, rng.gamma(1.4, 900, 300).round(), self.instrument.tick_size, now, now,
                       self._update_id, DEPTH_SNAPSHOT_EVENT),
        ])
        sink.on_batch(SYMBOL, snap, self._update_id)
        self.sent += 1
        sink.on_status(SYMBOL, LIVE, "")
        started = time.perf_counter()
        done = 0.0
        rate_prev = self.rate
        while True:
            await asyncio.sleep(0.002)
            if self.pending_state is not None:
                state, self.pending_state = self.pending_state, None
                sink.on_status(SYMBOL, state, "forced by test")
            now_s = time.perf_counter()
            if self.rate != rate_prev:  # re-base the schedule so a rate change is not a backlog
                started, done, rate_prev = now_s, 0.0, self.rate
            due = int((now_s - started) * self.rate - done)
            # never more than 20 ms of messages without yielding: a slow engine falls behind the
            # schedule (the achieved rate is reported) instead of never answering a stop
            due = min(due, max(1, int(self.rate * 0.02)))
            for _ in range(due):
                sink.on_batch(SYMBOL, self._message(), self._update_id)
                self.sent += 1
            done += due

    def _message(self) -> np.ndarray:
        # The book is kept uncrossed: bids at or below mid - 1, asks at or above mid + 1.
        rng = self._rng
        ts = time.time_ns()
        self._update_id += 1
        tick_size = self.instrument.tick_size
        if rng.random() < 0.15:
            side = BID if rng.random() < 0.5 else ASK  # aggressor
            tick = self._mid + side  # a buy lifts mid + 1, a sell hits mid - 1
            trade = trade_row(side, tick, float(rng.gamma(0.8, 250) + 1), tick_size, ts, ts, self._update_id)
            if rng.random() < 0.05:  # the market walks: the level taken out leaves the book
                self._mid += side
                gone = depth_rows(ASK if side == BID else BID, np.array([self._mid]), np.zeros(1), tick_size, ts, ts,
                                  self._update_id)
                return np.concatenate([trade, gone])
            return trade
        side = BID if rng.random() < 0.5 else ASK
        n = int(rng.integers(1, 6))
        offsets = rng.integers(1, 40, n)
        ticks = self._mid - offsets if side == BID else self._mid + offsets
        qty = np.where(rng.random(n) < 0.1, 0.0, rng.gamma(1.4, 900, n).round())
        return depth_rows(side, ticks, qty, tick_size, ts, ts, self._update_id)


def _quantile(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values), q)) if values else float("nan")


class _SimulatorLoad:
    """The embedded demo exchange as the load: its model rate is set on its own loop."""

    def __init__(self, engine: Any) -> None:
        factory = engine._source_factory  # the engine owns the simulator it started for demo:
        self.sim = factory.simulators[0]
        self.engine = engine

    def set_rate(self, rate: float) -> None:
        self.sim.call(lambda server: setattr(server.model, "rate", float(rate)))

    def sent(self) -> int:
        return int(self.sim.call(lambda server: server.stats()["data_messages_sent"]))

    def received(self) -> int:
        return sum(row["messages"] for row in self.engine.summary_sources())


class _PacedLoad:
    def __init__(self, feed: PacedFeed) -> None:
        self.feed = feed

    def set_rate(self, rate: float) -> None:
        self.feed.rate = rate

    def sent(self) -> int:
        return self.feed.sent

    def received(self) -> int:
        return self.feed.sent


def run(quick: bool = False, source: str = "auto") -> list[BenchResult]:
    """Run the steady and burst phases; returns the five ``gui.*`` rows.

    ``source``: ``simulator`` (the embedded demo exchange), ``paced`` (the in-process feed) or ``auto``
    (the simulator when this build has it).
    """
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from app.main import build_desk

    app = QApplication.instance() or QApplication(["depthdesk-bench"])
    steady_s, burst_s, recover_s = (3.0, 3.0, 3.0) if quick else (10.0, 10.0, 5.0)
    settings_dir = Path(tempfile.mkdtemp(prefix="depthdesk-bench-"))
    startup_t0 = time.perf_counter()
    engine, window, bridge, _symbols, _settings = build_desk(
        demo=True, settings_dir=settings_dir, overrides={"simulator": {"rate": STEADY_RATE}},
        prefetch=os.environ.get("DEPTHDESK_BENCH_PREFETCH", "1") != "0")
    load: Any = None
    if source in ("auto", "simulator"):
        try:
            engine.add_sources([KEY])
            load = _SimulatorLoad(engine)
            source = "simulator"
        except Exception:  # noqa: BLE001 - no simulator in this build
            if source == "simulator":
                raise
            engine.discard()
    if load is None:
        load = _PacedLoad(PacedFeed(STEADY_RATE))
        engine.add_feed(load.feed, label=KEY)
        source = "paced-feed"
    window.resize(*WINDOW)
    window.show()
    engine.start()
    bridge.open_symbol(KEY)

    frame_ms: list[float] = []
    lag_ms: list[tuple[float, float]] = []  # (monotonic, lag ms)
    shown_at: list[float] = []
    beats: list[float] = []

    def timed_frame() -> None:
        t0 = time.perf_counter()
        before = bridge.frames_shown
        bridge._on_frame_clock()
        if bridge.frames_shown != before:
            # paint now, inside the timed region (the queued update then only blits the cache)
            window.ladder.repaint()
            if window.tape.list._dirty and not window.tape.list._later.isActive():
                window.tape.list.repaint()  # the tape repaints at most 25 times a second
            frame_ms.append((time.perf_counter() - t0) * 1e3)
            shown_at.append(time.monotonic())
        lag = engine.lag_ns(KEY)
        if lag:
            lag_ms.append((time.monotonic(), lag / 1e6))

    bridge.frame_clock.timeout.disconnect(bridge._on_frame_clock)
    bridge.frame_clock.timeout.connect(timed_frame)
    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(lambda: beats.append(time.monotonic()))
    bridge.start()
    heartbeat.start()
    first_paint = [0.0]

    def note_first_paint() -> None:
        if not first_paint[0] and window.ladder.paint_count and window.ladder.frame is not None:
            first_paint[0] = time.perf_counter() - startup_t0

    bridge.frame_shown.connect(note_first_paint)

    def spin(seconds: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    stop_error = ""
    scale = 1.0
    try:
        spin(1.0)  # warm-up: first paints, caches, the snapshot
        # calibrate: the simulator's rate counts model events, several of which share one message
        r0, t0 = load.received(), time.monotonic()
        spin(1.0)
        got = (load.received() - r0) / (time.monotonic() - t0)
        if source == "simulator" and got > 0:
            scale = STEADY_RATE / got
            load.set_rate(STEADY_RATE * scale)
            spin(0.5)
        frame_ms.clear()
        lag_ms.clear()
        shown_at.clear()
        t_steady = time.monotonic()
        received_before = load.received()
        spin(steady_s)
        steady_msgs_per_s = (load.received() - received_before) / (time.monotonic() - t_steady)
        steady_frames = list(frame_ms)
        steady_lag = [v for t, v in lag_ms if t >= t_steady]
        sent_before_burst = load.received()
        steady_shown = [t for t in shown_at if t >= t_steady]
        per_second = [sum(1 for t in steady_shown if t_steady + i <= t < t_steady + i + 1)
                      for i in range(int(steady_s))]
        beats.clear()
        load.set_rate(BURST_RATE * scale)
        t_burst = time.monotonic()
        spin(burst_s)
        burst_beats = [t for t in beats if t >= t_burst]
        burst_received = load.received() - sent_before_burst
        load.set_rate(STEADY_RATE * scale)
        t_end = time.monotonic()
        burst_achieved = burst_received / (t_end - t_burst)
        spin(recover_s)
        gaps = np.diff(np.asarray([t_burst, *burst_beats]))
        block_ms = float(gaps.max() * 1e3) if len(gaps) else float("nan")
        after = [(t, v) for t, v in lag_ms if t >= t_end]
        recovery = next((t - t_end for t, v in after if v < LAG_OK_MS), float("nan"))
        burst_lag_max = max((v for t, v in lag_ms if t_burst <= t < t_end), default=float("nan"))
        sent_total = load.sent()
    finally:
        heartbeat.stop()
        bridge.stop()
        try:
            engine.stop()
        except RuntimeError as exc:  # reported in the rows: a finding, not a reason to print nothing
            stop_error = str(exc)
        window.close()
        app.processEvents()
    market = engine.market(KEY)
    applied = market.messages if market is not None else -1
    received = load.received()
    lost = received - applied
    extra = {"source": source, "window": f"{WINDOW[0]}x{WINDOW[1]}", "steady_rate": STEADY_RATE,
             "sim_rate_scale": round(scale, 2),
             "steady_msgs_per_s": round(steady_msgs_per_s)}
    return [
        BenchResult("gui.fps_median", float(np.median(per_second)) if per_second else 0.0, "fps",
                    extra={**extra, "per_second": per_second, "startup_to_first_frame_s": round(first_paint[0], 3),
                           "load_avg_1m": round(os.getloadavg()[0], 2)}),
        BenchResult("gui.frame_ms_p99", round(_quantile(steady_frames, 0.99), 2), "ms",
                    extra={**extra, "frame_ms_median": round(_quantile(steady_frames, 0.5), 2)}),
        BenchResult("gui.lag_ms_p99", round(_quantile(steady_lag, 0.99), 2), "ms", extra=extra),
        BenchResult("gui.burst_block_ms_max", round(block_ms, 1), "ms",
                    extra={**extra, "burst_rate": BURST_RATE, "burst_achieved_rate": round(burst_achieved),
                           "burst_s": burst_s,
                           "burst_lag_ms_max": round(burst_lag_max, 1)}),
        BenchResult("gui.burst_recovery_s", round(recovery, 3), "s",
                    extra={**extra, "messages_sent": sent_total, "messages_received": received,
                           "messages_applied": applied, "lost": lost, "engine_stop_error": stop_error}),
    ]


if __name__ == "__main__":
    import json
    import sys

    src = "paced" if "--paced" in sys.argv else "simulator" if "--simulator" in sys.argv else "auto"
    for row in run(quick="--quick" in sys.argv, source=src):
        print(json.dumps(row.as_json()))
