"""FundingTracker: state and forward-filled history against a per-row loop, holding cost, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.events import (
    ASK,
    BID,
    FUNDING_EVENT,
    MARK_PRICE_EVENT,
    OPEN_INTEREST_EVENT,
    depth_rows,
    marker_row,
)
from app.core.funding import FundingState, FundingTracker

H = 3_600_000_000_000  # one hour in ns


def mark(ts: int, px: float, index: float = 0.0) -> np.ndarray:
    return marker_row(MARK_PRICE_EVENT, ts, ts, px=px, fval=index)


def funding(ts: int, rate: float, next_ts: int) -> np.ndarray:
    return marker_row(FUNDING_EVENT, ts, ts, fval=rate, ival=next_ts)


def oi(ts: int, qty: float) -> np.ndarray:
    return marker_row(OPEN_INTEREST_EVENT, ts, ts, qty=qty)


def test_state_from_a_markprice_message() -> None:
    tr = FundingTracker()
    assert tr.state == FundingState()
    # one Binance markPriceUpdate becomes a mark row and a funding row
    n = tr.add(np.concatenate([mark(10, 61_810.5, 61_790.0), funding(10, 0.0001, 8 * H)]))
    assert n == 2
    s = tr.state
    assert (s.mark_px, s.index_px, s.rate, s.next_funding_ts, s.exch_ts) == (61_810.5, 61_790.0, 0.0001, 8 * H, 10)
    assert s.premium == pytest.approx((61_810.5 - 61_790.0) / 61_790.0)
    assert s.annualised == pytest.approx(0.0001 * 3 * 365)
    assert s.countdown_ns(8 * H - 5) == 5
    assert s.countdown_ns(9 * H) == 0
    assert FundingState().countdown_ns(123) == 0
    assert tr.version == 1


def test_holding_cost_sign_and_size() -> None:
    s = FundingState(rate=0.0001, mark_px=60_000.0, multiplier=1.0)
    assert s.holding_cost(2.0, BID) == pytest.approx(12.0)  # long pays 2 x 60000 x 0.01 %
    assert s.holding_cost(2.0, ASK) == pytest.approx(-12.0)  # short receives
    neg = FundingState(rate=-0.0003, mark_px=2.0, multiplier=10.0)
    assert neg.holding_cost(100, BID) == pytest.approx(-0.6)  # negative rate: longs receive
    assert neg.holding_cost(100, ASK) == pytest.approx(0.6)
    assert s.holding_cost(0.0, BID) == 0.0
    with pytest.raises(ValueError, match="side"):
        s.holding_cost(1.0, 0)
    with pytest.raises(ValueError, match="position size"):
        s.holding_cost(-1.0, BID)
    with pytest.raises(ValueError, match="position size"):
        s.holding_cost(math.nan, BID)
    with pytest.raises(ValueError, match="no mark price"):
        FundingState(rate=0.001).holding_cost(1.0, BID)


def test_multiplier_flows_into_state() -> None:
    tr = FundingTracker(multiplier=0.001)
    tr.add(np.concatenate([mark(1, 50_000.0), funding(1, 0.0002, H)]))
    assert tr.state.multiplier == 0.001
    assert tr.state.holding_cost(1000, BID) == pytest.approx(1000 * 0.001 * 50_000.0 * 0.0002)


def test_open_interest_and_its_change() -> None:
    tr = FundingTracker()
    tr.add(oi(100, 10_000.0))
    assert tr.state.open_interest == 10_000.0 and tr.state.open_interest_change == 0.0
    tr.add(oi(200, 10_250.0))
    assert tr.state.open_interest_change == 250.0
    tr.add(np.concatenate([oi(300, 10_100.0), oi(400, 10_400.0)]))
    assert tr.state.open_interest_change == 300.0
    tr.add(mark(500, 1.0))  # a mark row leaves the open-interest change alone
    assert tr.state.open_interest_change == 300.0
    assert tr.open_interest_change(window_ns=250) == pytest.approx(10_400.0 - 10_250.0)
    assert tr.open_interest_change(window_ns=10**12) == pytest.approx(400.0)
    with pytest.raises(ValueError, match="window"):
        tr.open_interest_change(-1)
    assert FundingTracker().open_interest_change(10) == 0.0


def test_interval_is_learnt_from_the_next_funding_jump() -> None:
    tr = FundingTracker(interval_hours=8.0)
    tr.add(funding(1, 0.0001, 4 * H))
    assert tr.state.interval_hours == 8.0
    tr.add(funding(2, 0.0001, 4 * H))
    assert tr.state.interval_hours == 8.0
    tr.add(funding(4 * H + 1, 0.0002, 8 * H))  # the funding passed: next moved by 4 h
    assert tr.state.interval_hours == 4.0
    assert tr.state.annualised == pytest.approx(0.0002 * 6 * 365)
    # offline across fundings: next jumps 8 h -> 24 h, first seen 11 h after the 8 h funding: no lesson
    tr.add(funding(19 * H, 0.0002, 24 * H))
    assert tr.state.interval_hours == 4.0 and tr.state.next_funding_ts == 24 * H
    tr.add(funding(24 * H + 10, 0.0002, 25 * H))  # hourly funding now, seen 10 ns after the funding
    assert tr.state.interval_hours == 1.0


def test_history_forward_fills_and_marks_unknown_as_nan() -> None:
    tr = FundingTracker()
    tr.add(np.concatenate([funding(5, 0.0001, H), mark(6, 100.0, 99.0), oi(4, 7.0), mark(8, 101.0, 99.5)]))
    h = tr.history()
    assert h["exch_ts"].tolist() == [5, 6, 6, 8]  # running max: chartable even when kinds interleave
    assert h["rate"].tolist() == [0.0001] * 4
    assert np.isnan(h["mark_px"][0]) and h["mark_px"][1:].tolist() == [100.0, 100.0, 101.0]
    assert np.isnan(h["open_interest"][:2]).all() and h["open_interest"][2:].tolist() == [7.0, 7.0]
    assert tr.state.mark_px == 101.0 and tr.state.open_interest == 7.0


def test_history_is_bounded() -> None:
    tr = FundingTracker(history=16)
    nbytes = tr._history.nbytes
    for i in range(100):
        tr.add(mark(i, 100.0 + i))
    assert len(tr.history()) == 16
    assert tr.history()["mark_px"][-1] == 199.0
    assert tr._history.nbytes == nbytes


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["mark", "funding", "oi"]), st.floats(0.5, 1000.0), st.integers(0, 3)),
        min_size=1, max_size=30,
    ),
    cut=st.integers(0, 30),
)
def test_history_matches_a_per_row_loop(ops, cut) -> None:
    rows = []
    t = 0
    for kind, value, dt in ops:
        t += dt
        if kind == "mark":
            rows.append(mark(t, value, value * 0.99))
        elif kind == "funding":
            rows.append(funding(t, value / 1e6, 8 * H))
        else:
            rows.append(oi(t, value))
    batch = np.concatenate(rows)
    tr = FundingTracker()
    tr.add(batch[:cut])
    tr.add(batch[cut:])
    state = {"mark": math.nan, "index": 0.0, "rate": 0.0, "oi": math.nan}
    expected = []
    for (kind, _value, _dt), row in zip(ops, batch, strict=True):
        if kind == "mark":
            state["mark"], state["index"] = float(row["px"]), float(row["fval"])
        elif kind == "funding":
            state["rate"] = float(row["fval"])
        else:
            state["oi"] = float(row["qty"])
        expected.append(dict(state))
    h = tr.history()
    assert np.allclose(h["mark_px"], [e["mark"] for e in expected], equal_nan=True)
    assert np.allclose(h["index_px"], [e["index"] for e in expected])
    assert np.allclose(h["rate"], [e["rate"] for e in expected])
    assert np.allclose(h["open_interest"], [e["oi"] for e in expected], equal_nan=True)
    assert h["exch_ts"].tolist() == batch["exch_ts"].tolist()  # already sorted here


def test_order_is_checked_per_kind() -> None:
    tr = FundingTracker()
    tr.add(mark(100, 1.0))
    tr.add(oi(50, 5.0))  # a REST poll stamped earlier than the stream: another kind, accepted
    with pytest.raises(ValueError, match="back in exchange time"):
        tr.add(mark(99, 2.0))
    with pytest.raises(ValueError, match="back in exchange time"):
        tr.add(np.concatenate([mark(200, 1.0), mark(150, 1.0)]))
    assert tr.state.mark_px == 1.0 and tr.state.exch_ts == 100
    tr.add(mark(100, 3.0))  # equal time is fine
    assert tr.state.mark_px == 3.0


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (mark(1, math.nan), "mark price"),
        (mark(1, -5.0), "mark price"),
        (mark(1, 0.0), "mark price"),
        (mark(1, 5.0, math.nan), "index price"),
        (mark(1, 5.0, -1.0), "index price"),
        (funding(1, math.nan, H), "funding rate must be"),
        (funding(1, 1.5, H), "unit mistake"),
        (funding(1, 0.001, -1), "next funding time"),
        (oi(1, -1.0), "open interest"),
        (oi(1, math.inf), "open interest"),
    ],
)
def test_bad_rows_rejected_atomically(rows: np.ndarray, match: str) -> None:
    tr = FundingTracker()
    good = mark(0, 10.0, 10.0)
    with pytest.raises(ValueError, match=match):
        tr.add(np.concatenate([good, rows]))
    assert tr.state == FundingState() and len(tr.history()) == 0 and tr.version == 0
    tr.add(good)  # the failed batch did not advance the order watermark
    assert tr.state.mark_px == 10.0


def test_other_kinds_ignored_and_bad_config() -> None:
    tr = FundingTracker()
    assert tr.add(depth_rows(BID, np.array([1]), np.array([1.0]), 0.1, 1, 1)) == 0
    assert tr.version == 0
    with pytest.raises(TypeError):
        tr.add(np.zeros(3))
    with pytest.raises(ValueError, match="multiplier"):
        FundingTracker(multiplier=0)
    with pytest.raises(ValueError, match="interval"):
        FundingTracker(interval_hours=0)


def test_clear() -> None:
    tr = FundingTracker(multiplier=2.0)
    tr.add(np.concatenate([mark(10, 5.0), oi(10, 3.0)]))
    tr.clear()
    assert tr.state == FundingState(multiplier=2.0) and len(tr.history()) == 0
    tr.add(mark(1, 6.0))  # order check restarted
    assert tr.state.mark_px == 6.0


def test_frame_reexports_the_same_class() -> None:
    from app.core import frame

    assert frame.FundingState is FundingState


def test_binance_documentation_example() -> None:
    """The markPriceUpdate example of Binance's docs (protocols.md A.8), as the feed will emit it."""
    msg = {"E": 1562305380000, "p": "11794.15000000", "i": "11784.62659091", "r": "0.00038167",
           "T": 1562306400000}
    ts = msg["E"] * 1_000_000
    tr = FundingTracker()
    tr.add(np.concatenate([mark(ts, float(msg["p"]), float(msg["i"])),
                           funding(ts, float(msg["r"]), msg["T"] * 1_000_000)]))
    s = tr.state
    assert s.countdown_ns(ts) == 17 * 60 * 1_000_000_000  # 17 minutes to the 01:00 UTC funding
    assert s.premium == pytest.approx(0.000808, abs=5e-7)  # mark 0.08 % over index
    assert s.annualised == pytest.approx(0.00038167 * 3 * 365)  # ~41.8 % a year at 8 h intervals
    # a 0.5 BTC long pays 0.5 x 11794.15 x 0.00038167 = 2.250737 USDT at the funding
    assert s.holding_cost(0.5, BID) == pytest.approx(2.250737, abs=1e-6)
    assert s.holding_cost(0.5, ASK) == pytest.approx(-2.250737, abs=1e-6)
