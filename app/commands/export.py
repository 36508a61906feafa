"""``depthdesk export FILE --out X.npz``: a capture's normalized events as hftbacktest ``.npz`` data."""

from __future__ import annotations

import argparse
import math
import sys

from app.cli import UserError
from feeds.capture.readers import VENUES, CaptureError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``depthdesk export``."""
    parser.add_argument("file", help="capture file (native, hftbacktest, cryptofeed, Bybit archive, Tardis CSV)")
    parser.add_argument("--out", required=True, metavar="X.npz",
                        help="output file; with several symbols one X_<SYMBOL>.npz each")
    parser.add_argument("--venue", choices=VENUES, help="venue when the content does not say")
    parser.add_argument("--tick-size", type=float, metavar="X", help="override the recorded/inferred tick size")
    parser.add_argument("--symbol", action="append", metavar="SYM", help="export only this symbol (repeatable)")
    parser.add_argument("--all-kinds", action="store_true",
                        help="also DepthDesk's own kinds (mark, funding, liquidation, open interest, gap; ev 100+)")
    parser.add_argument("--base-latency-ms", type=float, default=0.0, metavar="MS",
                        help="added to the feed latency when local time had to be shifted (as hftbacktest's)")


def run(args: argparse.Namespace) -> int:
    """Export; prints one line per written file."""
    from feeds.capture.export import export_npz

    if args.tick_size is not None and not (args.tick_size > 0 and math.isfinite(args.tick_size)):
        raise UserError(f"--tick-size must be a positive number, got {args.tick_size}")
    try:
        written = export_npz(args.file, args.out, venue=args.venue, tick_size=args.tick_size, symbols=args.symbol,
                             include_own_kinds=args.all_kinds, base_latency_ns=int(args.base_latency_ms * 1e6))
    except CaptureError as exc:
        raise UserError(str(exc)) from None
    for sym, (path, rows) in written.items():
        print(f"{sym}: {rows} events -> {path}", file=sys.stdout)
    return 0
