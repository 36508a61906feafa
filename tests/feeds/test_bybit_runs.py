"""BybitLinearFeed's receive pump (on frames the simulator's Bybit venue sent): a backlog goes to the engine as runs (``on_batches``) with exactly the
results frame by frame; lone frames are handled before the feed waits; what was recorded is processed."""

from __future__ import annotations

import asyncio
import itertools
import json

import numpy as np
import pytest

from app.core.instrument import Instrument
from app.engine import Engine, _FeedSink
from feeds.base import FeedSink
from feeds.bybit_linear import BybitLinearFeed, BybitLinearProcessor, parse_instruments_info
from feeds.common import RUN_MAX
from tests.feeds._pump import FakeWS, chunked, engine_sink


@pytest.fixture(scope="module")
def capture() -> tuple[Instrument, list[str]]:
    """The simulator's Bybit venue in manual mode: its ALTUSDT instrument and ~2,000 frames it sent
    (orderbook snapshot and deltas, trades, tickers) after subscribing like the feed does."""
    from websockets.asyncio.client import connect

    from feeds.simulator.server import SimulatorServer
    from feeds.simulator.testing import http_get

    async def main() -> tuple[Instrument, list[str]]:
        async with SimulatorServer(seed=5, rate=3000, manual=True, coalesce=False) as srv:
            ends = srv.endpoints()["bybit-linear"]
            _status, body = await http_get(ends["rest"] + "/v5/market/instruments-info?category=linear&symbol=ALTUSDT")
            inst = parse_instruments_info(body, "ALTUSDT")
            topics = BybitLinearFeed(["ALTUSDT"], ends["rest"], ends["ws"]).topics("ALTUSDT")
            frames: list[str] = []
            async with connect(ends["ws"], max_queue=None) as ws:
                await ws.send(json.dumps({"op": "subscribe", "args": topics}))
                frames.append(str(await asyncio.wait_for(ws.recv(), 3)))  # the ack
                srv.advance(700)
                srv.flush()
                try:
                    while True:
                        frames.append(str(await asyncio.wait_for(ws.recv(), 0.5)))
                except TimeoutError:
                    pass
            return inst, frames

    return asyncio.run(main())


@pytest.fixture
def inst(capture) -> Instrument:  # noqa: ANN001
    return capture[0]


@pytest.fixture
def raws(capture) -> list[str]:  # noqa: ANN001
    return capture[1]


class CountingSink(_FeedSink):
    """The engine's sink, noting the size of every run it is handed."""

    __slots__ = ("applied",)

    def __init__(self, engine: Engine, venue: str, label: str) -> None:
        super().__init__(engine, venue, label)
        self.applied: list[int] = []

    def on_batches(self, items) -> None:  # noqa: ANN001
        self.applied.append(len(items))
        super().on_batches(items)


def pump_feed(sink: CountingSink, inst: Instrument) -> tuple[BybitLinearFeed, list[int], list[int]]:
    """A feed with its processor on ``sink``: lists of run lengths and of ``on_batches`` sizes."""
    feed = BybitLinearFeed([inst.symbol], "http://x", "ws://x")
    feed._proc = BybitLinearProcessor([inst], sink)  # type: ignore[arg-type]
    runs: list[int] = []
    process = feed._process

    def spy(to: FeedSink, raws: list[str], stamps: list[int]) -> None:
        runs.append(len(raws))
        process(to, raws, stamps)

    feed._process = spy  # type: ignore[method-assign]
    return feed, runs, sink.applied


@pytest.fixture
def counted_clock(monkeypatch) -> None:  # noqa: ANN001
    import feeds.bybit_linear as module

    counter = itertools.count(1)
    monkeypatch.setattr(module.time, "time_ns", lambda: next(counter))


def test_runs_through_the_engine_equal_frame_by_frame(inst, raws, counted_clock) -> None:  # noqa: ANN001
    a_engine, a_sink, a_events = engine_sink(inst, CountingSink)
    proc = BybitLinearProcessor([inst], a_sink)  # type: ignore[arg-type]
    for k, raw in enumerate(raws, 1):
        proc.on_line(raw, k)
    b_engine, b_sink, b_events = engine_sink(inst, CountingSink)
    feed, runs, applied = pump_feed(b_sink, inst)
    asyncio.run(feed._pump(FakeWS(chunked(raws, [1, 400, 2, 1, 77]), on_wait=None), b_sink))
    assert max(runs) == RUN_MAX and sum(runs) == len(raws) and max(applied) > 50
    a, b = a_engine.market(inst.key), b_engine.market(inst.key)
    assert a is not None and b is not None
    assert (a.messages, a.tops, a.version) == (b.messages, b.tops, b.version) and a.messages > 1000
    assert a_events == b_events and len(a_events) > 100
    fa, fb = a.frame(ladder_rows=60), b.frame(ladder_rows=60)
    assert np.array_equal(fa.ladder_ticks, fb.ladder_ticks)
    assert np.array_equal(fa.ladder_bid, fb.ladder_bid) and np.array_equal(fa.ladder_ask, fb.ladder_ask)


def test_lone_frames_first_and_nothing_recorded_is_lost(inst, raws) -> None:  # noqa: ANN001
    engine, sink, _ = engine_sink(inst, CountingSink)
    recorded_raws: list[str] = []
    engine.listen("raw", lambda venue, ts, raw: recorded_raws.append(raw))
    feed, runs, _ = pump_feed(sink, inst)
    assert feed._proc is not None
    at_wait: list[tuple[int, int]] = []
    ws = FakeWS(chunked(raws[:600], [1, 1, 30]), on_wait=lambda taken: at_wait.append((taken, feed._proc.messages)),
                fail_at=500)  # fmt: skip
    with pytest.raises(OSError):
        asyncio.run(feed._pump(ws, sink))
    assert len(at_wait) > 20 and all(taken == done for taken, done in at_wait)
    assert len(recorded_raws) == feed._proc.messages == 500
    assert runs[:2] == [1, 1] and 30 in runs
