"""The chart views fed with known frames: cells, bars, POC/VAH/VAL, imbalance flags, funding countdown and
cost, correlation figures against numpy brute force, pixels where colour is the point; docks and bridge."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pixels import pixel, reddish
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QMainWindow

from app.core import events as ev
from app.core.chartframe import ChartFrame
from app.core.footprint import FootprintAggregator, diagonal_imbalances, stacked_runs
from app.core.funding import FUNDING_HISTORY_DTYPE, FundingState
from app.core.heatmap import HeatmapHistory, HeatmapSnapshot
from app.core.indicators import aligned_returns, ema, rolling_corr_beta, rsi
from app.core.instrument import Instrument
from app.core.profile import VolumeProfile
from app.market import MarketState
from widgets.charts import (
    CorrelationWidget,
    CvdPriceWidget,
    FootprintWidget,
    FundingWidget,
    HeatmapWidget,
    VolumeProfileWidget,
)
from widgets.charts.common import GAP_COLOUR, compact_number, padded_range, quantise
from widgets.charts.cvd import CvdCarry, bucket_series
from widgets.charts.footprint import regroup
from widgets.charts.funding import countdown_text
from widgets.charts.profile import visible_profile
from widgets.theme import DARK

INST = Instrument("demo", "ALTUSDT", tick_size=0.01, lot_size=0.001)
COL = 100_000_000
T0 = 1_764_072_000_000_000_000  # a whole second, a multiple of the column
S = 1_000_000_000


class Book:
    """A fixed book: 1 size everywhere near mid, a wall of 500 at ``wall``; what sample() reads."""

    def __init__(self, bid: int = 10_000, ask: int = 10_001, wall: int = 10_010) -> None:
        self.best_bid_tick, self.best_ask_tick, self.wall = bid, ask, wall

    def ladder(self, top_tick: int, rows: int, group: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ticks = top_tick - np.arange(rows, dtype=np.int64) * group
        size = np.where(ticks == self.wall, 500.0, 1.0)
        return ticks, np.where(ticks <= self.best_bid_tick, size, 0.0), np.where(ticks >= self.best_ask_tick,
                                                                               size, 0.0)


def heat_history() -> HeatmapHistory:
    """60 s of 100 ms columns: a wall at 10 010, a gap from 20 s to 25 s, one trade per second."""
    h = HeatmapHistory(columns=2_000, rows=64, group=1)
    book = Book()
    c0 = T0 // COL
    for i in range(600):
        h.sample(book, (c0 + i) * COL, live=not 200 < i <= 250)
        if i % 10 == 0:
            side = i % 20 == 0
            h.add_trades(np.array([(c0 + i) * COL + 5]), np.array([10_001 if side else 10_000]),
                         np.array([1.0 + i / 100]), np.array([side]))
    return h


def chart_frame(h: HeatmapHistory, **kw: object) -> ChartFrame:
    snap = HeatmapSnapshot(h, h.last_closed, h.open_col, h.version, INST.tick_size, h.column_ns)
    return ChartFrame(version=h.version, instrument=INST, state="live", exch_ts=h.open_col * COL,
                      best_bid_tick=10_000, best_ask_tick=10_001, heatmap=snap, **kw)


_KEEP: list[QMainWindow] = []  # the Python wrappers must outlive the test (qtbot closes the windows)


def framed(qtbot, widget, w: int = 900, h: int = 500) -> QMainWindow:
    win = QMainWindow()
    _KEEP.append(win)
    win.setStyleSheet(f"QMainWindow {{ background: {DARK.window}; }}")
    win.setCentralWidget(widget)
    qtbot.addWidget(win)
    win.resize(w, h)
    win.show()
    qtbot.waitExposed(win)
    return win


# -- heatmap ------------------------------------------------------------------------------------------


def test_heatmap_cells_wall_gap_lines_and_bubbles(qtbot) -> None:
    h = heat_history()
    w = HeatmapWidget(window_s=60)
    framed(qtbot, w)
    w.set_chart_frame(chart_frame(h))
    w.redraw()
    idx = w.image_indices()
    assert idx is not None
    v = w.blocks
    assert v is not None
    # rows: image row r is price row r0 + r*step; find the wall's and a 1-lot level's rows
    x0, y0, _dx, dy = w._image_geom
    row_of = lambda tick: int((tick * INST.tick_size - y0) // dy)  # noqa: E731
    live_block = int(np.flatnonzero(v.bases > -(2**60))[0])
    assert idx[live_block, row_of(10_010)] > idx[live_block, row_of(10_003)] > 0  # the wall is hotter
    # gap columns (20..25 s) are drawn with the gap colour index 0, whole
    gap_blocks = np.flatnonzero(((v.ids + 1) * v.k * COL > T0 + 21 * S) & (v.ids * v.k * COL < T0 + 25 * S))
    assert gap_blocks.size and (idx[gap_blocks] == 0).all()
    # lines: the bid line is the best bid price wherever the book was live, broken (NaN) in the gap
    ys = w.bid_line.getData()[1]
    assert np.nanmax(ys) == pytest.approx(10_000 * INST.tick_size) and np.isnan(ys).any()
    # bubbles: total bubble volume equals the trades in view
    _c, buy, sell, _bv, _sv = h.trade_columns(v.ids[0] * v.k, h.open_col)
    live = w.bubble_data
    shown = sum(len(d.getData()[0]) for d in (w.buy_dots, w.sell_dots))
    assert shown + live[0].size == int(((buy > 0) | (sell > 0)).sum())  # one bubble per column and side here


def test_heatmap_pixels_gap_colour_and_hot_wall(qtbot) -> None:
    h = heat_history()
    w = HeatmapWidget(window_s=60)
    framed(qtbot, w)
    w.set_chart_frame(chart_frame(h))
    w.redraw()
    img = w.plot.grab().toImage()
    vb = w.vb
    def at(t_s: float, price: float) -> QColor:
        q = w.plot.mapFromScene(vb.mapViewToScene(QPointF(t_s, price)))
        return pixel(img, q.x(), q.y())

    gap = at((T0 + 23 * S) / S, 10_005 * INST.tick_size)
    want = QColor(GAP_COLOUR["dark"])
    assert abs(gap.red() - want.red()) < 12 and abs(gap.blue() - want.blue()) < 12
    wall = at((T0 + 40 * S) / S, 10_010 * INST.tick_size)
    calm = at((T0 + 40 * S) / S, 10_005 * INST.tick_size)
    assert wall.red() + wall.green() > calm.red() + calm.green() + 150  # hot end of the scale vs cool


def test_heatmap_readout_and_cutoffs(qtbot) -> None:
    h = heat_history()
    w = HeatmapWidget(window_s=60)
    framed(qtbot, w)
    w.set_chart_frame(chart_frame(h))
    t = (T0 + 40 * S) / S
    assert w.size_at(t, 10_010 * INST.tick_size) == 500.0
    assert math.isnan(w.size_at((T0 + 23 * S) / S, 10_010 * INST.tick_size))
    text = w.readout_text(t, 10_010 * INST.tick_size)
    assert "100.10" in text and "500" in text and "UTC" in text
    w.set_cutoffs("absolute", 1.0, 100.0)
    assert w._levels == (1.0, 100.0)
    with pytest.raises(ValueError):
        w.set_cutoffs("percentile", 50, 10)
    with pytest.raises(ValueError):
        w.set_window(0)
    q = quantise(np.array([[np.nan, 0.5, 1.0, 10.0, 100.0, 1e6]], np.float32), 1.0, 100.0)
    assert q.tolist() == [[0, 1, 1, 128, 255, 255]]


def test_heatmap_follow_stops_on_user_pan(qtbot) -> None:
    h = heat_history()
    w = HeatmapWidget(window_s=30)
    framed(qtbot, w)
    w.set_chart_frame(chart_frame(h))
    (x0, x1), _ = w.vb.viewRange()
    assert x1 >= h.last_closed * COL / S and x1 - x0 == pytest.approx(30)
    w.vb.translateBy(x=-10)
    w.vb.sigRangeChangedManually.emit([True, True])
    assert not w.follow and not w.follow_button.isChecked()
    w.set_follow(True)
    assert w.follow


# -- footprint ----------------------------------------------------------------------------------------


def random_bars(seed: int = 1, n: int = 600) -> list:
    rng = np.random.default_rng(seed)
    rows = np.zeros(n, dtype=ev.EVENT_DTYPE)
    buy = rng.random(n) < 0.5
    rows["ev"] = ev.BOTH_CLOCKS | ev.TRADE_EVENT | np.where(buy, ev.BUY_EVENT, ev.SELL_EVENT).astype(np.uint64)
    rows["exch_ts"] = T0 + np.sort(rng.integers(0, 60 * S, n))
    rows["ival"] = 10_000 + np.cumsum(rng.integers(-2, 3, n))
    rows["qty"] = rng.gamma(1.3, 2.0, n).round(3) + 0.001
    agg = FootprintAggregator(bar_ns=15 * S)
    agg.add(rows)
    return agg.bars()


def test_footprint_regroup_matches_brute_force() -> None:
    for bar in random_bars():
        for g in (1, 2, 5):
            r = regroup(bar, g, ratio=2.5, min_volume=1.0)
            ref: dict[int, list[float]] = {}
            for t, b, s in zip(bar.ticks.tolist(), bar.buy.tolist(), bar.sell.tolist(), strict=True):
                cell = ref.setdefault(t // g * g, [0.0, 0.0])
                cell[0] += b
                cell[1] += s
            for t, b, s in zip(r.ticks.tolist(), r.buy.tolist(), r.sell.tolist(), strict=True):
                assert [b, s] == pytest.approx(ref.get(t, [0.0, 0.0]))
            bi, si = diagonal_imbalances(r.buy, r.sell, 2.5, 1.0)
            assert (r.buy_imbalance == bi).all() and (r.sell_imbalance == si).all()
            # brute force diagonal rule: buy at row i vs sell at row i-1
            for i in range(1, r.ticks.size):
                exp = r.buy[i] >= 2.5 * r.sell[i - 1] * (1 - 1e-9) and r.buy[i] >= 1.0 and r.buy[i] > 0
                assert bool(r.buy_imbalance[i]) == bool(exp)
            assert r.stacked_buy == tuple((int(r.ticks[a]), int(r.ticks[b])) for a, b in stacked_runs(bi, 3))
            vol = r.buy + r.sell
            assert vol[r.ticks == r.poc_tick][0] == vol.max()
            assert r.delta == pytest.approx(bar.delta) and r.volume == pytest.approx(bar.volume)
    with pytest.raises(ValueError):
        regroup(random_bars()[0], 0)


def test_footprint_widget_draws_bars_with_delta_colours(qtbot) -> None:
    bars = random_bars()
    w = FootprintWidget()
    framed(qtbot, w, 1000, 600)
    w.set_chart_frame(ChartFrame(version=1, instrument=INST, state="live", exch_ts=T0, footprint=tuple(bars),
                                 footprint_version=3))
    w.set_group(1)
    w.set_imbalance(3.0, 0.0)
    qtbot.wait(20)
    img = w.canvas.grab().toImage()
    assert w.paints >= 1
    assert "POC" in w.info.text()
    rows = w.rows()
    last = rows[-1]
    # the footer says the bar's delta; the strongest buy-delta cell is tinted green, a sell one red
    x_right = w.canvas.width() - 74
    n = min(len(rows), w.visible_bars(w.canvas.width()))
    x = x_right - 116 + 20  # inside the newest bar's cells
    top = (w.centre_tick if w.centre_tick is not None else w._auto_centre()) + ((w.canvas.height() - 52) // 15 // 2)
    checked = 0
    for j in range(last.ticks.size):
        y = 18 + (top - int(last.ticks[j])) * 15 + 3
        if not 18 < y < w.canvas.height() - 40:
            continue
        c = pixel(img, x, y)
        d = last.buy[j] - last.sell[j]
        if abs(d) > 0.5 * np.abs(last.buy - last.sell).max():
            assert (c.green() > c.red()) if d > 0 else (c.red() > c.green()), (j, d, c.getRgb())
            checked += 1
    assert n >= 1 and checked >= 1
    with pytest.raises(ValueError):
        w.set_imbalance(0.5)


# -- volume profile -----------------------------------------------------------------------------------


def profile_data() -> VolumeProfile:
    p = VolumeProfile()
    rng = np.random.default_rng(4)
    n = 3000
    rows = np.zeros(n, dtype=ev.EVENT_DTYPE)
    rows["ev"] = ev.BOTH_CLOCKS | ev.TRADE_EVENT | np.where(rng.random(n) < 0.5, ev.BUY_EVENT,
                                                             ev.SELL_EVENT).astype(np.uint64)
    rows["ival"] = np.r_[rng.normal(10_050, 8, n // 2), rng.normal(10_100, 5, n - n // 2)].round().astype(np.int64)
    rows["qty"] = rng.gamma(1.5, 1.0, n) + 0.01
    rows["exch_ts"] = T0 + np.arange(n)
    p.add(rows)
    return p


def test_profile_widget_poc_value_area_nodes_session_and_visible(qtbot) -> None:
    p = profile_data()
    session = p.session()
    w = VolumeProfileWidget()
    framed(qtbot, w, 360, 600)
    w.set_chart_frame(ChartFrame(version=1, instrument=INST, state="live", exch_ts=T0, profile=session,
                                 profile_version=1))
    w.redraw()
    assert w.poc == p.poc() and w.value_area == p.value_area()
    hvn, lvn = p.nodes()
    assert w.hvn.tolist() == hvn.tolist() and w.lvn.tolist() == lvn.tolist()
    assert len(hvn) == 2 and len(lvn) == 1  # the two humps and the valley between them
    assert w.poc_line.value() == pytest.approx(p.poc() * INST.tick_size)
    assert w.vah_line.value() == pytest.approx(p.value_area()[1] * INST.tick_size)
    assert w.val_line.value() == pytest.approx(p.value_area()[0] * INST.tick_size)
    assert f"POC {INST.format_price(p.poc())}" in w.info.text()
    # visible range: the profile of the ticks in view only
    w.set_mode("visible")
    w.vb.setYRange(10_030 * INST.tick_size, 10_070 * INST.tick_size, padding=0)
    w.redraw()
    part = visible_profile(session, 10_030, 10_070)
    assert part is not None and w.poc == part.poc() and w.value_area == part.value_area()
    assert 10_030 <= w.poc <= 10_070
    with pytest.raises(ValueError):
        w.set_mode("week")


# -- CVD / price --------------------------------------------------------------------------------------


def test_cvd_series_match_brute_force_and_indicators(qtbot) -> None:
    h = heat_history()
    snap = chart_frame(h).heatmap
    t, price, cvd = bucket_series(snap, 10, 100)  # 1-second buckets
    c0 = T0 // COL
    for i, end in enumerate(t.tolist()):
        b = int(round(end * S / COL)) // 10 - 1
        cols = [c for c in range(b * 10, b * 10 + 10) if c <= h.last_closed and h.col[c % h.columns] == c
                and h.live[c % h.columns]]
        if not cols:
            assert math.isnan(price[i]) and math.isnan(cvd[i])
            continue
        assert price[i] == pytest.approx(10_000.5 * INST.tick_size)
        ts_all = np.arange(0, 600, 10)
        upto = ts_all[c0 + ts_all <= cols[-1]]
        ref = sum((1.0 + j / 100) * (1 if j % 20 == 0 else -1) for j in upto.tolist())
        assert cvd[i] == pytest.approx(ref)
    w = CvdPriceWidget()
    framed(qtbot, w)
    w.set_chart_frame(chart_frame(h))
    s = w.series
    np.testing.assert_allclose(s["ema"], ema(s["price"], 20), equal_nan=True)
    np.testing.assert_allclose(s["rsi"], rsi(s["price"], 14), equal_nan=True)
    assert np.isnan(s["price"]).any()  # the gap stays a gap


def test_cvd_carry_matches_the_whole_ring_sum_while_reading_only_the_view() -> None:
    # a short ring (evictions), 20 s sessions (resets inside the view), a gap, trades every column
    h = HeatmapHistory(columns=400, rows=16, group=1, session_ns=20 * S)
    book = Book()
    rng = np.random.default_rng(4)
    carry = CvdCarry()
    c0 = T0 // COL
    checked = 0
    for i in range(1_500):
        c = c0 + i
        h.sample(book, c * COL, live=not 700 < i <= 740)
        n = int(rng.integers(0, 3))
        if n:
            h.add_trades(c * COL + rng.integers(0, COL, n), np.full(n, 10_001), rng.gamma(1.0, 5.0, n),
                         rng.random(n) < 0.5)
        if i % 37 == 0 and i > 60:  # a late trade into a closed column still in view
            h.add_trades(np.array([(c - 40) * COL]), np.array([10_000]), np.array([3.0]), np.array([False]))
        if i % 10 == 9 and h.last_closed is not None:
            snap = chart_frame(h).heatmap
            for bucket_cols, n_buckets in ((10, 25), (50, 6)):
                t, _p, cvd = bucket_series(snap, bucket_cols, n_buckets, carry if bucket_cols == 10 else None)
                if bucket_cols == 10:
                    ref_t, _rp, ref = bucket_series(snap, 10, 25)  # the whole-ring sum
                    np.testing.assert_array_equal(t, ref_t)
                    np.testing.assert_allclose(cvd, ref, rtol=1e-12, atol=1e-9)
                    checked += 1
    assert checked > 100
    assert carry.full == 1  # the whole ring was summed once; every later redraw read only its view
    carry.series(chart_frame(h).heatmap, h.last_closed - 100, 20)  # another bucket size: from the whole ring
    assert carry.full == 2


def test_cvd_draws_a_changed_series_once_and_an_unchanged_frame_not_at_all(qtbot) -> None:
    h = heat_history()
    w = CvdPriceWidget()
    framed(qtbot, w, 600, 400)
    paints = _count_paints(w.view)
    frame = chart_frame(h)
    assert w.prepare_chart_frame(frame)  # new series: computed, not drawn yet
    assert w.series and w.price_line.getData()[0] is None
    w.draw_prepared()
    qtbot.wait(50)
    np.testing.assert_array_equal(w.price_line.getData()[1], w.series["price"])
    assert paints[0] == 1  # ranges and transform settled before the paint: one paint, not two
    drawn = w.series
    assert not w.prepare_chart_frame(chart_frame(h))  # nothing closed since: nothing to do
    w.draw_prepared()
    qtbot.wait(50)
    assert w.series is drawn and paints[0] == 1
    h.sample(Book(), (h.open_col + 1) * COL)  # one more column closes
    w.set_chart_frame(chart_frame(h))
    qtbot.wait(50)
    assert w.series is not drawn and paints[0] == 2


def test_heatmap_redraws_at_the_pace_of_its_pixel_columns(qtbot) -> None:
    h = heat_history()
    w = HeatmapWidget(window_s=60.0)
    framed(qtbot, w, 700, 400)
    w.set_chart_frame(chart_frame(h))
    k = math.ceil(600 / w.vb.width())  # 600 columns of 100 ms in view
    assert w.pixel_s == pytest.approx(k * 0.1) and w.redraw_interval_s() == pytest.approx(max(0.1, k * 0.05))
    w.set_window(1800.0)  # 30 min in ~600 px: 3 s a pixel column, redrawn every 0.5 s at most
    assert w.pixel_s >= 2.0 and w.redraw_interval_s() == 0.5


def _count_paints(view) -> list[int]:
    """A counter of the paint events a pyqtgraph view's viewport gets."""
    from PySide6.QtCore import QEvent, QObject

    count = [0]

    class Counter(QObject):
        def eventFilter(self, _obj, event):  # noqa: N802 - Qt override
            if event.type() == QEvent.Type.Paint:
                count[0] += 1
            return False

    counter = Counter(view)
    view.viewport().installEventFilter(counter)
    return count


