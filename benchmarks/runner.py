"""Discovers ``benchmarks/bench_*.py``, runs them and prints a table or JSON lines (`make bench`).

``--only SUBSTR`` selects whole modules when SUBSTR is part of a module name (``--only core``), else
the rows whose name contains it (``--only ring``). A module may declare ``ROWS``, the names of every
row it can print, so ``--only`` skips it without running it; its ``run`` may accept ``only=`` to skip
its own unselected parts.
A module that raises prints one error row and the others still run; the exit status is then 1.
``bench_gui`` runs only when asked for (it opens windows).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence
from typing import TextIO

import benchmarks
from benchmarks import BenchResult

GUI_MODULE = "bench_gui"
# Rows stream in as modules finish, so widths are fixed: the name column fits the longest row names.
_COLUMNS = (("name", 46), ("value", 16), ("unit", 10), ("peer", 34), ("ratio", 8))


def discover(include_gui: bool = False) -> list[str]:
    """Short names (``bench_core`` …) of the benchmark modules, sorted."""
    names = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_") and not m.ispkg
    )
    return [n for n in names if include_gui or n != GUI_MODULE]


def gui_available() -> bool:
    """True when ``benchmarks/bench_gui.py`` exists in this build."""
    return GUI_MODULE in discover(include_gui=True)


def _may_match(module_name: str, module: object, only: str | None) -> bool:
    """Whether a module can produce a row selected by ``only`` (unknown modules: maybe, so yes)."""
    if not only or only in module_name:
        return True
    names = getattr(module, "ROWS", None)
    if names is None:
        return True
    return any(only in n for n in names)


def _run_module(module: object, quick: bool, only: str | None, module_name: str) -> list[BenchResult]:
    run = module.run  # type: ignore[attr-defined]
    params = inspect.signature(run).parameters
    # a substring naming the module selects all of it, not only rows containing the substring
    row_filter = None if (only is None or only in module_name) else only
    if "only" in params:
        results = run(quick=quick, only=row_filter)
    else:
        results = run(quick=quick)
    if row_filter is not None:
        results = [r for r in results if row_filter in r.name]
    return list(results)


def format_value(value: float | None) -> str:
    """A figure for the table: thousands separators for big numbers, 4 significant digits for small."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _table_line(cells: Sequence[str]) -> str:
    return "  ".join(
        c.rjust(w) if i in (1, 4) else c.ljust(w) for i, (c, (_, w)) in enumerate(zip(cells, _COLUMNS, strict=True))
    ).rstrip()


def _json_safe(value: object) -> object:
    """NaN/inf (a figure that could not be measured) become null: json.dumps would write invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _emit(result: BenchResult, as_json: bool, out: TextIO) -> None:
    if as_json:
        print(json.dumps(_json_safe(result.as_json()), allow_nan=False), file=out, flush=True)
        return
    ratio = "" if result.ratio is None else f"x{result.ratio:.2f}"
    print(_table_line([result.name, format_value(result.value), result.unit, result.peer or "", ratio]),
          file=out, flush=True)


def _emit_error(module_name: str, exc: BaseException, as_json: bool, out: TextIO) -> None:
    message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    if as_json:
        row = {"name": f"{module_name}.error", "value": None, "unit": "error", "error": message}
        print(json.dumps(row), file=out, flush=True)
    else:
        print(_table_line([f"{module_name}.error", "FAILED", "", message[:80], ""]), file=out, flush=True)


def run_all(
    quick: bool = False,
    only: str | None = None,
    as_json: bool = False,
    include_gui: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run every selected module, printing rows as they come; returns 0, or 1 if a module failed."""
    out = out or sys.stdout
    err = err or sys.stderr
    failed = 0
    printed_header = False
    names = discover(include_gui)
    if only and any(only in n for n in names):  # --only names modules: run those whole, nothing else
        names = [n for n in names if only in n]
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except Exception as exc:  # noqa: BLE001 - a broken module is reported, the others still run
            _emit_error(name, exc, as_json, out)
            failed += 1
            continue
        if not _may_match(name, module, only):
            continue
        if not as_json and not printed_header:
            print(_table_line([c for c, _ in _COLUMNS]), file=out)
            print(_table_line(["-" * w for _, w in _COLUMNS]), file=out, flush=True)
            printed_header = True
        started = time.perf_counter()
        try:
            results = _run_module(module, quick, only, name)
        except Exception as exc:  # noqa: BLE001 - a failing bench prints an error row, the rest still run
            _emit_error(name, exc, as_json, out)
            if not as_json:
                traceback.print_exc(limit=3, file=err)
            failed += 1
            continue
        for result in results:
            _emit(result, as_json, out)
        if not as_json:
            print(f"  ({name}: {time.perf_counter() - started:.1f} s)", file=err, flush=True)
    return 1 if failed else 0


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The options shared by ``python -m benchmarks.runner`` and ``depthdesk bench``."""
    parser = parser or argparse.ArgumentParser(prog="benchmarks.runner", description="DepthDesk benchmarks")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    parser.add_argument("--quick", action="store_true", help="smaller inputs: a smoke run, figures are rough")
    parser.add_argument("--only", metavar="SUBSTR", help="run only modules/rows whose name contains SUBSTR")
    parser.add_argument("--gui", action="store_true", help="also run the GUI benchmark (opens windows)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.runner``."""
    args = build_parser().parse_args(argv)
    if args.gui and not gui_available():
        print("benchmarks.runner: the GUI benchmark (benchmarks/bench_gui.py) is not available in this build",
              file=sys.stderr)
        return 2
    return run_all(quick=args.quick, only=args.only, as_json=args.json, include_gui=args.gui)


if __name__ == "__main__":
    sys.exit(main())
