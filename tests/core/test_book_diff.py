"""DepthBook.apply_diff: a venue diff (both sides) in one call, against the dict reference book.

apply_diff has its own vector path (one flat array for both sides, a shared far-level log) and falls
back to the per-side path off it (empty book, rows beyond the window on the better side, a best
outside the window). Every path must give the reference's book, and a rejected diff must change
nothing, including the state the next diffs build on.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.book import _LOG_FOLD, TICK_LIMIT, DepthBook
from app.core.events import ASK, BID, NO_PRICE
from app.core.instrument import Instrument
from tests.core.reference_book import ReferenceBook
from tests.core.test_book import as_dict, assert_same, state

INST = Instrument("test", "DIFF", 0.5)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
I64 = np.int64


def diff(book: DepthBook, bids: dict[int, float], asks: dict[int, float]) -> None:
    book.apply_diff(
        np.array(list(bids), dtype=I64),
        np.array(list(bids.values()), dtype=np.float64),
        np.array(list(asks), dtype=I64),
        np.array(list(asks.values()), dtype=np.float64),
    )


def to_ref(ref: ReferenceBook, bids: list[tuple[int, float]], asks: list[tuple[int, float]]) -> None:
    for t, q in bids:
        ref.set(BID, t, q)
    for t, q in asks:
        ref.set(ASK, t, q)


def levels(ticks: np.ndarray, qty: np.ndarray) -> list[tuple[int, float]]:
    return list(zip(ticks.tolist(), qty.astype(float).tolist(), strict=True))


def arrays(rows: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([t for t, _ in rows], dtype=I64), np.array([q for _, q in rows], dtype=np.float64)


# ---------------------------------------------------------------------- examples


def test_both_sides_in_one_call_and_one_version() -> None:
    book = DepthBook(INST, roi_ticks=64)
    diff(book, {100: 1.0, 99: 2.0}, {101: 3.0, 102: 4.0})
    assert book.best_bid() == (100, 1.0) and book.best_ask() == (101, 3.0)
    assert book.version == 1
    diff(book, {100: 0.0, 101: 5.0}, {101: 0.0, 103: 1.0})  # the bid moves up where the ask was
    assert as_dict(book, BID) == {101: 5.0, 99: 2.0}
    assert as_dict(book, ASK) == {102: 4.0, 103: 1.0}
    assert book.best_bid() == (101, 5.0) and book.best_ask() == (102, 4.0)
    assert book.version == 2


def test_one_side_empty_and_both_empty() -> None:
    book = DepthBook(INST, roi_ticks=64)
    diff(book, {100: 1.0}, {101: 1.0})
    diff(book, {}, {101: 0.0, 105: 2.0})
    diff(book, {99: 3.0}, {})
    assert as_dict(book, BID) == {100: 1.0, 99: 3.0} and as_dict(book, ASK) == {105: 2.0}
    v = book.version
    diff(book, {}, {})
    assert book.version == v + 1 and as_dict(book, BID) == {100: 1.0, 99: 3.0}


def test_lists_and_other_dtypes_are_converted() -> None:
    book = DepthBook(INST, roi_ticks=64)
    book.apply_diff([100, 99], [1, 2], np.array([101], dtype=np.int32), np.array([1.5], dtype=np.float32))  # type: ignore[arg-type]
    assert as_dict(book, BID) == {100: 1.0, 99: 2.0} and as_dict(book, ASK) == {101: 1.5}


def test_repeated_tick_last_wins_on_each_side() -> None:
    book = DepthBook(INST, roi_ticks=64)
    diff(book, {100: 1.0}, {101: 1.0})
    book.apply_diff(
        np.array([99, 99, 5, 5], dtype=I64),
        np.array([1.0, 0.0, 2.0, 3.0]),
        np.array([102, 102, 9000, 9000], dtype=I64),
        np.array([0.0, 4.0, 1.0, 0.0]),
    )
    assert as_dict(book, BID) == {100: 1.0, 5: 3.0}
    assert as_dict(book, ASK) == {101: 1.0, 102: 4.0}


def test_far_levels_on_both_sides_and_the_best_falling_back_to_them() -> None:
    book = DepthBook(INST, roi_ticks=32)
    diff(book, {1000: 1.0, 999: 1.0, 10: 7.0}, {1001: 1.0, 50_000: 2.0})
    assert as_dict(book, BID) == {1000: 1.0, 999: 1.0, 10: 7.0}
    assert as_dict(book, ASK) == {1001: 1.0, 50_000: 2.0}
    diff(book, {1000: 0.0, 999: 0.0}, {1001: 0.0})  # the window empties: the far levels are the best
    assert book.best_bid() == (10, 7.0) and book.best_ask() == (50_000, 2.0)
    diff(book, {11: 1.0}, {49_999: 1.0})
    assert book.best_bid() == (11, 1.0) and book.best_ask() == (49_999, 1.0)


@pytest.mark.parametrize("side", [BID, ASK])
def test_stale_deletes_beyond_the_window_with_the_other_side_in_the_same_diff(side: int) -> None:
    book = DepthBook(INST, roi_ticks=64)
    diff(book, {1000: 1.0, 999: 2.0}, {1001: 1.0, 1002: 2.0})
    stale = 1000 + 5000 if side == BID else 1001 - 5000  # beyond the window, better: nothing rests there
    own = {stale: 0.0, 1000 if side == BID else 1001: 0.0}
    other = {1003: 5.0} if side == BID else {998: 5.0}
    diff(book, own if side == BID else other, other if side == BID else own)
    assert book.best_bid() == ((999, 2.0) if side == BID else (1000, 1.0))
    assert book.best_ask() == ((1002, 2.0) if side == ASK else (1001, 1.0))
    assert as_dict(book, ASK if side == BID else BID).get(1003 if side == BID else 998) == 5.0
    # A size set beyond the window on the better side is a real level: it becomes the best.
    far = {stale: 3.0}
    diff(book, far if side == BID else {}, far if side == ASK else {})
    assert (book.best_bid() if side == BID else book.best_ask()) == (stale, 3.0)


def test_clear_of_one_side_keeps_the_other_sides_logged_far_levels() -> None:
    # The far-level log is shared by both sides: clearing one must not drop the other's rows.
    book = DepthBook(INST, roi_ticks=32)
    diff(book, {1000: 1.0}, {1001: 1.0})
    diff(book, {10: 2.0}, {90_000: 3.0})
    book.clear(BID)
    assert as_dict(book, BID) == {} and as_dict(book, ASK) == {1001: 1.0, 90_000: 3.0}
    diff(book, {20: 1.0}, {90_001: 1.0})
    book.clear(ASK)
    assert as_dict(book, BID) == {20: 1.0} and as_dict(book, ASK) == {}
    assert book.best_ask_tick == NO_PRICE and book.best_bid() == (20, 1.0)


def test_a_diff_bigger_than_the_log() -> None:
    book = DepthBook(INST, roi_ticks=64)
    diff(book, {100_000: 1.0}, {100_001: 1.0})
    n = _LOG_FOLD + 10
    bt = np.arange(n, dtype=I64)  # all far below the window
    bq = (bt % 3).astype(np.float64)
    at = np.array([100_002, 100_002], dtype=I64)
    book.apply_diff(bt, bq, at, np.array([1.0, 2.0]))
    want = {int(t): float(q) for t, q in zip(bt.tolist(), bq.tolist(), strict=True) if q}
    want[100_000] = 1.0
    assert as_dict(book, BID) == want
    assert as_dict(book, ASK) == {100_001: 1.0, 100_002: 2.0}


def test_the_log_folds_when_full_with_both_sides_interleaved() -> None:
    book = DepthBook(INST, roi_ticks=64)
    ref = ReferenceBook()
    diff(book, {10_000: 1.0}, {10_001: 1.0})
    to_ref(ref, [(10_000, 1.0)], [(10_001, 1.0)])
    rng = np.random.default_rng(3)
    logged = 0
    while logged < 2 * _LOG_FOLD + 50:
        nb, na = rng.integers(0, 60, 2)
        bids = levels(rng.integers(0, 600, nb), rng.integers(0, 3, nb))
        asks = levels(rng.integers(20_000, 20_600, na), rng.integers(0, 3, na))
        book.apply_diff(*arrays(bids), *arrays(asks))
        to_ref(ref, bids, asks)
        logged += nb + na
        assert len(book.log) <= _LOG_FOLD
    assert_same(book, ref)


@pytest.mark.parametrize("edge", [TICK_LIMIT - 1, -TICK_LIMIT + 1])
def test_ticks_near_the_limit(edge: int) -> None:
    """A window near ±2**62 takes the per-side path (int64 positions could overflow): same book."""
    book = DepthBook(INST, roi_ticks=16)
    ref = ReferenceBook()
    mid = edge - 40 if edge > 0 else edge + 40
    steps = [
        (
            [(mid, 1.0), (mid - 1, 2.0), (edge if edge < 0 else mid - 30, 3.0)],
            [(mid + 1, 1.0), (edge if edge > 0 else mid + 30, 2.0)],
        ),
        ([(mid, 0.0), (mid - 2, 4.0)], [(mid + 1, 0.0), (mid + 3, 5.0)]),
    ]
    for bids, asks in steps:
        book.apply_diff(*arrays(bids), *arrays(asks))
        to_ref(ref, bids, asks)
        # Levels and best prices (assert_same's walk figures are floats of ~4.6e18-tick averages).
        assert (book.best_bid_tick, book.best_ask_tick) == (ref.best_bid_tick, ref.best_ask_tick)
        for side in (BID, ASK):
            t, q = book.levels(side)
            assert list(zip(t.tolist(), q.tolist(), strict=True)) == ref.levels(side)


# ---------------------------------------------------------------------- bad input


def _loaded() -> DepthBook:
    book = DepthBook(INST, roi_ticks=32)
    diff(book, {100: 1.0, 99: 2.0, 5: 1.0}, {101: 1.0, 500: 2.0})
    return book


@pytest.mark.parametrize(
    ("qty", "message"),
    [(math.nan, "NaN"), (math.inf, "infinite"), (-math.inf, "infinite"), (-1.0, "negative")],
)
@pytest.mark.parametrize("side", [BID, ASK])
def test_bad_qty_on_either_side_changes_nothing(qty: float, message: str, side: int) -> None:
    book = _loaded()
    before = state(book)
    good = np.array([1.0, 0.0])
    bad = np.array([0.0, qty])
    with pytest.raises(ValueError, match=f"{'bid' if side == BID else 'ask'} qty is {message}"):
        book.apply_diff(
            np.array([98, 2], dtype=I64),
            bad if side == BID else good,
            np.array([102, 9000], dtype=I64),
            bad if side == ASK else good,
        )
    assert state(book) == before


@pytest.mark.parametrize("tick", [TICK_LIMIT, -TICK_LIMIT, NO_PRICE, 2**63 - 1, -(2**63)])
@pytest.mark.parametrize("side", [BID, ASK])
def test_ticks_out_of_range_on_either_side_change_nothing(tick: int, side: int) -> None:
    book = _loaded()
    before = state(book)
    bad = np.array([99, tick], dtype=I64)
    good = np.array([98, 3], dtype=I64) if side == ASK else np.array([102, 900], dtype=I64)
    with pytest.raises(ValueError, match="out of range"):
        book.apply_diff(
            bad if side == BID else good,
            np.array([0.0, 1.0]),
            bad if side == ASK else good,
            np.array([1.0, 1.0]),
        )
    assert state(book) == before


@pytest.mark.parametrize(
    ("ticks", "qty", "message"),
    [
        (np.array([1.5, 2.0]), np.array([1.0, 1.0]), "integer"),
        (np.array([1, 2], dtype=I64), np.array([1.0]), "one length"),
        (np.array([[1, 2]], dtype=I64), np.array([[1.0, 1.0]]), "1-D"),
        (np.array([1, 2], dtype=I64), np.array(["a", "b"]), "numbers"),
    ],
)
@pytest.mark.parametrize("side", [BID, ASK])
def test_malformed_arrays_on_either_side_change_nothing(
    ticks: np.ndarray, qty: np.ndarray, message: str, side: int
) -> None:
    book = _loaded()
    before = state(book)
    good_t, good_q = np.array([50], dtype=I64), np.array([1.0])
    with pytest.raises(ValueError, match=message):
        if side == BID:
            book.apply_diff(ticks, qty, good_t + 60, good_q)
        else:
            book.apply_diff(good_t, good_q, ticks, qty)
    assert state(book) == before


# ---------------------------------------------------------------------- properties

sizes = st.one_of(st.just(0.0), st.just(-0.0), st.integers(1, 40).map(lambda k: k * 0.25))


@st.composite
def diffs(draw: st.DrawFn) -> list[tuple]:
    """A drifting market's diffs, both sides at once: levels near the mid, stray far levels on any
    side (beyond the window on the better side too), deletes of absent levels, sometimes a clear."""
    mid = draw(st.integers(1000, 5000))
    steps: list[tuple] = []
    for _ in range(draw(st.integers(1, 30))):
        if draw(st.integers(0, 24)) == 0:
            steps.append(("clear", draw(st.sampled_from([0, BID, ASK]))))
            continue
        mid += draw(st.sampled_from([0, 1, -1, 5, -5, 40, -40, 400, -400]))
        sides = []
        for sign in (-1, 1):
            n = draw(st.integers(0, 10))
            offs = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
            ticks = [mid + sign * o + (sign > 0) for o in offs]
            for _ in range(draw(st.integers(0, 2))):
                ticks.append(draw(st.integers(-50, 20_000)))  # far, anywhere (or not so far)
            qty = draw(st.lists(sizes, min_size=len(ticks), max_size=len(ticks)))
            sides.append(list(zip(ticks, qty, strict=True)))
        steps.append(("diff", sides[0], sides[1]))
    return steps


def apply_steps(book: DepthBook, ref: ReferenceBook, steps: list[tuple], check: bool) -> None:
    for step in steps:
        if step[0] == "clear":
            book.clear(step[1])
            ref.clear(step[1])
        else:
            _, bids, asks = step
            book.apply_diff(*arrays(bids), *arrays(asks))
            to_ref(ref, bids, asks)
        if check:
            assert_same(book, ref)
            for t in list(ref.bids)[:5] + list(ref.asks)[:5]:
                assert book.qty_at(BID, t) == ref.qty_at(BID, t)
                assert book.qty_at(ASK, t) == ref.qty_at(ASK, t)


@SETTINGS
@given(roi=st.sampled_from([16, 64, 256]), steps=diffs())
def test_diffs_match_the_reference(roi: int, steps: list[tuple]) -> None:
    book = DepthBook(INST, roi_ticks=roi)
    apply_steps(book, ReferenceBook(), steps, check=True)


@SETTINGS
@given(roi=st.sampled_from([16, 64]), steps=diffs(), data=st.data())
def test_diffs_and_single_sides_mixed_match_the_reference(
    roi: int, steps: list[tuple], data: st.DataObject
) -> None:
    """apply_side is apply_diff with one side empty: mixing them in any order changes nothing."""
    book = DepthBook(INST, roi_ticks=roi)
    ref = ReferenceBook()
    for step in steps:
        if step[0] == "diff" and data.draw(st.booleans()):
            _, bids, asks = step
            book.apply_side(BID, *arrays(bids))
            book.apply_side(ASK, *arrays(asks))
            to_ref(ref, bids, asks)
            assert_same(book, ref)
        else:
            apply_steps(book, ref, [step], check=True)


BAD = ["nan", "inf", "negative", "tick high", "tick low", "float ticks", "lengths"]


@SETTINGS
@given(
    roi=st.sampled_from([16, 64, 256]),
    steps=diffs(),
    more=diffs(),
    bad=st.sampled_from(BAD),
    side=st.sampled_from([BID, ASK]),
    data=st.data(),
)
def test_a_bad_diff_changes_nothing_and_the_book_goes_on(
    roi: int, steps: list[tuple], more: list[tuple], bad: str, side: int, data: st.DataObject
) -> None:
    """Whatever the book holds, a diff with one bad value on either side raises and leaves it as it
    was: same reads, and the diffs after it give the reference's book (no half-written state)."""
    book = DepthBook(INST, roi_ticks=roi)
    ref = ReferenceBook()
    apply_steps(book, ref, steps, check=False)
    before = state(book)
    diffs_only = [s for s in more if s[0] == "diff"] or [("diff", [(1000, 1.0)], [(1001, 1.0)])]
    _, bids, asks = diffs_only[0]
    rows = list(bids if side == BID else asks) or [(3000, 1.0)]
    i = data.draw(st.integers(0, len(rows) - 1))
    t, q = arrays(rows)
    if bad in ("nan", "inf", "negative"):
        q[i] = {"nan": math.nan, "inf": math.inf, "negative": -0.5}[bad]
    elif bad == "tick high":
        t[i] = data.draw(st.sampled_from([TICK_LIMIT, 2**63 - 1]))
    elif bad == "tick low":
        t[i] = data.draw(st.sampled_from([-TICK_LIMIT, NO_PRICE, -(2**63)]))
    elif bad == "float ticks":
        t = t.astype(np.float64)
        t[i] += 0.5
    else:
        q = np.append(q, 1.0)
    other = arrays(asks if side == BID else bids)
    with pytest.raises(ValueError):
        if side == BID:
            book.apply_diff(t, q, *other)
        else:
            book.apply_diff(*other, t, q)
    assert state(book) == before
    assert_same(book, ref)
    apply_steps(book, ref, more, check=False)
    assert_same(book, ref)
