"""Scoring detections against planted labels: precision, recall and detection delay per kind.

A detection is one lifecycle (its ``open`` … ``close`` records sharing an id). It matches a label when
the kind and side agree, the prices are within ``tolerance_ticks`` (for ranged detections — gaps,
absorption bands, sweeps — the label's price may fall anywhere in the range), and the detection's
time span overlaps the label's ``[start, end]`` widened by ``slack_ms``. Precision = matched
detections / detections; recall = matched labels / labels; delay = first matching ``open`` − the
label's ``ready`` time (when the evidence was complete) or its ``start``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.core.detection import KINDS, Detection
from app.core.instrument import Instrument

_SIDE = {"bid": 1, "ask": -1, 1: 1, -1: -1, "buy": 1, "sell": -1}


@dataclass(frozen=True, slots=True)
class Label:
    """One planted event: kind, book side, price (ticks), exchange-time span (ns), ready time (ns)."""

    kind: str
    side: int
    price_tick: int
    start: int
    end: int
    ready: int | None = None
    price_far_tick: int | None = None
    negative: bool = False  # a hard negative: a detection of this kind here is wrong


@dataclass(frozen=True, slots=True)
class Span:
    """One detection lifecycle."""

    id: int
    kind: str
    side: int
    lo_tick: int
    hi_tick: int
    price_tick: int
    open_ts: int
    close_ts: int


@dataclass(frozen=True, slots=True)
class KindScore:
    """Scores of one kind."""

    kind: str
    detections: int
    labels: int
    true_positives: int
    matched_labels: int
    precision: float
    recall: float
    median_delay_ms: float
    delays_ms: tuple[float, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for JSON / benchmark rows)."""
        return {"kind": self.kind, "detections": self.detections, "labels": self.labels,
                "true_positives": self.true_positives, "matched_labels": self.matched_labels,
                "precision": self.precision, "recall": self.recall, "median_delay_ms": self.median_delay_ms}


