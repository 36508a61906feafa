"""The synthetic market model: deterministic, never crossed, a thin small-cap book, heavy-tailed trades."""

from __future__ import annotations

import numpy as np
import pytest

from feeds.simulator.market import (
    ASK,
    BID,
    DEFAULT_SYMBOLS,
    BookChange,
    Liquidation,
    MarketModel,
    MarkUpdate,
    TradeBurst,
)


def _run(seed: int, steps: int = 200, rate: float = 2000.0) -> tuple[MarketModel, list]:
    model = MarketModel(seed=seed, rate=rate)
    events = []
    for _ in range(steps):
        events.extend(model.step(10_000_000))
    return model, events


def test_same_seed_same_market_other_seed_differs() -> None:
    a_model, a = _run(7)
    b_model, b = _run(7)
    _, c = _run(8)
    assert a == b
    assert a != c
    for sym in a_model.symbols:
        (abt, abq), (aat, aaq) = a_model.levels(sym)
        (bbt, bbq), (bat, baq) = b_model.levels(sym)
        assert np.array_equal(abt, bbt) and np.array_equal(abq, bbq) and np.array_equal(aat, bat)


def test_replaying_book_messages_rebuilds_the_model_book_and_it_is_never_crossed() -> None:
    model = MarketModel(seed=3, rate=3000.0)
    start = {sym: model.snapshot(sym) for sym in model.symbols}
    books = {sym: ({int(t): int(q) for t, q in zip(*s[1], strict=True)},
                   {int(t): int(q) for t, q in zip(*s[2], strict=True)}) for sym, s in start.items()}
    last_id = {sym: s[0] for sym, s in start.items()}
    for _ in range(300):
        for ev in model.step(10_000_000):
            if type(ev) is not BookChange:
                continue
            assert ev.first_id == last_id[ev.symbol] + 1 and ev.last_id >= ev.first_id
            last_id[ev.symbol] = ev.last_id
            bids, asks = books[ev.symbol]
            for side_book, changes in ((bids, ev.bids), (asks, ev.asks)):
                for tick, lots in changes:
                    if lots:
                        side_book[tick] = lots
                    else:
                        side_book.pop(tick, None)
            if bids and asks:
                assert max(bids) < min(asks)
                assert ev.top.bid_tick == max(bids) and ev.top.ask_tick == min(asks)
    for sym in model.symbols:
        bids, asks = books[sym]
        (bt, bl), (at, al) = model.snapshot(sym)[1:]
        assert dict(zip(bt.tolist(), bl.tolist(), strict=True)) == bids
        assert dict(zip(at.tolist(), al.tolist(), strict=True)) == asks


def test_thin_small_cap_shape_and_levels_view() -> None:
    model, _ = _run(5, steps=500, rate=1000.0)
    (bt, bq), (at, aq) = model.levels("ALTUSDT")
    assert np.all(np.diff(bt) < 0) and np.all(np.diff(at) > 0)
    assert bt[0] < at[0] and at[0] - bt[0] <= 30
    assert 40 <= len(bt) <= 400 and 40 <= len(at) <= 400
    assert np.all(bq > 0) and np.all(aq > 0)
    # Thin: not every tick near the touch is quoted; more size away from the touch.
    assert len(bt) < (bt[0] - bt[-1] + 1)
    assert np.median(bq[30:]) > np.median(bq[:10])


def test_rate_trades_heavy_tail_and_aggressor_sides() -> None:
    model, events = _run(9, steps=300, rate=1000.0)  # 3 s
    books = sum(type(e) is BookChange for e in events)
    assert 2400 <= books <= 3600
    trades = [e for e in events if type(e) is TradeBurst]
    sizes = np.array([sum(q for _, q in t.fills) for t in trades if t.symbol == "ALTUSDT"])
    assert len(sizes) > 50 and sizes.max() > 8 * np.median(sizes)
    for t in trades:
        ticks = [tick for tick, _ in t.fills]
        assert ticks == sorted(ticks, reverse=t.aggressor == ASK)
        assert all(q > 0 for _, q in t.fills)
    assert {t.aggressor for t in trades} == {BID, ASK}


def test_marks_each_second_with_funding_schedule() -> None:
    model = MarketModel(DEFAULT_SYMBOLS[:1], seed=4, rate=200.0, start_ns=1_767_225_600_000_000_000)
    marks = []
    for _ in range(350):
        marks += [e for e in model.step(10_000_000) if type(e) in (MarkUpdate, Liquidation)]
    mark_updates = [m for m in marks if type(m) is MarkUpdate]
    assert len(mark_updates) == 4  # at the first step, then every second
    assert np.all(np.diff([m.exch_ns for m in mark_updates]) == 1_000_000_000)
    for m in mark_updates:
        assert m.next_funding_ms % (8 * 3600 * 1000) == 0 and m.next_funding_ms > m.exch_ns // 1_000_000
        assert abs(m.mark_price - 0.4321) < 0.01 and abs(m.funding_rate) < 0.0075 and m.open_interest > 0


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="at least one symbol"):
        MarketModel([])
    with pytest.raises(ValueError, match="rate"):
        MarketModel(rate=0)
    with pytest.raises(ValueError, match="advance"):
        MarketModel().step(0)
