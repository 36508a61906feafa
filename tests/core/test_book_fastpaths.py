"""``DepthBook.apply``'s fast entries: a one-row depth batch (scalar work) and a venue diff batch (depth
rows, bids then asks: one ``apply_diff``) give what the general path and the dict reference give, and
reject exactly what the general path rejects, with its message, leaving the book unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.book import DepthBook
from app.core.events import ASK, BID, DEPTH_SNAPSHOT_EVENT, clear_row, depth_rows
from app.core.instrument import Instrument
from tests.core.reference_book import ReferenceBook
from tests.core.test_book import assert_same

INST = Instrument("test", "FAST", 0.5)
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
sizes = st.one_of(st.just(0.0), st.just(-0.0), st.integers(1, 40).map(lambda k: k * 0.25))


@st.composite
def messages(draw: st.DrawFn) -> list[np.ndarray]:
    """Messages of a drifting market: one-row diffs, two-sided diffs, one-sided ones, now and then a
    snapshot (clear + rows); stray far levels on both sides of the window."""
    mid = draw(st.integers(1000, 5000))
    out = []
    for k in range(draw(st.integers(1, 30))):
        mid += draw(st.integers(-40, 40))
        shape = draw(st.sampled_from(["one", "one", "both", "bids", "asks", "snapshot"]))
        parts = []
        for side in (BID, ASK):
            if (shape == "bids" and side == ASK) or (shape == "asks" and side == BID):
                continue
            n = 1 if shape == "one" else draw(st.integers(1, 6))
            offs = draw(st.lists(st.integers(0, 25), min_size=n, max_size=n))
            ticks = [mid - o if side == BID else mid + 1 + o for o in offs]
            if shape != "one" and draw(st.booleans()):
                ticks[-1] = draw(st.integers(1, 20_000))  # a far level, maybe on the wrong side of mid
            qty = draw(st.lists(sizes, min_size=n, max_size=n))
            kind = DEPTH_SNAPSHOT_EVENT if shape == "snapshot" else 1
            parts.append(depth_rows(side, np.array(ticks), np.array(qty), 0.5, k, k, 100 + k, kind=kind))
            if shape == "one":
                break
        if shape == "one" and draw(st.booleans()):
            parts = [depth_rows(ASK, parts[0]["ival"] + 1, parts[0]["qty"], 0.5, k, k, 100 + k)]
        if shape == "snapshot":
            parts.insert(0, clear_row(k, k))
        batch = np.concatenate(parts)
        batch["order_id"] = 100 * k + np.arange(len(batch))  # the last row's id is the book's
        out.append(batch)
    return out


def general(book: DepthBook) -> DepthBook:
    """The same book with both fast entries turned off: the general path judges every batch."""
    book.apply_row = lambda *a: False  # type: ignore[method-assign]
    book._apply_diff_rows = lambda *a: False  # type: ignore[method-assign]
    return book


def snapshot(book: DepthBook) -> tuple:
    return ([(t.tolist(), q.tolist()) for t, q in (book.levels(BID), book.levels(ASK))], book.best_bid_tick,
            book.best_ask_tick, book.version, book.update_id)


@SETTINGS
@given(roi=st.sampled_from([16, 64, 8192]), msgs=messages())
def test_fast_entries_match_the_general_path_and_the_reference(roi: int, msgs: list[np.ndarray]) -> None:
    fast = DepthBook(INST, roi_ticks=roi)
    slow = general(DepthBook(INST, roi_ticks=roi))
    ref = ReferenceBook()
    for batch in msgs:
        fast.apply(batch)
        slow.apply(batch)
        ref.apply_rows([(int(e & 0xFF), int(e & (3 << 28)), int(t), float(q))
                        for e, t, q in zip(batch["ev"], batch["ival"], batch["qty"], strict=True)])
        assert_same(fast, ref)
        assert snapshot(fast) == snapshot(slow)
        assert fast.update_id == int(batch["order_id"][-1])
        bid, ask = fast.best_bid(), fast.best_ask()
        assert fast.best_sizes() == (bid[1] if bid else 0.0, ask[1] if ask else 0.0)
        assert all(np.signbit(q).sum() == 0 for _, q in (fast.levels(BID), fast.levels(ASK)))


BAD = ["nan qty", "inf qty", "negative qty", "no side", "both sides", "off grid", "wrong tick", "huge tick",
       "nan px"]


def spoil(batch: np.ndarray, i: int, bad: str) -> None:
    if bad.endswith("qty"):
        batch["qty"][i] = {"nan qty": np.nan, "inf qty": np.inf, "negative qty": -1.0}[bad]
    elif bad == "no side":
        batch["ev"][i] &= ~np.uint64((1 << 29) | (1 << 28))
    elif bad == "both sides":
        batch["ev"][i] |= np.uint64((1 << 29) | (1 << 28))
    elif bad == "off grid":
        batch["px"][i] += 0.25
    elif bad == "wrong tick":
        batch["ival"][i] += 1
    elif bad == "huge tick":
        batch["ival"][i] = 2**62
        batch["px"][i] = 0.0
    else:
        batch["px"][i] = np.nan


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("shape", ["one bid", "one ask", "diff", "bids only"])
def test_a_bad_row_on_a_fast_entry_raises_as_the_general_path_and_changes_nothing(shape: str, bad: str) -> None:
    books = [DepthBook(INST, roi_ticks=64), general(DepthBook(INST, roi_ticks=64))]
    setup = np.concatenate([depth_rows(BID, np.arange(990, 1000), np.ones(10), 0.5, 1, 1, 7),
                            depth_rows(ASK, np.arange(1001, 1011), np.ones(10), 0.5, 1, 1, 7)])
    if shape == "one bid":
        batch = depth_rows(BID, np.array([995]), np.array([2.0]), 0.5, 2, 2, 8)
    elif shape == "one ask":
        batch = depth_rows(ASK, np.array([1003]), np.array([2.0]), 0.5, 2, 2, 8)
    elif shape == "diff":
        batch = np.concatenate([depth_rows(BID, np.array([999, 5]), np.array([3.0, 1.0]), 0.5, 2, 2, 8),
                                depth_rows(ASK, np.array([1001, 1002, 9000]), np.array([0.0, 2.0, 1.0]), 0.5, 2, 2, 8)])
    else:
        batch = depth_rows(BID, np.array([999, 998, 20]), np.array([3.0, 0.0, 1.0]), 0.5, 2, 2, 8)
    spoil(batch, len(batch) - 1, bad)
    errors = []
    for book in books:
        book.apply(setup)
        before = snapshot(book)
        with pytest.raises(ValueError) as err:
            book.apply(batch)
        errors.append(str(err.value))
        assert snapshot(book) == before
    assert errors[0] == errors[1] and errors[0].startswith("DepthBook.apply")


def test_a_diff_batch_without_prices_is_applied_like_the_general_path() -> None:
    """px 0 means "price not given": the fast entries leave such rows to the general path's exact check."""
    books = [DepthBook(INST, roi_ticks=64), general(DepthBook(INST, roi_ticks=64))]
    for book in books:
        for batch in (depth_rows(BID, np.array([10, 9]), np.array([1.0, 2.0]), 0.5, 1, 1, 3),
                      depth_rows(ASK, np.array([12]), np.array([1.0]), 0.5, 2, 2, 4)):
            batch["px"] = 0.0
            book.apply(batch)
    assert snapshot(books[0]) == snapshot(books[1])
    assert books[0].best_bid() == (10, 1.0) and books[0].best_ask() == (12, 1.0)
