"""Footprint bars against a per-trade Python reference; imbalances and stacking by hand; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.events import BOTH_CLOCKS, BUY_EVENT, EVENT_DTYPE, SELL_EVENT, TRADE_EVENT, depth_rows
from app.core.footprint import FootprintAggregator, diagonal_imbalances, stacked_runs

S = 1_000_000_000  # one second in ns


def trades(ts: list[int], ticks: list[int], qty: list[float], buy: list[bool]) -> np.ndarray:
    """A batch of trade rows."""
    out = np.zeros(len(ts), dtype=EVENT_DTYPE)
    out["ev"] = BOTH_CLOCKS | TRADE_EVENT | np.where(buy, BUY_EVENT, SELL_EVENT).astype(np.uint64)
    out["exch_ts"] = ts
    out["ival"] = ticks
    out["qty"] = qty
    return out


def reference_bars(data: list[tuple[int, int, float, bool]], group: int, bar_ns: int | None,
                   bar_volume: float | None) -> list[dict]:
    """Bars built one trade at a time with dicts: the obvious, slow way."""
    bars: list[dict] = []
    cur: dict | None = None
    for ts, tick, q, b in data:
        key = ts // bar_ns if bar_ns else None
        if cur is not None and bar_ns and cur["key"] != key:
            bars.append(cur)
            cur = None
        if cur is None:
            cur = {"key": key, "rows": {}, "vol": 0.0, "ticks": [], "first": ts}
        row = cur["rows"].setdefault(tick // group, [0.0, 0.0, 0])
        row[0 if b else 1] += q
        row[2] += 1
        cur["vol"] += q
        cur["ticks"].append(tick)
        cur["last"] = ts
        if bar_volume and cur["vol"] >= bar_volume * (1 - 1e-9):
            bars.append(cur)
            cur = None
    if cur is not None:
        bars.append(cur)
    return bars


def assert_same(bars, ref: list[dict], group: int) -> None:
    assert len(bars) == len(ref)
    for bar, r in zip(bars, ref, strict=True):
        lo, hi = min(r["rows"]), max(r["rows"])
        assert bar.ticks.tolist() == [k * group for k in range(lo, hi + 1)]
        empty = [0.0, 0.0, 0]
        assert np.allclose(bar.buy, [r["rows"].get(k, empty)[0] for k in range(lo, hi + 1)])
        assert np.allclose(bar.sell, [r["rows"].get(k, empty)[1] for k in range(lo, hi + 1)])
        assert bar.count.tolist() == [r["rows"].get(k, empty)[2] for k in range(lo, hi + 1)]
        assert bar.trade_count == len(r["ticks"])
        assert bar.volume == pytest.approx(r["vol"])
        assert (bar.open_tick, bar.close_tick) == (r["ticks"][0], r["ticks"][-1])
        assert (bar.low_tick, bar.high_tick) == (min(r["ticks"]), max(r["ticks"]))
        assert (bar.first_ts, bar.last_ts) == (r["first"], r["last"])
        vol = bar.buy + bar.sell
        assert vol[bar.ticks.tolist().index(bar.poc_tick)] == vol.max()


def test_time_bars_by_hand() -> None:
    fp = FootprintAggregator(bar_ns=5 * S)
    fp.add(trades([1 * S, 2 * S, 3 * S], [100, 101, 100], [1.0, 2.0, 0.5], [True, False, False]))
    fp.add(trades([6 * S, 7 * S], [103, 101], [4.0, 1.0], [True, True]))
    bars = fp.bars()
    assert len(bars) == len(fp) == 2
    b0, b1 = bars
    assert b0.closed and not b1.closed
    assert (b0.index, b0.start_ts, b0.end_ts) == (0, 0, 5 * S)
    assert b0.ticks.tolist() == [100, 101]
    assert b0.buy.tolist() == [1.0, 0.0] and b0.sell.tolist() == [0.5, 2.0]
    assert b0.count.tolist() == [2, 1]
    assert b0.row_delta.tolist() == [0.5, -2.0]
    assert (b0.buy_volume, b0.sell_volume, b0.delta, b0.trade_count) == (1.0, 2.5, -1.5, 3)
    assert b0.poc_tick == 101
    assert (b0.open_tick, b0.high_tick, b0.low_tick, b0.close_tick) == (100, 101, 100, 100)
    assert b1.ticks.tolist() == [101, 102, 103]  # dense: the untraded row in between is a zero row
    assert b1.buy.tolist() == [1.0, 0.0, 4.0]
    assert (b1.start_ts, b1.end_ts) == (5 * S, 10 * S)
    assert fp.current() is b1  # cached until the next change
    fp.add(trades([8 * S], [102], [1.0], [False]))
    assert fp.current() is not b1 and fp.current().sell.tolist() == [0.0, 1.0, 0.0]


def test_tick_grouping_names_rows_by_their_lowest_tick() -> None:
    fp = FootprintAggregator(bar_ns=60 * S, group=5)
    fp.add(trades([0, 1, 2, 3], [100, 104, 105, 99], [1.0, 1.0, 1.0, 1.0], [True, False, True, True]))
    (bar,) = fp.bars()
    assert bar.ticks.tolist() == [95, 100, 105]
    assert bar.buy.tolist() == [1.0, 1.0, 1.0] and bar.sell.tolist() == [0.0, 1.0, 0.0]
    assert bar.group == 5


def test_batch_spanning_several_bars_and_gaps() -> None:
    fp = FootprintAggregator(bar_ns=S)
    fp.add(trades([0, S // 2, S, 5 * S + 1], [1, 2, 3, 4], [1.0] * 4, [True] * 4))
    assert [b.index for b in fp.bars()] == [0, 1, 5]  # the quiet seconds 2..4 are a gap, not bars
    assert [b.trade_count for b in fp.bars()] == [2, 1, 1]


@settings(max_examples=80, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 3_000), st.integers(-20, 20), st.sampled_from([0.001, 0.1, 0.5, 1.0, 2.5]),
                  st.booleans()),
        min_size=1, max_size=80,
    ),
    group=st.sampled_from([1, 2, 5]),
    kind=st.sampled_from(["time", "volume"]),
    cuts=st.lists(st.integers(0, 80), max_size=6),
    one_by_one=st.booleans(),
)
def test_matches_reference_for_any_batching(data, group, kind, cuts, one_by_one) -> None:
    data = sorted(data, key=lambda d: d[0])
    batch = trades([d[0] for d in data], [d[1] + 1000 for d in data], [d[2] for d in data],
                   [d[3] for d in data])
    kwargs = {"bar_ns": 250} if kind == "time" else {"bar_volume": 3.0}
    fp = FootprintAggregator(group=group, **kwargs)
    if one_by_one:  # the live path: one trade per message, on scalars
        cuts = list(range(len(data)))
    edges = sorted({0, len(data), *[c for c in cuts if c <= len(data)]})
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        fp.add(batch[a:b])
    ref = reference_bars([(d[0], d[1] + 1000, d[2], d[3]) for d in data], group,
                         kwargs.get("bar_ns"), kwargs.get("bar_volume"))
    assert_same(fp.bars(), ref, group)
    if kind == "volume":
        for bar in fp.bars():
            if bar.closed:
                assert bar.volume >= 3.0 * (1 - 1e-9)


def test_volume_bars_never_split_a_trade() -> None:
    fp = FootprintAggregator(bar_volume=1.0)
    fp.add(trades([1, 2, 3, 4, 5], [10, 11, 12, 13, 14], [0.4, 0.4, 0.4, 5.0, 0.1], [True] * 5))
    bars = fp.bars()
    assert [b.trade_count for b in bars] == [3, 1, 1]
    assert [round(b.volume, 9) for b in bars] == [1.2, 5.0, 0.1]
    assert [b.closed for b in bars] == [True, True, False]
    assert [b.index for b in bars] == [0, 1, 2]
    assert (bars[0].start_ts, bars[0].end_ts) == (1, 3)
    # decimal lots summed in floats still close the bar: 0.1 + 0.2 + 0.7 == 1.0 "exactly"
    fp2 = FootprintAggregator(bar_volume=1.0)
    fp2.add(trades([1, 2, 3], [1, 1, 1], [0.1, 0.2, 0.7], [True] * 3))
    assert fp2.bars()[0].closed


def test_diagonal_imbalances_by_hand() -> None:
    #            row: 0    1    2    3    4
    buy = np.array([1.0, 9.0, 2.0, 30.0, 0.0])
    sell = np.array([3.0, 1.0, 5.0, 1.0, 2.0])
    b, s = diagonal_imbalances(buy, sell, ratio=3.0)
    # buy row i vs sell row i-1: 9>=3*3 yes; 2>=3*1 no; 30>=3*5 yes; 0 never
    assert b.tolist() == [False, True, False, True, False]
    # sell row i vs buy row i+1: 3>=27 no; 1>=6 no; 5>=90 no; 1>=0 yes (zero partner); top row never
    assert s.tolist() == [False, False, False, True, False]
    b2, s2 = diagonal_imbalances(buy, sell, ratio=3.0, min_volume=10.0)
    assert b2.tolist() == [False, False, False, True, False]
    assert s2.tolist() == [False] * 5


def test_stacked_runs() -> None:
    mask = np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1], bool)
    assert stacked_runs(mask, 3) == [(0, 2), (7, 10)]
    assert stacked_runs(mask, 2) == [(0, 2), (4, 5), (7, 10)]
    assert stacked_runs(np.zeros(0, bool), 3) == []


def test_stacked_imbalance_in_a_bar_and_reconfiguration() -> None:
    fp = FootprintAggregator(bar_ns=60 * S, imbalance_ratio=3.0)
    # rows 100..105: heavy buying at 101..104 over thin selling one row below
    ticks = [100, 101, 102, 103, 104, 105, 100, 101, 102, 103]
    qty = [1.0, 4.0, 4.0, 4.0, 4.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    buy = [False, True, True, True, True, False, True, False, False, False]
    fp.add(trades(list(range(10)), ticks, qty, buy))
    (bar,) = fp.bars()
    assert bar.buy.tolist() == [1.0, 4.0, 4.0, 4.0, 4.0, 0.0]
    assert bar.sell.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    assert bar.buy_imbalance.tolist() == [False, True, True, True, True, False]
    assert bar.stacked_buy == ((101, 104),)
    assert bar.stacked_sell == ()
    fp.configure_imbalance(ratio=5.0)
    (bar,) = fp.bars()
    assert bar.buy_imbalance.tolist() == [False] * 6  # 4 vs 1 below is under 5x everywhere
    assert bar.stacked_buy == ()


def test_closed_bars_are_cached_and_remarked_on_reconfigure() -> None:
    fp = FootprintAggregator(bar_ns=S)
    fp.add(trades([0, S], [1, 2], [1.0, 1.0], [True, True]))
    first = fp.bars()[0]
    assert fp.bars()[0] is first
    fp.configure_imbalance(ratio=2.0, min_volume=0.5, stacked_min=2)
    assert fp.bars()[0] is not first and fp.imbalance_ratio == 2.0


def test_retention_and_last() -> None:
    fp = FootprintAggregator(bar_ns=S, max_bars=3)
    fp.add(trades([i * S for i in range(10)], list(range(10)), [1.0] * 10, [True] * 10))
    bars = fp.bars()
    assert [b.index for b in bars] == [6, 7, 8, 9]  # 3 closed + the open one
    assert [b.index for b in fp.bars(last=2)] == [8, 9]
    assert fp.bars(last=0) == []


def test_close_until_closes_a_quiet_bar_and_guards_order() -> None:
    fp = FootprintAggregator(bar_ns=5 * S)
    fp.add(trades([1 * S], [1], [1.0], [True]))
    assert not fp.close_until(4 * S)
    assert fp.close_until(5 * S)
    assert fp.current() is None and fp.bars()[0].closed
    with pytest.raises(ValueError, match="older"):
        fp.add(trades([4 * S], [1], [1.0], [True]))
    fp.add(trades([6 * S], [1], [1.0], [True]))
    assert [b.index for b in fp.bars()] == [0, 1]


def test_other_kinds_ignored_and_empty_batches() -> None:
    fp = FootprintAggregator(bar_ns=S)
    assert fp.add(depth_rows(1, np.array([5]), np.array([1.0]), 0.1, 1, 1)) == 0
    assert fp.add(np.zeros(0, EVENT_DTYPE)) == 0
    assert fp.bars() == [] and fp.current() is None


def test_unsorted_input_rejected_atomically() -> None:
    fp = FootprintAggregator(bar_ns=S)
    with pytest.raises(ValueError, match="exchange-time order"):
        fp.add(trades([5, 3], [1, 1], [1.0, 1.0], [True, True]))
    assert fp.bars() == [] and fp.version == 0
    fp.add(trades([10], [1], [1.0], [True]))
    with pytest.raises(ValueError, match="older than the last"):
        fp.add(trades([9, 11], [1, 1], [1.0, 1.0], [True, True]))
    assert fp.bars()[0].trade_count == 1
    fp.add(trades([10, 10], [2, 2], [1.0, 1.0], [True, False]))  # equal times are fine
    assert fp.bars()[0].trade_count == 3
    fp.clear()
    fp.add(trades([0], [1], [1.0], [True]))  # clear restarts the order check
    assert len(fp) == 1


@pytest.mark.parametrize("qty", [float("nan"), -1.0, 0.0, float("inf")])
def test_bad_sizes_rejected(qty: float) -> None:
    fp = FootprintAggregator(bar_volume=10.0)
    with pytest.raises(ValueError, match="finite and > 0"):
        fp.add(trades([1, 2], [1, 1], [1.0, qty], [True, True]))
    assert fp.bars() == []
    fp.add(trades([1], [1], [1.0], [True]))
    with pytest.raises(ValueError, match="finite and > 0"):  # the one-trade scalar path checks the same
        fp.add(trades([2], [1], [qty], [True]))
    assert fp.bars()[0].trade_count == 1


def test_single_trade_path_rejects_what_the_array_path_rejects() -> None:
    fp = FootprintAggregator(bar_ns=S)
    fp.add(trades([10, 11], [5, 6], [1.0, 1.0], [True, False]))
    with pytest.raises(ValueError, match="older than the last"):
        fp.add(trades([9], [5], [1.0], [True]))
    no_side = trades([12], [5], [1.0], [True])
    no_side["ev"] = BOTH_CLOCKS | TRADE_EVENT
    with pytest.raises(ValueError, match="aggressor side"):
        fp.add(no_side)
    assert fp.add(depth_rows(1, np.array([5]), np.array([1.0]), 0.1, 1, 1)) == 0
    assert fp.bars()[0].trade_count == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one"),
        ({"bar_ns": S, "bar_volume": 1.0}, "exactly one"),
        ({"bar_ns": 0}, "positive int"),
        ({"bar_ns": 1.5}, "positive int"),
        ({"bar_volume": float("nan")}, "finite number > 0"),
        ({"bar_volume": -1.0}, "finite number > 0"),
        ({"bar_ns": S, "group": 0}, "group"),
        ({"bar_ns": S, "imbalance_ratio": 0.5}, "ratio"),
        ({"bar_ns": S, "imbalance_min_volume": -1.0}, "minimum volume"),
        ({"bar_ns": S, "stacked_min": 0}, "stacked_min"),
        ({"bar_ns": S, "max_bars": 0}, "max_bars"),
    ],
)
def test_bad_configuration(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FootprintAggregator(**kwargs)


def test_absurd_tick_span_rejected_before_anything_changes() -> None:
    fp = FootprintAggregator(bar_ns=S, max_span_ticks=1000)
    fp.add(trades([0], [500], [1.0], [True]))
    with pytest.raises(ValueError, match="max_span_ticks"):
        fp.add(trades([1], [10**12], [1.0], [True]))  # the scalar path falls back to the checked one
    with pytest.raises(ValueError, match="max_span_ticks"):
        fp.add(trades([1, 2], [400, 2000], [1.0, 1.0], [True, True]))
    assert fp.bars()[0].trade_count == 1 and fp.bars()[0].ticks.tolist() == [500]
    fp.add(trades([3], [1400], [1.0], [True]))  # within the span: fine
    assert fp.bars()[0].ticks[[0, -1]].tolist() == [500, 1400]
    grouped = FootprintAggregator(bar_ns=S, group=10, max_span_ticks=1000)
    grouped.add(trades([0, 1], [0, 990], [1.0, 1.0], [True, True]))  # 100 rows of 10 ticks
    with pytest.raises(ValueError, match="max_span_ticks"):
        FootprintAggregator(bar_ns=S, max_span_ticks=0)


def test_imbalance_ratio_exact_multiple_survives_float_noise() -> None:
    buy = np.array([0.0, 0.9])
    sell = np.array([0.1 + 0.2, 0.0])  # 0.30000000000000004 * 3 > 0.9 by one ulp
    b, _ = diagonal_imbalances(buy, sell, ratio=3.0)
    assert b.tolist() == [False, True]


def load_capture_trades(path) -> np.ndarray:
    """The ``btcusdt@trade`` messages of a hftbacktest capture as trade rows (m=true: aggressive sell)."""
    import gzip
    import json

    out = []
    with gzip.open(path, "rt") as f:
        for line in f:
            local_ns, raw = line.split(" ", 1)
            if "@trade" not in raw[:40]:
                continue
            d = json.loads(raw)["data"]
            out.append((d["T"] * 1_000_000, int(local_ns), round(float(d["p"]) * 10), float(d["q"]), d["m"]))
    rows = np.zeros(len(out), dtype=EVENT_DTYPE)
    ts, local, ticks, qty, sell = zip(*out, strict=True)
    rows["ev"] = BOTH_CLOCKS | TRADE_EVENT | np.where(sell, SELL_EVENT, BUY_EVENT).astype(np.uint64)
    rows["exch_ts"], rows["local_ts"], rows["ival"], rows["qty"] = ts, local, ticks, qty
    rows["px"] = rows["ival"] * 0.1
    return rows


def test_real_capture_live_and_replay_build_the_same_bars_and_profile(btc_capture) -> None:
    from app.core.profile import VolumeProfile

    rows = load_capture_trades(btc_capture)
    assert rows.size == 21_313
    live_fp, bulk_fp = FootprintAggregator(bar_ns=60 * S, group=5), FootprintAggregator(bar_ns=60 * S, group=5)
    live_vp, bulk_vp = VolumeProfile(), VolumeProfile()
    for i in range(rows.size):  # live: one trade per message
        live_fp.add(rows[i:i + 1])
        live_vp.add(rows[i:i + 1])
    for i in range(0, rows.size, 5000):  # replay/rebuild: big batches
        bulk_fp.add(rows[i:i + 5000])
        bulk_vp.add(rows[i:i + 5000])
    data = list(zip(rows["exch_ts"].tolist(), rows["ival"].tolist(), rows["qty"].tolist(),
                    ((rows["ev"] & BUY_EVENT) != 0).tolist(), strict=True))
    ref = reference_bars(data, 5, 60 * S, None)
    assert len(ref) == 6  # 345 s of trading
    for fp in (live_fp, bulk_fp):
        assert_same(fp.bars(), ref, 5)
    for a, b in zip(live_fp.bars(), bulk_fp.bars(), strict=True):
        assert a.poc_tick == b.poc_tick
        assert a.stacked_buy == b.stacked_buy and a.stacked_sell == b.stacked_sell
        assert np.array_equal(a.buy_imbalance, b.buy_imbalance)
        assert np.allclose(a.buy, b.buy, rtol=1e-12) and np.allclose(a.sell, b.sell, rtol=1e-12)
    assert live_vp.poc() == bulk_vp.poc()
    assert live_vp.value_area() == bulk_vp.value_area()
    assert live_vp.total_volume == pytest.approx(rows["qty"].sum())
    buy_ref: dict[int, float] = {}
    for _, tick, q, is_buy in data:
        if is_buy:
            buy_ref[tick] = buy_ref.get(tick, 0.0) + q
    ticks = np.array(sorted(buy_ref))
    assert np.allclose(live_vp.volume_at(ticks)[0], [buy_ref[t] for t in ticks.tolist()])


def test_shared_bars_are_read_only() -> None:
    fp = FootprintAggregator(bar_ns=S)
    fp.add(trades([0, S], [1, 2], [1.0, 1.0], [True, True]))
    closed = fp.bars()[0]
    for arr in (closed.ticks, closed.buy, closed.sell, closed.count, closed.buy_imbalance):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0
    with pytest.raises(AttributeError):
        closed.poc_tick = 5  # type: ignore[misc]
