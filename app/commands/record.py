"""``depthdesk record SOURCE... --out FILE``: record raw venue messages to a native capture.

Every websocket message and REST body the feeds receive goes to ``FILE`` as hftbacktest collector lines
(``<local_ns> <raw>``; gzip for ``.gz``, zstd for ``.zst``), with a JSON sidecar ``FILE.json``. Sources
must share one venue (one wire format per file; ``demo:`` records Binance USDⓈ-M wire). Ends after
``--duration`` seconds or on Ctrl-C / SIGTERM; exit 0. A write error (disk full, permission) stops the
recording with a one-line message and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from typing import Any

from app.cli import UserError
from feeds.capture.readers import CaptureError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``depthdesk record``."""
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="venue:SYMBOL, e.g. binance-usdm:BTCUSDT")
    parser.add_argument("--out", required=True, metavar="FILE", help="capture file (.gz default, .zst, or plain)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--rotate-mb", type=float, metavar="MB", help="start a new part file every MB megabytes")
    parser.add_argument("--rotate-hourly", action="store_true", help="start a new part file every hour")


def wire_venue(venue: str) -> str:
    """The wire format a source venue speaks (``demo`` is served with the Binance USDⓈ-M adapter)."""
    from app.sources import DEMO, DEMO_VENUE

    return DEMO_VENUE if venue == DEMO else venue


def attach_recorder(engine: Any, path: str, source_venue: str, symbols: list[str], **writer_options: Any) -> Any:
    """Record everything ``engine``'s feeds receive to ``path`` (for ``record``, ``watch --record``, the GUI).

    Returns the :class:`~feeds.capture.writer.CaptureWriter`; close it when the session ends. Instruments
    and resyncs/disconnects go to the sidecar. A write error stops only the recording (``on_error`` in
    ``writer_options`` hears of it); raises :class:`CaptureError` when the file cannot be opened.
    """
    from feeds.capture.writer import CaptureWriter

    writer = CaptureWriter(path, wire_venue(source_venue), symbols, **writer_options)
    if source_venue != wire_venue(source_venue):
        writer.set_source_venue(source_venue)
    engine.listen("raw", lambda _venue, local_ns, raw: writer.write(local_ns, raw))
    engine.listen("instrument", lambda inst: writer.set_instruments({inst.symbol: inst.tick_size}))
    engine.listen("status", lambda _v, symbol, state, reason: writer.note_gap(symbol, writer.last_ns, reason)
                  if state in ("resyncing", "disconnected") else None)
    return writer


def run(args: argparse.Namespace) -> int:
    """Record until the duration ends or the user stops it."""
    from app.commands.watch import _analytics, _watch, load_user_config
    from app.config import parse_source
    from app.engine import Engine

    if args.duration is not None and (not math.isfinite(args.duration) or args.duration <= 0):
        raise UserError(f"--duration must be a positive number of seconds, got {args.duration}")
    try:
        parsed = [parse_source(s) for s in args.sources]
    except ValueError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    venues = {v for v, _ in parsed}
    if len(venues) != 1:
        raise UserError(f"one venue per capture file, got {', '.join(sorted(venues))}: record them separately")
    source_venue = next(iter(venues))
    symbols = [s for _, s in parsed]
    config = load_user_config(getattr(args, "config", None))
    engine = Engine(config, **_analytics(config))
    errors: list[str] = []
    try:
        writer = attach_recorder(
            engine, args.out, source_venue, symbols,
            rotate_bytes=int(args.rotate_mb * 1e6) if args.rotate_mb else None, rotate_hourly=args.rotate_hourly,
            on_error=lambda msg: (errors.append(msg), engine.request_stop()),
        )
    except CaptureError as exc:
        engine.discard()
        raise UserError(str(exc)) from None
    try:
        engine.add_sources(args.sources)
    except UserError:
        engine.discard()
        writer.close()
        raise
    except (ValueError, LookupError) as exc:
        engine.discard()
        writer.close()
        raise UserError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    try:
        asyncio.run(_watch(engine, args.duration, None))
    finally:
        writer.close()
    if errors:
        print(f"depthdesk: {errors[0]}", file=sys.stderr)
        return 1
    if engine.errors:
        raise UserError("; ".join(e.message for e in engine.errors))
    print(f"recorded {writer.lines} lines to {', '.join(str(p) for p in writer.parts)}", file=sys.stderr)
    return 0
