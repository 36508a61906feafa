"""``depthdesk verify FILE``: check a capture and print a report; exit 1 on a real defect."""

from __future__ import annotations

import argparse
import json
import sys

from app.cli import UserError
from feeds.capture.readers import VENUES, CaptureError
from feeds.capture.verify import verify_capture


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``depthdesk verify``."""
    parser.add_argument("file", help="capture file (native, hftbacktest, cryptofeed, Bybit archive, Tardis CSV)")
    parser.add_argument("--venue", choices=VENUES, help="venue when the content does not say")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")


def run(args: argparse.Namespace) -> int:
    """Verify the capture; 0 = no defect, 1 = defects found (listed), 2 = not a capture."""
    try:
        report = verify_capture(args.file, venue=args.venue)
    except CaptureError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        out = {
            "type": "verify", "file": str(report.path), "format": report.format, "venue": report.venue,
            "records": report.records, "ok": report.ok, "defects": report.defects, "warnings": report.warnings,
            "books": [{"name": b.name, "messages": b.messages, "gaps": len(b.gaps), "crossed": b.crossed,
                       "top_compared": b.top_compared, "top_mismatches": b.top_mismatches} for b in report.books],
        }
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        sys.stdout.write(report.text() + "\n")
    return 0 if report.ok else 1
