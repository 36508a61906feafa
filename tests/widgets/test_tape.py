"""Time & sales: aggressor reconstruction, de-duplication across frames, filter, colours."""

from __future__ import annotations

import numpy as np
from pixels import pixel

from app.core.events import BOTH_CLOCKS, LIQUIDATION_EVENT, SELL_EVENT
from widgets.sample import make_frame, make_trades
from widgets.tape import TimeAndSalesWidget, merge_prints
from widgets.theme import DARK

BIDS, ASKS = {1000: 5.0}, {1001: 5.0}
T0 = 1_764_072_000_000_000_000


def test_fills_with_same_time_and_side_merge_into_one_print():
    rows = make_trades([
        (T0, 1, 2.0, 1001), (T0, 1, 3.0, 1002), (T0, 1, 1.0, 1002),  # one sweep over two levels
        (T0, -1, 4.0, 1000),  # same time, other side: another aggressor
        (T0 + 5, -1, 1.5, 1000),
    ])
    prints = merge_prints(rows)
    assert prints["qty"].tolist() == [6.0, 4.0, 1.5]
    assert prints["side"].tolist() == [1, -1, -1]
    assert prints["fills"].tolist() == [3, 1, 1]
    assert prints["levels"].tolist() == [2, 1, 1]
    assert prints["first_tick"][0] == 1001 and prints["last_tick"][0] == 1002


def test_tape_takes_only_new_rows_and_joins_a_sweep_split_across_frames(qtbot):
    tape = TimeAndSalesWidget()
    qtbot.addWidget(tape)
    first = make_trades([(T0, 1, 1.0, 1001), (T0 + 1, -1, 2.0, 1000)])
    tape.set_frame(make_frame(BIDS, ASKS, version=1, trades=first))
    assert len(tape.prints) == 2
    # the next frame repeats the old rows (a window of latest trades) plus new ones
    more = make_trades([(T0, 1, 1.0, 1001), (T0 + 1, -1, 2.0, 1000), (T0 + 1, -1, 3.0, 999),
                        (T0 + 2, 1, 7.0, 1001)])
    more["order_id"] = [1, 2, 3, 4]
    tape.set_frame(make_frame(BIDS, ASKS, version=2, trades=more))
    assert tape.prints["qty"].tolist() == [1.0, 5.0, 7.0]
    assert tape.prints["levels"].tolist() == [1, 2, 1]
    tape.set_frame(make_frame(BIDS, ASKS, version=3, trades=more))  # nothing new
    assert len(tape.prints) == 3


def test_size_filter_and_liquidations(qtbot):
    tape = TimeAndSalesWidget()
    qtbot.addWidget(tape)
    rows = make_trades([(T0, 1, 0.5, 1001), (T0 + 1, -1, 20.0, 1000), (T0 + 2, 1, 3.0, 1001)])
    liq = np.zeros(1, rows.dtype)
    liq["ev"] = BOTH_CLOCKS | SELL_EVENT | LIQUIDATION_EVENT
    liq["exch_ts"], liq["local_ts"], liq["qty"], liq["ival"], liq["order_id"] = T0 + 3, T0 + 4, 9.0, 999, 99
    tape.set_frame(make_frame(BIDS, ASKS, trades=np.concatenate([rows, liq])))
    assert len(tape.visible_prints()) == 4
    assert tape.visible_prints()[0]["liquidation"]
    tape.set_filter(min_size=2.0)
    shown = tape.visible_prints()
    assert shown["qty"].tolist() == [9.0, 3.0, 20.0]  # newest first


def test_buy_rows_green_sell_rows_red(qtbot):
    tape = TimeAndSalesWidget()
    qtbot.addWidget(tape)
    tape.resize(360, 300)
    tape.show()
    tape.set_frame(make_frame(BIDS, ASKS, trades=make_trades([(T0, -1, 1.0, 1000), (T0 + 1, 1, 1.0, 1001)])))
    image = tape.list.grab().toImage()
    y_buy = tape.list.header_h + tape.list.row_h // 2  # newest (the buy) on top
    y_sell = y_buy + tape.list.row_h
    buy, sell = pixel(image, 3, y_buy), pixel(image, 3, y_sell)
    assert buy.green() > buy.red(), buy.name()
    assert sell.red() > sell.green(), sell.name()
    assert buy != DARK.q("panel") and sell != DARK.q("panel")


def test_big_prints_are_emphasised(qtbot):
    tape = TimeAndSalesWidget()
    qtbot.addWidget(tape)
    tape.resize(360, 300)
    tape.show()
    tape.set_filter(0.0, big_size=10.0)
    tape.set_frame(make_frame(BIDS, ASKS, trades=make_trades([(T0, 1, 1.0, 1001), (T0 + 1, 1, 50.0, 1001)])))
    image = tape.list.grab().toImage()
    y_big = tape.list.header_h + tape.list.row_h // 2
    big, small = pixel(image, 3, y_big), pixel(image, 3, y_big + tape.list.row_h)
    assert big.green() > small.green() + 30  # a much stronger background
