"""``depthdesk scenarios DIR``: write the simulator's labelled scenario suite (captures + label files).

Each scenario becomes ``<name>.<venue>.gz`` (hftbacktest collector lines, replayable with
``depthdesk replay``) and ``<name>.<venue>.labels.json`` (kind, side, price, start/end/evidence time of
every planted event and hard negative). With ``--score`` every written capture is read back and run
through the real path (venue parsers → book sync → DepthBook → DetectorSet → JSON lines) and the
detections are scored against the labels: precision, recall and median delay per kind. ``depthdesk
bench`` scores the same suite through the same functions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app.cli import UserError
from app.core.instrument import Instrument
from feeds.base import BatchCollector

VENUES = ("binance-usdm", "bybit-linear")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``depthdesk scenarios``."""
    parser.add_argument("out", metavar="DIR", help="folder to write the captures and label files into (created)")
    parser.add_argument("--seeds", default="101,202,303", metavar="N,N,...",
                        help="simulator seeds, one scenario per kind and seed (default: the bench suite's)")
    parser.add_argument("--kinds", metavar="K,K,...", help="only these scenario kinds (default: all)")
    parser.add_argument("--venue", choices=VENUES, default="binance-usdm", help="wire format of the captures")
    parser.add_argument("--score", action="store_true",
                        help="replay each capture through parsers, book and detectors; print scores per kind")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text (one per scenario, "
                        "then one per kind with --score)")


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        out = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UserError(f"--{what} must be comma-separated integers, got {text!r}") from None
    if not out:
        raise UserError(f"--{what} is empty")
    return out


def suite(seeds: tuple[int, ...] | None = None, kinds: tuple[str, ...] | None = None) -> list[Any]:
    """The scenarios of the simulator's ScenarioSuite for these seeds and kinds (default: all of it)."""
    from feeds.simulator.scenarios import SCENARIO_KINDS, ScenarioSuite

    if kinds is not None:
        unknown = [k for k in kinds if k not in SCENARIO_KINDS]
        if unknown:
            raise UserError(f"unknown scenario kind(s) {', '.join(unknown)}; one of {', '.join(SCENARIO_KINDS)}")
    return ScenarioSuite(**({"seeds": seeds} if seeds else {}), **({"kinds": kinds} if kinds else {})).scenarios()


def scenario_instrument(scenario: Any, venue: str = "binance-usdm") -> Instrument:
    """The instrument a scenario trades."""
    spec = scenario.symbol_spec
    return Instrument(venue, spec.symbol, tick_size=spec.tick_size, lot_size=spec.lot_size)



def detect_records(records: Iterable[tuple[int, str | bytes]], instrument: Instrument,
                   config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Wire records ``(local_ns, raw)`` → venue parsers → DepthBook → DetectorSet → detection JSON objects.

    Every open detection is closed at the end of the records (as a replay does).
    """
    from app.analytics.alerts import detection_json
    from app.analytics.detectors import DetectorSet
    from app.core.book import DepthBook

    if instrument.venue == "binance-usdm":
        from feeds.binance_usdm import BinanceUsdmProcessor as Processor
    elif instrument.venue == "bybit-linear":
        from feeds.bybit_linear import BybitLinearProcessor as Processor
    else:
        raise ValueError(f"no parser for venue {instrument.venue!r}: one of {', '.join(VENUES)}")
    sink = BatchCollector()
    proc = Processor([instrument], sink)
    for local, raw in records:
        proc.on_line(raw, local)
    book = DepthBook(instrument)
    dets = DetectorSet(instrument, config)
    out: list[dict[str, Any]] = []
    for b in sink.batches:
        book.apply(b)
        for d in dets.on_batch(b, book):
            out.append(detection_json(d, instrument))
    if sink.batches:
        for d in dets.close_all(int(sink.batches[-1]["exch_ts"].max())):
            out.append(detection_json(d, instrument))
    # Through JSON text and back, as a consumer of ``--json`` lines sees them.
    return [json.loads(json.dumps(o)) for o in out]


def read_capture_lines(path: Path) -> list[tuple[int, bytes]]:
    """``(local_ns, raw)`` of an hftbacktest collector capture (``<local_ns> <raw>`` per line, gzip)."""
    out = []
    with gzip.open(path, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            local, sep, raw = line.rstrip(b"\n").partition(b" ")
            if not sep or not local.isdigit():
                raise UserError(f"{path}:{n}: not an hftbacktest capture line")
            out.append((int(local), raw))
    return out


def score_table(scores: dict[str, Any]) -> str:
    """Scores per kind as a fixed-width table."""
    rows = [f"{'kind':<14} {'precision':>9} {'recall':>7} {'delay_ms':>9} {'detections':>10} {'labels':>7}"]
    for kind, ks in scores.items():
        delay = "-" if math.isnan(ks.median_delay_ms) else f"{ks.median_delay_ms:.0f}"
        rows.append(f"{kind:<14} {ks.precision:>9.3f} {ks.recall:>7.3f} {delay:>9} {ks.detections:>10} "
                    f"{ks.labels:>7}")
    return "\n".join(rows)


def _detectors_config(path: str | None) -> dict[str, Any]:
    """``[detectors]`` of the defaults merged with the global ``--config`` file, checked."""
    from app.analytics.detectors import DetectorSet
    from app.commands.watch import load_user_config

    section = dict(load_user_config(path).get("detectors") or {})
    try:
        DetectorSet(Instrument("check", "CHECK", 1.0), section)
    except ValueError as exc:
        raise UserError(f"config: {str(exc).splitlines()[0]}") from None
    return section


def run(args: argparse.Namespace) -> int:
    """Write the suite; with ``--score``, score it. Prints one line per written scenario (or JSON)."""
    from app.analytics.scoring import score_runs
    from feeds.simulator.recorder import write_scenario

    seeds = _ints(args.seeds, "seeds")
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip()) if args.kinds else None
    scenarios = suite(seeds, kinds)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    config = _detectors_config(getattr(args, "config", None)) if args.score else None
    runs = []
    for sc in scenarios:
        try:
            capture, labels_file = write_scenario(sc, out, venue=args.venue)
        except OSError as exc:
            raise UserError(f"cannot write {sc.name} into {out}: {exc}") from None
        labels = json.loads(labels_file.read_text(encoding="utf-8"))["labels"]
        if args.json:
            print(json.dumps({"type": "scenario", "name": sc.name, "kind": sc.kind, "seed": sc.seed,
                              "capture": str(capture), "labels_file": str(labels_file), "labels": len(labels)}))
        else:
            print(f"{sc.name}: {capture.name} + {labels_file.name} (labels: {len(labels)})")
        if args.score:
            inst = scenario_instrument(sc, args.venue)
            runs.append((sc.name, detect_records(read_capture_lines(capture), inst, config), labels, inst))
        sys.stdout.flush()
    if args.score:
        scores, _ = score_runs(runs)
        if args.json:
            for ks in scores.values():
                row = {"type": "score", **ks.as_dict()}
                if math.isnan(row["median_delay_ms"]):
                    row["median_delay_ms"] = None  # no matched label: no delay (JSON has no NaN)
                print(json.dumps(row))
        else:
            print(score_table(scores))
    return 0
