"""The bulk path of a full-speed replay (``on_lines`` -> ``on_batches`` -> ``MarketState.apply_many``) gives
exactly what the one-message path gives on the real BTCUSDT capture: every JSON line (tops, detections,
alerts, funding, statuses) and the final book, ring, volume profile and footprint."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.commands.watch import load_user_config
from app.core.events import ASK, BID, EVENT_DTYPE, TRADE_EVENT, trade_row
from app.core.instrument import Instrument
from app.engine import Engine, _FeedSink
from app.jsonout import JsonLinesWriter
from app.market import MarketState
from feeds.capture.replay import BinanceRouter, ReplayFeed


def profile_of(market: MarketState) -> tuple:
    """Range, totals and buy/sell volume per tick of a market's volume profile."""
    p = market.profile
    buy, sell = p.volume_at(np.arange(p.lo_tick, p.hi_tick + 1, dtype=np.int64))
    return p.lo_tick, p.hi_tick, p.trade_count, p.buy_volume, p.sell_volume, buy.tolist(), sell.tolist()


def bars_of(market: MarketState) -> list[tuple]:
    """Every footprint bar as plain values (arrays as lists)."""
    out = []
    for bar in market.footprint_bars():
        values = (getattr(bar, f.name) for f in dataclasses.fields(bar))
        out.append(tuple(v.tolist() if isinstance(v, np.ndarray) else v for v in values))
    assert out
    return out


def replay(path: Path, **options: Any) -> tuple[list[str], MarketState]:
    feed = ReplayFeed(path, **options)
    engine = Engine(load_user_config(None))
    engine.add_feed(feed)
    out = io.StringIO()
    writer = JsonLinesWriter(out, flush=False)
    for kind in ("top", "status", "funding", "detection", "alert"):
        engine.listen(kind, getattr(writer, kind))
    asyncio.run(engine.run_until(None))
    assert feed.finished and not feed.counters().malformed
    market = engine.market("BTCUSDT")
    assert market is not None
    return out.getvalue().splitlines(), market


@pytest.fixture(scope="module")
def both(btc_capture: Path) -> tuple[tuple[list[str], MarketState], tuple[list[str], MarketState]]:
    bulk = replay(btc_capture)
    mp = pytest.MonkeyPatch()
    mp.delattr(BinanceRouter, "many")  # the replay then hands records over one by one
    try:
        single = replay(btc_capture)
    finally:
        mp.undo()
    return bulk, single


def test_same_json_lines(both: tuple) -> None:
    (bulk_lines, _), (single_lines, _) = both
    tops = [line for line in single_lines if line.startswith('{"type":"top"')]
    assert len(tops) > 6000  # one per applied diff
    assert any('"type":"detection"' in line for line in single_lines)
    assert bulk_lines == single_lines


def test_same_final_state(both: tuple) -> None:
    (_, a), (_, b) = both
    for side in (BID, ASK):
        ta, qa = a.book.levels(side)
        tb, qb = b.book.levels(side)
        assert np.array_equal(ta, tb) and np.array_equal(qa, qb)
    assert a.book.update_id == b.book.update_id
    assert a.ring.total_written == b.ring.total_written
    assert a.ring.latest().tobytes() == b.ring.latest().tobytes()
    assert (a.messages, a.events, a.tops, a.crossed, a.repeated_ids) == (
        b.messages, b.events, b.tops, b.crossed, b.repeated_ids)
    a.footprint_bars()  # flushes the trades into profile and footprint
    b.footprint_bars()
    assert a.profile.trade_count > 20_000
    assert profile_of(a) == profile_of(b)
    assert bars_of(a) == bars_of(b)
    assert a.recent_trades(500).tobytes() == b.recent_trades(500).tobytes()


def test_apply_many_equals_apply_one_by_one_and_keeps_the_profile_flush_rule() -> None:
    """A tiny ring (8 rows) with runs longer than it: no trade is lost to the profile either way."""
    inst = Instrument("x", "X", 1.0, 1.0)
    batches = [(trade_row(BID if i % 3 else ASK, 100 + i % 7, 1.0 + i, 1.0, 1_000 + i, 2_000 + i), None)
               for i in range(50)]
    config = {"engine": {"ring_capacity": 8}}
    one, many = MarketState(inst, config), MarketState(inst, config)
    for batch, uid in batches:
        one.apply(batch, uid)
    i = 0
    for k in (1, 5, 13, 31):  # runs of several sizes, some longer than the ring
        assert many.apply_many(batches[i:i + k]) == []
        i += k
    one.footprint_bars()
    many.footprint_bars()
    assert one.profile.trade_count == many.profile.trade_count == 50
    assert profile_of(one) == profile_of(many)
    assert bars_of(one) == bars_of(many)
    assert one.ring.latest().tobytes() == many.ring.latest().tobytes()
    assert (one.messages, one.events, one.last_trade_tick) == (many.messages, many.events, many.last_trade_tick)
    assert int(one.ring.latest()["ev"][-1]) & 0xFF == TRADE_EVENT


def test_apply_many_refuses_rows_of_another_dtype_like_apply() -> None:
    inst = Instrument("x", "X", 1.0, 1.0)
    market = MarketState(inst)
    bad = np.zeros(2, dtype=[("a", "<f8")])
    good = np.zeros(1, dtype=EVENT_DTYPE)
    with pytest.raises(TypeError):
        market.apply(bad, None)
    with pytest.raises(TypeError):
        market.apply_many([(good, None), (bad, None)])


def test_cached_replay_in_runs_equals_one_by_one(btc_capture: Path, tmp_path: Path) -> None:
    """The seek cache's max-speed path hands the engine runs too (statuses in between): same output."""
    bulk_lines, a = replay(btc_capture, cache=True, cache_dir=tmp_path)
    mp = pytest.MonkeyPatch()
    mp.delattr(_FeedSink, "on_batches")  # the engine sink then takes one batch per call
    try:
        single_lines, b = replay(btc_capture, cache=True, cache_dir=tmp_path)
    finally:
        mp.undo()
    assert sum(line.startswith('{"type":"top"') for line in single_lines) > 6000
    assert bulk_lines == single_lines
    assert a.ring.latest().tobytes() == b.ring.latest().tobytes()
    assert bars_of(a) == bars_of(b)  # also flushes the trades into the profiles
    assert a.profile.trade_count > 20_000
    assert profile_of(a) == profile_of(b)
    assert (a.messages, a.tops) == (b.messages, b.tops)
