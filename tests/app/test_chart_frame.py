"""The engine's chart data path: heatmap sampled per column (gaps as gaps), chart frames, replay == live."""

from __future__ import annotations

import numpy as np
import pytest
from test_engine_fakes import INST, T0, diff, funding, gap, snapshot, trade

from app.core import events as ev
from app.market import MarketState

CFG = {"engine": {"ring_capacity": 4096, "heatmap_minutes": 1.0, "heatmap_rows": 32}}
COL = 100_000_000


def script() -> list[tuple[np.ndarray, int | None]]:
    """Snapshot, diffs and trades over ~3 s, a gap at 2 s and a resync at 2.5 s, funding and a liquidation."""
    out: list[tuple[np.ndarray, int | None]] = [(snapshot({1000: 5.0, 999: 2.0}, {1001: 4.0, 1003: 1.0}, 1, T0), 1)]
    uid = 1
    for i in range(1, 20):
        uid += 1
        ts = T0 + i * 100_000_000 + 5
        out.append((diff({1000: 5.0 + i}, {}, uid, ts), uid))
        out.append((trade(ev.BID if i % 3 else ev.ASK, 1001 if i % 3 else 1000, 0.5 + i / 10, ts + 1, i), None))
    out.append((gap(T0 + 2_000_000_000 + 1), None))
    out.append((snapshot({1002: 7.0}, {1004: 3.0}, 100, T0 + 2_500_000_000 + 3), 100))
    out.append((funding(0.0001, T0 + 3600 * 10**9, 100.05, 100.0, T0 + 2_600_000_000), None))
    out.append((ev.marker_row(ev.LIQUIDATION_EVENT, T0 + 2_650_000_000, T0 + 2_650_000_000, px=100.2, qty=3.0,
                              side=ev.ASK), None))
    out.append((diff({1002: 8.0}, {}, 101, T0 + 3_000_000_000), 101))
    return out


def run(pull_every: int | None) -> tuple[MarketState, list]:
    m = MarketState(INST, CFG)
    frames = []
    for i, (batch, uid) in enumerate(script()):
        m.apply(batch, uid)
        if pull_every and i % pull_every == 0:
            frames.append(m.chart_frame())
    return m, frames


def test_heatmap_columns_hold_the_book_and_gaps() -> None:
    m, _ = run(None)
    cf = m.chart_frame()
    hm = cf.heatmap
    assert hm is not None
    h = hm.history
    c0 = T0 // COL
    # column 0 ended with the snapshot's book (the diff of column 1 applied after it closed)
    assert h.value_at(c0, 1000) == pytest.approx(5.0)
    assert h.value_at(c0, 1003) == pytest.approx(1.0)
    assert h.value_at(c0 + 5, 1000) == pytest.approx(5.0 + 5)  # column 5 ended after diff 5
    # the gap batch at 2.0 s: columns from 20 until the resync at 25 are NaN
    for c in range(c0 + 20, c0 + 25):
        assert np.isnan(h.value_at(c, 1000)), c
    assert h.value_at(c0 + 26, 1002) == pytest.approx(7.0)
    assert hm.last == c0 + 29  # the diff at 3.0 s closed everything before column 30
    _cols, bid, ask = h.best_prices(c0, c0 + 29)
    assert bid[0] == 1000 and ask[0] == 1001 and np.isnan(bid[22]) and bid[26] == 1002


def test_chart_frame_carries_every_chart_part() -> None:
    m, _ = run(None)
    cf = m.chart_frame()
    assert cf.footprint and cf.footprint == tuple(m.footprint_bars(200))
    assert sum(b.volume for b in cf.footprint) == pytest.approx(sum(0.5 + i / 10 for i in range(1, 20)))
    assert cf.profile is not None and cf.profile.poc() == m.profile.poc()
    assert cf.funding is not None and cf.funding.rate == pytest.approx(0.0001)
    assert len(cf.funding_history) >= 1
    assert len(cf.liquidations) == 1 and cf.liquidations["qty"][0] == 3.0
    # trades per column: the buys of column 1 are its trade's qty
    _c, buy, sell, _bv, _sv = cf.heatmap.history.trade_columns(T0 // COL + 1, T0 // COL + 1)
    assert buy[0] == pytest.approx(0.6)
    # an unchanged part is the same object next time (no copy per frame)
    again = m.chart_frame()
    assert again.funding_history is cf.funding_history and again.profile is cf.profile


def test_replay_fills_charts_exactly_as_live_whatever_the_pull_times() -> None:
    """Frames pulled at different moments (live GUI vs a fast replay) must not change what is drawn."""
    a, _ = run(1)
    b, _ = run(None)
    ha, hb = a.chart_frame().heatmap.history, b.chart_frame().heatmap.history
    np.testing.assert_array_equal(ha.tex, hb.tex)
    np.testing.assert_array_equal(ha.buy, hb.buy)
    np.testing.assert_array_equal(ha.sell_tq, hb.sell_tq)
    fa, fb = a.chart_frame().footprint, b.chart_frame().footprint
    assert [(x.ticks.tolist(), x.buy.tolist(), x.sell.tolist()) for x in fa] == \
        [(x.ticks.tolist(), x.buy.tolist(), x.sell.tolist()) for x in fb]


def test_mid_series_in_prices() -> None:
    m, _ = run(None)
    ts, mid = m.mid_series(10.0)
    assert ts.size == mid.size > 0
    assert mid[np.isfinite(mid)][0] == pytest.approx(1000.5 * INST.tick_size)
    assert np.isnan(mid).any()  # the gap


def test_snapshot_reads_all_but_a_slack_of_the_ring() -> None:
    m, _ = run(None)
    snap = m.chart_frame().heatmap
    cols = m.heatmap.columns
    assert cols == 600 and snap.first == snap.last - cols + 1 + 60
