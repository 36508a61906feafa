"""GUI benchmark: the real desk (1600×1000, default panels, offscreen) on the real engine under load.

The load is the exchange simulator in its own process (as a venue is in real life): the desk connects
its Binance USDⓈ-M adapter to it through ``[venues.binance-usdm]``, so the desk process holds only the
engine and the GUI. Every depth diff is sent (no 100 ms coalescing), the rate is calibrated to what the
desk receives and changed for the burst through the simulator process's stdin. ``--simulator`` runs the
embedded demo exchange instead (sharing the desk's GIL), ``--paced`` an in-process feed.

What arrived is counted, not assumed: after the run the market is frozen, the desk reads what is still
queued, and simulator-sent frames, desk-received frames, the feed's counter and the batches the engine
applied are compared (the Binance sync's by-design discards, older than the snapshot, are counted too).
Lag is the engine's (now - receive time of the last applied message) and, in ``extra``, exchange-to-desk
(now - exchange time), which also sees a backlog still queued in the socket; recovery uses the latter.
Rows: ``gui.fps_median``, ``gui.frame_ms_p99``, ``gui.lag_ms_p99``, ``gui.burst_block_ms_max``,
``gui.burst_recovery_s``; ``DEPTHDESK_BENCH_STALLS=1`` prints what the threads did while the GUI was late.

Layout (``extra["layout"]`` of every row): ``all-charts`` by default, every chart dock in view at once
(:meth:`~widgets.charts.ChartDocks.open_all`: none behind a tab) beside the ladder, tape, alerts and
watchlist; ``DEPTHDESK_BENCH_LAYOUT=desk`` (or ``--desk-layout``) measures the desk's default layout instead,
where footprint, CVD, funding and correlation share one tabbed dock. ``DEPTHDESK_BENCH_SHOT=file.png`` saves
a grab of the window after the run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
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
LONG_GAP_S = 0.05  # heartbeat gaps longer than this are explained (on CPU / waiting for a CPU / for the GIL)
RECOVER_MAX_S = 40.0  # after the burst, wait this long at most for the lag to recover (else value = the wait)
DRAIN_MAX_S = 60.0  # after the run the market is frozen and the desk reads what is still queued, then counts
WINDOW = (1600, 1000)
LAYOUTS = ("all-charts", "desk")  # every chart in view / the desk's default (tabbed) layout


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


class _SchedStat:
    """The calling thread's on-CPU and run-queue-wait nanoseconds (Linux schedstat; zeros elsewhere)."""

    def __init__(self) -> None:
        import threading

        try:
            self._fd: int | None = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = None

    def read(self) -> tuple[int, int]:
        if self._fd is None:
            return 0, 0
        cpu, runq, _ = os.pread(self._fd, 128, 0).split()
        return int(cpu), int(runq)