def test_heatmap_paints_once_per_new_column_and_not_for_an_unchanged_frame(qtbot) -> None:
    h = heat_history()
    w = HeatmapWidget(window_s=60.0)
    framed(qtbot, w)
    for _ in range(2):  # the first draw lays the axes out, which resizes the plot once
        w.set_chart_frame(chart_frame(h))
        qtbot.wait(50)
    paints = _count_paints(w.plot)
    redraws = w.redraws
    w.set_chart_frame(chart_frame(h))  # the same history: nothing to redraw or paint
    qtbot.wait(50)
    assert w.redraws == redraws and paints[0] == 0
    for k in range(3):
        h.sample(Book(), (h.open_col + 1) * COL)
        w.set_chart_frame(chart_frame(h))
        qtbot.wait(50)
        assert w.redraws == redraws + k + 1 and paints[0] == k + 1  # one paint per change (not two)


# -- funding ------------------------------------------------------------------------------------------


def test_funding_countdown_cost_oi_and_liquidations(qtbot) -> None:
    nft = T0 + 3 * 3600 * S + 25 * 60 * S + 7 * S
    state = FundingState(rate=0.0004, next_funding_ts=nft, mark_px=100.0, index_px=99.9, open_interest=5000.0,
                         interval_hours=8.0, exch_ts=T0, multiplier=1.0)
    hist = np.zeros(3, FUNDING_HISTORY_DTYPE)
    hist["exch_ts"] = [T0 - 7200 * S, T0 - 1800 * S, T0]
    hist["rate"] = 0.0004
    hist["next_funding_ts"] = nft
    hist["mark_px"] = 100.0
    hist["index_px"] = 99.9
    hist["open_interest"] = [4000.0, 4600.0, 5000.0]
    liq = np.concatenate([ev.marker_row(ev.LIQUIDATION_EVENT, T0 - 60 * S, 0, px=100, qty=2.0, side=ev.ASK),
                          ev.marker_row(ev.LIQUIDATION_EVENT, T0 - 30 * S, 0, px=100, qty=3.0, side=ev.BID),
                          ev.marker_row(ev.LIQUIDATION_EVENT, T0 - 900 * S, 0, px=100, qty=9.0, side=ev.ASK)])
    w = FundingWidget()
    framed(qtbot, w, 520, 560)
    w.set_chart_frame(ChartFrame(version=1, instrument=INST, state="live", exch_ts=T0, funding=state,
                                 funding_history=hist, funding_version=2, liquidations=liq))
    w.set_position(10.0, ev.BID)
    w.tick(T0)
    assert w.labels["countdown"].text() == "03:25:07"
    assert countdown_text(0) == "due" and countdown_text(5, known=False) == "—"
    assert w.holding_cost() == pytest.approx(10 * 100.0 * 0.0004)  # a long pays 0.40
    assert "pay $0.40" in w.labels["cost"].text()
    w.set_position(10.0, ev.ASK)
    assert w.holding_cost() == pytest.approx(-0.4) and "receive $0.40" in w.labels["cost"].text()
    assert w.oi_change(3600 * S) == pytest.approx(5000 - 4000)  # the last reading at or before 1 h ago
    assert w.oi_change(1000 * S) == pytest.approx(5000 - 4600)
    assert w.liquidations(300 * S) == (2, 2.0, 3.0)  # a SELL liquidation closes a long
    assert "+0.0400 %" in w.labels["rate"].text() and "+43.80 %" in w.labels["annual"].text()
    assert "+0.1001 %" in w.labels["premium"].text()
    w.tick(T0 + 7 * S)
    assert w.labels["countdown"].text() == "03:25:00"
    with pytest.raises(ValueError):
        w.set_position(1.0, 0)


