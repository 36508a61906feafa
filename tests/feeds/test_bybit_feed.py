"""BybitLinearFeed over real loopback sockets against a scripted fake venue: subscribe, ping, u gap ->
resubscribe -> new snapshot, reconnect, bad symbol."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from app.core.events import GAP_EVENT, KIND_MASK, MARK_PRICE_EVENT, TRADE_EVENT
from feeds.backoff import Backoff
from feeds.base import CONNECTING, DISCONNECTED, LIVE, RESYNCING, STOPPED, SYNCING
from feeds.bybit_linear import BybitLinearFeed
from feeds.common import FeedError
from tests.feeds._fake_venue import FakeVenue
from tests.feeds._helpers import TopCheckSink


def instruments(query: str) -> tuple[int, str]:
    assert "category=linear" in query
    listed = "symbol=TESTUSDT" in query
    items = [{"symbol": "TESTUSDT", "quoteCoin": "USDT", "priceFilter": {"tickSize": "0.10"},
              "lotSizeFilter": {"qtyStep": "0.001"}}] if listed else []  # fmt: skip
    return 200, json.dumps({"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": items}})


def book(kind: str, u: int, bid_qty: str) -> str:
    return json.dumps({"topic": "orderbook.50.TESTUSDT", "type": kind, "ts": u, "cts": u,
                       "data": {"s": "TESTUSDT", "b": [["100.0", bid_qty]], "a": [["100.5", "1"]], "u": u, "seq": u}})  # fmt: skip


class Script:
    def __init__(self, gap_at: int | None = None, drop_first: bool = False) -> None:
        self.gap_at = gap_at
        self.drop_first = drop_first
        self.ops: list[dict] = []
        self.pings = 0
        self.connections = 0
        self.u = 1000
        self.done = asyncio.Event()

    async def ws(self, conn: ServerConnection, path: str) -> None:
        assert path == "/v5/public/linear"
        self.connections += 1
        nth = self.connections
        try:
            async for raw in conn:
                msg = json.loads(raw)
                self.ops.append(msg)
                if msg["op"] == "ping":
                    self.pings += 1
                    await conn.send('{"success":true,"ret_msg":"pong","conn_id":"c","req_id":"","op":"ping"}')
                    continue
                await conn.send(json.dumps({"success": True, "ret_msg": "", "conn_id": "c", "req_id": "",
                                            "op": msg["op"]}))  # fmt: skip
                if msg["op"] != "subscribe" or "orderbook.50.TESTUSDT" not in msg["args"]:
                    continue
                asyncio.get_running_loop().create_task(self._stream(conn, nth))
        except ConnectionClosed:
            pass

    def _unsubscribes(self) -> int:
        return sum(1 for o in self.ops if o["op"] == "unsubscribe")

    async def _stream(self, conn: ServerConnection, nth: int) -> None:
        epoch = self._unsubscribes()  # an unsubscribe ends this stream, as on the venue
        try:
            await conn.send(book("snapshot", self.u, "5"))
            await conn.send(json.dumps({"topic": "publicTrade.TESTUSDT", "type": "snapshot", "ts": 1, "data": [
                {"T": 1, "s": "TESTUSDT", "S": "Buy", "v": "0.5", "p": "100.5", "i": "00000000-0000-0000-0000-000000000001"}]}))  # fmt: skip
            await conn.send(json.dumps({"topic": "tickers.TESTUSDT", "type": "snapshot", "ts": 1, "cs": 1, "data": {
                "symbol": "TESTUSDT", "markPrice": "100.2", "indexPrice": "100.1", "fundingRate": "0.0001",
                "nextFundingTime": "1786320000000", "openInterest": "10"}}))  # fmt: skip
            await conn.send("{{broken")
            for k in range(10):
                if self._unsubscribes() != epoch:
                    return
                self.u += 1
                if self.gap_at == k and nth == 1 and epoch == 0:
                    self.u += 5  # skip some: a u gap
                await conn.send(book("delta", self.u, str(k + 6)))
                await asyncio.sleep(0.01)
                if self.drop_first and nth == 1 and k == 3:
                    await conn.close()
                    return
            self.done.set()
        except ConnectionClosed:
            pass


async def run_until(feed: BybitLinearFeed, sink: TopCheckSink, done, timeout: float = 8.0) -> None:  # noqa: ANN001
    task = asyncio.create_task(feed.run(sink))
    try:
        async with asyncio.timeout(timeout):
            while not done():
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def make(venue: FakeVenue, **kw) -> BybitLinearFeed:  # noqa: ANN003
    options = {"depth": 50, "backoff": Backoff(0.05, 0.2), "ping_every_s": 0.1, **kw}
    return BybitLinearFeed(["TESTUSDT"], venue.http, venue.wsurl + "/v5/public/linear", **options)


def test_subscribes_pings_and_delivers() -> None:
    async def main() -> None:
        script = Script()
        venue = FakeVenue({"/v5/market/instruments-info": instruments}, script.ws)
        async with venue.running():
            feed = make(venue)
            sink = TopCheckSink([])
            await run_until(feed, sink, lambda: script.done.is_set() and script.pings >= 2)
            subscribed = [a for o in script.ops if o["op"] == "subscribe" for a in o["args"]]
            assert subscribed == ["orderbook.50.TESTUSDT", "publicTrade.TESTUSDT", "tickers.TESTUSDT",
                                  "allLiquidation.TESTUSDT"]  # fmt: skip
            assert [s for _, s, _ in sink.statuses][:3] == [CONNECTING, SYNCING, LIVE]
            b = sink.books["TESTUSDT"]
            assert b.best_bid() == (1000, 15.0) and b.best_ask() == (1005, 1.0)
            assert TRADE_EVENT in sink.kinds() and MARK_PRICE_EVENT in sink.kinds()
            c = feed.counters()
            assert c.malformed == 1 and c.resyncs == 0 and c.reconnects == 0
            assert any('"rest":"/v5/market/instruments-info?category=linear&symbol=TESTUSDT"' in r for _, r in sink.raw)

    asyncio.run(main())


def test_u_gap_resubscribes_and_recovers() -> None:
    async def main() -> None:
        script = Script(gap_at=4)
        venue = FakeVenue({"/v5/market/instruments-info": instruments}, script.ws)
        async with venue.running():
            feed = make(venue)
            sink = TopCheckSink([])
            await run_until(feed, sink, script.done.is_set)
            ops = [(o["op"], o["args"]) for o in script.ops if o["op"] != "ping"]
            assert ("unsubscribe", ["orderbook.50.TESTUSDT"]) in ops
            assert ops[-1] == ("subscribe", ["orderbook.50.TESTUSDT"])
            states = [s for _, s, _ in sink.statuses]
            assert states[-3:] == [RESYNCING, LIVE, STOPPED]
            gaps = [b for _, b, uid in sink.batches if uid is None and int(b["ev"][0]) & KIND_MASK == GAP_EVENT]
            assert len(gaps) == 1 and feed.counters().resyncs == 1
            assert sink.books["TESTUSDT"].best_bid() == (1000, 15.0)

    asyncio.run(main())


def test_reconnect_after_drop() -> None:
    async def main() -> None:
        script = Script(drop_first=True)
        venue = FakeVenue({"/v5/market/instruments-info": instruments}, script.ws)
        async with venue.running():
            feed = make(venue)
            sink = TopCheckSink([])
            await run_until(feed, sink, script.done.is_set)
            states = [s for _, s, _ in sink.statuses]
            i = states.index(DISCONNECTED)
            assert states[i + 1 : i + 4] == [CONNECTING, SYNCING, LIVE]
            assert feed.counters().reconnects == 1 and feed.counters().resyncs == 1
            assert script.connections == 2

    asyncio.run(main())


def test_unknown_symbol_and_bad_depth() -> None:
    with pytest.raises(FeedError, match="depth must be one of"):
        BybitLinearFeed(["BTCUSDT"], "http://x", "ws://x", depth=500)

    async def main() -> None:
        venue = FakeVenue({"/v5/market/instruments-info": instruments}, Script().ws)
        async with venue.running():
            feed = BybitLinearFeed(["NOPEUSDT"], venue.http, venue.wsurl + "/v5/public/linear")
            with pytest.raises(FeedError, match="unknown symbol NOPEUSDT"):
                await feed.run(TopCheckSink([]))

    asyncio.run(main())
