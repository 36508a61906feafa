"""The engine and MarketState with scripted fake feeds: atomic batches, in-sync tops, frames, threads."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from test_engine_fakes import (
    INST,
    T0,
    FakeFeed,
    Step,
    basic_script,
    diff,
    funding,
    gap,
    resync_script,
    snapshot,
    trade,
)

from app.core import events as ev
from app.core.detection import Detection
from app.engine import Engine
from app.market import MarketState
from feeds.base import LIVE, STOPPED, SYNCING

SMALL = {"engine": {"ring_capacity": 1024, "trade_capacity": 64}}


def market() -> MarketState:
    return MarketState(INST, SMALL)


# -- MarketState --------------------------------------------------------------------------------


def test_no_top_before_a_snapshot_then_a_top_per_book_message() -> None:
    m = market()
    assert m.apply(diff({1000: 1.0}, {}, 5), 5) is None  # a diff before any snapshot: book not in sync
    out = m.apply(snapshot({1000: 5.0}, {1001: 4.0}, 100), 100)
    assert out is not None and out.top is not None
    assert out.top.update_id == 100
    assert (out.top.bid_tick, out.top.bid_qty, out.top.ask_tick, out.top.ask_qty) == (1000, 5.0, 1001, 4.0)
    out = m.apply(diff({1000: 6.0}, {1001: 0.0}, 101), 101)
    assert out.top.update_id == 101 and out.top.bid_qty == 6.0 and out.top.ask_tick == ev.NO_PRICE
    assert m.tops == 2 and m.messages == 3


def test_a_gap_stops_tops_until_the_next_snapshot() -> None:
    m = market()
    tops = []
    for step in resync_script():
        if step.status is not None:
            m.set_state(step.status)
        if step.batch is not None:
            out = m.apply(step.batch, step.update_id)
            if out is not None and out.top is not None:
                tops.append(out.top.update_id)
    assert tops == [10, 11, 20, 21]
    assert m.gaps == 1
    assert m.book.best_bid_tick == 991 and m.book.best_ask_tick == 995


def test_status_that_loses_continuity_unsyncs_the_book() -> None:
    m = market()
    m.apply(snapshot({1000: 5.0}, {1001: 4.0}, 1), 1)
    m.set_state("disconnected")
    assert m.apply(diff({1000: 2.0}, {}, 2), 2) is None
    m.set_state(LIVE)  # live without a snapshot still proves nothing about the book
    assert m.apply(diff({1000: 3.0}, {}, 3), 3) is None


def test_a_rejected_batch_is_counted_and_unsyncs() -> None:
    m = market()
    m.apply(snapshot({1000: 5.0}, {1001: 4.0}, 1), 1)
    bad = diff({1000: 2.0}, {}, 2)
    bad["qty"] = -1.0
    assert m.apply(bad, 2) is None
    assert m.rejected == 1 and not m.synced
    assert m.book.qty_at(ev.BID, 1000) == 5.0  # the book refused the whole batch


def test_crossed_book_gives_no_top() -> None:
    m = market()
    m.apply(snapshot({1000: 5.0}, {1001: 4.0}, 1), 1)
    assert m.apply(diff({1002: 1.0}, {}, 2), 2) is None
    assert m.crossed == 1


def test_trades_funding_and_ring() -> None:
    m = market()
    m.apply(snapshot({1000: 5.0}, {1001: 4.0}, 1), 1)
    assert m.apply(trade(ev.BID, 1001, 1.5), None) is None  # a trade is not a book message
    m.apply(trade(ev.ASK, 1000, 0.5, T0 + 1), None)
    assert (m.last_trade_tick, m.last_trade_side, m.last_trade_qty) == (1000, -1, 0.5)
    out = m.apply(funding(0.0001, T0 + 8 * 3600 * 10**9, 1.0005, 1.0004), None)
    assert out is not None and out.top is None
    assert out.funding.rate == 0.0001 and out.funding.mark_px == 1.0005 and out.funding.index_px == 1.0004
    assert out.funding.next_funding_ts == T0 + 8 * 3600 * 10**9
    # every row lands in the ring, in arrival order
    assert len(m.ring) == 1 + 2 + 1 + 1 + 2
    assert m.ring.latest(2)["ev"].tolist() == [int(r) for r in funding(0, 0, 1, 1)["ev"]]


def test_frame_is_an_immutable_copy_with_a_centred_ladder() -> None:
    m = market()
    m.apply(snapshot({1000: 5.0, 998: 2.0}, {1001: 4.0, 1003: 1.0}, 1), 1)
    m.apply(trade(ev.BID, 1001, 1.5), None)
    m.apply(trade(ev.ASK, 1000, 0.25), None)
    f = m.frame(ladder_rows=10)
    assert f.version == m.version
    assert f.ladder_ticks.tolist() == list(range(1005, 995, -1))
    row = {int(t): i for i, t in enumerate(f.ladder_ticks)}
    assert f.ladder_bid[row[1000]] == 5.0 and f.ladder_bid[row[998]] == 2.0
    assert f.ladder_ask[row[1001]] == 4.0 and f.ladder_ask[row[1003]] == 1.0
    assert f.ladder_traded_buy[row[1001]] == 1.5 and f.ladder_traded_sell[row[1000]] == 0.25
    assert f.ladder_traded_buy.sum() == 1.5
    assert (f.best_bid_tick, f.best_ask_tick, f.last_trade_tick, f.last_trade_side) == (1000, 1001, 1000, -1)
    assert len(f.trades) == 2 and f.trades["qty"].tolist() == [1.5, 0.25]
    before = (f.ladder_bid.copy(), f.trades.copy())
    m.apply(diff({1000: 9.0}, {}, 2), 2)
    m.apply(trade(ev.BID, 1001, 7.0, T0 + 5), None)
    assert np.array_equal(f.ladder_bid, before[0]) and np.array_equal(f.trades, before[1])
    assert not np.shares_memory(f.trades, m.ring.latest())
    assert m.frame(ladder_rows=10).version > f.version


def test_frame_grouping_sums_rows() -> None:
    m = market()
    m.apply(snapshot({1000: 5.0, 999: 1.0, 995: 2.0}, {1001: 4.0, 1004: 1.0}, 1), 1)
    f = m.frame(ladder_rows=4, group=5)
    assert f.ladder_ticks.tolist() == [1010, 1005, 1000, 995]  # row t covers t..t+4; mid row at rows // 2
    assert f.ladder_bid.tolist() == [0.0, 0.0, 5.0, 3.0]
    assert f.ladder_ask.tolist() == [0.0, 0.0, 5.0, 0.0]


def test_size_change_column_shows_pulls_and_stacks() -> None:
    m = MarketState(INST, {"engine": {"ring_capacity": 1024, "size_change_s": 2.0}})
    m.apply(snapshot({1000: 5.0, 999: 3.0}, {1001: 4.0}, 1, ts=T0), 1)  # snapshot sample at T0
    m.apply(diff({999: 10.0}, {1001: 1.0}, 2, ts=T0 + 1_000_000_000), 2)
    f = m.frame(ladder_rows=6)
    row = {int(t): i for i, t in enumerate(f.ladder_ticks)}
    assert f.ladder_size_change[row[999]] == pytest.approx(7.0)  # stacked
    assert f.ladder_size_change[row[1001]] == pytest.approx(-3.0)  # pulled
    assert f.ladder_size_change[row[1000]] == 0.0


def test_detector_hook_tracks_open_detections() -> None:
    seen = []

    def hook(batch: np.ndarray, book: object) -> list[Detection]:
        seen.append(len(batch))
        if len(seen) == 2:
            return [Detection(1, "large_order", "fake", "ALTUSDT", 1, 1000, T0, "open")]
        if len(seen) == 3:
            return [Detection(1, "large_order", "fake", "ALTUSDT", 1, 1000, T0, "close")]
        return []

    m = MarketState(INST, SMALL, detectors=hook)
    m.apply(snapshot({1000: 5.0}, {1001: 4.0}, 1), 1)
    out = m.apply(diff({1000: 50.0}, {}, 2), 2)
    assert [d.state for d in out.detections] == ["open"]
    assert [d.id for d in m.frame().detections] == [1]
    m.apply(diff({1000: 0.0}, {}, 3), 3)
    assert m.frame().detections == ()


# -- Engine, current-loop mode --------------------------------------------------------------------


def test_run_until_applies_a_feed_and_calls_listeners_in_order() -> None:
    engine = Engine(SMALL)
    feed = FakeFeed(basic_script())
    engine.add_feed(feed)
    got: list[tuple] = []
    engine.listen("top", lambda inst, *top: got.append(("top", top[2], top[3], top[5])))
    engine.listen("status", lambda venue, sym, state, reason: got.append(("status", state)))
    engine.listen("funding", lambda inst, f, exch_ts, local_ts: got.append(("funding", f.rate)))
    stopped = []
    engine.listen("stopped", lambda: stopped.append(True))
    asyncio.run(engine.run_until(5))
    assert got == [
        ("status", SYNCING),
        ("top", 100, 1000, 1001),
        ("status", LIVE),
        ("top", 101, 1000, 1001),
        ("top", 102, 1000, 1002),
        ("funding", 0.0001),
        ("status", STOPPED),
    ]
    assert stopped == [True]
    assert engine.version("fake:ALTUSDT") == engine.version("ALTUSDT") > 0
    f = engine.frame("fake:ALTUSDT")
    assert f is not None and f.best_ask_tick == 1002 and f.funding is not None
    rows = engine.summary_sources()
    assert rows[0]["messages"] == 5 and rows[0]["applied"] == 5 and rows[0]["tops"] == 3


def test_run_until_stops_at_the_duration_and_cancels_the_feed() -> None:
    engine = Engine(SMALL)
    feed = FakeFeed(basic_script(), hold=True)
    engine.add_feed(feed)
    t0 = time.monotonic()
    asyncio.run(engine.run_until(0.3))
    assert 0.25 <= time.monotonic() - t0 < 3
    assert feed.cancelled
    assert engine.status("fake:ALTUSDT")[0] == STOPPED


def test_request_stop_ends_run_until() -> None:
    engine = Engine(SMALL)
    engine.add_feed(FakeFeed(basic_script(), hold=True))

    async def main() -> float:
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, engine.request_stop)
        t0 = loop.time()
        await engine.run_until(None)
        return loop.time() - t0

    assert asyncio.run(main()) < 2


def test_a_failing_feed_is_reported_not_raised() -> None:
    engine = Engine(SMALL)
    errors = []
    engine.listen("error", lambda label, exc: errors.append(label))
    engine.add_feed(FakeFeed([], fail=LookupError("unknown symbol ALTUSDT")), label="fake:ALTUSDT")
    asyncio.run(engine.run_until(5))
    assert errors == ["fake:ALTUSDT"]
    assert engine.errors[0].message == "fake:ALTUSDT: unknown symbol ALTUSDT"
    state, reason = engine.status("fake:ALTUSDT")
    assert state == STOPPED and "unknown symbol" in reason


def test_a_broken_listener_does_not_stop_the_data() -> None:
    engine = Engine(SMALL)
    engine.add_feed(FakeFeed(basic_script()))

    def boom(*_args: object) -> None:
        raise RuntimeError("listener bug")

    tops = []
    engine.listen("top", boom)
    engine.listen("top", lambda inst, *top: tops.append(top[2]))
    asyncio.run(engine.run_until(5))
    assert tops == [100, 101, 102]


def test_unknown_listener_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown listener kind"):
        Engine().listen("tops", print)


def test_batches_for_an_unannounced_symbol_are_counted() -> None:
    engine = Engine(SMALL)
    engine.add_feed(FakeFeed([Step(symbol="OTHER", batch=diff({1: 1.0}, {}, 1), update_id=1)]))
    asyncio.run(engine.run_until(5))
    assert engine._orphan_batches == 1


# -- Engine, thread mode --------------------------------------------------------------------------


def _engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "depthdesk-engine"]


def test_thread_mode_start_add_pull_stop_leaves_no_thread() -> None:
    engine = Engine(SMALL)
    calls: list[str] = []
    engine.listen("status", lambda venue, sym, state, reason: calls.append(threading.current_thread().name))
    engine.start()
    try:
        assert engine.running and len(_engine_threads()) == 1
        feed = FakeFeed(basic_script(), hold=True)
        engine.add_feed(feed)  # from this (non-engine) thread while running
        deadline = time.monotonic() + 5
        while engine.version("fake:ALTUSDT") < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        f = engine.frame("fake:ALTUSDT", ladder_rows=8)
        assert f is not None and f.best_bid_tick == 1000 and f.best_ask_tick == 1002
        assert calls and set(calls) == {"depthdesk-engine"}
    finally:
        engine.stop()
    assert not _engine_threads()
    assert feed.cancelled
    assert engine.status("fake:ALTUSDT")[0] == STOPPED
    assert not engine.running


def test_frames_pulled_from_another_thread_are_never_torn() -> None:
    """Each snapshot sets bid qty == ask qty == n; a frame must never see a mix of two messages."""
    steps = []
    for n in range(1, 400):
        steps.append(Step(batch=snapshot({1000: float(n)}, {1001: float(n)}, n), update_id=n))
        if n % 50 == 0:
            steps.append(Step(sleep=0.001))
    engine = Engine(SMALL)
    engine.add_feed(FakeFeed(steps, hold=True))
    engine.start()
    torn = 0
    seen = 0
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            f = engine.frame("fake:ALTUSDT", ladder_rows=4)
            if f is None or f.best_bid_tick == ev.NO_PRICE:
                continue
            seen += 1
            torn += f.best_bid_qty != f.best_ask_qty
            if f.best_bid_qty == 399.0:
                break
    finally:
        engine.stop()
    assert seen > 0 and torn == 0


def test_stop_without_start_is_harmless_and_start_twice_fails() -> None:
    engine = Engine(SMALL)
    engine.stop()
    engine.start()
    try:
        with pytest.raises(RuntimeError):
            engine.start()
    finally:
        engine.stop()
    assert not _engine_threads()


def test_lag_is_now_minus_last_receive_time() -> None:
    engine = Engine(SMALL, clock_ns=lambda: T0 + 2_000_000_000)
    engine.add_feed(FakeFeed(basic_script()))
    asyncio.run(engine.run_until(5))
    assert engine.lag_ns() == 2_000_000_000 - 4_000_000
    assert engine.lag_ns("fake:ALTUSDT") == engine.lag_ns()


def test_gap_then_resync_through_the_engine() -> None:
    engine = Engine(SMALL)
    engine.add_feed(FakeFeed(resync_script()))
    ids = []
    engine.listen("top", lambda inst, *top: ids.append(top[2]))
    asyncio.run(engine.run_until(5))
    assert ids == [10, 11, 20, 21]
    assert gap()[0]["ev"] & ev.KIND_MASK == ev.GAP_EVENT


def test_stats_rows_for_the_status_bar() -> None:
    engine = Engine(SMALL, clock_ns=lambda: T0 + 10**9)
    engine.add_feed(FakeFeed(basic_script()))
    engine.add_feed(FakeFeed([], instruments=(), venue="other", hold=False), label="other:X")
    asyncio.run(engine.run_until(5))
    rows = {r.key: r for r in engine.stats()}
    assert rows["fake:ALTUSDT"].state == STOPPED and rows["fake:ALTUSDT"].messages == 5
    assert rows["fake:ALTUSDT"].lag_ns == 10**9 - 4_000_000
    assert 0 < rows["fake:ALTUSDT"].ring_fill < 1


def test_frame_centre_tick_scrolls_the_ladder() -> None:
    engine = Engine(SMALL)
    engine.add_feed(FakeFeed(basic_script()))
    asyncio.run(engine.run_until(5))
    f = engine.frame("ALTUSDT", ladder_rows=4, centre_tick=2000, trades=1)
    assert f.ladder_ticks.tolist() == [2002, 2001, 2000, 1999]
    assert f.ladder_bid.sum() == 0 and len(f.trades) == 1
    assert engine.frame("nope:X") is None and engine.version("nope:X") == -1


def test_remove_source_while_running_in_thread_mode() -> None:
    engine = Engine(SMALL)
    feed = FakeFeed(basic_script(), hold=True)
    engine.add_feed(feed)
    engine.start()
    try:
        deadline = time.monotonic() + 5
        while engine.frame("fake:ALTUSDT") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.remove_source("fake:altusdt")
        assert feed.cancelled
        assert engine.frame("fake:ALTUSDT") is None and "fake:ALTUSDT" not in engine.statuses()
        assert not engine.remove_source("fake:ALTUSDT")
    finally:
        engine.stop()


def test_reset_market_starts_the_session_over() -> None:
    m = market()
    m.apply(snapshot({1000: 5.0}, {1001: 4.0}, 1), 1)
    m.apply(trade(ev.BID, 1001, 1.0), None)
    v = m.version
    m.reset()
    assert m.version > v and m.messages == 0 and not m.synced and len(m.ring) == 0 and len(m.recent_trades(5)) == 0
    assert m.book.best_bid_tick == ev.NO_PRICE and m.profile.total_volume == 0
    assert m.apply(diff({1000: 1.0}, {}, 2), 2) is None  # needs a snapshot again


def test_raw_listener_gets_the_venue() -> None:
    class RawFeed(FakeFeed):
        async def run(self, sink) -> None:  # noqa: ANN001
            sink.on_raw(5, '{"x":1}')
            await super().run(sink)

    engine = Engine(SMALL)
    raws = []
    engine.listen("raw", lambda venue, ns, raw: raws.append((venue, ns, raw)))
    engine.add_feed(RawFeed([]))
    asyncio.run(engine.run_until(5))
    assert raws == [("fake", 5, '{"x":1}')]


def test_bad_engine_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="ring_capacity"):
        MarketState(INST, {"engine": {"ring_capacity": 0}})


def test_open_interest_alone_updates_the_frame_but_emits_nothing() -> None:
    m = market()
    oi = ev.marker_row(ev.OPEN_INTEREST_EVENT, T0, T0, qty=1234.5)
    assert m.apply(oi, None) is None
    assert m.frame().funding.open_interest == 1234.5
    out = m.apply(funding(0.0002, T0 + 1, 1.5, 1.49), None)
    assert out.funding.open_interest == 1234.5 and out.funding.rate == 0.0002


def test_one_top_per_update_id_and_ids_may_restart_after_a_snapshot() -> None:
    m = market()
    assert m.apply(snapshot({1000: 5.0}, {1001: 4.0}, 50), 50).top.update_id == 50
    assert m.apply(diff({999: 1.0}, {}, 50), 50) is None  # the bridging diff ending at the snapshot id
    assert m.repeated_ids == 1 and m.book.qty_at(ev.BID, 999) == 1.0  # applied, just not reported twice
    assert m.apply(diff({999: 2.0}, {}, 51), 51).top.update_id == 51
    assert m.apply(snapshot({900: 1.0}, {901: 1.0}, 1), 1).top.update_id == 1  # Bybit u=1 restart
    assert m.apply(diff({900: 3.0}, {}, 2), 2).top.update_id == 2


class ScriptedDetectors:
    """A DetectorSet stand-in: opens a large order on the 2nd batch; close_all closes what is open."""

    def __init__(self) -> None:
        self.batches = 0
        self.open: dict[int, Detection] = {}

    def on_batch(self, batch: np.ndarray, book: object) -> list[Detection]:
        self.batches += 1
        if self.batches == 2:
            det = Detection(1, "large_order", "fake", "ALTUSDT", 1, 1000, T0, "open", evidence={"peak": 50.0})
            self.open[1] = det
            return [det]
        return []

    def close_all(self, exch_ts: int) -> list[Detection]:
        out = [Detection(d.id, d.kind, d.venue, d.symbol, d.side, d.price_tick, exch_ts, "close", evidence=d.evidence)
               for d in self.open.values()]
        self.open.clear()
        return out


def test_detections_alerts_and_the_final_close_through_the_engine() -> None:
    config = {**SMALL, "alerts": [{"name": "big bid", "kind": "large_order", "side": "bid", "band_ticks": 5,
                                   "states": ["open", "close"], "cooldown_s": 0}]}
    engine = Engine(config, detector_factory=lambda inst: ScriptedDetectors())
    engine.add_feed(FakeFeed(basic_script()))
    got = []
    engine.listen("detection", lambda inst, d: got.append(("detection", d.state)))
    engine.listen("alert", lambda inst, a: got.append(("alert", a.rule, a.detection.state)))
    asyncio.run(engine.run_until(5))
    assert got == [("detection", "open"), ("alert", "big bid", "open"),
                   ("detection", "close"), ("alert", "big bid", "close")]
    assert engine.frame("ALTUSDT").detections == ()


def test_price_alert_fires_on_a_trade_through_the_price() -> None:
    engine = Engine(SMALL, detect=False)
    steps = basic_script()
    engine.add_feed(FakeFeed([Step(sleep=0.05), *steps]))
    alerts = []
    engine.listen("alert", lambda inst, a: alerts.append((a.rule, a.kind, a.price_tick, a.detection)))

    async def main() -> None:
        task = asyncio.ensure_future(engine.run_until(5))
        while engine.market("ALTUSDT") is None:
            await asyncio.sleep(0.001)
        engine.add_price_alert("ALTUSDT", "at 1.002", 1002, "up")
        await task

    asyncio.run(main())
    assert alerts == [("at 1.002", "price", 1002, None)]


def test_the_real_detectors_run_on_the_engine_by_default() -> None:
    engine = Engine(SMALL)
    engine.add_feed(FakeFeed(basic_script()))
    asyncio.run(engine.run_until(5))
    m = engine.market("ALTUSDT")
    assert type(m.detectors).__name__ == "DetectorSet" and m.alerts is not None


@pytest.mark.parametrize("config", [
    {"detectors": {"no_such_kind": {}}},
    {"alerts": [{"name": "x", "kind": "nope"}]},
])
def test_bad_detector_or_alert_settings_fail_at_construction(config: dict) -> None:
    with pytest.raises(ValueError):
        Engine(config)


def test_footprint_bars_from_trades_including_a_late_print() -> None:
    m = MarketState(INST, {"engine": {"ring_capacity": 1024, "footprint_bar_s": 1.0}})
    m.apply(snapshot({1000: 5.0}, {1001: 4.0}, 1), 1)
    m.apply(trade(ev.BID, 1001, 1.0, T0 + 100), None)
    m.apply(trade(ev.ASK, 1000, 2.0, T0 + 50), None)  # late print: counted at T0 + 100
    m.apply(trade(ev.BID, 1001, 3.0, T0 + 1_500_000_000), None)  # next 1 s bar
    bars = m.footprint_bars()
    assert len(bars) == 2 and bars[0].closed and not bars[1].closed
    assert (bars[0].buy_volume, bars[0].sell_volume, bars[1].buy_volume) == (1.0, 2.0, 3.0)
    assert m.aggregate_rejected == 0
    assert m.frame(ladder_rows=4).ladder_traded_buy.sum() == 4.0


def test_engine_footprint_accessor() -> None:
    engine = Engine(SMALL, detect=False)
    engine.add_feed(FakeFeed(basic_script()))
    asyncio.run(engine.run_until(5))
    bars = engine.footprint("ALTUSDT")
    assert len(bars) == 1 and bars[0].buy_volume == 1.5 and engine.footprint("nope:X") == []


def test_message_rate_is_per_wall_second_and_decays() -> None:
    m = market()
    for i in range(50):
        m.apply(diff({1000: float(i + 1)}, {}, i + 1), i + 1)
    time.sleep(1.05)
    first = m.message_rate  # rolls the ~1 s window: 50 messages in it
    assert 30 < first < 50.1
    time.sleep(1.05)
    assert m.message_rate == 0.0  # quiet for a window: no stale figure


def test_a_detector_bug_does_not_stop_the_market_data() -> None:
    calls = []

    def broken(batch: np.ndarray, book: object) -> list[Detection]:
        calls.append(1)
        raise ZeroDivisionError("detector bug")

    m = MarketState(INST, SMALL, detectors=broken)
    assert m.apply(snapshot({1000: 5.0}, {1001: 4.0}, 1), 1).top.update_id == 1
    assert m.apply(diff({1000: 6.0}, {}, 2), 2).top.bid_qty == 6.0
    assert m.analytics_errors == 2 and len(calls) == 2


def test_detectors_skip_a_batch_the_book_rejected() -> None:
    seen = []
    m = MarketState(INST, SMALL, detectors=lambda batch, book: seen.append(len(batch)) or [])
    m.apply(snapshot({1000: 5.0}, {1001: 4.0}, 1), 1)
    bad = diff({1000: 2.0}, {}, 2)
    bad["qty"] = float("nan")
    m.apply(bad, 2)
    assert seen == [3]  # only the snapshot (clear + 2 levels) reached them


def test_aggregates_survive_a_batch_longer_than_the_ring() -> None:
    m = MarketState(INST, {"engine": {"ring_capacity": 8}})
    m.apply(trade(ev.BID, 1001, 1.0), None)
    m.apply(snapshot({1000 - i: 1.0 for i in range(20)}, {1001: 4.0}, 1), 1)  # 22 rows > 8
    m.apply(trade(ev.BID, 1001, 2.0, T0 + 1), None)
    f = m.frame(ladder_rows=4)
    assert f.ladder_traded_buy.sum() == 3.0  # the first trade was flushed before the ring wrapped
    assert m.aggregate_rejected == 0


def test_stop_from_a_listener_on_the_engine_thread() -> None:
    engine = Engine(SMALL, detect=False)
    engine.add_feed(FakeFeed(basic_script(), hold=True))
    engine.listen("top", lambda inst, *top: engine.stop() if top[2] == 101 else None)
    engine.start()
    try:
        deadline = time.monotonic() + 5
        while engine.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not engine.running
    finally:
        engine.stop()
    assert not _engine_threads()


def test_remove_source_from_the_engine_thread_leaves_no_status() -> None:
    engine = Engine(SMALL, detect=False)
    feed = FakeFeed(basic_script(), hold=True)
    engine.add_feed(feed)
    statuses = []
    engine.listen("status", lambda venue, sym, state, reason: statuses.append(state))
    removed = []
    engine.listen("funding", lambda *a: removed.append(engine.remove_source("fake:ALTUSDT")))

    async def main() -> None:
        await engine.run_until(0.5)

    asyncio.run(main())
    assert removed == [True] and feed.cancelled
    assert "fake:ALTUSDT" not in engine.statuses() and statuses == [SYNCING, LIVE]


def test_feeds_added_while_the_thread_starts_are_never_lost() -> None:
    for _ in range(20):
        engine = Engine(SMALL, detect=False)
        engine.start()
        feed = FakeFeed(basic_script(), hold=True)
        engine.add_feed(feed)
        deadline = time.monotonic() + 5
        while engine.version("fake:ALTUSDT") < 7 and time.monotonic() < deadline:
            time.sleep(0.002)
        engine.stop()
        assert feed.delivered == 5
