"""Automatic thresholds: rolling mean/sd over the last N minutes, floors, warm-up, config parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import Market, flat_book, quiet_config

from app.analytics.auto import AutoThreshold, RollingStats, ThresholdSpec, winsorized
from app.core.events import BID

SEC = 1_000_000_000


def test_rolling_stats_match_numpy_and_forget_old_seconds():
    rs = RollingStats(minutes=1.0)
    rng = np.random.default_rng(1)
    vals = rng.normal(10, 2, 300)
    for i, v in enumerate(vals):
        rs.add(float(v), i * SEC // 5)  # 5 samples a second for 60 s
    assert rs.count == 300
    assert rs.mean() == pytest.approx(vals.mean()) and rs.std() == pytest.approx(vals.std())
    rs.add(100.0, 90 * SEC)  # 30 s later: the first 30 s have left the window
    kept = vals[(np.arange(300) // 5) > 30]
    assert rs.count == len(kept) + 1
    assert rs.mean() == pytest.approx((kept.sum() + 100.0) / (len(kept) + 1))
    rs.add(1.0, 500 * SEC)  # far later: everything before is gone
    assert (rs.count, rs.mean(), rs.std()) == (1, 1.0, 0.0)


def test_auto_threshold_floor_warmup_and_fixed():
    spec = ThresholdSpec.parse({"mode": "auto", "floor": 5.0, "k": 2.0, "min_samples": 4}, "x")
    th = AutoThreshold(spec)
    assert th.value() == math.inf  # warming up: never fires on no evidence
    th.add_many(np.array([1.0, 1.0, 1.0, 1.0]), 0)
    assert th.value() == 5.0  # mean + 2 sd = 1 < floor
    th.add_many(np.array([10.0, 20.0, 30.0, 40.0]), SEC)
    v = np.array([1, 1, 1, 1, 10, 20, 30, 40.0])
    assert th.value() == pytest.approx(v.mean() + 2 * v.std())
    fixed = AutoThreshold(ThresholdSpec.parse(7, "x"))
    fixed.add(1e9, 0)
    assert fixed.value() == 7.0


@pytest.mark.parametrize("raw, msg", [(-1, ">= 0"), (True, "a number"), ("often", "a number"),
                                      ({"mode": "fixed"}, "needs a value"), ({"k": "x"}, "x.k"),
                                      ({"minutes": 0}, "minutes"), ({"kk": 1}, "unknown")])
def test_threshold_spec_refuses_bad_values(raw, msg):
    with pytest.raises(ValueError, match=msg):
        ThresholdSpec.parse(raw, "x")


def test_winsorized_caps_at_the_threshold():
    assert winsorized(np.array([1.0, 50.0]), 10.0).tolist() == [1.0, 10.0]
    assert winsorized(np.array([1.0, 50.0]), math.inf).tolist() == [1.0, 50.0]


def test_auto_big_trade_learns_the_usual_size(inst):
    m = Market(inst, quiet_config(big_trade={"size": {"mode": "auto", "k": 3.0, "min_samples": 20}},
                                  sweep={"enabled": False}))
    bids, asks = flat_book(10_000, size=1000.0)
    m.snapshot(bids, asks, 0)
    t = 0.0
    for i in range(40):  # usual aggressors of 1 or 2 lots
        m.trade(t, BID, 10_000, 1.0 + (i % 2))
        t += 50
    m.idle(t, t + 200)
    assert m.opened("big_trade") == []
    m.trade(t + 300, BID, 10_000, 30.0)  # far above mean + 3 sd
    m.idle(t + 400, t + 600)
    big = m.opened("big_trade")
    assert len(big) == 1 and big[0].evidence["executed"] == 30.0
    assert 1.5 < big[0].evidence["threshold"] < 30.0
