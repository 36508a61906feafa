"""One-row depth messages take a scalar path in ``DetectorSet`` (``_depth_one``, scalar pending entries,
``_joined``): the windows and detections must be those of the vector path (``_depth``) on the same rows."""

from __future__ import annotations

import numpy as np
from conftest import T0, quiet_config

from app.analytics.detectors import DetectorSet, _joined
from app.core.book import DepthBook
from app.core.events import ASK, BID, EVENT_DTYPE, clear_row, depth_rows, trade_row

MS = 1_000_000


class VectorOnly(DetectorSet):
    """The same set with one-row depth messages sent through the vector path, as before the scalar one."""

    def _depth_one(self, ev, ts, tick, qty, book):  # type: ignore[no-untyped-def]
        row = np.zeros(1, EVENT_DTYPE)
        row["ev"], row["exch_ts"], row["ival"], row["qty"] = ev, ts, tick, qty
        self._depth(row, ts, book, [])


def stream(seed: int, n: int, tick_size: float) -> list[np.ndarray]:
    """A snapshot, then one-row diffs near and far from mid, a few two-row diffs, trades at the touch."""
    rng = np.random.default_rng(seed)
    mid = 10_000
    snap = [clear_row(T0, T0)]
    for side in (BID, ASK):
        ticks = mid - 1 - np.arange(150) if side == BID else mid + np.arange(150)
        snap.append(depth_rows(side, ticks, rng.integers(1, 30, 150).astype(float), tick_size, T0, T0, 1,
                               kind=4))
    out = [np.concatenate(snap)]
    t = T0
    for k in range(n):
        t += int(rng.integers(0, 30)) * MS
        r = rng.random()
        side = BID if rng.random() < 0.5 else ASK
        away = int(rng.choice([0, 0, 1, 2, 5, 40, 127, 128, 300]))  # 127: at the window_ticks edge
        tick = mid - 1 - away if side == BID else mid + away
        qty = float(rng.choice([0.0, 5.0, 20.0, 80.0]))
        if r < 0.6:
            out.append(depth_rows(side, np.array([tick]), np.array([qty]), tick_size, t, t, 2 + k))
        elif r < 0.7:
            out.append(np.concatenate([depth_rows(BID, np.array([mid - 1, mid - 2]), np.array([qty, 9.0]),
                                                  tick_size, t, t, 2 + k),
                                       depth_rows(ASK, np.array([mid]), np.array([7.0]), tick_size, t, t, 2 + k)]))
        else:
            out.append(trade_row(-side, mid - 1 if side == BID else mid, float(rng.integers(1, 40)), tick_size, t, t))
    return out


def run(cls: type[DetectorSet], batches: list[np.ndarray], inst) -> tuple[list, list]:  # type: ignore[no-untyped-def]
    book = DepthBook(inst)
    ds = cls(inst, quiet_config())
    windows = []
    seen = ds.pulls.on_window  # type: ignore[union-attr]

    def record(w, mid, out):  # type: ignore[no-untyped-def]
        windows.append((w.ts, w.d_side.tolist(), w.d_tick.tolist(), w.d_before.tolist(), w.d_after.tolist(),
                        w.d_side.dtype, w.d_tick.dtype, w.d_before.dtype, w.d_after.dtype, w.t_qty.tolist()))
        seen(w, mid, out)

    ds.pulls.on_window = record  # type: ignore[union-attr,method-assign]
    found = []
    for b in batches:
        book.apply(b)
        found += [repr(d) for d in ds.on_batch(b, book)]
    found += [repr(d) for d in ds.close_all(int(batches[-1]["exch_ts"][-1]))]
    return windows, found


def test_one_row_diffs_give_the_windows_and_detections_of_the_vector_path(inst) -> None:
    batches = stream(7, 3000, inst.tick_size)
    w_fast, d_fast = run(DetectorSet, batches, inst)
    w_vec, d_vec = run(VectorOnly, batches, inst)
    assert len(w_fast) > 50 and any(len(w[1]) > 1 for w in w_fast)  # windows that joined several updates
    assert w_fast == [tuple(x) for x in w_vec]
    assert d_fast == d_vec and d_fast


def test_joined_is_the_concatenation_of_its_parts_in_order() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        parts, arrays = [], []
        for _ in range(int(rng.integers(1, 8))):
            k = int(rng.integers(0, 4))
            side = rng.choice([-1, 1], k).astype(np.int64)
            tick = rng.integers(0, 100, k).astype(np.int64)
            before = np.where(rng.random(k) < 0.3, np.nan, rng.random(k))
            after = rng.random(k)
            arrays.append((side, tick, before, after))
            if k == 1 and rng.random() < 0.7:  # a one-row update kept as scalars
                parts.append((int(side[0]), int(tick[0]), float(before[0]), float(after[0])))
            else:
                parts.append((side, tick, before, after))
        got = _joined(parts)
        want = [np.concatenate(x) for x in zip(*arrays, strict=True)]
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)
