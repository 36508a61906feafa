"""EventRing against a plain Python list reference: wrap-around, views, sequences, fixed memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.events import EVENT_DTYPE
from app.core.ring import EventRing, RingOverrun


def rows(start: int, n: int) -> np.ndarray:
    """n event rows whose order_id/exch_ts are the sequence numbers start..start+n-1."""
    out = np.zeros(n, dtype=EVENT_DTYPE)
    out["order_id"] = np.arange(start, start + n)
    out["exch_ts"] = np.arange(start, start + n)
    out["qty"] = np.arange(start, start + n) * 0.5
    return out


def ids(view: np.ndarray) -> list[int]:
    return view["order_id"].tolist()


def test_empty_ring() -> None:
    ring = EventRing(8)
    assert len(ring) == 0
    assert ring.capacity == 8
    assert ring.total_written == 0
    assert ring.latest(5).shape == (0,)
    assert ring.latest().dtype == EVENT_DTYPE
    assert ring.since(0).shape == (0,)
    assert ring.fill == 0.0


def test_extend_within_capacity_then_wrap() -> None:
    ring = EventRing(5)
    ring.extend(rows(0, 3))
    assert ids(ring.latest()) == [0, 1, 2]
    ring.extend(rows(3, 4))  # wraps: 7 written, 5 kept
    assert len(ring) == 5
    assert ring.total_written == 7
    assert ids(ring.latest()) == [2, 3, 4, 5, 6]
    assert ids(ring.latest(2)) == [5, 6]
    assert ring.fill == 1.0


def test_latest_is_always_a_view_even_across_the_wrap() -> None:
    ring = EventRing(4)
    ring.extend(rows(0, 3))
    ring.extend(rows(3, 3))  # now the newest 4 rows straddle the physical end of the first half
    view = ring.latest(4)
    assert ids(view) == [2, 3, 4, 5]
    assert view.base is not None and np.shares_memory(view, ring._buf)
    assert view.flags.c_contiguous


def test_batch_larger_than_capacity_keeps_its_tail() -> None:
    ring = EventRing(4)
    ring.extend(rows(0, 2))
    ring.extend(rows(2, 10))
    assert ids(ring.latest()) == [8, 9, 10, 11]
    assert ring.total_written == 12
    ring.extend(rows(12, 1))
    assert ids(ring.latest()) == [9, 10, 11, 12]


def test_single_row_and_zero_d_row() -> None:
    ring = EventRing(3)
    ring.append(rows(0, 1))
    ring.append(rows(1, 1)[0:1].reshape(()))  # a 0-d structured array
    assert ids(ring.latest()) == [0, 1]


def test_since_sequence_numbers() -> None:
    ring = EventRing(4)
    ring.extend(rows(0, 3))
    seq = ring.total_written
    ring.extend(rows(3, 2))
    assert ids(ring.since(seq)) == [3, 4]
    assert ids(ring.since(ring.total_written)) == []
    assert ring.oldest_seq == 1
    with pytest.raises(RingOverrun, match="gone"):
        ring.since(0)
    with pytest.raises(ValueError, match="only 5 rows"):
        ring.since(6)


def test_clear_keeps_sequence_monotonic() -> None:
    ring = EventRing(4)
    ring.extend(rows(0, 3))
    ring.clear()
    assert len(ring) == 0
    assert ring.total_written == 3
    assert ring.latest(10).shape == (0,)
    with pytest.raises(RingOverrun):
        ring.since(2)
    ring.extend(rows(3, 2))
    assert ids(ring.since(3)) == [3, 4]


def test_memory_fixed_by_capacity() -> None:
    ring = EventRing(1000)
    before = ring.nbytes
    assert before == 2 * 1000 * EVENT_DTYPE.itemsize
    buf_id = id(ring._buf)
    for i in range(300):
        ring.extend(rows(i * 37, 37))
    ring.extend(rows(0, 5000))
    assert ring.nbytes == before
    assert id(ring._buf) == buf_id  # never reallocated


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="positive int"):
        EventRing(0)
    with pytest.raises(ValueError, match="positive int"):
        EventRing(2.5)  # type: ignore[arg-type]
    ring = EventRing(4)
    with pytest.raises(TypeError, match="ring holds"):
        ring.extend(np.zeros(3, dtype=np.float64))
    with pytest.raises(ValueError, match="1-D"):
        ring.extend(rows(0, 4).reshape(2, 2))
    with pytest.raises(ValueError, match="n >= 0"):
        ring.latest(-1)
    assert len(ring) == 0  # rejected batches left nothing behind


def test_custom_dtype() -> None:
    dt = np.dtype([("ts", "<i8"), ("v", "<f8")])
    ring = EventRing(3, dtype=dt)
    batch = np.zeros(5, dtype=dt)
    batch["ts"] = np.arange(5)
    ring.extend(batch)
    assert ring.latest()["ts"].tolist() == [2, 3, 4]
    assert ring.nbytes == 2 * 3 * dt.itemsize


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 12),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("extend"), st.integers(0, 30)),
            st.tuples(st.just("latest"), st.integers(0, 15)),
            st.tuples(st.just("since"), st.integers(0, 40)),
            st.tuples(st.just("clear"), st.just(0)),
        ),
        max_size=40,
    ),
)
def test_matches_list_reference(capacity: int, ops: list[tuple[str, int]]) -> None:
    ring = EventRing(capacity)
    kept: list[int] = []  # reference: the retained sequence numbers
    total = 0
    for op, arg in ops:
        if op == "extend":
            ring.extend(rows(total, arg))
            kept.extend(range(total, total + arg))
            total += arg
            kept = kept[-capacity:]
        elif op == "latest":
            assert ids(ring.latest(arg)) == (kept[-arg:] if arg else [])
        elif op == "since":
            seq = total - arg
            if seq < 0:
                continue
            oldest = kept[0] if kept else total
            if seq < oldest:
                with pytest.raises(RingOverrun):
                    ring.since(seq)
            else:
                assert ids(ring.since(seq)) == list(range(seq, total))
        else:
            ring.clear()
            kept = []
        assert len(ring) == len(kept)
        assert ring.total_written == total
        assert ids(ring.latest()) == kept
        # the mirror invariant: both halves agree on every retained row
        assert np.array_equal(ring._buf[:capacity], ring._buf[capacity:])


def test_strided_and_equal_dtype_batches() -> None:
    ring = EventRing(6)
    src = rows(0, 10)
    ring.extend(src[::3])  # non-contiguous view: copied once, then written as bytes
    assert ids(ring.latest()) == [0, 3, 6, 9]
    same = np.dtype({"names": EVENT_DTYPE.names, "formats": [EVENT_DTYPE[n] for n in EVENT_DTYPE.names],
                     "offsets": [EVENT_DTYPE.fields[n][1] for n in EVENT_DTYPE.names], "itemsize": 64})
    assert same is not EVENT_DTYPE and same == EVENT_DTYPE  # an equal dtype object is accepted
    ring.extend(rows(10, 3).astype(same))
    assert ids(ring.latest()) == [3, 6, 9, 10, 11, 12]
    assert ring.latest()["qty"].tolist() == [1.5, 3.0, 4.5, 5.0, 5.5, 6.0]  # every field survived the byte copy


@pytest.mark.parametrize(("pre", "n"), [(2, 3), (3, 4), (5, 2), (7, 4), (6, 3)])
def test_re_appending_own_view_is_safe(pre: int, n: int) -> None:
    ring = EventRing(4)
    ring.extend(rows(0, pre))
    kept = list(range(pre))[-4:]
    ring.extend(ring.latest(n))  # the source is a view into the buffer being written
    assert ids(ring.latest()) == (kept + kept[-n:])[-4:]
    assert np.array_equal(ring._buf[:4], ring._buf[4:])
