"""GUI entry: ``depthdesk`` opens the desk, ``depthdesk --demo`` opens it on the embedded simulator.

Without a display (no DISPLAY/WAYLAND_DISPLAY and no offscreen platform) it says so and runs the
headless live view of the demo instead of letting Qt abort.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.cli import UserError

DEMO_SOURCE = "demo:ALTUSDT"


def has_display() -> bool:
    """True when Qt can open a window (a display server, or the offscreen platform asked for)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal", "vnc")):
        return True
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(args: argparse.Namespace) -> int:
    """Open the desk (or the headless view without a display); returns the exit code."""
    if getattr(args, "headless", False) or not has_display():
        print("no display: running the headless live view", file=sys.stderr)
        return _headless(args)
    return run_gui(demo=bool(getattr(args, "demo", False)), config_path=getattr(args, "config", None))


def _headless(args: argparse.Namespace) -> int:
    try:
        from app.commands import watch
    except ImportError as exc:
        raise UserError("the headless live view is not available in this build") from exc
    parser = argparse.ArgumentParser(prog="depthdesk watch")
    watch.add_arguments(parser)
    argv = [DEMO_SOURCE]
    if getattr(args, "config", None):
        argv += ["--config", args.config]
    return int(watch.run(parser.parse_args(argv)) or 0)


def build_desk(demo: bool, config_path: str | None = None, settings_dir=None,  # noqa: ANN001
               overrides: dict | None = None, prefetch: bool = True):  # noqa: ANN201 - (engine, window, bridge, symbols, settings)
    """Engine + window + bridge wired together (not started); used by ``run_gui``, screenshots, bench."""
    from app.bridge import Bridge
    from app.commands.watch import load_user_config
    from app.config import merge
    from app.engine import Engine
    from app.settings import Settings
    from widgets.main_window import MainWindow

    config = load_user_config(config_path)
    if overrides:
        config = merge(config, overrides, where="desk overrides")
    engine = Engine(config)
    settings = Settings(settings_dir) if settings_dir is not None else Settings()
    window = MainWindow(settings, instruments=lambda venue: _instrument_list(engine, venue))
    bridge = Bridge(engine, window, capture_opener=replay_opener(engine), prefetch=prefetch)
    bridge.set_recorder(DeskRecorder(engine, lambda: bridge.active))
    symbols = [DEMO_SOURCE] if demo else (settings.symbols or [DEMO_SOURCE])
    if demo and DEMO_SOURCE not in window.watchlist.symbols:
        window.watchlist.add_symbol(DEMO_SOURCE)
    return engine, window, bridge, symbols, settings