def test_flat_open_interest_axis_keeps_a_readable_range_and_distinct_labels(qtbot) -> None:
    hist = np.zeros(4, FUNDING_HISTORY_DTYPE)
    hist["exch_ts"] = T0 + np.arange(4) * 60 * S
    hist["next_funding_ts"] = T0 + 3600 * S
    hist["open_interest"] = 48_000_000.0  # flat: auto-range would shrink to a sliver labelled 4.8e+07
    state = FundingState(rate=0.0001, next_funding_ts=T0 + 3600 * S, mark_px=1.0, index_px=1.0,
                         open_interest=48_000_000.0, interval_hours=8.0, exch_ts=T0, multiplier=1.0)
    w = FundingWidget()
    framed(qtbot, w, 520, 560)
    w.set_chart_frame(ChartFrame(version=1, instrument=INST, state="live", exch_ts=T0, funding=state,
                                 funding_history=hist, funding_version=1))
    lo, hi = w.oi_plot.vb.viewRange()[1]
    assert lo < 48_000_000.0 < hi and hi - lo >= 0.003 * 48_000_000.0
    axis = w.oi_plot.getAxis("left")
    values = [lo + (hi - lo) * k / 4 for k in range(5)]
    labels = axis.tickStrings(values, 1.0, (hi - lo) / 4)
    assert len(set(labels)) == 5 and all(lab.endswith("M") for lab in labels)
    assert compact_number(48_050_000.0, 10_000.0) == "48.05M"
    assert compact_number(1500.0, 500.0) == "1.5K" and compact_number(12.0, 1.0) == "12"
    assert padded_range(np.array([np.nan])) is None


