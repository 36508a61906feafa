"""DepthBook: every method, against hand-computed values and the dict reference book."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.core.book import _LOG_FOLD, TICK_LIMIT, DepthBook, WalkResult
from app.core.events import (
    ASK,
    BID,
    BOTH_CLOCKS,
    BUY_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    NO_PRICE,
    SELL_EVENT,
    TRADE_EVENT,
    clear_row,
    depth_rows,
    marker_row,
    trade_row,
)
from app.core.instrument import Instrument
from tests.core.reference_book import ReferenceBook

INST = Instrument("test", "BTCUSDT", 0.1, 0.001)


def make(roi: int = 64) -> DepthBook:
    return DepthBook(INST, roi_ticks=roi)


def put(book: DepthBook, side: int, levels: dict[int, float]) -> None:
    book.apply_side(
        side, np.array(list(levels), dtype=np.int64), np.array(list(levels.values()), dtype=np.float64)
    )


def as_dict(book: DepthBook, side: int) -> dict[int, float]:
    t, q = book.levels(side)
    return dict(zip(t.tolist(), q.tolist(), strict=True))


def state(book: DepthBook) -> tuple:
    """Everything observable, to assert that a rejected input changed nothing."""
    return (
        as_dict(book, BID),
        as_dict(book, ASK),
        book.best_bid_tick,
        book.best_ask_tick,
        book.version,
        book.update_id,
        book.levels(BID)[0].tolist(),
        book.levels(ASK)[0].tolist(),
    )


def assert_same(book: DepthBook, ref: ReferenceBook) -> None:
    """The book equals the reference on every query."""
    assert book.best_bid_tick == ref.best_bid_tick
    assert book.best_ask_tick == ref.best_ask_tick
    assert book.is_crossed() == ref.is_crossed()
    for side in (BID, ASK):
        expect = ref.levels(side)
        t, q = book.levels(side)
        assert list(zip(t.tolist(), q.tolist(), strict=True)) == expect
        for n in (0, 1, 2, 7):
            t, q = book.levels(side, n)
            assert list(zip(t.tolist(), q.tolist(), strict=True)) == expect[:n]
        t, c = book.cumulative_depth(side, 5)
        exp_c = ref.cumulative_depth(side, 5)
        assert t.tolist() == [x for x, _ in exp_c]
        assert c.tolist() == pytest.approx([x for _, x in exp_c], rel=1e-12)
        for n_ticks in (0, 3, 40, 10_000):
            assert book.depth_within(side, n_ticks) == pytest.approx(
                ref.depth_within(side, n_ticks), rel=1e-12
            )
        for qty in (0.001, 1.0, 7.5, 1e9):
            w = book.walk(side, qty)
            filled, avg, worst, slip = ref.walk(side, qty)
            assert w.worst_tick == worst
            assert w.filled == pytest.approx(filled, rel=1e-12)
            if math.isnan(avg):
                assert math.isnan(w.avg_tick) and math.isnan(w.slippage_ticks)
            else:
                assert w.avg_tick == pytest.approx(avg, rel=1e-12)
                assert w.slippage_ticks == pytest.approx(slip, rel=1e-9, abs=1e-9)
        best = book.best_bid() if side == BID else book.best_ask()
        if expect:
            assert best == expect[0]
        else:
            assert best is None


# ---------------------------------------------------------------------- empty book


def test_empty_book_reads() -> None:
    book = make()
    assert book.best_bid_tick == NO_PRICE and book.best_ask_tick == NO_PRICE
    assert book.best_bid() is None and book.best_ask() is None
    assert not book.is_crossed()
    assert book.version == 0 and book.update_id == 0
    for side in (BID, ASK):
        t, q = book.levels(side)
        assert t.dtype == np.int64 and q.dtype == np.float64 and t.size == 0 and q.size == 0
        assert book.cumulative_depth(side, 10)[0].size == 0
        assert book.depth_within(side, 100) == 0.0
        assert book.qty_at(side, 1234) == 0.0
        w = book.walk(side, 1.0)
        assert w.filled == 0.0 and w.worst_tick == NO_PRICE
        assert math.isnan(w.avg_tick) and math.isnan(w.slippage_ticks)
    ticks, bids, asks = book.ladder(100, 5)
    assert ticks.tolist() == [100, 99, 98, 97, 96]
    assert bids.tolist() == [0.0] * 5 and asks.tolist() == [0.0] * 5


@pytest.mark.parametrize("roi", [0, 15, -4, 16.5, "64", True])
def test_bad_roi_rejected(roi: object) -> None:
    with pytest.raises(ValueError, match="roi_ticks"):
        DepthBook(INST, roi_ticks=roi)  # type: ignore[arg-type]


def test_default_roi_is_8192() -> None:
    book = DepthBook(INST)
    put(book, BID, {618_000: 1.0, 618_000 - 4000: 2.0})
    assert book.levels(BID)[0].tolist() == [618_000, 614_000]
    assert book._roi == 8192


# ---------------------------------------------------------------------- apply_side


def test_set_update_delete_and_best() -> None:
    book = make()
    put(book, BID, {1000: 1.0, 999: 2.0, 995: 3.0})
    put(book, ASK, {1001: 4.0, 1003: 5.0})
    assert book.best_bid() == (1000, 1.0) and book.best_ask() == (1001, 4.0)
    assert book.qty_at(BID, 999) == 2.0 and book.qty_at(ASK, 999) == 0.0
    put(book, BID, {999: 2.5})  # update
    assert book.qty_at(BID, 999) == 2.5
    put(book, BID, {1000: 0.0})  # delete the best: next best found below
    assert book.best_bid() == (999, 2.5)
    put(book, BID, {999: 0.0, 998: 0.0})  # delete best and an absent level
    assert book.best_bid() == (995, 3.0)
    put(book, BID, {997: 1.0, 1000: 0.0})  # a new better level, plus a delete above it
    assert book.best_bid() == (997, 1.0)
    put(book, ASK, {1001: 0.0, 1003: 0.0})
    assert book.best_ask() is None and book.best_ask_tick == NO_PRICE
    assert as_dict(book, BID) == {997: 1.0, 995: 3.0}


def test_repeated_tick_in_one_call_last_wins() -> None:
    book = make()
    book.apply_side(BID, np.array([10, 10, 10], dtype=np.int64), np.array([1.0, 0.0, 3.0]))
    assert as_dict(book, BID) == {10: 3.0}
    book.apply_side(BID, np.array([10, 10], dtype=np.int64), np.array([5.0, 0.0]))
    assert as_dict(book, BID) == {}
    assert book.best_bid_tick == NO_PRICE


def test_apply_side_accepts_lists_and_other_int_dtypes() -> None:
    book = make()
    book.apply_side(BID, [100, 99], [1, 2])  # type: ignore[arg-type]
    book.apply_side(ASK, np.array([101, 102], dtype=np.int32), np.array([1.5, 2.5], dtype=np.float32))
    assert as_dict(book, BID) == {100: 1.0, 99: 2.0}
    assert as_dict(book, ASK) == {101: 1.5, 102: 2.5}
    assert book.levels(ASK)[0].dtype == np.int64


def test_apply_side_empty_is_a_noop_but_counts() -> None:
    book = make()
    put(book, BID, {100: 1.0})
    v = book.version
    book.apply_side(BID, np.array([], dtype=np.int64), np.array([], dtype=np.float64))
    book.apply_side(ASK, [], [])  # type: ignore[arg-type]
    assert as_dict(book, BID) == {100: 1.0} and book.version == v + 2


def test_negative_zero_deletes() -> None:
    book = make()
    put(book, BID, {100: 1.0, 99: 1.0})
    book.apply_side(BID, np.array([100], dtype=np.int64), np.array([-0.0]))
    assert as_dict(book, BID) == {99: 1.0}
    assert book.best_bid() == (99, 1.0)


def test_negative_zero_reads_as_plus_zero_on_both_write_paths() -> None:
    # The first write of a book goes through the per-side path (it places the window); the next ones
    # through apply_diff's vector path. -0.0 must mean "no level" and read as +0.0 on both.
    for n in (1, 40):
        for first in (False, True):
            book = make()
            ticks = np.arange(100 - n + 1, 101, dtype=np.int64)
            if not first:
                put(book, ASK, {200: 1.0})  # anchored: the writes below take the vector path
                book.apply_side(BID, ticks, np.ones(n))
            book.apply_side(BID, ticks, np.full(n, -0.0))
            assert book.best_bid() is None and book.levels(BID)[0].shape[0] == 0
            assert math.copysign(1.0, book.qty_at(BID, 100)) == 1.0
            _, bids, _ = book.ladder(100, 3)
            assert np.all(np.signbit(bids) == 0) and not bids.any()


def test_small_and_big_messages_share_the_far_log_in_order() -> None:
    # Far rows of messages of different sizes interleave in the log: the last write of each far
    # tick must win across them.
    book = make(64)
    put(book, BID, {1000: 1.0})
    big = np.arange(900, 933, dtype=np.int64)  # far below a ROI around 1000
    ref = {1000: 1.0}
    for i in range(40):
        if i % 2:
            book.apply_side(BID, np.array([5, 990, 950], dtype=np.int64), np.array([float(i), 1.0, 0.0]))
            ref[5] = float(i)
            ref[990] = 1.0
            ref.pop(950, None)
        else:
            qty = np.full(big.shape[0], float(i % 3))
            book.apply_side(BID, np.concatenate([[5], big]), np.concatenate([[2.0 + i], qty]))
            ref[5] = 2.0 + i
            for t in big.tolist():
                if i % 3:
                    ref[t] = float(i % 3)
                else:
                    ref.pop(t, None)
    assert as_dict(book, BID) == ref
    assert book.best_bid() == (1000, 1.0)


def test_far_log_folds_when_full() -> None:
    book = make(64)
    put(book, BID, {1000: 1.0})
    ref = {1000: 1.0}
    width = 41  # messages of 41 and 3 rows: the log holds whole messages
    logged = 0
    rng = np.random.default_rng(7)
    while logged < 2 * _LOG_FOLD + 100:
        n = width if rng.random() < 0.5 else 3
        ticks = rng.integers(0, 400, n).astype(np.int64)  # far below a ROI around 1000, repeats
        qty = rng.integers(0, 3, n).astype(np.float64)
        book.apply_side(BID, ticks, qty)
        for t, q in zip(ticks.tolist(), qty.tolist(), strict=True):
            if q:
                ref[t] = q
            else:
                ref.pop(t, None)
        logged += n
        assert len(book.log) <= _LOG_FOLD
    assert len(book.log) < logged  # folded along the way
    assert as_dict(book, BID) == ref
    assert book.best_bid() == (1000, 1.0)


def test_small_unsorted_message_with_far_rows() -> None:
    book = make(64)
    put(book, ASK, {1000: 1.0, 1001: 2.0})
    # Asks above the ROI (far, worse side) mixed with ROI rows, unsorted, one tick repeated.
    book.apply_side(
        ASK, np.array([5000, 1000, 4000, 999, 5000], dtype=np.int64), np.array([1.0, 0.0, 2.0, 3.0, 4.0])
    )
    assert as_dict(book, ASK) == {999: 3.0, 1001: 2.0, 4000: 2.0, 5000: 4.0}
    assert book.best_ask() == (999, 3.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, -math.inf])
def test_small_message_rejects_bad_qty_unchanged(bad: float) -> None:
    book = make()
    put(book, BID, {100: 1.0})
    v = book.version
    with pytest.raises(ValueError):
        book.apply_side(BID, np.array([99, 100, 5], dtype=np.int64), np.array([1.0, bad, 2.0]))
    assert as_dict(book, BID) == {100: 1.0} and book.version == v


def test_small_message_huge_finite_sizes_are_accepted() -> None:
    book = make()
    # Their sum overflows to inf: the exact check must still accept them.
    book.apply_side(BID, np.array([99, 100], dtype=np.int64), np.array([1.7e308, 1.7e308]))
    assert as_dict(book, BID) == {99: 1.7e308, 100: 1.7e308}


def test_version_counts_batches() -> None:
    book = make()
    put(book, BID, {1: 1.0})
    put(book, ASK, {2: 1.0})
    book.clear(BID)
    assert book.version == 3


def test_deletes_on_an_empty_book_do_not_place_the_window() -> None:
    book = make(64)
    put(book, BID, {5: 0.0})
    assert book._anchored is False and book.best_bid_tick == NO_PRICE
    put(book, BID, {10_000: 1.0})
    assert book._anchored and book._base <= 10_000 < book._base + 64


def test_best_rescan_far_below_the_deleted_best() -> None:
    book = make(1024)
    put(book, BID, {5000: 1.0, 5000 - 300: 2.0})  # 300 ticks: beyond the first search window
    put(book, BID, {5000: 0.0})
    assert book.best_bid() == (4700, 2.0)
    put(book, ASK, {5001: 1.0, 5001 + 400: 2.0})
    put(book, ASK, {5001: 0.0})
    assert book.best_ask() == (5401, 2.0)


# ---------------------------------------------------------------------- far levels and recentring


def test_binance_like_far_levels_are_levels_too() -> None:
    """A 61,800 market with bids down at 5,000.00 and asks up at 200,000 (tick 0.1)."""
    book = DepthBook(INST)  # 8192-tick window = 819.2 USDT
    bids = {618_002: 2.9, 618_001: 0.5, 617_000: 1.0, 50_000: 7.0, 5_600: 1.5}
    asks = {618_003: 1.0, 618_010: 0.2, 2_000_000: 3.0}
    put(book, BID, bids)
    put(book, ASK, asks)
    assert book.levels(BID)[0].tolist() == [618_002, 618_001, 617_000, 50_000, 5_600]
    assert book.levels(ASK)[0].tolist() == [618_003, 618_010, 2_000_000]
    assert book.qty_at(BID, 50_000) == 7.0 and book.qty_at(ASK, 2_000_000) == 3.0
    t, c = book.cumulative_depth(BID, 5)
    assert c.tolist() == pytest.approx([2.9, 3.4, 4.4, 11.4, 12.9])
    w = book.walk(BID, 10.0)  # a market sell eats into the far bids
    assert w.filled == 10.0 and w.worst_tick == 50_000
    notional = 2.9 * 618_002 + 0.5 * 618_001 + 1.0 * 617_000 + 5.6 * 50_000
    assert w.avg_tick == pytest.approx(notional / 10.0, rel=1e-12)
    assert w.slippage_ticks == pytest.approx(618_002 - notional / 10.0, rel=1e-12)
    assert book.depth_within(BID, 618_002 - 50_000) == pytest.approx(11.4)
    ticks, b, a = book.ladder(50_001, 3)
    assert (
        ticks.tolist() == [50_001, 50_000, 49_999]
        and b.tolist() == [0.0, 7.0, 0.0]
        and a.tolist() == [0.0] * 3
    )
    put(book, BID, {50_000: 0.0, 5_600: 0.0})  # far deletes
    assert book.levels(BID)[0].tolist() == [618_002, 618_001, 617_000]
    put(book, BID, {618_002: 0.0, 618_001: 0.0, 617_000: 0.0, 10_000: 4.0})  # only a far bid left
    assert book.best_bid() == (10_000, 4.0)


def test_recentre_follows_the_market_and_keeps_every_level() -> None:
    book = make(64)
    ref = ReferenceBook()
    mid = 10_000
    for step in range(200):
        mid += 3  # a steady rally: the window must follow
        bids = {mid - k: float(k + step) for k in range(1, 6)}
        asks = {mid + k: float(k + step) for k in range(1, 6)}
        bids[mid - 7 - step] = 0.0  # deletes trailing behind
        put(book, BID, bids)
        put(book, ASK, asks)
        for t, q in bids.items():
            ref.set(BID, t, q)
        for t, q in asks.items():
            ref.set(ASK, t, q)
        # old asks below the new bids are crossed in this toy feed: remove them like a venue would
        stale = {t: 0.0 for t in ref.asks if t <= mid}
        put(book, ASK, stale)
        for t in stale:
            ref.set(ASK, t, 0.0)
    assert book.recentres > 5
    assert book._base <= book.best_bid_tick < book._base + 64
    assert_same(book, ref)


def test_best_better_than_the_window_goes_to_far_levels_then_recentres() -> None:
    book = make(64)
    put(book, BID, {1000: 1.0})
    put(book, ASK, {1001: 1.0})
    put(book, ASK, {5000: 2.0, 1001: 0.0})
    put(book, BID, {4999: 3.0})  # far above the window: becomes the best, window moves
    assert book.best_bid() == (4999, 3.0) and book.best_ask() == (5000, 2.0)
    assert book._base <= 4999 < book._base + 64
    assert as_dict(book, BID) == {4999: 3.0, 1000: 1.0}


def test_wide_spread_thin_book_stays_correct() -> None:
    book = make(32)
    ref = ReferenceBook()
    for side, t, q in [(BID, 100, 1.0), (ASK, 900, 1.0), (BID, 150, 2.0), (ASK, 850, 1.0), (BID, 150, 0.0)]:
        put(book, side, {t: q})
        ref.set(side, t, q)
        assert_same(book, ref)


def test_far_log_is_folded_and_bounded() -> None:
    book = make(64)
    put(book, BID, {1000: 1.0})
    n = _LOG_FOLD * 2 + 7
    for i in range(n):
        book.apply_side(BID, np.array([1000, 10 + i % 50], dtype=np.int64), np.array([1.0, float(i % 3)]))
    assert 0 < len(book.log) < _LOG_FOLD  # folded along the way, memory bounded
    ref = {1000: 1.0}
    for k in range(50):
        last = max(i for i in range(n) if i % 50 == k)
        if last % 3:
            ref[10 + k] = float(last % 3)
    assert as_dict(book, BID) == ref


# ---------------------------------------------------------------------- reads


def test_levels_best_first_and_n() -> None:
    book = make()
    put(book, BID, {100: 1.0, 98: 2.0, 90: 3.0})
    put(book, ASK, {101: 4.0, 110: 5.0})
    assert book.levels(BID)[0].tolist() == [100, 98, 90]
    assert book.levels(ASK)[0].tolist() == [101, 110]
    t, q = book.levels(BID, 2)
    assert t.tolist() == [100, 98] and q.tolist() == [1.0, 2.0]
    assert book.levels(ASK, 10)[0].tolist() == [101, 110]
    assert book.levels(BID, 0)[0].size == 0
    with pytest.raises(ValueError, match="n must be"):
        book.levels(BID, -1)
    with pytest.raises(ValueError, match="side"):
        book.levels(0)


def test_levels_n_beyond_the_first_scan_window() -> None:
    book = make(4096)
    ticks = np.arange(1000, 4000, 3, dtype=np.int64)
    book.apply_side(BID, ticks, np.ones(ticks.size))
    t, _ = book.levels(BID, 900)
    assert t.tolist() == ticks[::-1][:900].tolist()


def test_ladder_rows_and_groups() -> None:
    book = make()
    put(book, BID, {100: 1.0, 99: 2.0, 97: 4.0})
    put(book, ASK, {101: 3.0, 103: 5.0})
    ticks, b, a = book.ladder(104, 6)
    assert ticks.tolist() == [104, 103, 102, 101, 100, 99]
    assert b.tolist() == [0, 0, 0, 0, 1.0, 2.0]
    assert a.tolist() == [0, 5.0, 0, 3.0, 0, 0]
    ticks, b, a = book.ladder(104, 3, group=3)  # rows cover 104..102, 101..99, 98..96
    assert ticks.tolist() == [104, 101, 98]
    assert b.tolist() == [0.0, 3.0, 4.0]
    assert a.tolist() == [5.0, 3.0, 0.0]
    assert [x.size for x in book.ladder(104, 0)] == [0, 0, 0]
    with pytest.raises(ValueError, match="group"):
        book.ladder(104, 3, group=0)
    with pytest.raises(ValueError, match="rows"):
        book.ladder(104, -3)


def test_ladder_window_spanning_the_roi_edge_and_far_levels() -> None:
    book = make(32)
    ref = ReferenceBook()
    bids = {500: 1.0, 495: 2.0, 470: 3.0, 460: 4.0, 300: 5.0}
    asks = {501: 1.0, 520: 2.0, 540: 3.0, 700: 4.0}
    put(book, BID, bids)
    put(book, ASK, asks)
    ref.apply_side(BID, list(bids), list(bids.values()))
    ref.apply_side(ASK, list(asks), list(asks.values()))
    for top, rows, group in [(710, 50, 10), (560, 100, 1), (505, 7, 5), (301, 2, 1), (1000, 3, 100)]:
        ticks, b, a = book.ladder(top, rows, group)
        exp = ref.ladder(top, rows, group)
        assert ticks.tolist() == [e[0] for e in exp]
        assert b.tolist() == pytest.approx([e[1] for e in exp])
        assert a.tolist() == pytest.approx([e[2] for e in exp])


def test_cumulative_depth() -> None:
    book = make()
    put(book, ASK, {101: 1.0, 102: 2.0, 105: 0.5})
    t, c = book.cumulative_depth(ASK, 2)
    assert t.tolist() == [101, 102] and c.tolist() == [1.0, 3.0]
    t, c = book.cumulative_depth(ASK, 10)
    assert c.tolist() == [1.0, 3.0, 3.5]
    with pytest.raises(ValueError, match="n_levels"):
        book.cumulative_depth(ASK, -1)


def test_depth_within_is_inclusive() -> None:
    book = make()
    put(book, BID, {100: 1.0, 98: 2.0, 95: 4.0})
    put(book, ASK, {101: 1.0, 103: 2.0})
    assert book.depth_within(BID, 0) == 1.0
    assert book.depth_within(BID, 2) == 3.0
    assert book.depth_within(BID, 5) == 7.0
    assert book.depth_within(ASK, 1) == 1.0
    assert book.depth_within(ASK, 2) == 3.0
    with pytest.raises(ValueError, match="n_ticks"):
        book.depth_within(BID, -1)


def test_walk_fills_average_worst_slippage() -> None:
    book = make()
    put(book, ASK, {101: 1.0, 102: 2.0, 105: 3.0})
    w = book.walk(ASK, 1.0)
    assert w == WalkResult(1.0, 101.0, 101, 0.0)
    w = book.walk(ASK, 2.0)  # 1 @101 + 1 @102
    assert w.filled == 2.0 and w.avg_tick == pytest.approx(101.5) and w.worst_tick == 102
    assert w.slippage_ticks == pytest.approx(0.5)
    w = book.walk(ASK, 10.0)  # only 6 available
    assert w.filled == 6.0 and w.worst_tick == 105
    assert w.avg_tick == pytest.approx((101 + 204 + 315) / 6)
    put(book, BID, {100: 2.0, 97: 2.0})
    w = book.walk(BID, 3.0)  # a market sell: 2 @100 + 1 @97
    assert w.filled == 3.0 and w.avg_tick == pytest.approx(99.0) and w.worst_tick == 97
    assert w.slippage_ticks == pytest.approx(1.0)


def test_walk_through_many_levels() -> None:
    book = make(8192)
    ticks = np.arange(2000, 3000, dtype=np.int64)
    book.apply_side(ASK, ticks, np.full(ticks.size, 0.5))
    w = book.walk(ASK, 400.0)  # 800 levels: past the first 256-level chunk
    assert w.filled == 400.0 and w.worst_tick == 2799
    assert w.avg_tick == pytest.approx(2399.5)


@pytest.mark.parametrize("qty", [0.0, -1.0, math.nan, math.inf])
def test_walk_rejects_bad_qty(qty: float) -> None:
    book = make()
    put(book, ASK, {101: 1.0})
    with pytest.raises(ValueError, match="walk: qty"):
        book.walk(ASK, qty)


def test_is_crossed() -> None:
    book = make()
    put(book, BID, {100: 1.0})
    assert not book.is_crossed()
    put(book, ASK, {101: 1.0})
    assert not book.is_crossed()
    put(book, ASK, {100: 1.0})  # locked counts as crossed
    assert book.is_crossed()
    put(book, ASK, {100: 0.0, 99: 1.0})
    assert book.is_crossed()
    put(book, ASK, {99: 0.0})
    assert not book.is_crossed()


def test_clear_one_side_and_both() -> None:
    book = make(32)
    put(book, BID, {100: 1.0, 10: 1.0})  # one far level
    put(book, ASK, {101: 1.0, 900: 1.0})
    book.clear(BID)
    assert as_dict(book, BID) == {} and book.best_bid_tick == NO_PRICE
    assert as_dict(book, ASK) == {101: 1.0, 900: 1.0}
    book.clear()
    assert as_dict(book, ASK) == {} and book.best_ask_tick == NO_PRICE
    put(book, BID, {50_000: 2.0})  # after a full clear the window is placed anew
    assert book._base <= 50_000 < book._base + 32
    with pytest.raises(ValueError, match="side"):
        book.clear(2)


def test_repr() -> None:
    book = make()
    put(book, BID, {100: 1.0})
    assert "bid=100" in repr(book) and "ask=None" in repr(book)


# ---------------------------------------------------------------------- apply(batch)


def test_apply_batch_sides_snapshot_clear_and_ignored_kinds() -> None:
    book = make()
    snap = np.concatenate(
        [
            clear_row(1, 1),
            depth_rows(
                BID, np.array([100, 99]), np.array([1.0, 2.0]), 0.1, 1, 1, 7, kind=DEPTH_SNAPSHOT_EVENT
            ),
            depth_rows(
                ASK, np.array([101, 102]), np.array([3.0, 4.0]), 0.1, 1, 1, 7, kind=DEPTH_SNAPSHOT_EVENT
            ),
        ]
    )
    book.apply(snap)
    assert as_dict(book, BID) == {100: 1.0, 99: 2.0} and as_dict(book, ASK) == {101: 3.0, 102: 4.0}
    assert book.update_id == 7 and book.version == 1
    diff = np.concatenate(
        [
            depth_rows(BID, np.array([100]), np.array([0.0]), 0.1, 2, 2, 8),
            trade_row(BID, 101, 0.5, 0.1, 2, 2, trade_id=99),  # ignored by the book
            depth_rows(ASK, np.array([101]), np.array([2.5]), 0.1, 2, 2, 9),
            marker_row(104, 3, 3),  # a gap marker: ignored
        ]
    )
    book.apply(diff)
    assert book.best_bid() == (99, 2.0) and book.best_ask() == (101, 2.5)
    assert book.update_id == 9 and book.version == 2  # one batch, one version
    book.apply(
        np.concatenate(
            [clear_row(4, 4, side=ASK), depth_rows(ASK, np.array([105]), np.array([1.0]), 0.1, 4, 4, 10)]
        )
    )
    assert as_dict(book, ASK) == {105: 1.0} and as_dict(book, BID) == {99: 2.0}
    book.apply(clear_row(5, 5))
    assert as_dict(book, ASK) == {} and as_dict(book, BID) == {}
    assert book.update_id == 10  # clears carry no update id


def test_apply_batch_keeps_row_order_within_a_side() -> None:
    book = make()
    rows = np.concatenate(
        [
            depth_rows(BID, np.array([100]), np.array([1.0]), 0.1, 1, 1, 1),
            clear_row(1, 1, side=BID),
            depth_rows(BID, np.array([98]), np.array([2.0]), 0.1, 1, 1, 2),
            depth_rows(BID, np.array([98]), np.array([0.0]), 0.1, 1, 1, 3),
            depth_rows(BID, np.array([97]), np.array([5.0]), 0.1, 1, 1, 4),
        ]
    )
    book.apply(rows)
    assert as_dict(book, BID) == {97: 5.0}


def test_apply_empty_and_non_book_batches_change_nothing() -> None:
    book = make()
    put(book, BID, {100: 1.0})
    before = state(book)
    book.apply(np.zeros(0, dtype=depth_rows(BID, np.array([1]), np.array([1.0]), 0.1, 0, 0).dtype))
    book.apply(trade_row(BID, 100, 1.0, 0.1, 1, 1))
    assert state(book) == before


def test_apply_rejects_non_event_arrays() -> None:
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        make().apply(np.zeros(3))


# ---------------------------------------------------------------------- bad input: rejected, book unchanged


def _loaded() -> DepthBook:
    book = make(32)
    put(book, BID, {100: 1.0, 99: 2.0, 5: 1.0})
    put(book, ASK, {101: 1.0, 500: 2.0})
    book.apply(depth_rows(BID, np.array([98]), np.array([1.0]), 0.1, 1, 1, 42))
    return book


@pytest.mark.parametrize(
    ("qty", "message"),
    [(math.nan, "NaN"), (math.inf, "infinite"), (-math.inf, "infinite"), (-1.5, "negative")],
)
@pytest.mark.parametrize("side", [BID, ASK])
@pytest.mark.parametrize("where", ["inside", "far"])
def test_apply_side_rejects_bad_qty(qty: float, message: str, side: int, where: str) -> None:
    book = _loaded()
    before = state(book)
    far = 10_000 if side == ASK else 2
    ticks = np.array(
        [100 if side == BID else 101, far if where == "far" else 97 + (side == ASK) * 6], dtype=np.int64
    )
    with pytest.raises(ValueError, match=f"qty is {message}"):
        book.apply_side(side, ticks, np.array([0.0, qty]))
    assert state(book) == before


@pytest.mark.parametrize("tick", [TICK_LIMIT, -TICK_LIMIT, NO_PRICE, 2**63 - 1, -(2**63)])
@pytest.mark.parametrize("side", [BID, ASK])
def test_apply_side_rejects_ticks_out_of_range(tick: int, side: int) -> None:
    book = _loaded()
    before = state(book)
    with pytest.raises(ValueError, match="out of range"):
        book.apply_side(side, np.array([99, tick], dtype=np.int64), np.array([0.0, 1.0]))
    assert state(book) == before


def test_apply_side_rejects_ticks_out_of_range_on_an_empty_book() -> None:
    book = make()
    with pytest.raises(ValueError, match="out of range"):
        book.apply_side(BID, np.array([100, -(2**63)], dtype=np.int64), np.array([1.0, 1.0]))
    assert book.levels(BID)[0].size == 0 and book._anchored is False


@pytest.mark.parametrize(
    ("ticks", "qty", "message"),
    [
        (np.array([1.5, 2.0]), np.array([1.0, 1.0]), "integer"),
        (np.array([1, 2], dtype=np.int64), np.array([1.0]), "one length"),
        (np.array([[1, 2]], dtype=np.int64), np.array([[1.0, 1.0]]), "1-D"),
        (np.array([1, 2], dtype=np.int64), np.array(["a", "b"]), "numbers"),
        (np.array([2**63], dtype=np.uint64), np.array([1.0]), "out of range"),
    ],
)
def test_apply_side_rejects_malformed_arrays(ticks: np.ndarray, qty: np.ndarray, message: str) -> None:
    book = _loaded()
    before = state(book)
    with pytest.raises(ValueError, match=message):
        book.apply_side(BID, ticks, qty)
    assert state(book) == before


@pytest.mark.parametrize("side", [0, 2, -2, None])
def test_apply_side_rejects_bad_side(side: object) -> None:
    book = _loaded()
    with pytest.raises(ValueError, match="side must be"):
        book.apply_side(side, np.array([1], dtype=np.int64), np.array([1.0]))  # type: ignore[arg-type]


def _batch(*qty: float) -> np.ndarray:
    """Two good ask rows and then bid rows with the given sizes, one message."""
    asks = depth_rows(ASK, np.array([101, 102]), np.array([1.0, 1.0]), 0.1, 5, 5, 50)
    bids = depth_rows(BID, np.arange(90, 90 + len(qty)), np.array(qty), 0.1, 5, 5, 50)
    return np.concatenate([asks, bids])


@pytest.mark.parametrize(("qty", "message"), [(math.nan, "NaN"), (math.inf, "infinite"), (-2.0, "negative")])
def test_apply_rejects_bad_qty_rows(qty: float, message: str) -> None:
    book = _loaded()
    before = state(book)
    with pytest.raises(ValueError, match=f"depth row 3: qty is {message}"):
        book.apply(_batch(1.0, qty))
    assert state(book) == before


def test_apply_rejects_missing_or_double_side_flag() -> None:
    book = _loaded()
    before = state(book)
    batch = _batch(1.0, 2.0)
    batch["ev"][3] = BOTH_CLOCKS | DEPTH_EVENT
    with pytest.raises(ValueError, match="depth row 3 has no side flag"):
        book.apply(batch)
    batch["ev"][3] = BOTH_CLOCKS | BUY_EVENT | SELL_EVENT | DEPTH_EVENT
    with pytest.raises(ValueError, match="depth row 3 has both side flags"):
        book.apply(batch)
    assert state(book) == before


def test_apply_rejects_price_off_grid_or_wrong_tick() -> None:
    book = _loaded()
    before = state(book)
    batch = _batch(1.0, 2.0)
    batch["px"][2] = 9.05  # half a tick off the grid
    with pytest.raises(ValueError, match="depth row 2: px 9.05 is not tick 90"):
        book.apply(batch)
    batch = _batch(1.0, 2.0)
    batch["ival"][3] = 92  # px says 91
    with pytest.raises(ValueError, match="depth row 3: px .* is not tick 92"):
        book.apply(batch)
    batch = _batch(1.0, 2.0)
    batch["px"][1] = math.nan
    with pytest.raises(ValueError, match="depth row 1: px nan"):
        book.apply(batch)
    batch = _batch(1.0, 2.0)
    batch["ival"][0] = -(2**63)
    batch["px"][0] = 0.0
    with pytest.raises(ValueError, match="depth row 0: tick .* out of range"):
        book.apply(batch)
    assert state(book) == before


def test_apply_accepts_px_zero_and_real_float_prices() -> None:
    book = make()
    batch = depth_rows(BID, np.array([618_002, 5_600]), np.array([1.0, 2.0]), 0.1, 1, 1, 3)
    batch["px"] = [61800.2, 560.0]  # venue decimals parsed as floats
    book.apply(batch)
    batch = depth_rows(ASK, np.array([618_003]), np.array([1.0]), 0.1, 1, 1, 4)
    batch["px"] = 0.0  # no float price: ival alone
    book.apply(batch)
    assert book.best_bid_tick == 618_002 and book.best_ask_tick == 618_003


def test_apply_rejects_unsorted_batch() -> None:
    book = _loaded()
    before = state(book)
    batch = _batch(1.0, 2.0)
    batch["exch_ts"] = [5, 6, 4, 7]
    with pytest.raises(ValueError, match="unsorted batch: exch_ts decreases at row 2"):
        book.apply(batch)
    assert state(book) == before


def test_equal_timestamps_are_sorted_enough() -> None:
    book = make()
    book.apply(_batch(1.0, 2.0))
    assert book.best_bid() == (91, 2.0)


def test_trade_rows_are_not_validated_as_depth() -> None:
    """A trade row with no price is not a depth row: the batch still applies."""
    book = make()
    rows = np.concatenate([_batch(1.0), trade_row(ASK, 0, 0.0, 0.1, 5, 5)])
    rows["ev"][-1] = BOTH_CLOCKS | TRADE_EVENT  # not even a side flag
    book.apply(rows)
    assert book.best_bid() == (90, 1.0)


def test_apply_negative_zero_deletes_like_zero() -> None:
    book = make()
    book.apply(_batch(1.0, 2.0))
    book.apply(_batch(-0.0, 2.0))
    assert as_dict(book, BID) == {91: 2.0}
    assert book.qty_at(BID, 90) == 0.0 and math.copysign(1.0, book.qty_at(BID, 90)) == 1.0


def test_apply_batch_with_far_levels_copies_what_it_keeps() -> None:
    """Rows are read through views of the batch: mutating the batch afterwards changes nothing."""
    book = make(32)
    batch = depth_rows(BID, np.array([1000, 999, 5, 3]), np.array([1.0, 2.0, 3.0, 4.0]), 0.1, 1, 1, 1)
    book.apply(batch)
    batch["qty"] = 9.0
    batch["ival"] = 7
    assert as_dict(book, BID) == {1000: 1.0, 999: 2.0, 5: 3.0, 3: 4.0}


@pytest.mark.parametrize("side", [BID, ASK])
def test_stale_deletes_beyond_the_window_with_a_best_change_in_one_message(side: int) -> None:
    """Venues send deletes of levels far on the better side; the same message may move the best."""
    book = make(64)
    sign = 1 if side == BID else -1
    put(book, side, {1000: 1.0, 1000 - sign: 2.0, 1000 - 2 * sign: 3.0})
    stale = 1000 + sign * 5000  # beyond the window, better than any level: a delete of nothing
    book.apply_side(side, np.array([stale, 1000], dtype=np.int64), np.array([0.0, 0.0]))
    assert book.levels(side)[0].tolist() == [1000 - sign, 1000 - 2 * sign]
    assert (book.best_bid() if side == BID else book.best_ask()) == (1000 - sign, 2.0)
    book.apply_side(side, np.array([stale, 1000 + sign], dtype=np.int64), np.array([0.0, 4.0]))
    assert (book.best_bid() if side == BID else book.best_ask()) == (1000 + sign, 4.0)
    book.apply_side(side, np.array([stale + sign], dtype=np.int64), np.array([0.0]))
    assert (book.best_bid() if side == BID else book.best_ask()) == (1000 + sign, 4.0)


def test_apply_rejects_other_structured_arrays() -> None:
    other = np.zeros(2, dtype=[("ev", "<u8"), ("qty", "<f8")])
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        make().apply(other)
