"""HeatmapHistory and its renderer against brute-force references on a real DepthBook."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.book import DepthBook
from app.core.events import ASK, BID
from app.core.heatmap import (
    DEFAULT_COLUMNS,
    EMPTY_BASE,
    GAP_BASE,
    HeatmapHistory,
    HeatmapRenderer,
    auto_group,
    bubbles,
    compose,
)
from app.core.instrument import Instrument

INST = Instrument("test", "TESTUSDT", 0.1, 0.001)
MS = 1_000_000


def book_around(mid: int, rng: np.random.Generator, depth: int = 40) -> DepthBook:
    """A book with random sizes on ``depth`` ticks each side of ``mid``."""
    book = DepthBook(INST)
    set_book(book, mid, rng, depth)
    return book


def set_book(book: DepthBook, mid: int, rng: np.random.Generator, depth: int = 40) -> None:
    """Replace the book's content with random sizes around ``mid`` (spread 1 tick)."""
    book.clear()
    bids = np.arange(mid - depth, mid, dtype=np.int64)
    asks = np.arange(mid + 1, mid + 1 + depth, dtype=np.int64)
    book.apply_side(BID, bids, rng.uniform(0.5, 20, depth).round(3))
    book.apply_side(ASK, asks, rng.uniform(0.5, 20, depth).round(3))


def expected_column(book: DepthBook, base: int, rows: int, group: int = 1) -> np.ndarray:
    """Brute force: size per row from qty_at, row r covering ticks (base+r)*group .. +group-1."""
    out = np.zeros(rows)
    for r in range(rows):
        for t in range((base + r) * group, (base + r + 1) * group):
            out[r] += book.qty_at(BID, t) + book.qty_at(ASK, t)
    return out


def test_default_size_is_two_hours_in_bounded_memory() -> None:
    h = HeatmapHistory()
    assert h.columns == DEFAULT_COLUMNS and h.columns * h.column_ns == 7_200 * 10**9
    assert h.tex.dtype == np.float32
    assert 70e6 < h.nbytes < 80e6  # 72,000 x 256 x 4 B = 73.7 MB, plus per-column arrays


@pytest.mark.parametrize("bad", [dict(columns=0), dict(rows=4), dict(column_ns=-1), dict(recentre=0.5),
                                 dict(group=-1)])
def test_bad_configuration_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        HeatmapHistory(**bad)


def test_automatic_grouping_spans_about_one_percent_on_nice_steps() -> None:
    assert auto_group(616_000, 256) == 10  # BTCUSDT $61,600 at 0.1: $1 rows
    assert auto_group(5_000, 256) == 1  # a small cap with a coarse tick
    assert auto_group(260_000, 256) == 10
    rng = np.random.default_rng(11)
    book = book_around(616_000, rng)
    h = HeatmapHistory(columns=10, rows=256, group=0)
    h.sample(book, 0, live=False)
    h.sample(book, 100 * MS, live=False)
    assert h.group == 0  # not chosen on a gap
    h.sample(book, 200 * MS)
    assert h.group == 10 and h.base[1] == 61_600 - 128


def test_column_holds_the_book_as_it_stood_at_its_end() -> None:
    rng = np.random.default_rng(1)
    book = book_around(10_000, rng)
    h = HeatmapHistory(columns=100, rows=64)
    assert not h.sample(book, 5 * 100 * MS + 1)  # opens column 5
    set_book(book, 10_000, rng)  # the book changes within column 5
    snap = expected_column(book, 10_000 - 32, 64)
    assert h.sample(book, 6 * 100 * MS)  # enters column 6: column 5 closes with the book now
    s = 5 % 100
    assert h.base[s] == 10_000 - 32
    np.testing.assert_allclose(h.tex[s], snap, rtol=1e-6)
    assert h.bid[s] == book.best_bid_tick and h.ask[s] == book.best_ask_tick
    assert h.value_at(5, 10_000 - 3) == pytest.approx(book.qty_at(BID, 10_000 - 3), rel=1e-6)
    assert np.isnan(h.value_at(6, 10_000))  # the open column is not drawn yet
    assert h.last_closed == 5


def test_quiet_columns_repeat_the_book_and_gaps_are_nan() -> None:
    rng = np.random.default_rng(2)
    book = book_around(500, rng)
    h = HeatmapHistory(columns=50, rows=32)
    h.sample(book, 0)
    h.sample(book, 4 * 100 * MS)  # columns 0..3 closed with the same (unchanged) book
    for c in range(4):
        np.testing.assert_allclose(h.tex[c], h.tex[0])
        assert h.live[c]
    h.sample(book, 7 * 100 * MS, live=False)  # 4..6 were not live: gaps
    assert np.isnan(h.tex[4:7]).all() and not h.live[4:7].any()
    cols, bid, ask = h.best_prices(0, 6)
    assert np.isfinite(bid[:4]).all() and np.isnan(bid[4:]).all() and np.isnan(ask[4:]).all()
    _, mid = h.mid_series(0, 6)
    assert mid[0] == pytest.approx((book.best_bid_tick + book.best_ask_tick) / 2)