# -- correlation --------------------------------------------------------------------------------------


def series_pair(drop: float) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(9)
    n = 3600
    ts = T0 + np.arange(n) * S
    lr = rng.normal(0, 4e-4, n)
    lr[-300:] += drop / 300  # the leader's last 5 minutes
    sr = 1.7 * lr + rng.normal(0, 3e-4, n)
    lead = 60_000 * np.exp(np.cumsum(lr))
    sym = 0.5 * np.exp(np.cumsum(sr))
    sym[1000:1010] = np.nan  # a gap
    return (ts, sym), (ts, lead)


def test_correlation_values_match_numpy_and_the_warning_fires(qtbot) -> None:
    own, lead = series_pair(drop=-0.02)
    w = CorrelationWidget()
    win = framed(qtbot, w, 520, 520)
    w.set_chart_frame(ChartFrame(version=1, instrument=INST, state="live", exch_ts=T0))
    w.set_series(own, {"BTCUSDT": lead, "ETHUSDT": None})
    bucket, window = w.bucket_s, w.window_s // w.bucket_s
    _b, rs, rl = aligned_returns(own[0], own[1], lead[0], lead[1], bucket * S)
    ok = np.isfinite(rs[-window:]) & np.isfinite(rl[-window:])
    x, y = rl[-window:][ok], rs[-window:][ok]
    assert w.result["corr"] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-9)
    assert w.result["beta"] == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)
    ref_move = lead[1][-1] / lead[1][-301] - 1
    assert w.result["move"] == pytest.approx(ref_move)
    assert w.warning is not None and w.warning.active and "BTCUSDT" in w.banner.text()
    assert 1.4 < w.result["beta"] < 2.0
    qtbot.wait(10)
    c = pixel(win.grab().toImage(), w.banner.geometry().center().x() - 150 + w.geometry().x(),
              w.banner.geometry().center().y() + w.geometry().y())
    assert reddish(c)  # the warning is loud
    w.long_box.setChecked(False)  # short: no exposure to a drop
    assert not w.warning.active
    corr, beta, _n = rolling_corr_beta(rs, rl, window)
    assert w.corr_line.getData()[1][-1] == pytest.approx(corr[-1])


