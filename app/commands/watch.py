"""``depthdesk watch SOURCE...``: a headless live view, or JSON lines with ``--json``.

Runs the engine in the current event loop (no thread, no Qt). Ends after ``--duration`` seconds,
on Ctrl-C / SIGTERM, or when every source has ended; exit code 0 then. Bad arguments, config,
venue or symbol end with a one-line error (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import sys
import time
from typing import Any, TextIO

from app.cli import UserError
from app.core.events import NO_PRICE
from app.engine import Engine
from app.jsonout import JsonLinesWriter, format_qty
from feeds.common import FeedError

REFRESH_S = 0.5  # text view redraw period on a terminal
PLAIN_REFRESH_S = 2.0  # when stdout is a pipe/file: a plain block every 2 s, no escape codes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``watch``."""
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="venue:SYMBOL, e.g. binance-usdm:BTCUSDT, bybit-linear:SOLUSDT, demo:ALTUSDT")
    parser.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--config", dest="watch_config", metavar="FILE", help="user TOML merged over the defaults")
    parser.add_argument("--levels", type=int, default=1, metavar="N",
                        help="book levels per side in the text view (default 1)")


def load_user_config(path: str | None) -> dict[str, Any]:
    """The merged configuration; any problem with the file is a one-line UserError."""
    from app.config import load_config

    try:
        return load_config(path)
    except UserError:
        raise
    except (OSError, ValueError) as exc:
        raise UserError(f"config {path}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    """Run ``watch``; returns the exit code."""
    duration = args.duration
    if duration is not None and (not math.isfinite(duration) or duration <= 0):
        raise UserError(f"--duration must be a positive number of seconds, got {duration}")
    if args.levels < 1 or args.levels > 50:
        raise UserError(f"--levels must be between 1 and 50, got {args.levels}")
    config = load_user_config(getattr(args, "watch_config", None) or getattr(args, "config", None))
    try:
        engine = Engine(config)
    except ValueError as exc:  # [detectors] or [[alerts]] settings
        raise UserError(f"config: {str(exc).splitlines()[0]}") from exc
    out = sys.stdout
    try:
        engine.add_sources(args.sources)
    except UserError:
        engine.discard()
        raise
    except (ValueError, LookupError, FeedError) as exc:
        engine.discard()
        raise UserError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    writer = JsonLinesWriter(out) if args.json else None
    view = None if args.json else TextView(engine, out, args.levels)
    broken = _BrokenPipeGuard(engine)
    if writer is not None:
        engine.listen("top", broken.wrap(writer.top))
        engine.listen("status", broken.wrap(writer.status))
        engine.listen("funding", broken.wrap(writer.funding))
        engine.listen("detection", broken.wrap(writer.detection))
        engine.listen("alert", broken.wrap(writer.alert))
    started = time.monotonic()
    asyncio.run(_watch(engine, duration, view))
    elapsed = time.monotonic() - started
    if broken.broken or (view is not None and view.broken):
        _silence_stdout()
        return 0
    try:
        if writer is not None:
            writer.summary(engine.summary_sources(), duration_s=round(elapsed, 3))
        elif view is not None:
            view.final()
    except BrokenPipeError:
        _silence_stdout()
        return 0
    if engine.errors:
        raise UserError("; ".join(e.message for e in engine.errors))
    return 0


def _analytics(config: dict[str, Any]) -> dict[str, Any]:
    """Extra ``Engine`` keyword options for headless commands: none today, because the engine builds
    the detectors of ``[detectors]`` and the ``[[alerts]]`` rules itself. Kept because replay and
    record (written against the earlier hook) call it; new code should call ``Engine(config)``."""
    return {}


async def _watch(engine: Engine, duration: float | None, view: TextView | None) -> None:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, engine.request_stop)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            pass
    view_task = asyncio.ensure_future(view.run()) if view is not None else None
    try:
        await engine.run_until(duration)
    finally:
        if view_task is not None:
            view_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, BrokenPipeError):
                await view_task
        for sig in installed:
            loop.remove_signal_handler(sig)


class _BrokenPipeGuard:
    """Stops the engine quietly when stdout's reader went away (``watch --json | head``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.broken = False

    def wrap(self, fn: Any) -> Any:
        def guarded(*args: Any) -> None:
            if self.broken:
                return
            try:
                fn(*args)
            except BrokenPipeError:
                self.broken = True
                self._engine.request_stop()

        return guarded


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


class TextView:
    """The compact live text view: one line per symbol (plus ``levels`` - 1 book rows per side)."""

    def __init__(self, engine: Engine, out: TextIO, levels: int = 1) -> None:
        self._engine = engine
        self._out = out
        self._levels = levels
        self._tty = bool(getattr(out, "isatty", lambda: False)())
        self._drawn = 0
        self.broken = False

    async def run(self) -> None:
        """Redraw periodically until cancelled; a closed stdout stops the engine (nobody is reading)."""
        period = REFRESH_S if self._tty else PLAIN_REFRESH_S
        while True:
            await asyncio.sleep(period)
            try:
                self.draw()
            except BrokenPipeError:
                self.broken = True
                self._engine.request_stop()
                return

    def lines(self) -> list[str]:
        """The current view as text lines."""
        engine = self._engine
        keys = engine.keys()
        statuses = engine.statuses()
        out = []
        now = time.time_ns()
        for key, (state, reason) in statuses.items():
            if key not in keys:
                out.append(f"{key:<28} {state:<12} {reason}".rstrip())
        for key in keys:
            market = engine.market(key)
            if market is None:
                continue
            frame = market.frame(ladder_rows=0)
            inst = frame.instrument
            state, reason = statuses.get(key, (frame.state, ""))
            bid = _side_text(inst, frame.best_bid_tick, frame.best_bid_qty)
            ask = _side_text(inst, frame.best_ask_tick, frame.best_ask_qty)
            if frame.best_bid_tick != NO_PRICE and frame.best_ask_tick != NO_PRICE:
                spread = f"{frame.best_ask_tick - frame.best_bid_tick}t"
            else:
                spread = "-"
            if frame.last_trade_tick != NO_PRICE:
                side = "B" if frame.last_trade_side > 0 else "S"
                last = f"{inst.format_price(frame.last_trade_tick)} {side} {format_qty(market.last_trade_qty)}"
            else:
                last = "-"
            lag_ms = (now - frame.local_ts) / 1e6 if frame.local_ts else float("nan")
            lag = f"{lag_ms:.0f}ms" if math.isfinite(lag_ms) else "-"
            line = (f"{key:<28} {state:<12} {bid:>24} | {ask:<24} spr {spread:<5} last {last:<26} "
                    f"{frame.message_rate:7.1f} msg/s  lag {lag}")
            if reason and state != "live":
                line += f"  ({reason})"
            out.append(line)
            if self._levels > 1:
                out.extend(self._level_lines(market))
        if not out:
            out.append("(no sources)")
        return out

    def _level_lines(self, market: Any) -> list[str]:
        with market._lock:  # a consistent read of both sides
            bid_t, bid_q = market.book.levels(1, self._levels)
            ask_t, ask_q = market.book.levels(-1, self._levels)
        inst = market.instrument
        rows = []
        for i in range(1, self._levels):  # level 1 is on the symbol's own line
            b = _side_text(inst, int(bid_t[i]), float(bid_q[i])) if i < len(bid_t) else ""
            a = _side_text(inst, int(ask_t[i]), float(ask_q[i])) if i < len(ask_t) else ""
            rows.append(f"{'':<28} {'':<12} {b:>24} | {a:<24}")
        return rows

    def draw(self) -> None:
        """Write the view: redraw in place on a terminal, a plain block otherwise."""
        lines = self.lines()
        if self._tty:
            prefix = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
            self._out.write(prefix + "\n".join(lines) + "\n")
            self._drawn = len(lines)
        else:
            stamp = time.strftime("%H:%M:%S")
            self._out.write(f"-- {stamp}\n" + "\n".join(lines) + "\n")
        self._out.flush()

    def final(self) -> None:
        """Last view plus per-source totals."""
        self.draw()
        for row in self._engine.summary_sources():
            self._out.write(
                f"{row['source']}: {row['messages']} messages, {row['resyncs']} resyncs, "
                f"{row['reconnects']} reconnects, {row['malformed']} malformed\n"
            )
        self._out.flush()


def _side_text(inst: Any, tick: int, qty: float) -> str:
    if tick == NO_PRICE:
        return "-"
    return f"{format_qty(qty)} @ {inst.format_price(tick)}"
