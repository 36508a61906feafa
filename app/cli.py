"""Command-line entry point: parses arguments and hands each subcommand to its module.

Each subcommand lives in ``app/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so ``depthdesk watch``
never loads Qt.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from app import __version__
from app.errors import UserError

__all__ = ["COMMANDS", "UserError", "build_parser", "main"]

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "watch": ("app.commands.watch", "headless live view of one or more sources"),
    "record": ("app.commands.record", "record sources to a native capture file"),
    "replay": ("app.commands.replay", "replay a capture headless (JSON lines with --json)"),
    "verify": ("app.commands.verify", "check a capture: sequence, crossed book, top of book"),
    "export": ("app.commands.export", "export a capture's events to hftbacktest .npz"),
    "simulate": ("app.commands.simulate", "run the local exchange simulator on 127.0.0.1"),
    "scenarios": ("app.commands.scenarios", "write labelled detector scenarios (captures + labels)"),
    "bench": ("app.commands.bench", "run the benchmark suite"),
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; subcommand modules add their own options."""
    parser = argparse.ArgumentParser(prog="depthdesk", description="Order-flow and DOM monitor for crypto perps.")
    parser.add_argument("--version", action="version", version=f"depthdesk {__version__}")
    parser.add_argument("--demo", action="store_true", help="open the desk on the embedded demo exchange")
    parser.add_argument("--config", help="user TOML merged over the defaults")
    parser.add_argument("--headless", action="store_true", help="never open a window (live text view instead)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        module = _load(module_name)
        if module is not None:
            module.add_arguments(p)
    return parser


def _load(module_name: str):  # noqa: ANN202 - a module or None
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``depthdesk``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    module_name = getattr(args, "_module", "app.main")
    module = _load(module_name)
    if module is None:
        print(f"depthdesk: '{args.command}' is not available in this build", file=sys.stderr)
        return 2
    try:
        return int(module.run(args) or 0)
    except UserError as exc:
        print(f"depthdesk: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