def test_correlation_calm_leader_and_missing_leader(qtbot) -> None:
    own, lead = series_pair(drop=0.0)
    w = CorrelationWidget()
    framed(qtbot, w, 520, 520)
    w.set_series(own, {"BTCUSDT": lead})
    assert w.warning is not None and not w.warning.active
    w.set_series(own, {})
    assert "no BTCUSDT data" in w.banner.text() and w.labels["corr"].text() == "—"


# -- wiring ---------------------------------------------------------------------------------------------


def test_main_window_has_chart_docks_with_view_toggles(qtbot, config_dir) -> None:
    from app.settings import Settings
    from widgets.main_window import MainWindow

    w = MainWindow(Settings())
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    qtbot.waitExposed(w)
    names = ["heatmap", "profile", "footprint", "cvd", "funding", "correlation"]
    assert all(w.docks[f"chart_{n}"].isVisible() for n in names)
    view_menu = next(a.menu() for a in w.menuBar().actions() if a.text() == "&View")
    toggles = {a.text(): a for a in view_menu.actions()}
    assert "Liquidity heatmap" in toggles and "Correlation" in toggles and "Footprint" in toggles
    toggles["Footprint"].trigger()
    assert not w.docks["chart_footprint"].isVisible() and w.charts.visible()
    w.apply_theme("light")
    assert w.charts.heatmap._palette.name == "light"