def test_recentres_only_when_mid_leaves_the_central_band() -> None:
    rng = np.random.default_rng(3)
    book = book_around(1_000, rng)
    h = HeatmapHistory(columns=100, rows=40, recentre=0.25)
    h.sample(book, 0)
    h.sample(book, 100 * MS)
    base0 = int(h.base[0])
    assert base0 == 1_000 - 20
    set_book(book, 1_000 + 9, rng)  # mid row 1009 < base + 30: stays
    h.sample(book, 200 * MS)
    assert h.base[1] == base0
    set_book(book, 1_000 + 11, rng)  # mid 1011 >= base + 30: recentre on it
    h.sample(book, 300 * MS)
    assert h.base[2] == 1_011 - 20
    np.testing.assert_allclose(h.tex[2], expected_column(book, 1_011 - 20, 40), rtol=1e-6)


def test_grouped_rows_sum_their_ticks() -> None:
    rng = np.random.default_rng(4)
    book = book_around(2_000, rng)
    h = HeatmapHistory(columns=10, rows=16, group=5)
    h.sample(book, 0)
    h.sample(book, 100 * MS)
    base = int(h.base[0])
    np.testing.assert_allclose(h.tex[0], expected_column(book, base, 16, group=5), rtol=1e-5)


def test_ring_keeps_the_newest_columns_only() -> None:
    rng = np.random.default_rng(5)
    book = book_around(300, rng)
    h = HeatmapHistory(columns=20, rows=16)
    for c in range(1, 60):
        set_book(book, 300 + (c % 3), rng)
        h.sample(book, c * 100 * MS)
    assert h.last_closed == 58
    cols, slots = h.span(0, 58)
    assert cols[0] == 59 - 20 + 1 and cols[-1] == 58
    assert (h.col[slots] == cols).all()
    assert np.isnan(h.value_at(30, 300))  # overwritten long ago
    # a jump longer than the ring: only the newest columns exist, all a repeat of the book then
    h.sample(book, 1_000 * 100 * MS)
    assert h.last_closed == 999 and (h.col[h.span(980, 999)[1]] == np.arange(981, 1000)).all()