def _thread_cpu_s() -> dict[str, float]:
    """On-CPU seconds of each of this process's threads by name (Linux schedstat; {} elsewhere)."""
    import threading

    out: dict[str, float] = {}
    for t in threading.enumerate():
        try:
            cpu = int(Path(f"/proc/self/task/{t.native_id}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out[t.name] = cpu / 1e9
    return out


def _process_age_s() -> float:
    """Seconds since this process started (imports included); NaN where /proc does not say."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return time.time() - (btime + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return float("nan")


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


PROCESS_VENUE = "binance-usdm"
PROCESS_KEY = f"{PROCESS_VENUE}:{SYMBOL}"


def serve_controlled(rate: float, seed: int = 11) -> None:
    """The exchange process of the benchmark: ``SimulatorServer`` on ALTUSDT, every depth diff sent.

    Prints ``{"type": "endpoints", ...}`` once listening, then obeys one command per stdin line, each
    answered by one JSON line: ``rate R`` (model rate), ``pause`` (freeze the market: nothing more is
    sent), ``stats`` (counters + messages still queued), ``quit``.
    """
    import json
    import threading

    from feeds.simulator.server import SimulatorServer, parse_symbols

    async def main() -> None:
        server = SimulatorServer(symbols=parse_symbols([SYMBOL]), seed=seed, rate=rate, coalesce=False)
        await server.start()
        print(json.dumps({"type": "endpoints", "port": server.port, "venues": server.endpoints()}), flush=True)
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str] = asyncio.Queue()

        def read_stdin() -> None:  # a blocking read off the loop
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line.strip())
            loop.call_soon_threadsafe(lines.put_nowait, "quit")

        threading.Thread(target=read_stdin, daemon=True).start()
        try:
            while True:
                cmd, _, arg = (await lines.get()).partition(" ")
                if cmd == "rate":
                    assert server.model is not None
                    server.model.rate = float(arg)
                    reply: dict[str, Any] = {"rate": server.model.rate}
                elif cmd == "pause":
                    await server.pause()
                    reply = {"paused": True}
                elif cmd == "stats":
                    queued = sum(len(c.out) for c in server.connections if not c.closed)
                    reply = {**server.stats(), "queued": queued}
                elif cmd == "quit":
                    print(json.dumps({"bye": True}), flush=True)
                    return
                else:
                    reply = {"error": f"unknown command {cmd!r}"}
                print(json.dumps(reply), flush=True)
        finally:
            await server.stop()

    asyncio.run(main())


class _ProcessLoad:
    """The exchange in its own process (as in real life): the desk process holds only engine + GUI."""

    def __init__(self, rate: float) -> None:
        import json
        import subprocess
        import sys

        self._json = json
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"from benchmarks.bench_gui import serve_controlled; serve_controlled({rate!r})"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            cwd=str(Path(__file__).resolve().parent.parent))
        self._unanswered = 0
        hello = json.loads(self._readline())
        self.endpoints: dict[str, str] = hello["venues"][PROCESS_VENUE]

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator process ended (exit {self.proc.poll()})")
        return line

    def _send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def command(self, text: str) -> dict[str, Any]:
        """Send one command, return its JSON answer (blocks: not while the GUI is being measured)."""
        self._send(text)
        while self._unanswered:  # answers of earlier fire-and-forget commands come first
            self._readline()
            self._unanswered -= 1
        return self._json.loads(self._readline())

    def set_rate(self, rate: float) -> None:
        """Change the rate without waiting for the answer: the GUI thread must not wait on another process."""
        self._send(f"rate {rate}")
        self._unanswered += 1

    def sent(self) -> int:
        return int(self.command("stats")["data_messages_sent"])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.command("quit")
                self.proc.wait(5)
            except (OSError, RuntimeError, ValueError):
                pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class _StallSampler:
    """Diagnosis (``DEPTHDESK_BENCH_STALLS=1``): while the GUI heartbeat is late by > ``late_ms``, sample
    what every thread is doing; prints the most frequent stacks to stderr at the end."""

    def __init__(self, beats: list[float], late_ms: float = 40.0, depth: int = 8) -> None:
        import collections
        import threading

        self._beats = beats
        self._late = late_ms / 1e3
        self._depth = depth
        self.counts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-stall-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        import sys

        self._stop.set()
        self._thread.join(2)
        print("stall samples (thread: innermost first):", file=sys.stderr)
        for stack, n in self.counts.most_common(25):
            print(f"{n:5d}  {stack}", file=sys.stderr)

    def _run(self) -> None:
        import sys
        import threading

        while not self._stop.wait(0.005):
            if not self._beats or time.monotonic() - self._beats[-1] < self._late:
                continue
            names = {t.ident: t.name for t in threading.enumerate()}
            me = threading.get_ident()
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                parts = []
                f: Any = frame
                while f is not None and len(parts) < self._depth:
                    code = f.f_code
                    parts.append(f"{code.co_name}@{Path(code.co_filename).name}:{f.f_lineno}")
                    f = f.f_back
                self.counts[f"{names.get(ident, ident)}: " + " < ".join(parts)] += 1


class _WireCounter:
    """Counts what reached the desk (a ``raw`` listener on the engine thread) and the Binance sync's
    one uncounted discard: diffs older than the REST snapshot, dropped by design (protocols.md A.4)."""

    def __init__(self) -> None:
        self.frames = 0  # websocket frames
        self.rest = 0  # REST lines that go through the processor (depth snapshots, open interest)
        self.per_second: dict[int, int] = {}
        self._early: list[str] = []  # depth frames before the first snapshot
        self.presnapshot_dropped = 0
        self._synced = False

    def __call__(self, _venue: str, local_ns: int, raw: str) -> None:
        if raw.startswith('{"rest"'):
            if "exchangeInfo" not in raw[:60]:
                self.rest += 1
            if not self._synced and "/depth?" in raw[:80]:
                self._synced = True
                self._count_dropped(raw)
            return
        self.frames += 1
        second = local_ns // 1_000_000_000
        self.per_second[second] = self.per_second.get(second, 0) + 1
        if not self._synced and "depthUpdate" in raw:
            self._early.append(raw)

    def _count_dropped(self, rest_line: str) -> None:
        import msgspec

        last_id = int(msgspec.json.decode(rest_line)["data"]["lastUpdateId"])
        for raw in self._early:
            if int(msgspec.json.decode(raw)["data"]["u"]) < last_id:
                self.presnapshot_dropped += 1
        self._early.clear()


def run(quick: bool = False, source: str = "auto", layout: str | None = None) -> list[BenchResult]:
    """Run the steady and burst phases; returns the five ``gui.*`` rows.

    ``layout``: ``all-charts`` (every chart dock in view; the default) or ``desk`` (the default desk layout);
    None reads ``DEPTHDESK_BENCH_LAYOUT``.

    ``source``: ``process`` (the simulator in a subprocess, the desk connects to it as to a venue;
    ``auto`` means this), ``simulator`` (the embedded demo exchange, sharing the desk's process and
    GIL) or ``paced`` (the in-process feed).
    """
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, Qt, QTimer
    from PySide6.QtWidgets import QApplication, QGraphicsView

    from app.main import build_desk

    app = QApplication.instance() or QApplication(["depthdesk-bench"])
    steady_s, burst_s, recover_s = (3.0, 3.0, 3.0) if quick else (10.0, 10.0, 5.0)
    settings_dir = Path(tempfile.mkdtemp(prefix="depthdesk-bench-"))
    load: Any = None
    key = KEY
    overrides: dict[str, Any] = {"simulator": {"rate": STEADY_RATE}}
    if source in ("auto", "process"):
        load = _ProcessLoad(STEADY_RATE)  # started first: the desk's start-up time is its own
        overrides = {"venues": {PROCESS_VENUE: load.endpoints}}
        key, source = PROCESS_KEY, "process"
    startup_t0 = time.perf_counter()
    engine, window, bridge, _symbols, _settings = build_desk(
        demo=load is None, settings_dir=settings_dir, overrides=overrides,
        prefetch=os.environ.get("DEPTHDESK_BENCH_PREFETCH", "1") != "0")
    wire = _WireCounter()
    engine.listen("raw", wire)
    if load is not None:
        engine.add_sources([key])
    elif source in ("auto", "simulator"):
        try:
            engine.add_sources([key])
            load = _SimulatorLoad(engine)
            source = "simulator"
        except Exception:  # noqa: BLE001 - no simulator in this build
            if source == "simulator":
                raise
            engine.discard()
    if load is None:
        load = _PacedLoad(PacedFeed(STEADY_RATE))
        engine.add_feed(load.feed, label=key)
        source = "paced-feed"
    layout = layout or os.environ.get("DEPTHDESK_BENCH_LAYOUT", "all-charts")
    if layout not in LAYOUTS:
        raise ValueError(f"GUI bench layout must be one of {LAYOUTS}, got {layout!r}")
    window.resize(*WINDOW)
    if layout == "all-charts":
        window.charts.open_all()
    window.show()
    engine.start()
    bridge.open_symbol(key)

    frame_ms: list[float] = []
    frame_cpu_ms: list[float] = []
    lag_ms: list[tuple[float, float]] = []  # (monotonic, lag ms)
    e2e_ms: list[tuple[float, float]] = []  # (monotonic, now - exchange time of the last applied event, ms)
    shown_at: list[float] = []
    beats: list[float] = []
    gc_pauses: list[tuple[float, int, float]] = []  # (monotonic at end, generation, ms)
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses.append((time.monotonic(), int(info["generation"]),
                              (time.perf_counter() - gc_started[0]) * 1e3))

    # the charts' scenes: a plot's redraw is queued as a posted call on its scene (not a dirty widget yet)
    chart_scenes = [v.scene() for v in window.findChildren(QGraphicsView)]

    def timed_frame() -> None:
        t0 = time.perf_counter()
        c0 = time.thread_time()
        before = bridge.frames_shown
        bridge._on_frame_clock()
        if bridge.frames_shown != before:
            # paint now, inside the timed region (the queued update then only blits the cache); the charts'
            # queued scene updates are run first, so the charts this frame changed are painted in it too
            for scene in chart_scenes:
                QCoreApplication.sendPostedEvents(scene, QEvent.Type.MetaCall)
            window.ladder.repaint()
            if window.tape.list._dirty and not window.tape.list._later.isActive():
                window.tape.list.repaint()  # the tape repaints at most 25 times a second
            frame_ms.append((time.perf_counter() - t0) * 1e3)
            frame_cpu_ms.append((time.thread_time() - c0) * 1e3)  # the frame's own work, without waits
            shown_at.append(time.monotonic())
        lag = engine.lag_ns(key)
        if lag:
            lag_ms.append((time.monotonic(), lag / 1e6))
        market = engine.market(key)
        if market is not None and market.last_exch_ts:
            # exchange-to-desk: also sees a backlog still queued at the exchange or in the socket,
            # which the engine lag (now - receive time of the last applied message) cannot
            e2e_ms.append((time.monotonic(), (time.time_ns() - market.last_exch_ts) / 1e6))

    if os.environ.get("DEPTHDESK_BENCH_CATCHUP", "1") == "0":
        bridge.transit = None  # A/B: always paint at the full rate
    bridge.frame_clock.timeout.disconnect(bridge._on_frame_clock)
    bridge.frame_clock.timeout.connect(timed_frame)
    heartbeat = QTimer()
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(5)
    sched = _SchedStat()
    long_gaps: list[tuple[float, float, float, float]] = []  # (monotonic, gap ms, GUI on-CPU ms, run-queue ms)

    def beat() -> None:
        now = time.monotonic()
        cpu, runq = sched.read()
        if beats and now - beats[-1] > LONG_GAP_S:
            # where the GUI thread was during the gap: on a CPU (painting, a collection), waiting for a CPU
            # (the machine is oversubscribed), or neither (asleep: waiting for the GIL)
            long_gaps.append((now, (now - beats[-1]) * 1e3, (cpu - last_sched[0]) / 1e6, (runq - last_sched[1]) / 1e6))
        last_sched[:] = [cpu, runq]
        beats.append(now)

    last_sched = list(sched.read())
    heartbeat.timeout.connect(beat)
    bridge.start()
    tuned = os.environ.get("DEPTHDESK_BENCH_TUNE", "1") != "0"
    if tuned:
        from app.main import tune_interpreter

        switch_ms = os.environ.get("DEPTHDESK_BENCH_SWITCH_MS")  # A/B of the GIL switch interval
        if switch_ms:
            tune_interpreter(float(switch_ms) / 1e3)
        else:
            tune_interpreter()  # what run_gui does once the desk is up
    heartbeat.start()
    sampler = _StallSampler(beats) if os.environ.get("DEPTHDESK_BENCH_STALLS") == "1" else None
    if sampler is not None:
        sampler.start()
    first_paint: list[float] = [0.0]

    def note_first_paint() -> None:
        if not first_paint[0] and window.ladder.paint_count and window.ladder.frame is not None:
            first_paint[0] = time.perf_counter() - startup_t0
            first_paint.append(_process_age_s())  # from the process's start: imports included

    bridge.frame_shown.connect(note_first_paint)

    def spin(seconds: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    def worst_gap(t_from: float, t_to: float) -> float:
        inside = [t for t in beats if t_from <= t < t_to]
        gaps = np.diff(np.asarray([t_from, *inside]))
        return float(gaps.max() * 1e3) if len(gaps) else float("nan")

    def gap_causes(t_from: float, t_to: float) -> dict[str, float]:
        """The worst gap in [t_from, t_to) split into GUI-thread on-CPU / run-queue / other (GIL) ms."""
        inside = [g for g in long_gaps if t_from <= g[0] < t_to]
        if not inside:
            return {}
        _, gap, cpu, runq = max(inside, key=lambda g: g[1])
        return {"gap_ms": round(gap, 1), "on_cpu_ms": round(cpu, 1), "runqueue_ms": round(runq, 1),
                "other_ms": round(gap - cpu - runq, 1), "gaps_over_50ms": len(inside)}

    def e2e_recovery(t_end: float) -> float | None:
        """Seconds after ``t_end`` until the exchange-to-desk lag went under 100 ms for good (held 1 s)."""
        after = [(t, v) for t, v in e2e_ms if t >= t_end]
        if not after:
            return None
        last_bad = max((t for t, v in after if v >= LAG_OK_MS), default=None)
        if last_bad is None:
            return 0.0
        return last_bad - t_end if after[-1][0] - last_bad >= 1.0 else None

    def delivered(t_from: float, t_to: float) -> list[int]:
        """Frames the desk received in each whole wall-clock second of [t_from, t_to)."""
        offset = time.time() - time.monotonic()
        first, last = int(t_from + offset) + 1, int(t_to + offset)
        return [wire.per_second.get(s, 0) for s in range(first, last)]

    stop_error = ""
    burst_cpu: dict[str, float] = {}
    catch_ups_steady = 0
    steady_causes: dict[str, float] = {}
    burst_causes: dict[str, float] = {}
    recovery_causes: dict[str, float] = {}
    scale = 1.0
    drained = False
    recovered = False
    drain_s = float("nan")
    sim_stats: dict[str, Any] = {}
    gc.callbacks.append(on_gc)
    try:
        spin(1.0)  # warm-up: first paints, caches, the snapshot
        # calibrate: the simulator's rate counts model events; a message per model event is not 1:1
        r0, t0 = wire.frames, time.monotonic()
        spin(1.0)
        got = (wire.frames - r0) / (time.monotonic() - t0)
        if source in ("simulator", "process") and got > 0:
            scale = STEADY_RATE / got
            load.set_rate(STEADY_RATE * scale)
            spin(0.5)
        frame_ms.clear()
        frame_cpu_ms.clear()
        lag_ms.clear()
        shown_at.clear()
        t_steady = time.monotonic()
        cpu_steady = sched.read()[0]
        received_before = wire.frames
        beats.clear()
        spin(steady_s)
        t_burst = time.monotonic()
        # the GUI thread's own CPU time per second: what the desk costs, whatever else the machine runs
        gui_cpu_ms_per_s = (sched.read()[0] - cpu_steady) / 1e6 / (t_burst - t_steady)
        steady_msgs_per_s = (wire.frames - received_before) / (t_burst - t_steady)
        steady_frames = list(frame_ms)
        steady_frames_cpu = list(frame_cpu_ms)
        steady_lag = [v for t, v in lag_ms if t >= t_steady]
        steady_shown = [t for t in shown_at if t >= t_steady]
        # whole seconds only: the spin's coarse timer may end the phase a few hundred ms early
        per_second = [sum(1 for t in steady_shown if t_steady + i <= t < t_steady + i + 1)
                      for i in range(int(t_burst - t_steady))]
        received_before = wire.frames
        catch_ups_steady = bridge.catch_ups  # since start-up: none is expected at the steady rate
        load.set_rate(BURST_RATE * scale)
        cpu_before = _thread_cpu_s()
        spin(burst_s)
        burst_received = wire.frames - received_before
        cpu_after = _thread_cpu_s()
        burst_cpu = {name: round((cpu_after[name] - cpu_before.get(name, 0.0)) / burst_s, 2) for name in cpu_after}
        load.set_rate(STEADY_RATE * scale)
        t_end = time.monotonic()
        burst_achieved = burst_received / (t_end - t_burst)
        spin(recover_s)
        while e2e_recovery(t_end) is None and time.monotonic() - t_end < RECOVER_MAX_S:
            spin(0.5)  # not caught up yet: keep the steady rate on and measure how long it takes
        t_done = time.monotonic()
        steady_causes, burst_causes = gap_causes(t_steady, t_burst), gap_causes(t_burst, t_end)
        steady_block_ms = worst_gap(t_steady, t_burst)
        block_ms = worst_gap(t_burst, t_end)
        recovery_block_ms = worst_gap(t_end, t_done)
        recovery_causes = gap_causes(t_end, t_done)
        burst_seconds = delivered(t_burst, t_end)
        after = [(t, v) for t, v in lag_ms if t >= t_end]
        engine_lag_recovery = next((t - t_end for t, v in after if v < LAG_OK_MS), float("nan"))
        burst_lag_max = max((v for t, v in lag_ms if t_burst <= t < t_end), default=float("nan"))
        got_recovery = e2e_recovery(t_end)
        recovered = got_recovery is not None
        recovery = got_recovery if got_recovery is not None else t_done - t_end
        burst_e2e_max = max((v for t, v in e2e_ms if t_burst <= t < t_end), default=float("nan"))
        steady_e2e = [v for t, v in e2e_ms if t_steady <= t < t_burst]
        if isinstance(load, _ProcessLoad):  # account for every message: freeze the market, let it drain
            load.command("pause")
            t_pause = time.monotonic()
            deadline = t_pause + DRAIN_MAX_S
            while time.monotonic() < deadline:
                sim_stats = load.command("stats")
                if os.environ.get("DEPTHDESK_BENCH_DEBUG"):
                    print("drain", round(time.monotonic(), 2), wire.frames, sim_stats, file=sys.stderr)
                if sim_stats["queued"] == 0 and wire.frames >= sim_stats["data_messages_sent"]:
                    spin(0.3)  # the last frames were counted on arrival: let the engine apply them
                    drained = True
                    break
                spin(0.1)
            drain_s = time.monotonic() - t_pause
            sim_stats = load.command("stats")
    finally:
        gc.callbacks.remove(on_gc)
        if sampler is not None:
            sampler.stop()
        heartbeat.stop()
        bridge.stop()
        stop_t0 = time.perf_counter()
        try:
            engine.stop()
        except RuntimeError as exc:  # reported in the rows: a finding, not a reason to print nothing
            stop_error = str(exc)
        stop_s = time.perf_counter() - stop_t0
        # what was really on screen: a dock behind a tab has an empty visible region
        charts_in_view = sorted(n for n, d in window.charts.docks.items() if not d.visibleRegion().isEmpty())
        shot = os.environ.get("DEPTHDESK_BENCH_SHOT")
        if shot:
            window.grab().save(shot)
        window.close()
        app.processEvents()
        if isinstance(load, _ProcessLoad):
            load.close()
    import threading

    threads_left = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
    market = engine.market(key)
    applied = market.messages if market is not None else -1
    accounts: dict[str, Any] = {"frames_received": wire.frames, "rest_lines": wire.rest, "batches_applied": applied}
    if isinstance(load, _ProcessLoad):
        feed = engine._runs[0].feed  # the bench may look inside: it checks the feed's bookkeeping
        proc = feed._proc
        sync = proc.syncs[SYMBOL]
        buffered = len(sync._buffer) + (sync._held is not None)
        sent = int(sim_stats.get("data_messages_sent", -1))
        # every frame sent arrived; every frame (and REST line) became one applied batch, except what the
        # Binance sync drops by design (older than the snapshot, or stale) or a malformed one
        unapplied = wire.frames + wire.rest - applied - wire.presnapshot_dropped - sync.stale - proc.malformed - buffered
        accounts.update({
            "sim_sent": sent, "drained": drained, "drain_s": round(drain_s, 1),
            "lost_in_transport": sent - wire.frames,
            "feed_counter": proc.messages, "presnapshot_dropped": wire.presnapshot_dropped,
            "stale": sync.stale, "malformed": proc.malformed, "resyncs": proc.resyncs,
            "still_buffered": buffered, "unaccounted": unapplied,
            "sim_slow_consumers_cut": sim_stats.get("slow_consumers_cut", -1),
        })
        lost = (sent - wire.frames) + unapplied + proc.resyncs + proc.malformed
    else:
        lost = load.received() - applied
    burst_gc = [(g, ms) for t, g, ms in gc_pauses if t_burst <= t < t_end]
    extra = {"source": source, "window": f"{WINDOW[0]}x{WINDOW[1]}", "layout": layout,
             "charts_in_view": charts_in_view, "steady_rate": STEADY_RATE,
             "sim_rate_scale": round(scale, 2),
             "steady_msgs_per_s": round(steady_msgs_per_s)}
    rows = [
        BenchResult("gui.fps_median", float(np.median(per_second)) if per_second else 0.0, "fps",
                    extra={**extra, "per_second": per_second, "gui_cpu_ms_per_s": round(gui_cpu_ms_per_s, 1),
                           "startup_to_first_frame_s": round(first_paint[0], 3),
                           "process_start_to_first_frame_s": round(first_paint[-1], 3) if len(first_paint) > 1
                           else None,
                           "load_avg_1m": round(os.getloadavg()[0], 2)}),
        BenchResult("gui.frame_ms_p99", round(_quantile(steady_frames, 0.99), 2), "ms",
                    extra={**extra, "frame_ms_median": round(_quantile(steady_frames, 0.5), 2),
                           "frame_cpu_ms_p99": round(_quantile(steady_frames_cpu, 0.99), 2),
                           "frame_cpu_ms_median": round(_quantile(steady_frames_cpu, 0.5), 2),
                           "frame_ms_max": round(max(steady_frames, default=float("nan")), 2)}),
        BenchResult("gui.lag_ms_p99", round(_quantile(steady_lag, 0.99), 2), "ms",
                    extra={**extra, "steady_block_ms_max": round(steady_block_ms, 1), "steady_block": steady_causes,
                           "e2e_lag_ms_p99": round(_quantile(steady_e2e, 0.99), 1)}),
        BenchResult("gui.burst_block_ms_max", round(block_ms, 1), "ms",
                    extra={**extra, "burst_rate": BURST_RATE, "burst_achieved_rate": round(burst_achieved),
                           "burst_delivered_per_s": burst_seconds, "burst_s": burst_s,
                           "burst_block": burst_causes, "burst_cpu_share": burst_cpu,
                           # what the engine applies per second of its own CPU: a figure less at the mercy
                           # of the machine's other load than the achieved rate and the recovery time
                           "burst_msgs_per_engine_cpu_s": round(burst_achieved / burst_cpu["depthdesk-engine"])
                           if burst_cpu.get("depthdesk-engine") else None,
                           "catch_ups": bridge.catch_ups - catch_ups_steady,
                           "catch_ups_before_burst": catch_ups_steady,
                           "catch_up_on": bridge.transit is not None,
                           "burst_lag_ms_max": round(burst_lag_max, 1),
                           "burst_e2e_lag_ms_max": round(burst_e2e_max, 1),
                           "recovery_block_ms_max": round(recovery_block_ms, 1), "recovery_block": recovery_causes,
                           "burst_gc_count": len(burst_gc),
                           "burst_gc_ms_max": round(max((ms for _, ms in burst_gc), default=0.0), 1),
                           "burst_gc_gen2": sum(1 for g, _ in burst_gc if g == 2),
                           "gc_ms_max_by_gen": {g: round(max((ms for _, gg, ms in gc_pauses if gg == g),
                                                             default=0.0), 1) for g in (0, 1, 2)},
                           "tuned": tuned, "gil_switch_ms": round(sys.getswitchinterval() * 1e3, 2)}),
        BenchResult("gui.burst_recovery_s", round(recovery, 3), "s",
                    extra={**extra, "recovered": recovered, "recover_max_s": RECOVER_MAX_S,
                           "engine_lag_recovery_s": round(engine_lag_recovery, 3), **accounts,
                           "lost": lost, "engine_stop_s": round(stop_s, 2), "threads_left": threads_left,
                           "engine_stop_error": stop_error}),
    ]
    # NaN is not JSON: a figure that could not be measured is null
    return [dataclasses.replace(row, extra=_no_nan(row.extra)) for row in rows]


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


if __name__ == "__main__":
    import json
    import sys

    src = next((a[2:] for a in sys.argv if a in ("--paced", "--simulator", "--process")), "auto")
    for row in run(quick="--quick" in sys.argv, source=src, layout="desk" if "--desk-layout" in sys.argv else None):
        print(json.dumps(row.as_json()))
