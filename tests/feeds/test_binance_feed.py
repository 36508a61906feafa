"""BinanceUsdmFeed over real loopback sockets against a scripted fake venue: sync, reconnect with a
marked gap, REST polling, raw capture lines, bad symbol, unreachable venue."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.server import ServerConnection

from app.core.events import DEPTH_CLEAR_EVENT, GAP_EVENT, KIND_MASK, OPEN_INTEREST_EVENT, TRADE_EVENT
from feeds.backoff import Backoff
from feeds.base import CONNECTING, DISCONNECTED, LIVE, STOPPED, SYNCING
from feeds.binance_usdm import BinanceUsdmFeed, BinanceUsdmProcessor
from feeds.common import FeedError
from tests.feeds._fake_venue import FakeVenue
from tests.feeds._helpers import TopCheckSink

EXCHANGE_INFO = json.dumps({"symbols": [{"symbol": "TESTUSDT", "quoteAsset": "USDT", "filters": [
    {"filterType": "PRICE_FILTER", "tickSize": "0.10"}, {"filterType": "LOT_SIZE", "stepSize": "0.001"}]}]})  # fmt: skip


def depth(first: int, final: int, prev: int, bid: str, qty: str) -> str:
    data = {"e": "depthUpdate", "E": final, "T": final, "s": "TESTUSDT", "U": first, "u": final, "pu": prev,
            "b": [[bid, qty]], "a": [["101.0", "1.000"]]}  # fmt: skip
    return json.dumps({"stream": "testusdt@depth@100ms", "data": data})


class Script:
    """Venue state: the snapshot id moves with the diffs sent so far (like the real REST cache)."""

    def __init__(self, drop_after: int | None = None) -> None:
        self.u = 100
        self.snapshots_served = 0
        self.public_connections = 0
        self.drop_after = drop_after
        self.sent_after_reconnect = asyncio.Event()

    def snapshot(self, query: str) -> tuple[int, str]:
        assert "symbol=TESTUSDT" in query and "limit=1000" in query
        self.snapshots_served += 1
        body = {"lastUpdateId": self.u, "E": 1, "T": 1, "bids": [["100.0", "5.000"], ["99.9", "1.000"]],
                "asks": [["101.0", "1.000"]]}  # fmt: skip
        return 200, json.dumps(body)

    async def ws(self, conn: ServerConnection, path: str) -> None:
        if path.startswith("/market/"):
            await conn.send(json.dumps({"stream": "testusdt@aggTrade", "data": {
                "e": "aggTrade", "E": 5, "a": 7, "s": "TESTUSDT", "p": "100.5", "q": "2", "f": 1, "l": 1, "T": 5,
                "m": True}}))  # fmt: skip
            await conn.send("garbage that is not json")
            await conn.wait_closed()
            return
        self.public_connections += 1
        nth = self.public_connections
        served_before = self.snapshots_served
        after = 0  # diffs sent since this connection's snapshot was served
        for k in range(1000):  # diffs every 10 ms until 30 followed this connection's snapshot
            prev, self.u = self.u, self.u + 10
            await conn.send(depth(prev + 1, self.u, prev, "100.0", f"{k % 9 + 1}.000"))
            await asyncio.sleep(0.01)
            after += self.snapshots_served > served_before
            if nth == 1 and self.drop_after is not None and after == self.drop_after:
                await conn.close()
                return
            if after == 30:
                break
        if nth > 1:
            self.sent_after_reconnect.set()
        await conn.wait_closed()


async def run_until(feed: BinanceUsdmFeed, sink: TopCheckSink, done, timeout: float = 8.0) -> None:  # noqa: ANN001
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


def make_feed(venue: FakeVenue, **kw) -> BinanceUsdmFeed:  # noqa: ANN003
    options = {"backoff": Backoff(0.05, 0.2), "open_interest_poll_s": 0.2, **kw}
    return BinanceUsdmFeed(["testusdt"], venue.http, venue.wsurl + "/public", venue.wsurl + "/market", **options)


def test_syncs_delivers_and_captures_raw() -> None:
    async def main() -> None:
        script = Script()
        oi = {"/fapi/v1/openInterest": lambda q: (200, '{"openInterest":"12.5","symbol":"TESTUSDT","time":9}')}
        venue = FakeVenue({"/fapi/v1/exchangeInfo": lambda q: (200, EXCHANGE_INFO),
                           "/fapi/v1/depth": script.snapshot, **oi}, script.ws)  # fmt: skip
        async with venue.running():
            feed = make_feed(venue)
            sink = TopCheckSink([])

            def done() -> bool:
                return script.u >= 400 and ("TESTUSDT", LIVE, "") in sink.statuses and any(
                    int(b["ev"][0]) & KIND_MASK == OPEN_INTEREST_EVENT for _, b, _ in sink.batches)

            await run_until(feed, sink, done)
            assert sink.instruments[0].tick_size == 0.1
            states = [s for _, s, _ in sink.statuses]
            assert states[:3] == [CONNECTING, SYNCING, LIVE] and states[-1] == STOPPED
            book = sink.books["TESTUSDT"]
            assert book.best_ask()[0] == 1010
            last_depth = json.loads([r for _, r in sink.raw if "@depth" in r[:40]][-1])["data"]
            assert book.best_bid() == (1000, float(last_depth["b"][0][1]))
            kinds = sink.kinds()
            assert TRADE_EVENT in kinds and OPEN_INTEREST_EVENT in kinds
            c = feed.counters()
            assert c.malformed == 1 and c.resyncs == 0 and c.messages >= 30
            paths = venue.ws_paths
            assert "/public/stream?streams=testusdt@depth@100ms/testusdt@bookTicker" in paths
            assert "/market/stream?streams=testusdt@aggTrade/testusdt@markPrice@1s/testusdt@forceOrder" in paths
            # every REST body was handed to on_raw as a rest line, and a processor replays them
            rest_lines = [raw for _, raw in sink.raw if raw.startswith('{"rest":')]
            assert any('"rest":"/fapi/v1/depth?symbol=TESTUSDT&limit=1000"' in r for r in rest_lines)
            replay = TopCheckSink([sink.instruments[0]])
            proc = BinanceUsdmProcessor([sink.instruments[0]], replay)
            for local_ns, raw in sink.raw:
                if "exchangeInfo" not in raw[:40]:
                    proc.on_line(raw, local_ns)
            assert proc.syncs["TESTUSDT"].state == LIVE and proc.resyncs == 0
            assert replay.books["TESTUSDT"].best_bid() == book.best_bid()

    asyncio.run(main())


def test_reconnect_marks_gap_and_resyncs() -> None:
    async def main() -> None:
        script = Script(drop_after=5)
        venue = FakeVenue({"/fapi/v1/exchangeInfo": lambda q: (200, EXCHANGE_INFO),
                           "/fapi/v1/depth": script.snapshot}, script.ws)  # fmt: skip
        async with venue.running():
            feed = make_feed(venue, open_interest_poll_s=0)
            sink = TopCheckSink([])
            await run_until(feed, sink, script.sent_after_reconnect.is_set)
            states = [s for _, s, _ in sink.statuses]
            assert DISCONNECTED in states
            i = states.index(DISCONNECTED)
            assert LIVE in states[:i] and states[i + 1 : i + 4] == [CONNECTING, SYNCING, LIVE]
            gaps = [b for _, b, uid in sink.batches if uid is None and int(b["ev"][0]) & KIND_MASK == GAP_EVENT]
            assert len(gaps) == 1 and int(gaps[0]["ev"][1]) & KIND_MASK == DEPTH_CLEAR_EVENT
            c = feed.counters()
            assert c.reconnects == 1 and c.resyncs == 1
            assert script.public_connections == 2
            assert sink.books["TESTUSDT"].best_bid()[0] == 1000

    asyncio.run(main())


def test_unknown_symbol_is_a_clear_error() -> None:
    async def main() -> None:
        venue = FakeVenue({"/fapi/v1/exchangeInfo": lambda q: (200, EXCHANGE_INFO)}, Script().ws)
        async with venue.running():
            feed = BinanceUsdmFeed(["NOPEUSDT"], venue.http, venue.wsurl + "/public", venue.wsurl + "/market")
            with pytest.raises(FeedError, match="unknown symbol NOPEUSDT"):
                await feed.run(TopCheckSink([]))

    asyncio.run(main())


def test_unreachable_rest_is_a_clear_error() -> None:
    async def main() -> None:
        feed = BinanceUsdmFeed(["BTCUSDT"], "http://127.0.0.1:9", "ws://127.0.0.1:9/public", "ws://127.0.0.1:9/market",
                               http_timeout_s=2.0)  # fmt: skip
        with pytest.raises(FeedError, match="cannot load exchangeInfo"):
            await feed.run(TopCheckSink([]))

    asyncio.run(main())


def test_planned_reconnect_before_the_connection_age_limit() -> None:
    async def main() -> None:
        script = Script()
        venue = FakeVenue({"/fapi/v1/exchangeInfo": lambda q: (200, EXCHANGE_INFO),
                           "/fapi/v1/depth": script.snapshot}, script.ws)  # fmt: skip
        async with venue.running():
            feed = make_feed(venue, open_interest_poll_s=0, max_connection_age_s=0.25)
            sink = TopCheckSink([])
            planned = ("TESTUSDT", DISCONNECTED, "planned reconnect before the 24 h cut")

            def live_again() -> bool:
                if planned not in sink.statuses:
                    return False
                return ("TESTUSDT", LIVE, "") in sink.statuses[sink.statuses.index(planned) + 1 :]

            await run_until(feed, sink, live_again)
            assert feed.counters().reconnects >= 1
            assert sink.books["TESTUSDT"].best_bid()[0] == 1000

    asyncio.run(main())


# --- the helpers both feeds use ---------------------------------------------------------------------


def test_backoff_grows_with_jitter_and_resets() -> None:
    import random

    b = Backoff(0.5, 4.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    assert all(0.25 <= d <= 4.0 for d in delays)
    assert delays[0] <= 0.5 and max(delays[4:]) > 1.0  # the ceiling doubled up to the cap
    assert len(set(delays)) == len(delays)  # jittered
    b.reset()
    assert b.next_delay() <= 0.5


def test_http_get_plain_chunked_and_errors() -> None:
    from feeds.http import HttpError, http_get

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await respond(reader, writer)
        finally:
            writer.close()

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        path = request.split(" ", 2)[1]
        if path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")
        elif path == "/plain":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"b\":2}")
        elif path == "/eof":
            writer.write(b"HTTP/1.0 200 OK\r\n\r\n[1,2]")
        elif path == "/slow":
            await reader.read()  # until the client gives up and closes
        else:
            writer.write(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 26\r\n\r\n{\"code\":-1003,\"msg\":\"x\"}  ")
        await writer.drain()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        async with server:
            assert await http_get(base + "/chunked") == '{"a":1}'
            assert await http_get(base + "/plain") == '{"b":2}'
            assert await http_get(base + "/eof") == "[1,2]"
            with pytest.raises(HttpError, match="HTTP 429") as info:
                await http_get(base + "/limited")
            assert info.value.status == 429 and "-1003" in info.value.body
            with pytest.raises(HttpError, match="no answer within 0.2 s"):
                await http_get(base + "/slow", timeout_s=0.2)
            with pytest.raises(HttpError, match="unsupported URL scheme"):
                await http_get("ftp://127.0.0.1/x")
        with pytest.raises(HttpError, match="ConnectionRefusedError|OSError"):
            await http_get(base + "/plain")

    asyncio.run(main())


def test_stale_snapshots_are_refetched_at_a_pace() -> None:
    async def main() -> None:
        script = Script()
        served: list[float] = []

        def stale_then_good(query: str) -> tuple[int, str]:
            served.append(asyncio.get_running_loop().time())
            if len(served) < 3:  # older than anything streamed: U of the first diff > lastUpdateId
                return 200, json.dumps({"lastUpdateId": 5, "E": 1, "T": 1, "bids": [["99.0", "1"]], "asks": []})
            return script.snapshot(query)

        venue = FakeVenue({"/fapi/v1/exchangeInfo": lambda q: (200, EXCHANGE_INFO),
                           "/fapi/v1/depth": stale_then_good}, script.ws)  # fmt: skip
        async with venue.running():
            feed = make_feed(venue, open_interest_poll_s=0)
            sink = TopCheckSink([])
            await run_until(feed, sink, lambda: ("TESTUSDT", LIVE, "") in sink.statuses)
            assert len(served) == 3
            assert all(b - a >= 0.1 for a, b in zip(served, served[1:], strict=False))  # paced, not hammered
            # the stale snapshots never reached the book
            assert all(99.0 != float(p) for _, b, _ in sink.batches for p in b["px"])

    asyncio.run(main())


def test_unknown_symbol_reports_stopped_with_the_reason() -> None:
    async def main() -> None:
        venue = FakeVenue({"/fapi/v1/exchangeInfo": lambda q: (200, EXCHANGE_INFO)}, Script().ws)
        async with venue.running():
            sink = TopCheckSink([])
            with pytest.raises(FeedError):
                await BinanceUsdmFeed(["NOPEUSDT"], venue.http, venue.wsurl, venue.wsurl).run(sink)
            assert sink.statuses[-1] == ("NOPEUSDT", STOPPED, "binance-usdm: unknown symbol NOPEUSDT (not listed in exchangeInfo)")

    asyncio.run(main())
