"""``depthdesk replay FILE``: replay a capture headless through the engine (JSON lines with ``--json``).

The capture goes through the same venue processors, engine, detectors and JSON writer as
``watch --json``; times in the lines are the capture's (exchange time, and the recorded receive time).
``--from``/``--to`` take seconds after the capture's start (``90``, ``+90``), an epoch time (s, ms or ns)
or an ISO-8601 UTC time (``2024-08-08T23:56:00``); a window uses the seek cache (built on first use).
Exit 0 at the end of the capture; a file that is not a replayable capture is a one-line error (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from datetime import UTC, datetime

from app.cli import UserError
from feeds.capture.readers import VENUES, CaptureError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``depthdesk replay``."""
    parser.add_argument("file", help="capture file (native, hftbacktest, cryptofeed, Bybit archive, Tardis CSV)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, metavar="X", help="0.1 .. 1000 times real time (default 1)")
    pace.add_argument("--max", action="store_true", help="as fast as possible")
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout (top/status/detection/alert/summary)")
    parser.add_argument("--from", dest="from_", metavar="T", help="start at T (seconds after the start, epoch, ISO)")
    parser.add_argument("--to", metavar="T", help="stop after T")
    parser.add_argument("--venue", choices=VENUES, help="venue when the content does not say")
    parser.add_argument("--tick-size", type=float, metavar="X", help="override the recorded/inferred tick size")
    parser.add_argument("--symbol", action="append", metavar="SYM", help="replay only this symbol (repeatable)")
    parser.add_argument("--cache-dir", metavar="DIR", help="where the seek cache lives (default: beside the file)")


def parse_time(text: str, first_ns: int) -> int:
    """A ``--from``/``--to`` value -> ns on the capture's clock (see the module docstring)."""
    t = text.strip()
    try:
        value = float(t)
    except ValueError:
        try:
            stamp = datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"cannot read time {text!r} (seconds after start, epoch, or ISO-8601)") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return int(stamp.timestamp() * 1e9)
    if not math.isfinite(value):
        raise UserError(f"cannot read time {text!r}")
    if t.startswith("+") or abs(value) < 1e8:  # an offset: a capture does not start in 1973
        return first_ns + int(value * 1e9)
    if value < 1e11:
        return int(value * 1e9)  # epoch seconds
    if value < 1e14:
        return int(value * 1e6)  # epoch ms
    return int(value)  # epoch ns


def run(args: argparse.Namespace) -> int:
    """Replay the capture; 0 at its end."""
    from pathlib import Path

    from app.commands.watch import (
        TextView,
        _analytics,
        _BrokenPipeGuard,
        _silence_stdout,
        _watch,
        load_user_config,
    )
    from app.engine import Engine
    from app.jsonout import JsonLinesWriter
    from feeds.capture.replay import ReplayFeed

    speed = None if args.max else args.speed
    if speed is not None and not (0.1 <= speed <= 1000):
        raise UserError(f"--speed must be between 0.1 and 1000, got {speed:g}")
    if args.tick_size is not None and not (args.tick_size > 0 and math.isfinite(args.tick_size)):
        raise UserError(f"--tick-size must be a positive number, got {args.tick_size}")
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    try:
        feed = ReplayFeed(args.file, venue=args.venue, tick_size=args.tick_size, symbols=args.symbol, speed=speed,
                          cache_dir=cache_dir)
        first_ns = _first_ns(feed)
        start = parse_time(args.from_, first_ns) if args.from_ else None
        end = parse_time(args.to, first_ns) if args.to else None
        if start is not None and end is not None and end <= start:
            raise UserError("--to must be after --from")
        feed.start_ns, feed.end_ns = start, end
        if start is not None:
            feed.use_cache = True
            if not args.json:
                feed.progress = _progress_printer()
            feed.index()
    except CaptureError as exc:
        raise UserError(str(exc)) from None
    for warning in feed.contents.warnings:
        print(f"depthdesk: warning: {warning}", file=sys.stderr)
    config = load_user_config(getattr(args, "config", None))
    engine = Engine(config, **_analytics(config))
    engine.add_feed(feed, label=f"replay:{Path(args.file).name}")
    writer = JsonLinesWriter(sys.stdout, flush=False) if args.json else None
    broken = _BrokenPipeGuard(engine)
    if writer is not None:
        for kind in ("top", "status", "funding", "detection", "alert"):
            engine.listen(kind, broken.wrap(getattr(writer, kind)))
    # paced text mode shows the same live view as watch; --max just prints the totals at the end
    view = TextView(engine, sys.stdout, 1) if writer is None and speed is not None else None
    wall = time.monotonic()
    asyncio.run(_watch(engine, None, view))
    elapsed = time.monotonic() - wall
    span_s = max(0.0, (feed.position_ns - (start if start is not None else first_ns)) / 1e9)
    if broken.broken:
        _silence_stdout()
        return 0
    try:
        if writer is not None:
            writer.summary(engine.summary_sources(), duration_s=round(elapsed, 3), replay=str(args.file),
                           market_s=round(span_s, 3), speed=round(span_s / elapsed, 1) if elapsed > 0 else None)
            writer.flush()
        else:
            if view is not None:
                view.draw()
            for row in engine.summary_sources():
                print(f"{row['source']}: {row['messages']} messages, {row['resyncs']} resyncs, "
                      f"{row['reconnects']} reconnects, {row['malformed']} malformed")
            print(f"replayed {span_s:.1f} s of market in {elapsed:.2f} s ({span_s / max(elapsed, 1e-9):.0f}x)")
    except BrokenPipeError:
        _silence_stdout()
        return 0
    if engine.errors:
        raise UserError("; ".join(e.message for e in engine.errors))
    return 0


def _first_ns(feed: object) -> int:
    """The first record time of the capture (its clock's zero for ``--from 90``)."""
    for rec in feed.reader:  # type: ignore[attr-defined]
        if not rec.channel.startswith("open:"):
            return rec.local_ns
    raise CaptureError(f"{feed.path}: no records")  # type: ignore[attr-defined]


def _progress_printer():  # noqa: ANN202 - a callback
    def show(fraction: float) -> None:
        print(f"\rbuilding seek cache {fraction * 100:5.1f}%", end="" if fraction < 1 else "\n", file=sys.stderr)

    return show
