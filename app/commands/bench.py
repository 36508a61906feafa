"""``depthdesk bench``: run the benchmark suite (a table, or JSON lines with ``--json``)."""

from __future__ import annotations

import argparse

from app.cli import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``depthdesk bench`` (the same as ``python -m benchmarks.runner``)."""
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    parser.add_argument("--quick", action="store_true", help="smaller inputs: a smoke run, figures are rough")
    parser.add_argument("--only", metavar="SUBSTR", help="run only modules/rows whose name contains SUBSTR")
    parser.add_argument("--gui", action="store_true", help="also run the GUI benchmark (opens windows)")


def run(args: argparse.Namespace) -> int:
    """Run the selected benchmarks; exit status 1 when one of them failed."""
    try:
        from benchmarks import runner
    except ModuleNotFoundError as exc:  # an installed wheel without the benchmarks package
        if not (exc.name or "").startswith("benchmarks"):
            raise
        raise UserError("the benchmark suite is not part of this installation (run from a checkout)") from exc
    if args.gui and not runner.gui_available():
        raise UserError("the GUI benchmark (benchmarks/bench_gui.py) is not available in this build")
    return runner.run_all(quick=args.quick, only=args.only, as_json=args.json, include_gui=args.gui)