def test_trades_per_column_vwap_and_bubbles_match_brute_force() -> None:
    rng = np.random.default_rng(6)
    book = book_around(100, rng)
    h = HeatmapHistory(columns=64, rows=16)
    h.sample(book, 0)
    n = 400
    ts = np.sort(rng.integers(0, 40 * 100 * MS, n))
    ticks = rng.integers(90, 110, n)
    qty = rng.uniform(0.1, 3, n)
    buy = rng.random(n) < 0.5
    for c in range(1, 41):
        h.sample(book, c * 100 * MS)
        sel = (ts >= (c - 1) * 100 * MS) & (ts < c * 100 * MS)
        h.add_trades(ts[sel], ticks[sel], qty[sel], buy[sel])
    cols, bv, sv, bvw, svw = h.trade_columns(0, 39)
    for c in range(40):
        sel = (ts // (100 * MS)) == c
        assert bv[c] == pytest.approx(qty[sel & buy].sum())
        assert sv[c] == pytest.approx(qty[sel & ~buy].sum())
        if (sel & buy).any():
            assert bvw[c] == pytest.approx((qty * ticks)[sel & buy].sum() / qty[sel & buy].sum())
    k = 7
    bc, bt, bq, bs = bubbles(cols, bv, sv, bvw, svw, k)
    for first, tick, q, side in zip(bc, bt, bq, bs, strict=True):
        sel = (ts // (100 * MS) // k == first // k) & (buy if side > 0 else ~buy)
        assert q == pytest.approx(qty[sel].sum())
        assert tick == pytest.approx((qty * ticks)[sel].sum() / qty[sel].sum())
    assert bq.sum() == pytest.approx(qty.sum())


def test_cvd_resets_each_session_and_survives_eviction() -> None:
    rng = np.random.default_rng(7)
    book = book_around(100, rng)
    session = 30 * 100 * MS  # 3-second sessions
    h = HeatmapHistory(columns=25, rows=16, session_ns=session)
    all_ts, all_d = [], []
    h.sample(book, 0)
    for c in range(1, 100):
        t = (c - 1) * 100 * MS + 5
        q = float(rng.uniform(0.1, 2))
        b = bool(rng.random() < 0.6)
        h.add_trades(np.array([t]), np.array([100]), np.array([q]), np.array([b]))
        all_ts.append(t)
        all_d.append(q if b else -q)
        h.sample(book, c * 100 * MS)
    cols, cvd = h.cvd(0, 98)
    ts = np.array(all_ts)
    d = np.array(all_d)
    for c, v in zip(cols.tolist(), cvd.tolist(), strict=True):
        end = (c + 1) * 100 * MS
        ses_start = end - 1 - ((end - 1) % session)
        ref = d[(ts >= ses_start) & (ts < end)].sum()
        assert v == pytest.approx(ref), c


def brute_render(h: HeatmapHistory, first_col: int, k: int, width: int, row_lo: int, n_rows: int,
                 step: int) -> np.ndarray:
    """Per display pixel: max over the block's valid closed columns of the size in its absolute rows,
    kept to the rows of the block's newest valid column (the documented rule for a block that recentred)."""
    img = np.full((width, n_rows // step), -np.inf, np.float32)
    for x in range(width):
        valid = []
        for c in range(first_col + x * k, first_col + (x + 1) * k):
            if c > h.last_closed or c < h.open_col - h.columns + 1:
                continue
            s = c % h.columns
            if h.col[s] == c and h.live[s]:
                valid.append(s)
        if not valid:
            written = any(h.col[c % h.columns] == c for c in range(first_col + x * k, first_col + (x + 1) * k)
                          if h.open_col - h.columns < c <= h.last_closed)
            if written:
                img[x] = np.nan  # a gap, drawn as such; never written stays -inf (empty)
            continue
        target = h.base[valid[-1]]
        for s in valid:
            for r in range(h.rows):
                if not target <= h.base[s] + r < target + h.rows:
                    continue
                y = h.base[s] + r - row_lo
                if 0 <= y < (n_rows // step) * step:
                    v = h.tex[s, r]
                    img[x, y // step] = max(img[x, y // step], v)
    return img


@pytest.mark.parametrize("k,step", [(1, 1), (4, 1), (5, 3)])
def test_renderer_matches_brute_force_across_recentres_and_gaps(k: int, step: int) -> None:
    rng = np.random.default_rng(8 + k)
    book = book_around(1_000, rng, depth=30)
    h = HeatmapHistory(columns=120, rows=24, recentre=0.25)
    mid = 1_000
    for c in range(1, 160):
        mid += int(rng.integers(-2, 3))
        set_book(book, mid, rng, depth=30)
        h.sample(book, c * 100 * MS, live=not 70 <= c < 76)
    assert len(np.unique(h.base[h.live])) > 2  # the walk made it recentre
    r = HeatmapRenderer()
    first_block = (h.last_closed - 110) // k
    width = 110 // k
    row_lo = mid - 40
    ids, vals, bases = r.blocks(h, first_block, width, k, h.last_closed)
    img = compose(vals, bases, row_lo, 84, step)
    ref = brute_render(h, first_block * k, k, width, row_lo, 84, step)
    np.testing.assert_array_equal(np.isnan(img), np.isnan(ref))
    np.testing.assert_allclose(img[~np.isnan(img)], ref[~np.isnan(ref)], rtol=1e-6)


def test_renderer_reduces_only_new_blocks_as_the_view_follows() -> None:
    rng = np.random.default_rng(9)
    book = book_around(500, rng)
    h = HeatmapHistory(columns=400, rows=32)
    for c in range(1, 300):
        h.sample(book, c * 100 * MS)
    r = HeatmapRenderer(slack=0)
    k, width = 4, 60
    r.blocks(h, h.last_closed // k - width + 1, width, k, h.last_closed)
    before = r.blocks_reduced
    for c in range(300, 304):  # one more block of columns
        set_book(book, 500, rng)
        h.sample(book, c * 100 * MS)
    ids, vals, _b = r.blocks(h, h.last_closed // k - width + 1, width, k, h.last_closed)
    assert r.blocks_reduced - before <= 2  # the block that was partial, and the new partial one
    assert ids[-1] == 302 // k  # columns 300..303, 303 still open
    np.testing.assert_allclose(vals[-1], np.fmax.reduce(h.tex[np.arange(300, 303) % 400]))


def test_block_view_lines_extent_and_trades_match_brute_force() -> None:
    rng = np.random.default_rng(12)
    book = book_around(700, rng)
    h = HeatmapHistory(columns=200, rows=32)
    mid = 700
    for c in range(1, 150):
        mid += int(rng.integers(-1, 2))
        set_book(book, mid, rng)
        h.sample(book, c * 100 * MS, live=not 40 <= c < 44)
        h.add_trades(np.array([c * 100 * MS + 7]), np.array([mid]), np.array([float(c)]), np.array([c % 2 == 0]))
    k = 6
    v = HeatmapRenderer(slack=0).view(h, 0, 150 // k + 1, k, h.last_closed)
    for i, j in enumerate(v.ids.tolist()):
        cols = [c for c in range(j * k, (j + 1) * k) if c <= h.last_closed and h.col[c % 200] == c
                and h.live[c % 200]]
        if cols:
            assert v.bid[i] == h.bid[cols[-1] % 200] and v.ask[i] == h.ask[cols[-1] % 200]
            assert v.lo[i] == min(h.bid[c % 200] for c in cols) and v.hi[i] == max(h.ask[c % 200] for c in cols)
        else:
            assert np.isnan(v.bid[i]) and np.isnan(v.lo[i]) and v.bases[i] in (GAP_BASE, EMPTY_BASE)
        tcols = [c for c in range(j * k, (j + 1) * k) if c <= h.open_col and h.col[c % 200] == c]
        assert v.buy[i] == pytest.approx(sum(h.buy[c % 200] for c in tcols))
        assert v.sell_tq[i] == pytest.approx(sum(h.sell_tq[c % 200] for c in tcols))
