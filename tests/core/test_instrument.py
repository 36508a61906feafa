from __future__ import annotations

import numpy as np
import pytest

from app.core.instrument import Instrument, OffGridPrice


def test_price_tick_round_trip():
    inst = Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001)
    assert inst.to_tick("61800.30") == 618003
    assert inst.to_price(618003) == 61800.3
    assert inst.format_price(618003) == "61800.3"
    assert inst.to_ticks(np.array([0.1, 0.2, 0.3])).tolist() == [1, 2, 3]


def test_small_tick_sizes_are_exact():
    inst = Instrument("bybit-linear", "PEPEUSDT", 0.0000001)
    assert inst.to_tick("0.0000123") == 123
    assert inst.price_decimals == 7


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_price_rejected(bad):
    with pytest.raises(ValueError, match="non-finite"):
        Instrument("x", "Y", 0.5).to_tick(bad)


def test_off_grid_price_rejected():
    with pytest.raises(OffGridPrice, match="not on tick grid"):
        Instrument("x", "Y", 0.5).to_tick(1.25)


@pytest.mark.parametrize("tick", [0.0, -1.0, float("nan")])
def test_bad_tick_size_rejected(tick):
    with pytest.raises(ValueError, match="tick size"):
        Instrument("x", "Y", tick)