def capture_dir() -> Path:
    """Where the record button writes: ``$DEPTHDESK_CAPTURE_DIR`` or the user data dir's ``captures``."""
    env = os.environ.get("DEPTHDESK_CAPTURE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("depthdesk", appauthor=False)) / "captures"


class DeskRecorder:
    """The record button: raw messages of the active source to a native capture (flushed on stop/close).

    Starting restarts the source so the capture begins with the venue's snapshot (a capture without
    one could not be replayed until the next resync): the ladder shows a short resync.
    """

    def __init__(self, engine, active: Callable[[], str | None]) -> None:  # noqa: ANN001 - Engine
        self.engine = engine
        self._active = active
        self._lock = threading.Lock()
        self.writer = None
        self.error = ""
        engine.listen("raw", self._on_raw)
        engine.listen("instrument", self._on_instrument)
        engine.listen("status", self._on_status)

    @property
    def recording(self) -> bool:
        """True while a capture is open."""
        return self.writer is not None

    def start(self) -> Path:
        """Open a new capture for the active source and restart that source; returns the path."""
        from app.commands.record import wire_venue
        from app.config import parse_source
        from feeds.capture.writer import CaptureWriter

        key = self._active()
        if not key:
            raise UserError("no symbol to record")
        venue, symbol = parse_source(key)
        folder = capture_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{venue}_{symbol}_{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}.gz"
        writer = CaptureWriter(path, wire_venue(venue), [symbol], on_error=self._on_error)
        if venue != wire_venue(venue):
            writer.set_source_venue(venue)
        with self._lock:
            self.writer, self._symbol = writer, symbol
        self.engine.remove_source(key)
        self.engine.add_source(key)
        return path

    def stop(self) -> Path | None:
        """Close (flush) the capture; returns its path."""
        with self._lock:
            writer, self.writer = self.writer, None
        if writer is None:
            return None
        writer.close()
        return writer.path

    def _on_raw(self, _venue: str, local_ns: int, raw: str) -> None:
        with self._lock:
            if self.writer is not None:
                self.writer.write(local_ns, raw)

    def _on_instrument(self, inst) -> None:  # noqa: ANN001 - Instrument
        with self._lock:
            if self.writer is not None and inst.symbol == self._symbol:
                self.writer.set_instruments({inst.symbol: inst.tick_size})

    def _on_status(self, _venue: str, symbol: str, state: str, reason: str) -> None:
        with self._lock:
            if self.writer is not None and state in ("resyncing", "disconnected"):
                self.writer.note_gap(symbol, self.writer.last_ns, reason)

    def _on_error(self, message: str) -> None:
        self.error = message  # the writer stopped itself; the bridge shows it on the next toggle


class ReplayControl:
    """The session bar's commands on a :class:`feeds.capture.replay.ReplayFeed`."""

    def __init__(self, feed) -> None:  # noqa: ANN001 - a ReplayFeed
        self.feed = feed

    def play(self) -> None:
        """Continue."""
        self.feed.resume()

    def pause(self) -> None:
        """Hold."""
        self.feed.pause()

    def set_speed(self, speed: float) -> None:
        """0 = as fast as possible."""
        self.feed.set_speed(None if speed == 0 else speed)

    def step(self) -> None:
        """One message (while paused)."""
        self.feed.step(1)

    def seek(self, local_ns: int) -> None:
        """Jump to a time on the capture's clock."""
        self.feed.seek(local_ns)


def replay_opener(engine):  # noqa: ANN001, ANN201 - Engine -> (path -> (control, key, span))
    """What the session bar's "Open capture…" runs: a paused, seekable replay feed in the engine."""

    def open_capture(path: str):  # noqa: ANN202
        from feeds.capture.replay import ReplayFeed

        feed = ReplayFeed(path, speed=1.0, cache=True)
        index = feed.index()  # the seek cache: built once, next to the capture
        feed.pause()  # the user presses play
        engine.add_feed(feed, label=f"replay:{path}")
        return ReplayControl(feed), f"{feed.venue}:{feed.symbols[0]}", (index.first_ns, index.last_ns)

    return open_capture


def _instrument_list(engine, venue: str) -> list[str]:  # noqa: ANN001
    """Symbols the picker offers for a venue: the demo exchange's list, plus every symbol seen so far.

    (Listing a real venue's whole instrument set needs its REST exchangeInfo: type any symbol instead.)
    """
    known = {k.split(":", 1)[1] for k in engine.keys() if k.startswith(f"{venue}:")}
    if venue == "demo":
        from feeds.simulator.market import DEFAULT_SYMBOLS

        known |= {spec.symbol for spec in DEFAULT_SYMBOLS}
    return sorted(known)


def _close_on_signals(window) -> None:  # noqa: ANN001 - MainWindow
    """Ctrl-C / SIGTERM close the window like the user would (settings saved, recording flushed).

    Python runs signal handlers only between bytecodes: a no-op timer lets it in while Qt idles.
    """
    import signal

    from PySide6.QtCore import QTimer

    def close(_signum, _frame) -> None:  # noqa: ANN001
        QTimer.singleShot(0, window.close)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, close)
    window._signal_pump = QTimer(window)
    window._signal_pump.timeout.connect(lambda: None)
    window._signal_pump.start(200)


GIL_SWITCH_S = 0.001  # the GUI thread waits at most this long for the GIL the engine thread holds
GC_GEN0_THRESHOLD = 20_000  # young collections 30x rarer than the default 700


def tune_interpreter(switch_s: float | None = GIL_SWITCH_S) -> None:
    """Settings that keep the GUI thread smooth beside a busy engine thread (call once the desk is up).

    Painting calls release the GIL and must win it back from the engine thread, which holds it for up to
    the switch interval (default 5 ms) each time: a frame of a few hundred Qt calls then waits tens of ms
    under a burst. Start-up objects (Qt wrappers, modules, caches) are frozen out of the collector, so a
    full collection no longer walks them (it stopped the whole process for ~40 ms under bursts).
    """
    import gc

    if switch_s is not None:
        sys.setswitchinterval(switch_s)
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def run_gui(demo: bool, config_path: str | None = None) -> int:
    """Run the desk until its window closes."""
    started = time.monotonic()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("DepthDesk")
    engine, window, bridge, symbols, settings = build_desk(demo, config_path)
    active = symbols[0] if demo else (settings.active_symbol or symbols[0])
    try:
        engine.add_sources(symbols if active in symbols else [*symbols, active])
    except Exception as exc:  # noqa: BLE001 - a bad saved symbol must not keep the desk from opening
        engine.discard()
        raise UserError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    engine.start()
    bridge.open_symbol(active)
    window.show()
    bridge.start()
    tune_interpreter()
    _close_on_signals(window)
    app.processEvents()
    window.statusBar().showMessage(f"ready in {time.monotonic() - started:.2f} s", 5000)
    try:
        code = app.exec()
    finally:
        bridge.stop()
        if bridge.recorder is not None:
            bridge.recorder.stop()  # flushed before the engine goes
        try:
            engine.stop()
        except RuntimeError as exc:
            print(f"depthdesk: {exc}", file=sys.stderr)
    return int(code)
