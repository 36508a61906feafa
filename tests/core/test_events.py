from __future__ import annotations

import numpy as np
import pytest

from app.core import events as E


def test_event_record_is_hftbacktest_layout():
    assert E.EVENT_DTYPE.itemsize == 64
    assert E.EVENT_DTYPE.names == ("ev", "exch_ts", "local_ts", "px", "qty", "order_id", "ival", "fval")
    assert [E.EVENT_DTYPE.fields[n][1] for n in E.EVENT_DTYPE.names] == list(range(0, 64, 8))


def test_flags_have_hftbacktest_values():
    assert (E.EXCH_EVENT, E.LOCAL_EVENT, E.BUY_EVENT, E.SELL_EVENT) == (1 << 31, 1 << 30, 1 << 29, 1 << 28)
    assert (E.DEPTH_EVENT, E.TRADE_EVENT, E.DEPTH_CLEAR_EVENT, E.DEPTH_SNAPSHOT_EVENT) == (1, 2, 3, 4)


def test_depth_rows_carry_ticks_price_side_and_update_id():
    rows = E.depth_rows(E.ASK, np.array([100, 101]), np.array([1.5, 0.0]), 0.1, 7, 9, update_id=42)
    assert rows["ival"].tolist() == [100, 101]
    assert rows["px"].tolist() == pytest.approx([10.0, 10.1])
    assert np.all(E.kind_of(rows["ev"]) == E.DEPTH_EVENT)
    assert np.all(rows["ev"] & E.SELL_EVENT) and not np.any(rows["ev"] & E.BUY_EVENT)
    assert rows["order_id"].tolist() == [42, 42]


def test_trade_row_side_is_aggressor():
    row = E.trade_row(E.BID, 500, 2.0, 0.5, 1, 2, trade_id=3)
    assert row["ev"][0] & E.BUY_EVENT and row["px"][0] == 250.0


def test_bad_side_is_rejected():
    with pytest.raises(ValueError, match="side"):
        E.side_flag(0)
