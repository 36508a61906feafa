"""The one module that sees both Qt and the engine: frame clock, 1 Hz clock, event signals, commands.

Frames are *pulled* by a QTimer (DESIGN.md §3) and shown only when the symbol's version, feed state
or the ladder's view (rows, grouping, scroll) changed; nothing is ever painted from a data callback.
Rare engine events (status, alerts, errors) arrive on the engine thread through listener callables
and are re-emitted as Qt signals, which Qt queues to the GUI thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal

from app.chart_puller import ChartPuller, leader_series, own_series
from app.core.detection import Detection
from app.core.events import KIND_MASK, TRADE_EVENT
from app.core.frame import Frame
from app.core.instrument import Instrument
from app.pull_thread import PullThread
from widgets import fmt
from widgets.alerts import AlertRecord, RuleSpec
from widgets.watchlist import DEPTH_BAND

FRAME_HZ = 60.0
SLOW_HZ = 1.0
# Catch-up: when the data being applied arrives this much later than usual, the engine is behind its feed
# (a burst). The desk then paints less often, so the engine thread gets the GIL the painting took.
CATCH_UP_ENTER_MS = 200.0
CATCH_UP_EXIT_MS = 80.0
CATCH_UP_HZ = 6.0
CATCH_UP_CHART_S = 1.0  # while catching up the chart docks redraw at most this often
CATCH_UP_HOLD_S = 0.3  # late for this long, not one hiccup (a stalled machine, a snapshot's buffered diffs)
# A frame's newest message may come from a quieter connection that is not behind (trades while the depth
# stream queues up): judge by the latest of the recent frames, over a short window to go in and a longer
# one to come out, so the clock does not flap between the two rates.
ENTER_WINDOW_S = 0.3
EXIT_WINDOW_S = 1.0
TRANSIT_WINDOW_S = 30  # the usual delay is the smallest seen over this many seconds
LADDER_MARGIN_ROWS = 4  # rows fetched beyond the visible ones (cumulative depth, quick scroll)
WATCH_MAX_ROWS = 20_000  # ±0.5 % of a high-priced, fine-tick contract can be thousands of ticks
SIZE_KEYS = ("size", "visible", "qty", "executed", "volume", "absorbed", "hidden")
# the size an alert of a kind is about comes first (an iceberg is about what hides)
KIND_SIZE_KEYS = {"iceberg": ("hidden", "executed"), "absorption": ("absorbed", "volume", "executed")}


class EngineLike(Protocol):
    """What the bridge needs of :class:`app.engine.Engine` (tests pass a fake)."""

    def listen(self, kind: str, callback: Callable[..., Any]) -> None: ...
    def add_source(self, source: str) -> None: ...
    def frame(self, symbol: str, ladder_rows: int = 40, group: int = 1, centre_tick: int | None = None,
              trades: int = 200) -> Frame | None: ...
    def version(self, symbol: str) -> int: ...
    def status(self, symbol: str) -> tuple[str, str]: ...
    def stats(self, now_ns: int | None = None) -> list[Any]: ...


def detection_size(det: Detection) -> float:
    """The size a detection is about (resting, executed or hidden), 0 when it names none."""
    for key in (*KIND_SIZE_KEYS.get(det.kind, ()), *SIZE_KEYS):
        value = det.evidence.get(key)
        if isinstance(value, int | float) and value:
            return float(value)
    return 0.0


def evidence_text(det: Detection, limit: int = 4) -> str:
    """The first few evidence numbers as ``key value`` text for the alert panel."""
    parts = []
    for key, value in list(det.evidence.items())[:limit]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            text = str(value)
        elif float(value).is_integer() and abs(value) < 1000:
            text = str(int(value))  # counts (levels, fills, refills) read as counts
        else:
            text = fmt.qty(float(value))
        parts.append(f"{key} {text}")
    return ", ".join(parts)


class RuleMatcher:
    """Matches detections against the user's detector-kind rules (called on the engine thread).

    Rules are replaced as a whole (one reference swap), so the engine never sees a half-edited list.
    """

    def __init__(self, rules: Sequence[RuleSpec] = ()) -> None:
        self._rules: tuple[RuleSpec, ...] = tuple(rules)
        self._last_fired: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()

    def set_rules(self, rules: Sequence[RuleSpec]) -> None:
        """Replace the rules."""
        self._rules = tuple(r for r in rules if r.kind not in ("price", "size_at_level"))

    @property
    def has_rules(self) -> bool:
        """Whether any detector-kind rule is set (the engine thread skips matching otherwise)."""
        return bool(self._rules)

    def __call__(self, det: Detection) -> list[str]:
        """Names of the rules ``det`` fires (respecting each rule's cooldown by exchange time)."""
        if det.state == "close":
            return []
        fired = []
        key = f"{det.venue}:{det.symbol}"
        size = detection_size(det)
        with self._lock:
            for i, rule in enumerate(self._rules):
                if not rule.enabled or rule.kind != det.kind:
                    continue
                if rule.symbol and rule.symbol != key:
                    continue
                if rule.side and rule.side != det.side:
                    continue
                if rule.min_size and size < rule.min_size:
                    continue
                if rule.price_tick is not None and abs(det.price_tick - rule.price_tick) > rule.band_ticks:
                    continue
                last = self._last_fired.get((i, key))
                if last is not None and det.exch_ts - last < rule.cooldown_s * 1e9:
                    continue
                self._last_fired[(i, key)] = det.exch_ts
                fired.append(f"rule{i}:{rule.describe()}")
        return fired


class LevelAlerts:
    """Price and size-at-level rules (made by clicking the ladder), checked on the frames shown."""

    def __init__(self) -> None:
        self.rules: list[RuleSpec] = []
        self._last_trade: dict[str, tuple[int, int, int]] = {}  # key -> (local_ts, order_id, tick) newest seen
        self._last_fired: dict[int, float] = {}

    def check(self, frame: Frame) -> list[tuple[RuleSpec, AlertRecord]]:
        """Rules that fire on this frame (price traded at/through the level, or size reached)."""
        key = frame.instrument.key
        rules = [r for r in self.rules if r.enabled and r.symbol in ("", key)]
        trades = frame.trades
        new = trades[:0] if len(trades) == 0 else trades
        seen = self._last_trade.get(key)
        if len(trades):
            stamp = (int(trades["local_ts"][-1]), int(trades["order_id"][-1]), int(trades["ival"][-1]))
            if seen is not None:
                newer = (trades["local_ts"] > seen[0]) | (
                    (trades["local_ts"] == seen[0]) & (trades["order_id"] > np.uint64(seen[1]))
                )
                new = trades[newer]
            self._last_trade[key] = stamp
        if seen is None:
            new = trades[:0]  # the first frame only sets where "new" starts: old prints fire nothing
        new = new[(new["ev"] & KIND_MASK) == TRADE_EVENT] if len(new) else new
        out = []
        now = time.monotonic()
        for rule in rules:
            assert rule.price_tick is not None or rule.kind not in ("price", "size_at_level")
            if rule.kind == "price" and len(new):
                hit = new[new["ival"] == rule.price_tick]
                if len(hit) == 0:
                    # price jumped over the level (a sweep through it, or between two frames)
                    ticks = new["ival"] if seen is None else np.r_[seen[2], new["ival"]]
                    if ticks.min() < rule.price_tick < ticks.max():
                        hit = new[-1:]
                if len(hit):
                    side = 1 if int(hit["ev"][-1]) & (1 << 29) else -1
                    out.append((rule, self._record(frame, rule, int(hit["exch_ts"][-1]), side,
                                                   float(hit["qty"].sum()), "price traded")))
            elif rule.kind == "size_at_level":
                ticks = frame.ladder_ticks
                rows = np.flatnonzero(ticks == rule.price_tick)
                if len(rows) == 0:
                    continue
                col = frame.ladder_ask if rule.side == -1 else frame.ladder_bid
                size = float(col[rows[0]])
                last = self._last_fired.get(id(rule))
                if size >= rule.min_size and (last is None or now - last >= rule.cooldown_s):
                    self._last_fired[id(rule)] = now
                    out.append((rule, self._record(frame, rule, frame.exch_ts, rule.side, size,
                                                   f"size {fmt.qty(size)} ≥ {fmt.qty(rule.min_size)}")))
        return out

    @staticmethod
    def _record(frame: Frame, rule: RuleSpec, ts: int, side: int, size: float, text: str) -> AlertRecord:
        inst = frame.instrument
        assert rule.price_tick is not None
        return AlertRecord(ts, inst.key, rule.kind, side, rule.price_tick, inst.format_price(rule.price_tick),
                           size, text)


class TransitWatch:
    """How much later than usual the newest applied data arrived: (receive - exchange time) minus the
    smallest such delay of the last ``window_s`` seconds (clock offset and network latency cancel out).

    A backlog queued in the socket or at the venue shows here; the engine lag (now - receive time) cannot
    see it, since every message is stamped when the engine finally reads it.
    """

    def __init__(self, window_s: int = TRANSIT_WINDOW_S) -> None:
        self._minima: deque[float] = deque(maxlen=window_s)  # per-second minima, ms
        self._second: int | None = None
        self._current = float("inf")
        self.behind_ms = 0.0
        self._recent: deque[tuple[float, float]] = deque()  # (now_s, behind ms) of the last EXIT_WINDOW_S

    def note(self, exch_ts: int, local_ts: int, now_s: float) -> float:
        """One applied message's exchange and receive times (ns); returns how far behind it was, ms."""
        if exch_ts <= 0 or local_ts <= 0:
            return self.behind_ms
        transit = (local_ts - exch_ts) / 1e6
        second = int(now_s)
        if second != self._second:
            if self._second is not None:
                self._minima.append(self._current)
            self._second, self._current = second, transit
        elif transit < self._current:
            self._current = transit
        floor = min(self._current, min(self._minima, default=transit))
        self.behind_ms = max(0.0, transit - floor)
        recent = self._recent
        recent.append((now_s, self.behind_ms))
        while recent and recent[0][0] < now_s - EXIT_WINDOW_S:
            recent.popleft()
        return self.behind_ms

    def worst_ms(self, window_s: float, now_s: float) -> float:
        """The most behind any message noted in the last ``window_s`` seconds was (0 when none)."""
        return max((b for t, b in self._recent if t >= now_s - window_s), default=0.0)


class FramePrefetcher(PullThread):
    """Pulls the next frame on its own thread, one frame ahead of the GUI's clock.

    ``Engine.frame`` takes the market's lock, which the engine thread re-takes for every message: under
    a burst the GUI thread could wait tens of ms for it. Here that wait happens off the GUI thread; the
    frame clock only picks up the newest frame (one clock tick old at most) and asks for the next.
    """

    thread_name = "depthdesk-frames"

    def __init__(self, engine: EngineLike) -> None:
        super().__init__()
        self._engine = engine
        self._want: tuple[str, int, int, int | None] | None = None
        self._latest: tuple[tuple[Any, ...], Frame] | None = None
        self._watch_keys: tuple[str, ...] = ()
        self._watch_frames: dict[str, Frame] = {}
        self._watch_due = 0.0

    def request(self, key: str, rows: int, group: int, centre: int | None) -> None:
        """The view the next frame is for; wakes the thread."""
        self._want = (key, rows, group, centre)
        self._wake.set()

    def latest(self) -> tuple[tuple[Any, ...], Frame] | None:
        """(view key, frame) of the newest frame pulled."""
        return self._latest

    def request_watch(self, keys: Sequence[str]) -> None:
        """Symbols whose watchlist frames to pull (about once a second)."""
        self._watch_keys = tuple(keys)

    def watch_frames(self) -> dict[str, Frame]:
        """The newest watchlist frame per symbol."""
        return dict(self._watch_frames)

    def _run(self) -> None:
        last: tuple[Any, ...] | None = None
        while not self._stopping.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            now = time.monotonic()
            if self._watch_keys and now >= self._watch_due:
                self._watch_due = now + 1.0 / SLOW_HZ
                for key in self._watch_keys:
                    frame = watch_frame(self._engine, key)
                    if frame is not None:
                        self._watch_frames[key] = frame
            want = self._want
            if want is None or self._stopping.is_set():
                continue
            key, rows, group, centre = want
            view_key = (key, self._engine.version(key), self._engine.status(key)[0], rows, group, centre)
            if view_key == last:
                continue
            frame = self._engine.frame(key, ladder_rows=rows, group=group, centre_tick=centre)
            if frame is not None:
                last = view_key
                self._latest = (view_key, frame)


def watch_frame(engine: EngineLike, key: str, trades: int = 50) -> Frame | None:
    """A frame for the watchlist: a ladder wide enough for depth within ±0.5 % of mid."""
    top = engine.frame(key, ladder_rows=0, trades=0)
    if top is None or top.mid_tick is None:
        return top
    rows = min(WATCH_MAX_ROWS, int(abs(top.mid_tick) * DEPTH_BAND * 2) + 4)
    return engine.frame(key, ladder_rows=rows, trades=trades)


def _engine_rule_name(rule: RuleSpec) -> str:
    return f"desk-{rule.kind}-{rule.symbol}-{rule.price_tick}-{rule.side}"


def _detection_record(instrument: Instrument, det: Detection, kind: str) -> AlertRecord:
    return AlertRecord(
        ts_ns=det.exch_ts, symbol=instrument.key, kind=kind, side=det.side, tick=det.price_tick,
        price_text=instrument.format_price(det.price_tick), size=detection_size(det), evidence=evidence_text(det),
    )


class Bridge(QObject):
    """Drives a :class:`widgets.main_window.MainWindow` from an engine; commands go the other way."""

    status_changed = Signal(str, str, str, str)  # venue, symbol, state, reason
    alert_fired = Signal(object, str)  # AlertRecord, engine rule name ('' for the desk's own rules)
    engine_error = Signal(str)
    frame_shown = Signal("qint64")  # version, after the window took a new frame
    catch_up_changed = Signal(bool)  # the desk went into (True) or out of (False) catch-up

    def __init__(self, engine: EngineLike, window: Any = None, frame_hz: float = FRAME_HZ,
                 parent: QObject | None = None, capture_opener: Callable[[str], Any] | None = None,
                 prefetch: bool = False, catch_up: bool = True) -> None:
        super().__init__(parent)
        if not 1 <= frame_hz <= 240:
            raise ValueError(f"frame clock must be 1..240 Hz, got {frame_hz}")
        self.engine = engine
        self.window = window
        self.active: str | None = None
        self.matcher = RuleMatcher()
        self.level_alerts = LevelAlerts()
        self._engine_price_rules: dict[str, RuleSpec] = {}  # engine rule name -> the desk's rule
        self.frames_shown = 0
        self.frames_skipped = 0
        self._last_key: tuple[Any, ...] | None = None
        self._shown_times: deque[float] = deque(maxlen=600)
        self.prefetcher = FramePrefetcher(engine) if prefetch else None
        # the chart docks' data, pulled off the GUI thread (engines without charts: none)
        self.chart_puller = ChartPuller(engine) if hasattr(engine, "chart_frame") else None  # type: ignore[arg-type]
        self._last_chart: Any = None
        self._replay: Any = None  # a replay controller when the session is a replay
        self.capture_opener = capture_opener  # path -> (controller, "venue:SYMBOL", (first_ns, last_ns))
        self._recorder: Any = None
        self.frame_clock = QTimer(self)
        self.frame_clock.setTimerType(Qt.TimerType.PreciseTimer)
        self._frame_ms = max(1, int(1000.0 / frame_hz))  # 60 Hz -> 16 ms: never below the target
        self.frame_clock.setInterval(self._frame_ms)
        self.transit = TransitWatch() if catch_up else None
        self.catching_up = False
        self.catch_ups = 0  # times the desk went into catch-up
        self._late_since: float | None = None
        self._charts_at = 0.0  # when the chart docks last got a frame
        self.frame_clock.timeout.connect(self._on_frame_clock)
        self.slow_clock = QTimer(self)
        self.slow_clock.setInterval(int(1000 / SLOW_HZ))
        self.slow_clock.timeout.connect(self._on_slow_clock)
        self.status_changed.connect(self._on_status_changed)
        self.alert_fired.connect(self._on_alert_fired)
        self.engine_error.connect(self._on_engine_error)
        engine.listen("status", self._listen_status)
        engine.listen("alert", self._listen_alert)
        engine.listen("detection", self._listen_detection)
        engine.listen("error", self._listen_error)
        if window is not None:
            self.attach(window)

    # ----------------------------------------------------------------- wiring
    def attach(self, window: Any) -> None:
        """Connect a main window's command signals to this bridge."""
        self.window = window
        window.symbol_requested.connect(self.open_symbol)
        window.rules_changed.connect(self.set_rules)
        window.record_toggled.connect(self._on_record_toggled)
        window.play_toggled.connect(lambda on: self._replay_call("pause" if not on else "play"))
        window.speed_changed.connect(lambda s: self._replay_call("set_speed", s))
        window.step_requested.connect(lambda: self._replay_call("step"))
        window.seek_requested.connect(lambda ts: self._replay_call("seek", ts))
        window.open_capture_requested.connect(self._on_open_capture)
        if hasattr(window, "set_catching_up"):
            self.catch_up_changed.connect(window.set_catching_up)
        self.set_rules(window.rules)

    def start(self) -> None:
        """Start both clocks (and the frame prefetcher when enabled)."""
        if self.prefetcher is not None:
            self.prefetcher.start()
        if self.chart_puller is not None:
            self.chart_puller.start()
        self.frame_clock.start()
        self.slow_clock.start()

    def stop(self) -> None:
        """Stop the clocks and the prefetcher (the engine is stopped by its owner)."""
        self.frame_clock.stop()
        self.slow_clock.stop()
        if self.prefetcher is not None:
            self.prefetcher.stop()
        if self.chart_puller is not None:
            self.chart_puller.stop()

    def set_replay_controller(self, controller: Any, span: tuple[int, int] = (0, 0)) -> None:
        """Route the session bar to a replay controller (methods play/pause/set_speed/step/seek)."""
        self._replay = controller
        if self.window is not None:
            self.window.set_session("REPLAY" if controller is not None else "LIVE", span)

    def set_recorder(self, recorder: Any) -> None:
        """An object with ``start() -> path`` / ``stop() -> path`` that records the live session."""
        self._recorder = recorder

    @property
    def recorder(self) -> Any:
        """The record button's recorder (None when recording is not wired)."""
        return self._recorder

    # ----------------------------------------------------------------- commands (GUI -> engine)
    def open_symbol(self, key: str) -> None:
        """Show ``venue:SYMBOL``; adds it as an engine source when it is new."""
        key = key.strip()
        if not key:
            return
        known = set(getattr(self.engine, "keys", list)()) | set(getattr(self.engine, "statuses", dict)())
        if key not in known and self.engine.version(key) < 0:
            try:
                self.engine.add_source(key)
            except Exception as exc:  # noqa: BLE001 - a bad symbol is a message, never a crash
                self._on_engine_error(f"{key}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
                return
        self.active = key
        self._last_key = None
        if self.window is not None:
            self.window.set_active_symbol(key)

    def set_rules(self, rules: list[RuleSpec]) -> None:
        """New alert rules from the editor or a ladder click.

        Detector-kind rules are matched here on the engine's detections; price alerts go to the engine
        (checked on every trade batch) when it offers ``add_price_alert`` and the market exists, else
        they and size-at-level rules are checked on the frames the desk pulls.
        """
        self.matcher.set_rules(rules)
        adds = getattr(self.engine, "add_price_alert", None)
        level: list[RuleSpec] = []
        wanted: dict[str, RuleSpec] = {}
        for rule in rules:
            if rule.kind == "price" and adds is not None and rule.symbol and rule.enabled:
                wanted[_engine_rule_name(rule)] = rule
            elif rule.kind in ("price", "size_at_level"):
                level.append(rule)
        for name, rule in list(self._engine_price_rules.items()):
            if name not in wanted:
                self.engine.remove_alert(rule.symbol, name)  # type: ignore[attr-defined]
                del self._engine_price_rules[name]
        for name, rule in wanted.items():
            if name in self._engine_price_rules:
                continue
            assert adds is not None and rule.price_tick is not None
            try:
                adds(rule.symbol, name, rule.price_tick, "up" if rule.side <= 0 else "down", sound=rule.sound,
                     once=rule.once)
            except ValueError:  # that market has no data yet: watch it on frames instead
                level.append(rule)
            else:
                self._engine_price_rules[name] = rule
        self.level_alerts.rules = level

    # ----------------------------------------------------------------- clocks
    def _on_frame_clock(self) -> None:
        key = self.active
        if key is None or self.window is None:
            return
        ladder = self.window.ladder
        rows = ladder.row_count + 2 * LADDER_MARGIN_ROWS
        group = ladder.group
        centre = ladder.centre_tick
        if self.prefetcher is not None and self.prefetcher.running:
            got = self.prefetcher.latest()
            self.prefetcher.request(key, rows, group, centre)
            if got is None or got[0] == self._last_key:
                self.frames_skipped += 1
                return
            view_key, frame = got
            if (view_key[0], *view_key[3:]) != (key, rows, group, centre):
                return  # pulled for a view that changed since: the right one comes next tick
            self._show(view_key, frame)
            return
        version = self.engine.version(key)
        state = self.engine.status(key)[0]
        view_key = (key, version, state, rows, group, centre)
        if view_key == self._last_key:
            self.frames_skipped += 1
            return
        frame = self.engine.frame(key, ladder_rows=rows, group=group, centre_tick=centre)
        if frame is None:
            return
        self._show(view_key, frame)

    def _show(self, view_key: tuple[Any, ...], frame: Frame) -> None:
        if self.transit is not None:
            now = time.monotonic()
            self.transit.note(frame.exch_ts, frame.local_ts, now)
            self._pace(now)
        self._last_key = view_key
        self.window.show_frame(frame)
        self.frames_shown += 1
        self._shown_times.append(time.monotonic())
        for rule, record in self.level_alerts.check(frame):
            self._fire_level_rule(rule, record)
        self._show_charts()
        self.frame_shown.emit(frame.version)

    def _show_charts(self) -> None:
        """Hand the newest chart frame to the chart docks (while one is open) and ask for the next."""
        charts = getattr(self.window, "charts", None)
        puller = self.chart_puller
        if charts is None or puller is None or self.active is None or not charts.visible():
            return
        now = time.monotonic()
        if self.catching_up and now - self._charts_at < CATCH_UP_CHART_S:
            return  # shed: the GIL the chart redraws take goes to the engine until it caught up
        self._charts_at = now
        puller.request(self.active, charts.wanted_leaders())
        if not puller.running:
            puller.pull_once()  # tests and engines without the thread: pull in line
        cf = puller.latest(self.active)  # with the thread: the frame pulled since the last tick
        if cf is not None and cf is not self._last_chart:
            self._last_chart = cf
            charts.show_chart_frame(cf)

    def _fire_level_rule(self, rule: RuleSpec, record: AlertRecord) -> None:
        if rule.once and self.window is not None:
            rules = [r for r in self.window.rules if r is not rule]
            self.window.rules = rules
            self.set_rules(rules)
        if self.window is not None:
            self.window.add_alert(record, sound=rule.sound)

    def _pace(self, now: float) -> None:
        """Paint at CATCH_UP_HZ (charts at 1/CATCH_UP_CHART_S) while the engine is behind its feed, at the
        full rate again once it caught up."""
        assert self.transit is not None
        if not self.catching_up:
            if self.transit.worst_ms(ENTER_WINDOW_S, now) <= CATCH_UP_ENTER_MS:
                self._late_since = None
            elif self._late_since is None:
                self._late_since = now
            elif now - self._late_since >= CATCH_UP_HOLD_S:
                self.catching_up = True
                self.catch_ups += 1
                self.frame_clock.setInterval(max(self._frame_ms, int(1000.0 / CATCH_UP_HZ)))
                self.catch_up_changed.emit(True)  # before this frame is shown: no flash starts with it
        elif self.transit.worst_ms(EXIT_WINDOW_S, now) < CATCH_UP_EXIT_MS:
            self._late_since = None
            self.catching_up = False
            self.frame_clock.setInterval(self._frame_ms)
            self.catch_up_changed.emit(False)

    def fps(self) -> float:
        """Frames shown per second over the last second."""
        now = time.monotonic()
        return float(sum(1 for t in self._shown_times if now - t <= 1.0))

    def _on_slow_clock(self) -> None:
        if self.window is None:
            return
        stats = self.engine.stats()
        rate = sum(s.message_rate for s in stats)
        lags = [s.lag_ns for s in stats if s.lag_ns > 0]
        lag_ms = max(lags) / 1e6 if lags else None
        ring = max((s.ring_fill for s in stats), default=0.0)
        symbols = self.window.watchlist.symbols
        if self.prefetcher is not None and self.prefetcher.running:
            self.prefetcher.request_watch(symbols)  # pulled off the GUI thread; shown a second later
            frames = self.prefetcher.watch_frames()
        else:
            frames = {key: f for key in symbols if (f := watch_frame(self.engine, key)) is not None}
        for key, frame in frames.items():
            self.window.note_frame(frame)
            if key != self.active:
                for rule, record in self.level_alerts.check(frame):
                    self._fire_level_rule(rule, record)
        self.window.tick_1hz(rate, lag_ms, self.fps(), ring)
        charts = getattr(self.window, "charts", None)
        if charts is not None and self.chart_puller is not None and self.active is not None:
            series = self.chart_puller.series()
            now = self._last_chart.exch_ts if self._last_chart is not None else 0
            charts.tick_1hz(now, own_series(series, self.active),
                            leader_series(series, self.active, charts.wanted_leaders()))
        if self.catching_up and self.transit is not None and hasattr(self.window, "statusBar"):
            self.window.statusBar().showMessage(
                f"catching up: data arriving {self.transit.worst_ms(EXIT_WINDOW_S, time.monotonic()):,.0f} ms late,"
                f" painting at {CATCH_UP_HZ:.0f} Hz, charts at {1 / CATCH_UP_CHART_S:.0f} Hz", 1500)

    # ----------------------------------------------------------------- engine thread -> signals
    def _listen_status(self, venue: str, symbol: str, state: str, reason: str) -> None:
        self._emit(self.status_changed, venue, symbol, state, reason)

    @staticmethod
    def _emit(signal: Any, *args: Any) -> None:
        """Emit from the engine thread; after the window closed (bridge deleted) there is nobody to tell."""
        try:
            signal.emit(*args)
        except RuntimeError:  # "Signal source has been deleted": shutting down
            pass

    def _listen_alert(self, instrument: Instrument, alert: Any) -> None:
        det: Detection | None = alert.detection
        if det is not None:
            record = _detection_record(instrument, det, alert.kind or det.kind)
        else:
            record = AlertRecord(
                ts_ns=alert.exch_ts, symbol=instrument.key, kind=alert.kind or "price", side=0,
                tick=alert.price_tick, price_text=instrument.format_price(alert.price_tick), size=0.0,
                evidence=f"traded at {instrument.format_price(alert.price_tick)}",
            )
        self._emit(self.alert_fired, record, str(alert.rule))

    def _listen_detection(self, instrument: Instrument, det: Detection) -> None:
        if self.matcher.has_rules and self.matcher(det):
            self._emit(self.alert_fired, _detection_record(instrument, det, det.kind), "")

    def _listen_error(self, source: str, exc: BaseException) -> None:
        self._emit(self.engine_error, f"{source}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")

    # ----------------------------------------------------------------- GUI-thread slots
    def _on_status_changed(self, venue: str, symbol: str, state: str, reason: str) -> None:
        if self.window is not None:
            self.window.set_feed_state(venue, symbol, state, reason)

    def _on_alert_fired(self, record: AlertRecord, rule_name: str) -> None:
        rule = self._engine_price_rules.get(rule_name)
        if self.window is None:
            return
        if rule is not None and rule.once:
            self.window.rules = [r for r in self.window.rules if r is not rule]
            self.set_rules(self.window.rules)
        self.window.add_alert(record, sound=rule.sound if rule is not None else True)

    def _on_engine_error(self, message: str) -> None:
        if self.window is not None:
            self.window.statusBar().showMessage(message, 10_000)

    def _on_record_toggled(self, on: bool) -> None:
        if self._recorder is None:
            self._on_engine_error("recording is not available in this build")
            if self.window is not None:
                self.window.session_bar.set_recording(False)
            return
        try:
            path = self._recorder.start() if on else self._recorder.stop()
        except Exception as exc:  # noqa: BLE001 - disk full, no symbol: a message, and the button resets
            self._on_engine_error(f"recording: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            if self.window is not None:
                self.window.session_bar.set_recording(False)
            return
        if self.window is not None and path is not None:
            self.window.statusBar().showMessage(f"{'recording to' if on else 'recorded'} {path}", 10_000)

    def _on_open_capture(self, path: str) -> None:
        opener = self.capture_opener or getattr(self.engine, "open_capture", None)
        if opener is None:
            self._on_engine_error("replay is not available in this build")
            return
        try:
            controller, key, span = opener(path)
        except Exception as exc:  # noqa: BLE001 - a bad file is a message
            self._on_engine_error(f"cannot open {path}: {exc}")
            return
        self.set_replay_controller(controller, span)
        self.open_symbol(key)
        if self.window is not None:
            self.window.session_bar.play_button.setChecked(False)

    def _replay_call(self, method: str, *args: Any) -> None:
        if self._replay is None:
            return
        try:
            getattr(self._replay, method)(*args)
        except ValueError as exc:  # e.g. a speed out of range: a message, not a crash
            self._on_engine_error(f"replay: {exc}")
