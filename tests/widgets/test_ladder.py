"""The DOM ladder: what it holds for a frame, how it looks where colour carries meaning, how it reacts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pixels import blueish, pixel, reddish
from PySide6.QtCore import QRect, Qt

from app.core.detection import Detection
from widgets.ladder import LadderWidget, group_ladder
from widgets.sample import demo_book, make_frame
from widgets.theme import DARK

BIDS = {1000: 5.0, 999: 7.0, 997: 2.0}
ASKS = {1001: 3.0, 1002: 9.0, 1005: 4.0}


@pytest.fixture
def ladder(qtbot):
    w = LadderWidget()
    qtbot.addWidget(w)
    w.resize(700, 500)
    w.show()
    return w


def test_rows_hold_the_book_sizes_and_cumulative_depth(ladder):
    ladder.set_frame(make_frame(BIDS, ASKS, traded_buy={1001: 4.0}, traded_sell={1000: 6.0},
                                size_change={999: -3.0}))
    view = ladder.view
    assert np.all(np.diff(view.ticks) == -1)
    at = {int(t): i for i, t in enumerate(view.ticks)}
    assert view.bid[at[1000]] == 5.0 and view.bid[at[999]] == 7.0 and view.bid[at[998]] == 0.0
    assert view.ask[at[1001]] == 3.0 and view.ask[at[1002]] == 9.0
    assert view.cum[at[1000]] == 5.0 and view.cum[at[997]] == 14.0
    assert view.cum[at[1001]] == 3.0 and view.cum[at[1005]] == 16.0
    assert view.bought[at[1001]] == 4.0 and view.sold[at[1000]] == 6.0
    assert view.change[at[999]] == -3.0
    # market in the middle of the ladder
    assert abs(at[1000] - ladder.row_count // 2) <= 1


def test_grouping_sums_rows_and_keeps_descending_multiples():
    ticks = np.arange(1005, 995, -1)
    bid = np.arange(10, dtype=float)
    keys, grouped = group_ladder(ticks, 5, bid)
    assert keys.tolist() == [1005, 1000, 995]
    assert grouped.tolist() == [0.0, 1 + 2 + 3 + 4 + 5, 6 + 7 + 8 + 9]
    with pytest.raises(ValueError):
        group_ladder(ticks, 0, bid)


def test_widget_grouping_merges_levels(ladder):
    ladder.set_frame(make_frame(BIDS, ASKS))
    ladder.set_group(2)
    view = ladder.view
    assert all(int(t) % 2 == 0 for t in view.ticks)
    at = {int(t): i for i, t in enumerate(view.ticks)}
    assert view.bid[at[998]] == 7.0  # 998 + 999
    assert view.bid[at[1000]] == 5.0 and view.ask[at[1000]] == 3.0  # 1000 + 1001 share a row
    ladder.group_coarser()
    assert ladder.group == 5
    ladder.group_finer()
    ladder.group_finer()
    assert ladder.group == 1
    with pytest.raises(ValueError):
        ladder.set_group(3)


def test_bid_bars_are_blue_and_ask_bars_red(ladder):
    ladder.set_frame(make_frame(BIDS, ASKS))
    image = ladder.grab().toImage()
    view = ladder.view
    bid_rect = ladder.cell_rect(view.row_of(999), "bid")
    ask_rect = ladder.cell_rect(view.row_of(1002), "ask")
    # bars grow from the price column outwards: sample next to it
    bid_px = pixel(image, bid_rect.right() - 4, bid_rect.center().y())
    ask_px = pixel(image, ask_rect.left() + 4, ask_rect.center().y())
    assert blueish(bid_px), bid_px.name()
    assert reddish(ask_px), ask_px.name()
    empty_rect = ladder.cell_rect(view.row_of(998), "bid")
    assert not blueish(pixel(image, empty_rect.right() - 4, empty_rect.center().y()))


def test_large_order_is_highlighted(ladder):
    ladder.set_frame(make_frame({1000: 5.0, 999: 120.0}, ASKS))
    ladder.set_large_size(100.0)
    view = ladder.view
    row = view.row_of(999)
    assert view.large_bid[row] and not view.large_bid[view.row_of(1000)]
    image = ladder.grab().toImage()
    rect = ladder.cell_rect(row, "bid")
    border = pixel(image, rect.left() + 1, rect.center().y())
    large = DARK.q("large")
    assert abs(border.red() - large.red()) < 40 and abs(border.green() - large.green()) < 40, border.name()
    plain = ladder.cell_rect(view.row_of(1000), "bid")
    assert abs(pixel(image, plain.left() + 1, plain.center().y()).green() - large.green()) > 60


def test_large_order_detection_marks_level_and_iceberg_shows_hidden_size(ladder):
    dets = (
        Detection(1, "large_order", "demo", "ALTUSDT", 1, 997, 0, "open", evidence={"size": 2.0}),
        Detection(2, "iceberg", "demo", "ALTUSDT", -1, 1002, 0, "update", evidence={"hidden": 1250.0}),
        Detection(3, "liquidity_gap", "demo", "ALTUSDT", -1, 1003, 0, "open", price_far_tick=1004),
    )
    ladder.set_frame(make_frame(BIDS, ASKS, detections=dets))
    view = ladder.view
    assert view.large_bid[view.row_of(997)]
    assert view.markers[view.row_of(1002)] == "ICE ~1250"
    assert view.gap[view.row_of(1003)] and view.gap[view.row_of(1004)] and not view.gap[view.row_of(1005)]
    image = ladder.grab().toImage()
    gap_rect = ladder.cell_rect(view.row_of(1003), "sold")
    assert pixel(image, gap_rect.center().x(), gap_rect.center().y()) == DARK.q("gap")


def test_click_emits_price_and_context_menu_offers_size_alert(ladder, qtbot):
    ladder.set_frame(make_frame(BIDS, ASKS))
    row = ladder.view.row_of(1002)
    rect = ladder.cell_rect(row, "price")
    with qtbot.waitSignal(ladder.price_clicked) as blocker:
        qtbot.mouseClick(ladder, Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == [1002]
    menu = ladder.build_context_menu(rect.center())
    texts = [a.text() for a in menu.actions()]
    size_action = next(a for a in menu.actions() if a.text().startswith("Alert on size"))
    assert "ask 9.00" in size_action.text(), texts
    with qtbot.waitSignal(ladder.size_alert_requested) as blocker:
        size_action.trigger()
    assert blocker.args == [1002, -1, 9.0]


def test_same_version_is_not_repainted(ladder, qtbot):
    ladder.set_frame(make_frame(BIDS, ASKS, version=5))
    ladder.grab()
    painted = ladder.paint_count
    ladder.set_frame(make_frame(BIDS, ASKS, version=5))  # a new object, same version
    ladder.grab()
    assert ladder.paint_count == painted
    ladder.set_frame(make_frame({**BIDS, 1000: 6.0}, ASKS, version=6))
    ladder.grab()
    assert ladder.paint_count == painted + 1
    assert ladder.view.bid[ladder.view.row_of(1000)] == 6.0


def test_stale_state_is_obvious(ladder):
    ladder.set_frame(make_frame(BIDS, ASKS, version=1))
    assert not ladder.stale
    live = ladder.grab().toImage()
    ladder.set_frame(make_frame(BIDS, ASKS, version=2, state="resyncing"))
    assert ladder.stale and ladder.stale_reason == "resyncing"
    image = ladder.grab().toImage()
    banner = pixel(image, 10, ladder.cell_rect(0, "cum").bottom() + 2)
    stale = DARK.q("stale")
    assert abs(banner.red() - stale.red()) < 30 and abs(banner.green() - stale.green()) < 30, banner.name()
    assert pixel(live, 10, ladder.cell_rect(0, "cum").bottom() + 2) != banner
    # a status event (disconnect) shows at once, before any new frame
    ladder.set_frame(make_frame(BIDS, ASKS, version=3))
    assert not ladder.stale
    ladder.set_feed_state("disconnected")
    assert ladder.stale and ladder.stale_reason == "disconnected"
    ladder.set_feed_state("live")
    assert not ladder.stale


def test_auto_centre_follows_market_and_scroll_turns_it_off(ladder):
    ladder.set_frame(make_frame(BIDS, ASKS, version=1))
    centre = ladder.centre_tick
    far = {k + 200: v for k, v in BIDS.items()}, {k + 200: v for k, v in ASKS.items()}
    ladder.set_frame(make_frame(*far, version=2))
    assert ladder.centre_tick == centre + 200
    small = {k + 202: v for k, v in BIDS.items()}, {k + 202: v for k, v in ASKS.items()}
    ladder.set_frame(make_frame(*small, version=3))
    assert ladder.centre_tick == centre + 200  # calm: no re-centre for a 2-tick move
    ladder.scroll_rows(5)
    assert not ladder.auto_centre and ladder.centre_tick == centre + 205
    ladder.set_frame(make_frame(*far, version=4))
    assert ladder.centre_tick == centre + 205
    ladder.jump_to(1500)
    assert ladder.centre_tick == 1500
    ladder.set_auto_centre(True)
    assert ladder.centre_tick == centre + 200


def test_alert_flash_paints_the_row(ladder, qtbot):
    ladder.set_frame(make_frame(BIDS, ASKS))
    rect = ladder.cell_rect(ladder.view.row_of(997), "sold")
    before = pixel(ladder.grab().toImage(), rect.center().x(), rect.center().y())
    ladder.flash_price(997, seconds=1.0)
    after = pixel(ladder.grab().toImage(), rect.center().x(), rect.center().y())
    assert after != before and after.red() > before.red() + 40


def test_demo_book_draws_without_error_in_both_themes(ladder):
    from widgets.theme import LIGHT

    ladder.set_frame(demo_book())
    assert ladder.grab().width() == 700
    ladder.set_palette_theme(LIGHT)
    image = ladder.grab().toImage()
    assert pixel(image, 5, ladder.height() - 2).lightness() > 200 or ladder.view is not None


@given(
    top=st.integers(-10_000, 10_000),
    n=st.integers(1, 300),
    group=st.sampled_from([1, 2, 5, 10, 25]),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_grouping_keeps_totals_and_row_keys(top, n, group, seed):
    rng = np.random.default_rng(seed)
    ticks = top - np.arange(n, dtype=np.int64)
    bid = rng.random(n)
    keys, grouped = group_ladder(ticks, group, bid)
    assert grouped.sum() == pytest.approx(bid.sum())
    assert np.all(keys % group == 0) and np.all(np.diff(keys) == -group)
    # every row sums exactly the ticks it covers: t .. t + group - 1
    for k, v in zip(keys.tolist(), grouped.tolist(), strict=True):
        inside = (ticks >= k) & (ticks <= k + group - 1)
        assert v == pytest.approx(bid[inside].sum())


def test_text_cache_stays_bounded_and_drops_its_oldest_texts_one_at_a_time(qapp):
    from PySide6.QtGui import QFont, QPainter, QPixmap

    from widgets.ladder import LEFT, StaticTextCache

    cache = StaticTextCache(QFont(), QFont())
    cache.MAX_ENTRIES = 50
    target = QPixmap(200, 50)
    painter = QPainter(target)
    try:
        for i in range(60):
            cache.draw(painter, QRect(0, 0, 200, 20), LEFT, f"{i:,}")
    finally:
        painter.end()
    assert len(cache._cache) == 50
    assert ("0", False) not in cache._cache and ("9", False) not in cache._cache  # the ten oldest went
    assert ("10", False) in cache._cache and ("59", False) in cache._cache
