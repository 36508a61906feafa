"""VolumeProfile against brute-force references: per-tick sums, POC, the CBOT value area, nodes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.events import (
    BID,
    BOTH_CLOCKS,
    BUY_EVENT,
    EVENT_DTYPE,
    MARK_PRICE_EVENT,
    NO_PRICE,
    SELL_EVENT,
    TRADE_EVENT,
    depth_rows,
    marker_row,
)
from app.core.profile import VolumeProfile, poc_index, trades_of, value_area_indices, volume_nodes


def trades(ticks: list[int], qty: list[float], buy: list[bool], ts0: int = 0) -> np.ndarray:
    """A batch of trade rows."""
    out = np.zeros(len(ticks), dtype=EVENT_DTYPE)
    out["ev"] = BOTH_CLOCKS | TRADE_EVENT | np.where(buy, BUY_EVENT, SELL_EVENT).astype(np.uint64)
    out["ival"] = ticks
    out["qty"] = qty
    out["exch_ts"] = ts0 + np.arange(len(ticks))
    return out


def brute_va(vol: dict[int, float], fraction: float, step: int) -> tuple[int, int]:
    """Reference value area written the slow obvious way over a dict of tick -> volume."""
    lo_all, hi_all = min(vol), max(vol)
    total = sum(vol.values())
    best = max(vol.values())
    tied = [t for t in range(lo_all, hi_all + 1) if vol.get(t, 0.0) == best]
    centre = (lo_all + hi_all) / 2
    poc = min(tied, key=lambda t: (abs(t - centre), t))
    lo = hi = poc
    acc = vol[poc]
    while acc < fraction * total * (1 - 1e-12) and (lo > lo_all or hi < hi_all):
        above = [t for t in range(hi + 1, hi + 1 + step) if t <= hi_all]
        below = [t for t in range(lo - 1, lo - 1 - step, -1) if t >= lo_all]
        up = sum(vol.get(t, 0.0) for t in above)
        down = sum(vol.get(t, 0.0) for t in below)
        if below and (not above or down > up):
            acc += down
            lo = min(below)
        else:
            acc += up
            hi = max(above)
    return lo, hi


def test_accumulates_buy_and_sell_per_tick() -> None:
    prof = VolumeProfile()
    assert prof.poc() is None and prof.value_area() is None and prof.session() is None
    n = prof.add(trades([100, 100, 101, 99], [1.0, 2.0, 0.5, 4.0], [True, False, True, True]))
    assert n == 4
    buy, sell = prof.volume_at(np.array([98, 99, 100, 101, 102]))
    assert buy.tolist() == [0.0, 4.0, 1.0, 0.5, 0.0]
    assert sell.tolist() == [0.0, 0.0, 2.0, 0.0, 0.0]
    assert prof.buy_volume == 5.5 and prof.sell_volume == 2.0 and prof.total_volume == 7.5
    assert prof.trade_count == 4
    assert (prof.lo_tick, prof.hi_tick) == (99, 101)
    assert prof.poc() == 99


def test_other_kinds_are_ignored() -> None:
    prof = VolumeProfile()
    batch = np.concatenate([
        depth_rows(BID, np.array([5, 6]), np.array([1.0, 2.0]), 0.1, 1, 1),
        trades([7], [3.0], [False]),
        marker_row(MARK_PRICE_EVENT, 1, 1, px=1.0, fval=1.0),
    ])
    assert prof.add(batch) == 1
    assert prof.volume_at(np.array([5, 6, 7]))[1].tolist() == [0.0, 0.0, 3.0]


def test_growth_far_apart_keeps_old_volume() -> None:
    prof = VolumeProfile()
    prof.add(trades([1_000_000], [1.0], [True]))
    prof.add(trades([1_000_000 - 40_000, 1_000_000 + 60_000], [2.0, 3.0], [False, True]))
    prof.add(trades([1_000_000], [1.0], [False]))
    buy, sell = prof.volume_at(np.array([960_000, 1_000_000, 1_060_000]))
    assert buy.tolist() == [0.0, 1.0, 3.0]
    assert sell.tolist() == [2.0, 1.0, 0.0]


def test_hand_worked_value_area() -> None:
    vols = [5, 10, 20, 30, 50, 25, 15, 10, 5]  # ticks 100..108, total 170, 70 % = 119
    prof = VolumeProfile()
    prof.add(trades(list(range(100, 109)), [float(v) for v in vols], [True] * 9))
    assert prof.poc() == 104
    # pairs: (105,106)=40 < (103,102)=50 -> down; (105,106)=40 > (101,100)=15 -> up: 140 >= 119
    assert prof.value_area() == (102, 106)
    # one level at a time: 30 down, 25 up, 20 down -> 125
    assert prof.value_area(step=1) == (102, 105)
    assert prof.value_area(fraction=1.0) == (100, 108)
    assert prof.value_area(fraction=0.01) == (104, 104)


def test_value_area_tie_goes_up_and_edges_take_the_other_side() -> None:
    assert value_area_indices(np.array([1.0, 1.0, 5.0, 1.0, 1.0]), 0.75) == (2, 4)  # tie -> above
    # POC at the top edge: only downward growth possible
    assert value_area_indices(np.array([1.0, 2.0, 3.0, 9.0]), 0.9) == (1, 3)


def test_poc_tie_prefers_centre_then_lower() -> None:
    assert poc_index(np.array([5.0, 1.0, 1.0, 5.0, 1.0, 5.0, 1.0])) == 3
    assert poc_index(np.array([5.0, 1.0, 1.0, 5.0])) == 0  # both ends equally far: the lower
    assert poc_index(np.array([0.0, 5.0, 1.0, 5.0, 1.0, 0.0, 0.0, 0.0])) == 3  # centre of the traded part, 2.5
    assert poc_index(np.zeros(4)) is None


@settings(max_examples=300, deadline=None)
@given(
    vols=st.lists(st.integers(0, 20), min_size=1, max_size=40),
    fraction=st.sampled_from([0.5, 0.68, 0.7, 0.9, 1.0]),
    step=st.sampled_from([1, 2, 3]),
)
def test_value_area_matches_brute_force(vols: list[int], fraction: float, step: int) -> None:
    if sum(vols) == 0:
        vols = [*vols, 1]
    base = 5_000
    prof = VolumeProfile()
    ticks = [base + i for i, v in enumerate(vols) if v]
    prof.add(trades(ticks, [float(v) for v in vols if v], [True] * len(ticks)))
    ref = {base + i: float(v) for i, v in enumerate(vols) if v}
    assert prof.value_area(fraction, step) == brute_va(ref, fraction, step)
    val, vah = prof.value_area(fraction, step)
    inside = sum(v for t, v in ref.items() if val <= t <= vah)
    assert inside >= fraction * sum(ref.values()) * (1 - 1e-9)
    assert val <= prof.poc() <= vah


@settings(max_examples=100, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(-50, 50), st.floats(0.001, 100.0), st.booleans()), min_size=1, max_size=60
    ),
    cut=st.integers(0, 60),
    seed=st.integers(0, 1000),
)
def test_sums_match_dict_reference_in_any_order_and_batching(
    data: list[tuple[int, float, bool]], cut: int, seed: int
) -> None:
    rows = trades([d[0] for d in data], [d[1] for d in data], [d[2] for d in data])
    np.random.default_rng(seed).shuffle(rows)
    prof = VolumeProfile()
    prof.add(rows[:cut])
    prof.add(rows[cut:])
    one = VolumeProfile()  # and one row per call: the scalar live path
    for i in range(rows.size):
        one.add(rows[i:i + 1])
    assert np.allclose(one.volume_at(np.arange(-52, 53))[0], prof.volume_at(np.arange(-52, 53))[0])
    assert np.allclose(one.volume_at(np.arange(-52, 53))[1], prof.volume_at(np.arange(-52, 53))[1])
    assert (one.lo_tick, one.hi_tick, one.trade_count) == (prof.lo_tick, prof.hi_tick, prof.trade_count)
    assert one.total_volume == pytest.approx(prof.total_volume)
    ref_buy: dict[int, float] = {}
    ref_sell: dict[int, float] = {}
    for t, q, b in data:
        ref = ref_buy if b else ref_sell
        ref[t] = ref.get(t, 0.0) + q
    ticks = np.arange(-52, 53)
    buy, sell = prof.volume_at(ticks)
    assert np.allclose(buy, [ref_buy.get(int(t), 0.0) for t in ticks])
    assert np.allclose(sell, [ref_sell.get(int(t), 0.0) for t in ticks])
    assert prof.total_volume == pytest.approx(sum(d[1] for d in data))


def test_visible_range_profile() -> None:
    prof = VolumeProfile()
    prof.add(trades([10, 11, 12, 13, 14, 15], [1.0, 9.0, 2.0, 3.0, 8.0, 1.0], [True, False] * 3))
    r = prof.range(12, 15)
    assert r.ticks.tolist() == [12, 13, 14, 15]
    assert r.volume.tolist() == [2.0, 3.0, 8.0, 1.0]
    assert r.delta.tolist() == [2.0, -3.0, 8.0, -1.0]
    assert r.total == 14.0
    assert r.poc() == 14
    assert prof.poc() == 11
    assert r.value_area(0.7) == (12, 14)  # 8, then up (15)=1 vs down pair (13,12)=5 -> down: 13/14
    empty = prof.range(100, 120)
    assert empty.poc() is None and empty.value_area() is None and empty.total == 0.0
    with pytest.raises(ValueError, match="high below low"):
        prof.range(5, 4)
    before = r.buy.copy()
    prof.add(trades([12], [5.0], [True]))
    assert np.array_equal(r.buy, before)  # a range is a private copy


def test_volume_nodes_of_a_two_humped_profile() -> None:
    x = np.arange(60)
    vol = 100 * np.exp(-((x - 15) ** 2) / 20) + 70 * np.exp(-((x - 45) ** 2) / 20) + 1.0
    hvn, lvn = volume_nodes(vol, window=3)
    assert hvn.tolist() == [15, 45]
    assert len(lvn) == 1 and 28 <= lvn[0] <= 33
    prof = VolumeProfile()
    prof.add(trades((x + 1000).tolist(), vol.tolist(), [True] * 60))
    p_hvn, p_lvn = prof.nodes(window=3)
    assert p_hvn.tolist() == [1015, 1045]
    assert p_lvn.tolist() == (lvn + 1000).tolist()
    # a plateau peak is one node, at its middle
    hvn2, _ = volume_nodes(np.array([1.0, 2.0, 9.0, 9.0, 9.0, 2.0, 1.0]), window=1)
    assert hvn2.tolist() == [3]


def test_clear_starts_a_new_session() -> None:
    prof = VolumeProfile()
    prof.add(trades([1, 2], [1.0, 1.0], [True, False]))
    v = prof.version
    prof.clear()
    assert prof.version > v
    assert prof.total_volume == 0.0 and prof.poc() is None and prof.lo_tick == NO_PRICE
    prof.add(trades([3], [2.0], [True]))
    assert prof.poc() == 3 and prof.volume_at(np.array([1, 2]))[0].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("qty", "match"),
    [(float("nan"), "finite and > 0"), (-1.0, "finite and > 0"), (0.0, "finite and > 0"),
     (float("inf"), "finite and > 0")],
)
def test_bad_sizes_rejected_atomically(qty: float, match: str) -> None:
    prof = VolumeProfile()
    with pytest.raises(ValueError, match=match):
        prof.add(trades([1, 2], [1.0, qty], [True, True]))
    assert prof.total_volume == 0.0 and prof.version == 0
    prof.add(trades([1], [1.0], [True]))
    with pytest.raises(ValueError, match=match):  # the one-trade scalar path checks the same
        prof.add(trades([1], [qty], [True]))
    assert prof.total_volume == 1.0


def test_bad_rows_rejected() -> None:
    prof = VolumeProfile()
    no_side = trades([1], [1.0], [True])
    no_side["ev"] = BOTH_CLOCKS | TRADE_EVENT
    with pytest.raises(ValueError, match="aggressor side"):
        prof.add(no_side)
    both = trades([1], [1.0], [True])
    both["ev"] |= SELL_EVENT
    with pytest.raises(ValueError, match="aggressor side"):
        prof.add(both)
    no_price = trades([NO_PRICE], [1.0], [True])
    with pytest.raises(ValueError, match="NO_PRICE"):
        prof.add(no_price)
    with pytest.raises(TypeError, match="EVENT_DTYPE"):
        prof.add(np.zeros(2))
    with pytest.raises(ValueError, match="max_span_ticks"):
        VolumeProfile(max_span_ticks=100).add(trades([0, 500], [1.0, 1.0], [True, True]))
    with pytest.raises(ValueError, match="fraction"):
        prof.value_area(1.5)
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        prof.add_trades(np.array([1, 2]), np.array([1.0]), np.array([True, True]))
    with pytest.raises(ValueError, match="finite"):
        prof.add_trades(np.array([1]), np.array([np.nan]), np.array([True]))


def test_add_trades_fast_path_equals_add() -> None:
    a, b = VolumeProfile(), VolumeProfile()
    batch = trades([5, 6, 5], [1.0, 2.0, 3.0], [True, False, False])
    a.add(batch)
    _, ticks, qty, is_buy = trades_of(batch)
    b.add_trades(ticks, qty, is_buy)
    assert a.volume_at(np.arange(4, 8))[0].tolist() == b.volume_at(np.arange(4, 8))[0].tolist()
    assert a.volume_at(np.arange(4, 8))[1].tolist() == b.volume_at(np.arange(4, 8))[1].tolist()


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 9), st.booleans()), min_size=1, max_size=40),
    group=st.integers(1, 7),
    lo=st.integers(-10, 45),
    span=st.integers(0, 30),
)
def test_grouped_ladder_column_and_range_match_brute_force(data, group, lo, span) -> None:
    prof = VolumeProfile()
    prof.add(trades([d[0] for d in data], [float(d[1]) for d in data], [d[2] for d in data]))
    rows = np.arange(lo + span, lo - 1, -1)  # a ladder: descending row ticks
    buy, sell = prof.volume_at(rows, group)
    for r, b, s in zip(rows.tolist(), buy.tolist(), sell.tolist(), strict=True):
        assert b == sum(q for t, q, is_buy in data if is_buy and r <= t < r + group)
        assert s == sum(q for t, q, is_buy in data if not is_buy and r <= t < r + group)
    rng = prof.range(lo, lo + span, group)
    assert rng.group == group
    assert rng.ticks[0] == lo // group * group and rng.ticks[-1] == (lo + span) // group * group
    assert np.all(np.diff(rng.ticks) == group)
    for r, v in zip(rng.ticks.tolist(), rng.volume.tolist(), strict=True):
        assert v == sum(q for t, q, _ in data if r <= t < r + group)


def test_session_grouped() -> None:
    prof = VolumeProfile()
    prof.add(trades([10, 11, 12, 19, 20], [1.0, 1.0, 1.0, 5.0, 1.0], [True] * 5))
    s = prof.session(group=5)
    assert s.ticks.tolist() == [10, 15, 20]
    assert s.volume.tolist() == [3.0, 5.0, 1.0]
    assert s.poc() == 15
    with pytest.raises(ValueError, match="group"):
        prof.volume_at(np.array([1]), group=0)


def test_float_noise_does_not_break_a_poc_tie() -> None:
    noisy = 0.1 + 0.2  # 0.30000000000000004: the same volume summed in another order
    vol = np.array([noisy, 0.1, 0.1, 0.3, 0.1, 0.1])
    assert poc_index(vol) == 3  # a tie with index 0 on volume; 3 is nearer the centre (2.5)
    # and the value area treats float-equal neighbours as a tie (which goes up)
    assert value_area_indices(np.array([0.1, 0.1 + 0.2, 0.9, 0.3, 0.1]), 0.7, step=1) == (2, 3)


def test_nodes_survive_tick_level_noise() -> None:
    rng = np.random.default_rng(7)
    x = np.arange(600)
    smooth = 100 * np.exp(-((x - 150) ** 2) / 2000) + 60 * np.exp(-((x - 450) ** 2) / 2000) + 2
    noisy = smooth * rng.uniform(0, 2, x.size) * (rng.uniform(size=x.size) > 0.4)  # gaps, jagged
    hvn, lvn = volume_nodes(noisy)
    assert len(hvn) == 2 and abs(hvn[0] - 150) < 40 and abs(hvn[1] - 450) < 40  # humps are ~30 wide
    assert len(lvn) == 1 and 250 < lvn[0] < 350
    with pytest.raises(ValueError, match="low < high"):
        volume_nodes(noisy, high=0.2, low=0.3)
    with pytest.raises(ValueError, match="window"):
        volume_nodes(noisy, window=0)
    assert [a.size for a in volume_nodes(np.zeros(5))] == [0, 0]
