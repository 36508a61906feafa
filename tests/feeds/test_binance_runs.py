"""BinanceUsdmFeed's receive pump: a backlog of received frames goes through the bulk ``on_lines`` as runs,
with exactly the results frame by frame; a lone frame is handled before the feed waits for the next; what
was recorded is always processed. Also pins the websockets internals ``message_queued`` reads."""

from __future__ import annotations

import asyncio
import gzip
import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from app.core.instrument import Instrument
from feeds.binance_usdm import BinanceUsdmFeed, BinanceUsdmProcessor
from feeds.common import RUN_MAX, message_queued
from tests.feeds._fake_venue import FakeVenue
from tests.feeds._pump import FakeWS, chunked, engine_sink

BTC = Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001)


@pytest.fixture(scope="module")
def lines(btc_capture: Path) -> list[tuple[int, str]]:
    """The first frames of the real BTCUSDT capture (depth diffs, bookTicker, trades)."""
    with gzip.open(btc_capture, "rt") as f:
        return [(int(ts), raw) for ts, _, raw in (line.rstrip("\n").partition(" ")
                                                  for line in itertools.islice(f, 3000))]


class Recorder:
    """Every sink call in order; batches as bytes (no ``on_batches``: the bulk path makes the per-message
    calls, compared here; the engine's run path is compared in test_engine_results_equal_frame_by_frame)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.raws: list[str] = []

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        self.calls.append(("batch", symbol, batch.tobytes(), update_id))

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        self.calls.append(("status", symbol, state, reason))

    def on_instrument(self, instrument: Instrument) -> None:
        self.calls.append(("instrument", instrument))

    def on_raw(self, local_ns: int, raw: str) -> None:
        self.raws.append(raw)


def pump_feed(sink) -> tuple[BinanceUsdmFeed, list[int]]:  # noqa: ANN001
    """A feed with its processor on ``sink``; the list collects the length of every run processed."""
    feed = BinanceUsdmFeed(["BTCUSDT"], "http://x", "ws://x", "ws://x")
    feed._proc = BinanceUsdmProcessor([BTC], sink)
    runs: list[int] = []
    process = feed._process

    def spy(raws: list[str], stamps: list[int]) -> None:
        runs.append(len(raws))
        process(raws, stamps)

    feed._process = spy  # type: ignore[method-assign]
    return feed, runs


@pytest.fixture
def counted_clock(monkeypatch) -> None:  # noqa: ANN001
    """time.time_ns() returns 1, 2, 3 ...: the pump stamps frame k with k, as the one-by-one run does."""
    import feeds.binance_usdm as module

    counter = itertools.count(1)
    monkeypatch.setattr(module.time, "time_ns", lambda: next(counter))


def test_a_backlog_goes_in_runs_with_the_results_of_frame_by_frame(lines, counted_clock) -> None:  # noqa: ANN001
    raws = [raw for _, raw in lines]
    one_by_one = Recorder()
    proc = BinanceUsdmProcessor([BTC], one_by_one)
    for k, raw in enumerate(raws, 1):
        proc.on_line(raw, k)
    sink = Recorder()
    feed, runs = pump_feed(sink)
    chunks = chunked(raws, [1, 700, 1, 1, 37, 300])
    asyncio.run(feed._pump(FakeWS(chunks), sink, None))
    assert sink.raws == raws
    assert sink.calls == one_by_one.calls and len(sink.calls) > 2000
    assert max(runs) == RUN_MAX and sum(runs) == len(raws)
    assert runs.count(1) >= sum(1 for c in chunks if len(c) == 1)  # a lone frame takes on_line


def test_lone_frames_are_processed_before_the_feed_waits(lines) -> None:  # noqa: ANN001
    """No batching delay when idle: every frame received is in the market before the receive waits."""
    raws = [raw for _, raw in lines[:400]]
    sink = Recorder()
    feed, runs = pump_feed(sink)
    processed_at_wait: list[tuple[int, int]] = []
    assert feed._proc is not None
    ws = FakeWS(chunked(raws, [1, 1, 5, 1, 60]),
                on_wait=lambda taken: processed_at_wait.append((taken, feed._proc.messages)))  # type: ignore[union-attr]
    asyncio.run(feed._pump(ws, sink, None))
    assert len(processed_at_wait) > 20
    assert all(taken == processed for taken, processed in processed_at_wait)
    assert runs[:2] == [1, 1] and 5 in runs and 60 in runs


def test_what_was_recorded_is_processed_when_the_connection_fails_mid_run(lines) -> None:  # noqa: ANN001
    raws = [raw for _, raw in lines[:500]]
    sink = Recorder()
    feed, runs = pump_feed(sink)
    with pytest.raises(OSError):
        asyncio.run(feed._pump(FakeWS([raws[:10], raws[10:]], fail_at=123), sink, None))
    assert feed._proc is not None
    assert len(sink.raws) == 123 and feed._proc.messages == 123 and runs == [10, 113]


def test_engine_results_equal_frame_by_frame(lines, counted_clock) -> None:  # noqa: ANN001
    """Through a real engine (detectors on): the same tops, detections, book and counts."""
    raws = [raw for _, raw in lines]
    a_engine, a_sink, a_events = engine_sink(BTC)
    proc = BinanceUsdmProcessor([BTC], a_sink)  # type: ignore[arg-type]
    for k, raw in enumerate(raws, 1):
        proc.on_line(raw, k)
    b_engine, b_sink, b_events = engine_sink(BTC)
    feed, runs = pump_feed(b_sink)
    asyncio.run(feed._pump(FakeWS(chunked(raws, [3, 500, 1, 90])), b_sink, None))  # type: ignore[arg-type]
    assert max(runs) == RUN_MAX
    a, b = a_engine.market(BTC.key), b_engine.market(BTC.key)
    assert a is not None and b is not None
    assert (a.messages, a.tops, a.version) == (b.messages, b.tops, b.version) and a.messages > 2000
    assert a_events == b_events and len(a_events) > 100
    fa, fb = a.frame(ladder_rows=60), b.frame(ladder_rows=60)
    assert np.array_equal(fa.ladder_ticks, fb.ladder_ticks)
    assert np.array_equal(fa.ladder_bid, fb.ladder_bid) and np.array_equal(fa.ladder_ask, fb.ladder_ask)
    assert np.array_equal(fa.trades, fb.trades)


def test_message_queued_reads_the_websockets_receive_queue() -> None:
    """Pins the websockets internals the pump relies on: frames already received show as queued."""
    from websockets.asyncio.client import connect

    async def main() -> None:
        async def handler(conn, path) -> None:  # noqa: ANN001
            for i in range(50):
                await conn.send(f'{{"n":{i}}}')
            await conn.wait_closed()

        async with FakeVenue({}, handler).running() as venue, connect(venue.wsurl + "/x") as ws:
            first = await ws.recv()
            async with asyncio.timeout(5):
                while not message_queued(ws):  # the rest arrives in a read or two
                    await asyncio.sleep(0.01)
            got = [first]
            while message_queued(ws):
                got.append(await ws.recv())
            while len(got) < 50:
                got.append(await ws.recv())
            assert got == [f'{{"n":{i}}}' for i in range(50)]
            assert not message_queued(ws)

    asyncio.run(main())
    assert not message_queued(object())  # not a websockets connection: never claims a queued message


def test_message_queued_needs_a_whole_message() -> None:
    """A message's first fragments alone would make the receive wait: not queued until its last one."""
    from collections import deque

    def ws(*fins: bool) -> SimpleNamespace:
        frames = deque(SimpleNamespace(fin=f) for f in fins)
        return SimpleNamespace(recv_messages=SimpleNamespace(frames=SimpleNamespace(queue=frames)))

    assert not message_queued(ws())
    assert message_queued(ws(True)) and message_queued(ws(True, False))
    assert not message_queued(ws(False)) and not message_queued(ws(False, False))
    assert message_queued(ws(False, True))
