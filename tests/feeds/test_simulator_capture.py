"""Capture-driven mode: real recordings replayed on the venue routes, REST snapshot served from them."""

from __future__ import annotations

import asyncio
import itertools
import json
from decimal import Decimal

import pytest
from websockets.asyncio.client import connect

from app.paths import recorded
from feeds.simulator.capture import CaptureSource, read_hftbacktest
from feeds.simulator.server import SimulatorServer
from feeds.simulator.testing import BinanceSyncBook, BybitBook, http_get

pytestmark = pytest.mark.timeout(30)


def _head(path, n: int) -> list[tuple[int, str]]:  # noqa: ANN001
    return list(itertools.islice(read_hftbacktest(path), n))


def test_hftbacktest_replay_syncs_and_matches_recorded_book_ticker(btc_capture) -> None:  # noqa: ANN001
    records = _head(btc_capture, 4000)
    recorded_depth = sum('"stream":"btcusdt@depth@0ms"' in raw[:40] for _, raw in records)

    async def main() -> None:
        source = CaptureSource(records, speed=20.0)  # ~12 s of market in ~0.6 s
        assert [s.symbol for s in source.specs] == ["BTCUSDT"] and source.specs[0].tick_size == 0.1
        async with SimulatorServer(capture=source) as srv:
            ep = srv.endpoints()["binance-usdm"]
            url = f"{ep['ws_public']}/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker"
            async with connect(url, max_queue=None) as ws:
                client = BinanceSyncBook()
                depth_seen = 0
                compared = 0
                fetch: asyncio.Task | None = None
                while True:
                    try:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                    except TimeoutError:
                        break
                    d = msg["data"]
                    if d["e"] == "depthUpdate":
                        assert msg["stream"] == "btcusdt@depth@100ms"  # re-enveloped for this client
                        depth_seen += 1
                        client.on_event(d)
                        if fetch is None:
                            fetch = asyncio.ensure_future(http_get(f"{ep['rest']}/fapi/v1/depth?symbol=BTCUSDT&limit=1000"))
                    if fetch is not None and fetch.done() and not client.synced and client.buffer:
                        status, body = fetch.result()
                        assert status == 200
                        assert client.on_snapshot(json.loads(body))
                    if d["e"] == "bookTicker" and client.synced and client.last_u is not None \
                            and d["u"] == client.last_u and client.applied:
                        # The venue's own top at the same update id equals the book we keep.
                        assert max(client.bids) == Decimal(d["b"]) and min(client.asks) == Decimal(d["a"])
                        compared += 1
                assert depth_seen == recorded_depth
                assert client.synced and client.gaps == 0 and client.applied > 100
                assert compared >= 5
                (bt, _), (at, _) = srv.levels("BTCUSDT")
                assert int(bt[0]) == round(max(client.bids) * 10) and int(at[0]) == round(min(client.asks) * 10)
                assert source.done is not None and source.done.is_set()

    asyncio.run(main())


def test_rest_before_the_recorded_snapshot_waits_for_it_and_serves_it_verbatim(btc_capture) -> None:  # noqa: ANN001
    records = _head(btc_capture, 200)
    snapshot = next(raw for _, raw in records if raw.startswith('{"lastUpdateId"'))

    async def main() -> None:
        source = CaptureSource(records, speed=1.0)  # recorded pace: the snapshot line comes ~1 s in
        async with SimulatorServer(capture=source) as srv:
            rest = srv.endpoints()["binance-usdm"]["rest"]
            status, body = await http_get(f"{rest}/fapi/v1/depth?symbol=NOPE&limit=5")
            assert status == 400 and json.loads(body)["code"] == -1121
            url = f"{srv.endpoints()['binance-usdm']['ws_public']}/ws/btcusdt@depth@0ms"
            async with connect(url, max_queue=None):
                status, body = await http_get(f"{rest}/fapi/v1/depth?symbol=BTCUSDT&limit=1000", timeout=8)
                assert status == 200 and body == snapshot

    asyncio.run(main())


def test_bybit_archive_replays_with_topic_renamed_and_u_continuous() -> None:
    path = recorded("bybit_linear", "nautilus_2024-12-01_XRPUSDT_ob500.data")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    records = [(1_733_011_200_000_000_000 + i * 1_000_000, line) for i, line in enumerate(lines)]

    async def main() -> None:
        source = CaptureSource(records, speed=0)
        assert source.specs[0].symbol == "XRPUSDT"
        async with SimulatorServer(capture=source) as srv:
            async with connect(srv.endpoints()["bybit-linear"]["ws"], max_queue=None) as ws:
                await ws.send(json.dumps({"op": "subscribe", "args": ["orderbook.200.XRPUSDT"]}))
                msgs = []
                while True:
                    try:
                        msgs.append(json.loads(await asyncio.wait_for(ws.recv(), 1.0)))
                    except TimeoutError:
                        break
                assert msgs[0]["success"] is True
                book_msgs = msgs[1:]
                assert len(book_msgs) == len(records)
                assert {m["topic"] for m in book_msgs} == {"orderbook.200.XRPUSDT"}
                book = BybitBook()
                for m in book_msgs:
                    book.on_message(m)
                assert book.gaps == 0 and book.snapshots == 1
                (bt, _), (at, _) = srv.levels("XRPUSDT")
                tick = source.specs[0].tick_size
                assert int(bt[0]) == round(float(max(book.bids)) / tick)
                assert int(at[0]) == round(float(min(book.asks)) / tick)
            # A late subscriber gets a snapshot rebuilt from the replayed book, with the current u.
            async with connect(srv.endpoints()["bybit-linear"]["ws"], max_queue=None) as ws:
                await ws.send(json.dumps({"op": "subscribe", "args": ["orderbook.50.XRPUSDT"]}))
                assert json.loads(await ws.recv())["success"] is True
                snap = json.loads(await asyncio.wait_for(ws.recv(), 2))
                assert snap["type"] == "snapshot" and snap["data"]["u"] == book.u
                assert len(snap["data"]["b"]) == 50
                assert Decimal(snap["data"]["b"][0][0]) == max(book.bids)

    asyncio.run(main())


def test_capture_without_market_messages_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no Binance stream or Bybit topic"):
        CaptureSource([(1, '{"result":null,"id":1}')])


def test_native_rest_lines_name_their_symbol(btc_capture) -> None:  # noqa: ANN001
    records = _head(btc_capture, 300)
    native = [(ns, '{"rest":"/fapi/v1/depth?symbol=BTCUSDT&limit=1000","data":' + raw + "}")
              if raw.startswith('{"lastUpdateId"') else (ns, raw) for ns, raw in records]
    snapshot = next(raw for _, raw in records if raw.startswith('{"lastUpdateId"'))

    async def main() -> None:
        source = CaptureSource(native, speed=0, start_on_subscribe=False)
        assert source.specs[0].tick_size == 0.1
        async with SimulatorServer(capture=source) as srv:
            for _ in range(500):  # the replay runs without subscribers: wait for its end
                if source.done is not None and source.done.is_set():
                    break
                await asyncio.sleep(0.01)
            assert source.replayed == len(native)
            status, body = await http_get(f"{srv.endpoints()['binance-usdm']['rest']}/fapi/v1/depth?symbol=BTCUSDT")
            snap = json.loads(body)
            assert status == 200 and snap["lastUpdateId"] >= json.loads(snapshot)["lastUpdateId"]

    asyncio.run(main())