def _ts(v: Any, where: str) -> int:
    """A label time: int ns, or float seconds (values below 1e12 are taken as seconds)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"{where}: time must be a number (ns or seconds), got {v!r}")
    return int(v * 1e9) if abs(v) < 1e12 else int(v)


def label_from_dict(raw: dict[str, Any], instrument: Instrument | None = None, index: int = 0) -> Label:
    """A label from a label-file record ``{kind, side, price|price_tick, start, end[, ready]}``."""
    where = f"label[{index}]"
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{where}: unknown kind {kind!r}")
    side = _SIDE.get(raw.get("side"))
    if side is None:
        raise ValueError(f"{where}: side must be bid/ask or +1/-1, got {raw.get('side')!r}")

    def tick(key_tick: str, key_price: str) -> int | None:
        if raw.get(key_tick) is not None:
            return int(raw[key_tick])
        if raw.get(key_price) is not None:
            if instrument is None:
                raise ValueError(f"{where}: a price needs the instrument to become ticks")
            return instrument.to_tick(raw[key_price])
        return None

    p = tick("price_tick", "price")
    if p is None:
        raise ValueError(f"{where}: needs price or price_tick")
    def when(*keys: str) -> int | None:
        for k in keys:
            v = raw.get(k)
            if v is not None:
                if k.endswith("_ns"):  # the simulator's labels: exact int nanoseconds
                    if isinstance(v, bool) or not isinstance(v, int):
                        raise ValueError(f"{where}: {k} must be an integer (ns), got {v!r}")
                    return v
                return _ts(v, where)
        return None

    start = when("start_ns", "start")
    if start is None:
        raise ValueError(f"{where}: needs start (or start_ns)")
    end = when("end_ns", "end")
    ready = when("evidence_ns", "ready", "evidence_ts")
    return Label(kind=kind, side=side, price_tick=p, start=start, end=start if end is None else end,
                 ready=ready,
                 price_far_tick=tick("price_far_tick", "price_far"), negative=bool(raw.get("negative", False)))


def load_labels(path: Path, instrument: Instrument | None = None) -> list[Label]:
    """Labels from a JSON list or JSON-lines file."""
    text = Path(path).read_text(encoding="utf-8").strip()
    if text.startswith("["):
        records = json.loads(text)
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [label_from_dict(r, instrument, i) for i, r in enumerate(records)]


def detections_from_json(records: list[dict[str, Any]]) -> list[Detection]:
    """``{"type":"detection",...}`` objects (the headless JSON lines) back into detections."""
    fixed = {"type", "kind", "venue", "symbol", "side", "id", "price", "price_far", "price_tick", "price_far_tick",
             "exch_ts", "state"}
    out = []
    for r in records:
        if r.get("type") != "detection":
            continue
        out.append(Detection(id=int(r["id"]), kind=r["kind"], venue=r["venue"], symbol=r["symbol"],
                             side=_SIDE[r["side"]], price_tick=int(r["price_tick"]), exch_ts=int(r["exch_ts"]),
                             state=r["state"], price_far_tick=r.get("price_far_tick"),
                             evidence={k: v for k, v in r.items() if k not in fixed}))
    return out


def spans(detections: list[Detection]) -> list[Span]:
    """Detection records → lifecycles (a lifecycle without close ends at its last record)."""
    first: dict[int, Detection] = {}
    last: dict[int, Detection] = {}
    lo: dict[int, int] = {}
    hi: dict[int, int] = {}
    for d in detections:
        if d.id not in first:
            first[d.id] = d
        last[d.id] = d
        ticks = [d.price_tick] + ([d.price_far_tick] if d.price_far_tick is not None else [])
        lo[d.id] = min([lo.get(d.id, ticks[0]), *ticks])
        hi[d.id] = max([hi.get(d.id, ticks[0]), *ticks])
    out = []
    for i, f in first.items():
        if f.state != "open":
            continue
        out.append(Span(i, f.kind, f.side, lo[i], hi[i], f.price_tick, f.exch_ts, last[i].exch_ts))
    return out


def _matches(s: Span, lab: Label, tol: int, slack: int) -> bool:
    if s.kind != lab.kind or s.side != lab.side:
        return False
    l_lo = min(lab.price_tick, lab.price_far_tick if lab.price_far_tick is not None else lab.price_tick)
    l_hi = max(lab.price_tick, lab.price_far_tick if lab.price_far_tick is not None else lab.price_tick)
    if s.hi_tick + tol < l_lo or s.lo_tick - tol > l_hi:
        return False
    return s.open_ts <= lab.end + slack and s.close_ts >= lab.start - slack


def score(detections: list[Detection], labels: list[Label], tolerance_ticks: int = 1, slack_ms: float = 1000.0,
          kinds: tuple[str, ...] | None = None, explained: bool = True) -> dict[str, KindScore]:
    """Precision, recall and median delay per kind (kinds with neither labels nor detections omitted).

    With ``explained`` (default), a detection that matches no label of its kind but does match a
    positive label of *another* kind at the same side, price and time (a planted absorption band is
    also a large resting order) counts neither for nor against precision; a detection matching a hard
    negative of its own kind always counts against it.
    """
    sp = spans(detections)
    slack = int(slack_ms * 1e6)
    positives = [lb for lb in labels if not lb.negative]
    negatives = [lb for lb in labels if lb.negative]
    wanted = kinds or tuple(k for k in KINDS if any(s.kind == k for s in sp) or any(lb.kind == k for lb in positives))
    out: dict[str, KindScore] = {}
    for kind in wanted:
        ks = [s for s in sp if s.kind == kind]
        kl = [lb for lb in positives if lb.kind == kind]
        kn = [lb for lb in negatives if lb.kind == kind]
        tp = fp = 0
        for s in ks:
            if any(_matches(s, lb, tolerance_ticks, slack) for lb in kn):
                fp += 1
            elif any(_matches(s, lb, tolerance_ticks, slack) for lb in kl):
                tp += 1
            elif explained and any(_matches(s, _as_kind(lb, kind), tolerance_ticks, slack)
                                   for lb in positives if lb.kind != kind):
                continue
            else:
                fp += 1
        delays = []
        matched = 0
        for lb in kl:
            hits = [s for s in ks if _matches(s, lb, tolerance_ticks, slack)]
            if hits:
                matched += 1
                ref = lb.ready if lb.ready is not None else lb.start
                delays.append((min(s.open_ts for s in hits) - ref) / 1e6)
        judged = tp + fp
        out[kind] = KindScore(
            kind=kind, detections=len(ks), labels=len(kl), true_positives=tp, matched_labels=matched,
            precision=tp / judged if judged else (1.0 if not kl else 0.0),
            recall=matched / len(kl) if kl else 1.0,
            median_delay_ms=float(np.median(delays)) if delays else float("nan"),
            delays_ms=tuple(delays))
    return out


def _as_kind(lb: Label, kind: str) -> Label:
    return Label(kind, lb.side, lb.price_tick, lb.start, lb.end, lb.ready, lb.price_far_tick, lb.negative)


def score_runs(runs: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], Instrument]],
               **score_kwargs: Any) -> tuple[dict[str, KindScore], list[tuple[str, list[Detection], list[Label]]]]:
    """Score several scenario runs together: each ``(name, detection JSON objects, label dicts, instrument)``.

    Runs may share a clock origin (the simulator's scenarios all start at the same instant), so each
    is shifted onto its own hour first; labels of kinds DepthDesk does not detect are ignored.
    Returns (per-kind scores, per run (name, detections, labels) after the shift).
    """
    all_dets: list[Detection] = []
    all_labels: list[Label] = []
    per = []
    for n, (name, objs, raw_labels, inst) in enumerate(runs, start=1):
        shift = (n - 1) * 3600 * 1_000_000_000
        dets = [Detection(d.id + n * 10_000_000, d.kind, d.venue, d.symbol, d.side, d.price_tick,
                          d.exch_ts + shift, d.state, d.price_far_tick, d.evidence)
                for d in detections_from_json(objs)]
        labs = [label_from_dict(lb, inst, i) for i, lb in enumerate(raw_labels) if lb.get("kind") in KINDS]
        labs = [Label(lb.kind, lb.side, lb.price_tick, lb.start + shift, lb.end + shift,
                      None if lb.ready is None else lb.ready + shift, lb.price_far_tick, lb.negative)
                for lb in labs]
        all_dets.extend(dets)
        all_labels.extend(labs)
        per.append((name, dets, labs))
    return score(all_dets, all_labels, **score_kwargs), per