def test_open_all_shows_every_chart_at_once_beside_the_desk_panels(qtbot, config_dir) -> None:
    from app.settings import Settings
    from widgets.main_window import MainWindow

    w = MainWindow(Settings())
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    assert len(w.tabifiedDockWidgets(w.docks["chart_footprint"])) == 3  # the default: four charts, one tab shown
    w.charts.open_all()
    w.show()
    qtbot.waitExposed(w)
    qtbot.wait(50)
    assert (w.width(), w.height()) == (1600, 1000)  # nothing's minimum size widened the window
    for name, dock in w.docks.items():
        assert not w.tabifiedDockWidgets(dock), name
        assert not dock.visibleRegion().isEmpty() and dock.width() >= 100 and dock.height() >= 150, name
    assert w.ladder.width() >= 400 and w.ladder.height() >= 500  # the ladder stays the centre of the desk
    rects = {n: d.geometry() for n, d in w.docks.items()}
    assert not any(a.intersects(b) for i, a in enumerate(rects.values()) for b in list(rects.values())[i + 1:])


def test_bridge_hands_chart_frames_to_the_docks(qtbot, config_dir) -> None:
    from app.bridge import Bridge
    from app.settings import Settings
    from widgets.main_window import MainWindow
    from widgets.sample import make_frame

    market = MarketState(INST, {"engine": {"heatmap_minutes": 1.0, "heatmap_rows": 32}})
    key = INST.key

    class Engine:
        def listen(self, kind, cb): pass
        def add_source(self, s): pass
        def keys(self): return [key]
        def statuses(self): return {}
        def frame(self, symbol, ladder_rows=40, group=1, centre_tick=None, trades=200):
            return make_frame({10_000: 2.0}, {10_001: 3.0}, version=market.version)
        def version(self, symbol): return market.version
        def status(self, symbol): return ("live", "")
        def stats(self, now_ns=None): return []
        def chart_frame(self, symbol, bars=200): return market.chart_frame(bars)
        def mid_series(self, symbol, seconds=3600.0): return market.mid_series(seconds) if symbol == key else None

    book = np.concatenate([ev.clear_row(T0, T0),
                           ev.depth_rows(ev.BID, [10_000], [2.0], INST.tick_size, T0, T0, 1, ev.DEPTH_SNAPSHOT_EVENT),
                           ev.depth_rows(ev.ASK, [10_001], [3.0], INST.tick_size, T0, T0, 1, ev.DEPTH_SNAPSHOT_EVENT)])
    market.apply(book, 1)
    for i in range(1, 30):
        market.apply(ev.trade_row(ev.BID, 10_001, 1.0, INST.tick_size, T0 + i * COL, T0 + i * COL, i), None)
    window = MainWindow(Settings())
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    window.show()
    bridge = Bridge(Engine(), window)
    bridge.open_symbol(key)
    bridge._on_frame_clock()
    assert window.charts.heatmap.frame is not None and window.charts.heatmap.frame.instrument == INST
    # the slower charts take the frame on the next slices (one per frame), not all at once
    qtbot.waitUntil(lambda: bool(window.charts.footprint.bars) and window.charts.profile.profile is not None
                    and window.charts.cvd.snapshot is not None, timeout=5000)
    bridge.chart_puller.series_every_s = 0.0
    bridge.chart_puller.pull_once()
    bridge._on_slow_clock()
    assert window.charts.correlation.own is not None


