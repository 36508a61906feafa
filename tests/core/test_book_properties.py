"""Property tests: random set/delete/clear sequences over a wide price range, DepthBook == dict book.

The window is small (16..128 ticks) and prices range over thousands of ticks, so far levels,
the far-level log, best prices outside the window and recentring are exercised at every step.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.book import DepthBook
from app.core.events import ASK, BID, DEPTH_SNAPSHOT_EVENT, clear_row, depth_rows, trade_row
from app.core.instrument import Instrument
from tests.core.reference_book import ReferenceBook
from tests.core.test_book import assert_same

INST = Instrument("test", "PROP", 0.5)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sizes = st.one_of(st.just(0.0), st.integers(1, 40).map(lambda k: k * 0.25))


@st.composite
def updates(draw: st.DrawFn) -> tuple:
    """One step: ('set', side, ticks, qty) around a drifting centre, or ('clear', side)."""
    if draw(st.integers(0, 19)) == 0:
        return ("clear", draw(st.sampled_from([0, BID, ASK])))
    side = draw(st.sampled_from([BID, ASK]))
    centre = draw(st.integers(0, 6000))
    spread = draw(st.sampled_from([3, 30, 300, 3000]))
    n = draw(st.integers(0, 12))
    ticks = draw(st.lists(st.integers(centre - spread, centre + spread), min_size=n, max_size=n))
    qty = draw(st.lists(sizes, min_size=n, max_size=n))
    return ("set", side, ticks, qty)


@st.composite
def drifting(draw: st.DrawFn) -> list[tuple]:
    """A market that moves: bids below a wandering mid, asks above, with stray far levels."""
    mid = draw(st.integers(1000, 5000))
    steps = []
    for _ in range(draw(st.integers(1, 30))):
        mid += draw(st.integers(-40, 40))
        side = draw(st.sampled_from([BID, ASK]))
        n = draw(st.integers(1, 8))
        offs = draw(st.lists(st.integers(0, 25), min_size=n, max_size=n))
        ticks = [mid - o if side == BID else mid + 1 + o for o in offs]
        if draw(st.booleans()):
            ticks.append(draw(st.integers(0, 20_000)))  # a far level, on any side of the window
        qty = draw(st.lists(sizes, min_size=len(ticks), max_size=len(ticks)))
        steps.append(("set", side, ticks, qty))
    return steps


def run_steps(roi: int, steps: list[tuple], top: int, rows: int, group: int) -> None:
    book = DepthBook(INST, roi_ticks=roi)
    ref = ReferenceBook()
    for step in steps:
        if step[0] == "clear":
            book.clear(step[1])
            ref.clear(step[1])
        else:
            _, side, ticks, qty = step
            book.apply_side(side, np.array(ticks, dtype=np.int64), np.array(qty, dtype=np.float64))
            ref.apply_side(side, ticks, qty)
        assert_same(book, ref)
        for t in ref.bids.keys() | ref.asks.keys() | {top}:
            assert book.qty_at(BID, t) == ref.qty_at(BID, t)
            assert book.qty_at(ASK, t) == ref.qty_at(ASK, t)
        ticks_l, b, a = book.ladder(top, rows, group)
        exp = ref.ladder(top, rows, group)
        assert ticks_l.tolist() == [e[0] for e in exp]
        assert b.tolist() == pytest.approx([e[1] for e in exp])
        assert a.tolist() == pytest.approx([e[2] for e in exp])


@SETTINGS
@given(
    roi=st.sampled_from([16, 32, 128]),
    steps=st.lists(updates(), min_size=1, max_size=25),
    top=st.integers(-100, 7000),
    rows=st.integers(0, 40),
    group=st.integers(1, 50),
)
def test_random_updates_match_reference(
    roi: int, steps: list[tuple], top: int, rows: int, group: int
) -> None:
    run_steps(roi, steps, top, rows, group)


@SETTINGS
@given(
    roi=st.sampled_from([16, 64]),
    steps=drifting(),
    top=st.integers(0, 6000),
    rows=st.integers(1, 30),
    group=st.integers(1, 10),
)
def test_drifting_market_matches_reference(
    roi: int, steps: list[tuple], top: int, rows: int, group: int
) -> None:
    run_steps(roi, steps, top, rows, group)


@st.composite
def batches(draw: st.DrawFn) -> list[np.ndarray]:
    """Batches of mixed rows (both sides, snapshots, clears, trades) in one message each."""
    out = []
    ts = 0
    for _ in range(draw(st.integers(1, 12))):
        parts = []
        for _ in range(draw(st.integers(1, 4))):
            ts += draw(st.integers(0, 3))
            kind = draw(st.integers(0, 9))
            if kind == 0:
                parts.append(clear_row(ts, ts, side=draw(st.sampled_from([0, BID, ASK]))))
            elif kind == 1:
                parts.append(trade_row(BID, draw(st.integers(0, 3000)), 1.0, 0.5, ts, ts))
            else:
                side = draw(st.sampled_from([BID, ASK]))
                n = draw(st.integers(1, 6))
                ticks = draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n))
                qty = draw(st.lists(sizes, min_size=n, max_size=n))
                snap = DEPTH_SNAPSHOT_EVENT if kind == 2 else 1
                parts.append(depth_rows(side, np.array(ticks), np.array(qty), 0.5, ts, ts, ts, kind=snap))
        out.append(np.concatenate(parts))
    return out


@SETTINGS
@given(roi=st.sampled_from([16, 256]), msgs=batches())
def test_apply_batches_match_row_by_row_reference(roi: int, msgs: list[np.ndarray]) -> None:
    book = DepthBook(INST, roi_ticks=roi)
    ref = ReferenceBook()
    version = 0
    for batch in msgs:
        book.apply(batch)
        ev = batch["ev"]
        ref.apply_rows(
            [
                (int(e & 0xFF), int(e & (3 << 28)), int(t), float(q))
                for e, t, q in zip(ev, batch["ival"], batch["qty"], strict=True)
            ]
        )
        if any((e & 0xFF) in (1, 3, 4) for e in ev.tolist()):  # one version per batch touching the book
            version += 1
        assert book.version == version
        assert_same(book, ref)


BAD_ROWS = [
    "nan qty",
    "inf qty",
    "negative qty",
    "no side",
    "both sides",
    "off grid",
    "wrong tick",
    "unsorted",
]


@SETTINGS
@given(roi=st.sampled_from([16, 256]), msgs=batches(), bad=st.sampled_from(BAD_ROWS), data=st.data())
def test_a_batch_with_one_bad_row_changes_nothing(
    roi: int, msgs: list[np.ndarray], bad: str, data: st.DataObject
) -> None:
    """Whatever the book holds, a batch with one bad row anywhere raises and leaves it untouched."""
    book = DepthBook(INST, roi_ticks=roi)
    for batch in msgs[:-1]:
        book.apply(batch)
    before = (
        [book.levels(s) for s in (BID, ASK)],
        book.best_bid_tick,
        book.best_ask_tick,
        book.version,
        book.update_id,
    )
    n = data.draw(st.integers(2, 12))
    side = data.draw(st.sampled_from([BID, ASK]))
    ticks = np.array(data.draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n)))
    batch = depth_rows(side, ticks, np.ones(n), 0.5, 100, 100, 999)
    i = data.draw(st.integers(1, n - 1))
    if bad.endswith("qty"):
        batch["qty"][i] = {"nan qty": np.nan, "inf qty": np.inf, "negative qty": -1.0}[bad]
    elif bad == "no side":
        batch["ev"][i] &= ~np.uint64((1 << 29) | (1 << 28))
    elif bad == "both sides":
        batch["ev"][i] |= np.uint64((1 << 29) | (1 << 28))
    elif bad == "off grid":
        batch["px"][i] += 0.25  # half a tick
    elif bad == "wrong tick":
        batch["ival"][i] += 1
    else:
        batch["exch_ts"][i] = 99
    with pytest.raises(ValueError):
        book.apply(batch)
    after = (
        [book.levels(s) for s in (BID, ASK)],
        book.best_bid_tick,
        book.best_ask_tick,
        book.version,
        book.update_id,
    )
    for (t0, q0), (t1, q1) in zip(before[0], after[0], strict=True):
        assert t0.tolist() == t1.tolist() and q0.tolist() == q1.tolist()
    assert before[1:] == after[1:]
