"""Scoring against labels, and the end-to-end path: simulator scenario → Binance wire records → parsers
→ book → DetectorSet → JSON lines → scored against the scenario's labels."""

from __future__ import annotations

import math

import pytest

from app.analytics.scoring import Label, label_from_dict, score, spans
from app.core.detection import Detection
from app.core.instrument import Instrument

MS = 1_000_000
INST = Instrument("sim", "ALTUSDT", tick_size=0.0001)


def d(i, kind, state, ts_ms, tick=4320, side=-1, far=None):
    return Detection(id=i, kind=kind, venue="sim", symbol="ALTUSDT", side=side, price_tick=tick,
                     exch_ts=ts_ms * MS, state=state, price_far_tick=far)


def lab(kind, start_ms, end_ms, tick=4320, side=-1, ready_ms=None, far=None, negative=False):
    return Label(kind, side, tick, start_ms * MS, end_ms * MS, None if ready_ms is None else ready_ms * MS, far,
                 negative)


def test_precision_recall_and_delay_per_kind():
    dets = [d(1, "iceberg", "open", 1500), d(1, "iceberg", "close", 4000),  # matches label A, 300 ms late
            d(2, "iceberg", "open", 9000), d(2, "iceberg", "close", 9500),  # matches nothing
            d(3, "iceberg", "open", 20_000, tick=4330), d(3, "iceberg", "close", 21_000, tick=4330)]  # wrong price
    labels = [lab("iceberg", 1000, 3000, ready_ms=1200), lab("iceberg", 20_000, 22_000)]
    s = score(dets, labels)["iceberg"]
    assert (s.detections, s.true_positives, s.matched_labels) == (3, 1, 1)
    assert s.precision == pytest.approx(1 / 3) and s.recall == 0.5
    assert s.median_delay_ms == 300.0


def test_side_kind_and_time_must_agree_and_ranges_match_anywhere_inside():
    labels = [lab("liquidity_gap", 1000, 3000, tick=4321, far=4328)]
    gap_inside = [d(1, "liquidity_gap", "open", 1600, tick=4321, far=4339), d(1, "liquidity_gap", "close", 2000)]
    assert score(gap_inside, labels)["liquidity_gap"].recall == 1.0
    other_side = [d(1, "liquidity_gap", "open", 1600, tick=4321, side=1), d(1, "liquidity_gap", "close", 2000, side=1)]
    assert score(other_side, labels)["liquidity_gap"].recall == 0.0
    too_late = [d(1, "liquidity_gap", "open", 5000, tick=4321), d(1, "liquidity_gap", "close", 6000, tick=4321)]
    assert score(too_late, labels)["liquidity_gap"].recall == 0.0


def test_hard_negatives_count_against_and_other_kinds_explain():
    labels = [lab("iceberg", 1000, 3000, negative=True), lab("absorption", 5000, 7000, tick=4320, far=4321)]
    dets = [d(1, "iceberg", "open", 2000), d(1, "iceberg", "close", 2500),
            d(2, "large_order", "open", 5200, tick=4321), d(2, "large_order", "close", 6000, tick=4321)]
    s = score(dets, labels)
    assert s["iceberg"].precision == 0.0  # fired on a hard negative
    assert s["large_order"].detections == 1 and s["large_order"].true_positives == 0
    assert s["large_order"].precision == 1.0  # the planted band is also a large order: explained, not wrong
    assert score(dets, labels, explained=False)["large_order"].precision == 0.0


def test_labels_from_the_simulator_format():
    raw = {"scenario": "iceberg-s1", "kind": "iceberg", "negative": False, "side": "ask", "price": 0.4323,
           "price_tick": 4323, "price_far": None, "price_far_tick": None, "start_ns": 5_000_000_000,
           "end_ns": None, "evidence_ns": 6_000_000_000}
    lb = label_from_dict(raw, INST)
    assert (lb.kind, lb.side, lb.price_tick, lb.start, lb.end, lb.ready) == (
        "iceberg", -1, 4323, 5_000_000_000, 5_000_000_000, 6_000_000_000)
    with pytest.raises(ValueError, match="unknown kind"):
        label_from_dict({**raw, "kind": "whale"}, INST)
    with pytest.raises(ValueError, match="side"):
        label_from_dict({**raw, "side": "up"}, INST)


def test_a_lifecycle_without_open_is_not_a_detection():
    sp = spans([d(1, "pull", "close", 10)])
    assert sp == []


# -- end to end on the simulator's scenarios ---------------------------------------------------------
scenarios = pytest.importorskip("feeds.simulator.scenarios", reason="the simulator's scenarios are merged")


@pytest.mark.parametrize("kind, seed", [("iceberg", 101), ("absorption", 303), ("pull_not_iceberg", 303),
                                        ("eaten_through", 101), ("liquidity_gap", 202)])
def test_scenario_through_parsers_book_detectors_and_json_lines(kind, seed):
    from app.analytics.scoring import detections_from_json
    from benchmarks.bench_detectors import default_detectors_config, run_scenario

    sc = next(s for s in scenarios.ScenarioSuite(seeds=(seed,)).scenarios() if s.kind == kind)
    objs, labels, inst = run_scenario(sc, default_detectors_config())
    for o in objs:  # the JSON line shape of the issue
        assert o["type"] == "detection" and o["side"] in ("bid", "ask") and o["state"] in ("open", "update", "close")
        assert isinstance(o["price"], float) and isinstance(o["exch_ts"], int)
    dets = detections_from_json(objs)
    assert {x.id for x in dets if x.state == "open"} == {x.id for x in dets if x.state == "close"}
    labs = [label_from_dict(lb, inst, i) for i, lb in enumerate(labels)]
    s = score(dets, labs)
    own = {"pull_not_iceberg": ("pull", "large_order")}.get(kind, (kind,))
    for lb in labs:
        if lb.negative or lb.kind not in own:
            continue
        ks = s[lb.kind]
        assert ks.matched_labels == ks.labels, (lb, ks)
        assert ks.median_delay_ms <= 1000.0, ks
    # the hard negatives of these scenarios produce no detection of the negated kind at the planted level
    for lb in (x for x in labs if x.negative):
        assert not any(x.kind == lb.kind and x.state == "open" and abs(x.price_tick - lb.price_tick) <= 1
                       and x.side == lb.side for x in dets), lb
    assert all(not math.isnan(ks.precision) for ks in s.values())