def test_chart_puller_pulls_on_new_versions_and_series_per_interval() -> None:
    from app.chart_puller import ChartPuller

    calls = {"frame": 0, "series": []}

    class Engine:
        v = 1

        def version(self, symbol):
            return self.v

        def chart_frame(self, symbol, bars=200):
            calls["frame"] += 1
            return ChartFrame(version=self.v, instrument=INST, state="live", exch_ts=T0)

        def mid_series(self, symbol, seconds=3600.0):
            calls["series"].append(symbol)
            return (np.array([T0]), np.array([1.0])) if symbol != "demo:ETHUSDT" else None

    eng = Engine()
    p = ChartPuller(eng, series_every_s=3600.0, min_interval_s=0.0)
    p.pull_once()  # nothing wanted yet
    assert calls["frame"] == 0
    p.request(INST.key, ("BTCUSDT", "ETHUSDT"))
    p.pull_once()
    p.pull_once()  # same version: no second pull
    assert calls["frame"] == 1 and p.latest(INST.key).version == 1 and p.latest("demo:OTHER") is None
    assert calls["series"] == [INST.key, "demo:BTCUSDT", "demo:ETHUSDT"]  # once per interval
    assert set(p.series()) == {INST.key, "demo:BTCUSDT"}
    eng.v = 2
    p.pull_once()
    assert calls["frame"] == 2 and p.latest(INST.key).version == 2
    p.start()
    assert p.running
    p.stop()
    assert not p.running


def test_docks_redraw_rates_one_chart_per_frame(qtbot, config_dir, monkeypatch) -> None:
    from app.settings import Settings
    from widgets.charts import docks as docks_mod
    from widgets.main_window import MainWindow

    w = MainWindow(Settings())
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    qtbot.waitExposed(w)
    got: list[str] = []
    for name, widget in w.charts.widgets.items():
        monkeypatch.setattr(widget, "set_chart_frame", lambda f, n=name: got.append(n))
    # the CVD computes its series in one frame and draws them in another
    monkeypatch.setattr(w.charts.cvd, "prepare_chart_frame", lambda f: got.append("cvd") or True)
    monkeypatch.setattr(w.charts.cvd, "draw_prepared", lambda: got.append("cvd:draw"))
    clock = [1000.0]
    monkeypatch.setattr(docks_mod.time, "monotonic", lambda: clock[0])
    frame = ChartFrame(version=1, instrument=INST, state="live", exch_ts=T0)
    w.charts.show_chart_frame(frame)
    assert got == ["heatmap"]  # the heatmap first, alone in its frame
    for _ in range(8):  # more frames within the same instant: each does one chart's work, then nothing is left
        before = len(got)
        w.charts.show_chart_frame(frame)
        assert len(got) - before <= 1
    assert got == ["heatmap", "profile", "footprint", "cvd", "funding", "correlation", "cvd:draw"]
    clock[0] += 0.11  # a column later: the heatmap again, the slow ones wait for their own interval
    w.charts.show_chart_frame(frame)
    w.charts.show_chart_frame(frame)
    assert got[7:] == ["heatmap"]
    w.docks["chart_heatmap"].hide()
    clock[0] += 0.2
    w.charts.show_chart_frame(frame)
    assert got.count("heatmap") == 2  # a closed dock is not fed
