"""The simulator speaks Binance USDⓈ-M: routes, envelopes, acks, U/u/pu, REST — over real loopback sockets."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from feeds.simulator.server import SimulatorServer
from feeds.simulator.testing import BinanceSyncBook, http_get, loads, model_sides, normalize

pytestmark = pytest.mark.timeout(20)


async def _recv_json(ws, timeout: float = 3.0) -> dict:  # noqa: ANN001
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def _drain(ws, until, timeout: float = 3.0) -> list[dict]:  # noqa: ANN001
    """Receive until ``until(msg)`` is true for one message; returns all received."""
    got = []
    while True:
        msg = await _recv_json(ws, timeout)
        got.append(msg)
        if until(msg):
            return got


def test_combined_stream_envelope_chain_and_sync_rule_matches_model_book() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=11, rate=3000, manual=True) as srv:
            base = srv.endpoints()["binance-usdm"]
            url = f"{base['ws_public']}/stream?streams=altusdt@depth@100ms"
            async with connect(url, max_queue=None) as ws:
                client = BinanceSyncBook()
                srv.advance(30)
                srv.flush()
                await asyncio.sleep(0.05)
                status, body = await http_get(f"{base['rest']}/fapi/v1/depth?symbol=ALTUSDT&limit=1000")
                assert status == 200
                snap = json.loads(body)
                srv.advance(60)
                srv.flush()
                last_u = srv.model.books["ALTUSDT"].update_id
                msgs = await _drain(ws, lambda m: m["data"]["u"] >= last_u)
                prev = None
                for m in msgs:
                    assert m["stream"] == "altusdt@depth@100ms"
                    d = m["data"]
                    assert d["e"] == "depthUpdate" and d["s"] == "ALTUSDT" and d["U"] <= d["u"]
                    if prev is not None:
                        assert d["pu"] == prev["u"] and d["U"] == prev["u"] + 1
                        assert d["E"] >= prev["E"]
                    prev = d
                    client.on_event(d)
                assert client.on_snapshot(snap)
                assert client.synced and client.gaps == 0
                assert normalize(client.sides()[0]) == model_sides(srv, "ALTUSDT")[0]
                assert normalize(client.sides()[1]) == model_sides(srv, "ALTUSDT")[1]

    asyncio.run(main())


def test_raw_ws_path_has_no_envelope_and_realtime_depth_is_per_message() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=2, rate=2000, manual=True) as srv:
            url = f"{srv.endpoints()['binance-usdm']['ws_public']}/ws/btcusdt@depth@0ms/btcusdt@bookTicker"
            async with connect(url, max_queue=None) as ws:
                srv.advance(20)
                last_u = srv.model.books["BTCUSDT"].update_id
                msgs = await _drain(ws, lambda m: m.get("e") == "depthUpdate" and m["u"] >= last_u)
                depth = [m for m in msgs if m["e"] == "depthUpdate"]
                tickers = [m for m in msgs if m["e"] == "bookTicker"]
                assert "stream" not in msgs[0]
                assert len(depth) > 20 and tickers
                for a, b in zip(depth, depth[1:], strict=False):
                    assert b["pu"] == a["u"]
                top = srv.model.books["BTCUSDT"].top()
                last_ticker = tickers[-1]
                assert last_ticker["b"] == srv.binance.fmt["BTCUSDT"].px(top.bid_tick)
                assert last_ticker["a"] == srv.binance.fmt["BTCUSDT"].px(top.ask_tick)

    asyncio.run(main())


def test_subscribe_unsubscribe_list_and_property_acks() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=3, manual=True) as srv:
            async with connect(f"{srv.endpoints()['binance-usdm']['ws_market']}/ws", max_queue=None) as ws:
                await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["altusdt@aggTrade", "altusdt@trade"],
                                          "id": 1}))
                assert await _recv_json(ws) == {"result": None, "id": 1}
                await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["altusdt@trade"], "id": 312}))
                assert await _recv_json(ws) == {"result": None, "id": 312}
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))
                assert await _recv_json(ws) == {"result": ["altusdt@aggTrade"], "id": 3}
                await ws.send(json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 2}))
                assert await _recv_json(ws) == {"result": False, "id": 2}
                await ws.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}))
                assert await _recv_json(ws) == {"result": None, "id": 5}
                await ws.send("{not json")
                assert (await _recv_json(ws))["code"] == 3
                await ws.send(json.dumps({"method": "NOPE", "id": 9}))
                assert (await _recv_json(ws))["code"] == 2
                # Trades now arrive combined (SET_PROPERTY) and only for the remaining stream.
                srv.advance(200)
                msg = await _recv_json(ws)
                assert msg["stream"] == "altusdt@aggTrade"
                d = msg["data"]
                assert d["e"] == "aggTrade" and d["s"] == "ALTUSDT" and isinstance(d["m"], bool)

    asyncio.run(main())


def test_market_route_streams_and_misrouted_are_silent() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=4, rate=3000, manual=True) as srv:
            ep = srv.endpoints()["binance-usdm"]
            streams = "ethusdt@markPrice@1s/ethusdt@trade/ethusdt@depth@100ms"
            async with connect(f"{ep['ws_market']}/stream?streams={streams}", max_queue=None) as ws:
                srv.advance(150)  # 1.5 s of exchange time: at least one mark update
                kinds = set()
                with pytest.raises(asyncio.TimeoutError):
                    while True:
                        msg = await _recv_json(ws, timeout=0.3)
                        kinds.add(msg["stream"])
                        if msg["stream"].endswith("markPrice@1s"):
                            d = msg["data"]
                            assert d["e"] == "markPriceUpdate" and float(d["p"]) > 0 and d["T"] % 3_600_000 == 0
                assert kinds == {"ethusdt@markPrice@1s", "ethusdt@trade"}  # depth on /market: silent
                assert srv.stats()["misrouted_streams"] == 1

    asyncio.run(main())


def test_rest_endpoints_and_errors() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=5, manual=True) as srv:
            rest = srv.endpoints()["binance-usdm"]["rest"]
            status, body = await http_get(f"{rest}/fapi/v1/depth?symbol=NOPEUSDT&limit=100")
            assert (status, json.loads(body)) == (400, {"code": -1121, "msg": "Invalid symbol."})
            status, body = await http_get(f"{rest}/fapi/v1/depth?symbol=ALTUSDT&limit=7")
            assert status == 400 and json.loads(body)["code"] == -1130
            status, body = await http_get(f"{rest}/fapi/v1/depth?symbol=ALTUSDT&limit=5")
            snap = json.loads(body)
            assert status == 200 and len(snap["bids"]) == 5 and len(snap["asks"]) == 5
            assert snap["lastUpdateId"] == srv.model.books["ALTUSDT"].update_id
            assert float(snap["bids"][0][0]) < float(snap["asks"][0][0])
            status, body = await http_get(f"{rest}/fapi/v1/exchangeInfo")
            info = json.loads(body)
            alt = next(s for s in info["symbols"] if s["symbol"] == "ALTUSDT")
            price_filter = next(f for f in alt["filters"] if f["filterType"] == "PRICE_FILTER")
            assert price_filter["tickSize"] == "0.0001" and alt["contractType"] == "PERPETUAL"
            assert {s["symbol"] for s in info["symbols"]} == {"ALTUSDT", "BTCUSDT", "ETHUSDT"}
            status, body = await http_get(f"{rest}/fapi/v1/openInterest?symbol=BTCUSDT")
            oi = json.loads(body)
            assert status == 200 and oi["symbol"] == "BTCUSDT" and float(oi["openInterest"]) > 0
            status, body = await http_get(f"{rest}/fapi/v1/premiumIndex?symbol=BTCUSDT")
            assert status == 200 and "lastFundingRate" in json.loads(body)
            status, _ = await http_get(f"{rest}/fapi/v1/nothing")
            assert status == 404

    asyncio.run(main())


def test_messages_for_unsubscribed_symbols_are_not_sent() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=6, rate=3000, manual=True) as srv:
            url = f"{srv.endpoints()['binance-usdm']['ws_public']}/ws/ethusdt@depth@0ms"
            async with connect(url, max_queue=None) as ws:
                srv.advance(30)
                last_u = srv.model.books["ETHUSDT"].update_id
                msgs = await _drain(ws, lambda m: m["u"] >= last_u)
                assert {m["s"] for m in msgs} == {"ETHUSDT"}
                assert srv.stats()["data_messages_sent"] == len(msgs)

    asyncio.run(main())


def test_loads_unwraps_envelopes() -> None:
    assert loads('{"stream":"x","data":{"a":1}}') == {"a": 1}


def test_same_seed_same_wire_bytes() -> None:
    async def capture(seed: int) -> list[str]:
        async with SimulatorServer(seed=seed, rate=2000, manual=True, start_ns=1_767_225_600_000_000_000) as srv:
            url = f"{srv.endpoints()['binance-usdm']['ws_public']}/stream?streams=altusdt@depth@0ms/altusdt@bookTicker"
            async with connect(url, max_queue=None) as ws:
                srv.advance(30)
                last_u = srv.model.books["ALTUSDT"].update_id
                out = []
                while True:
                    raw = await asyncio.wait_for(ws.recv(), 3)
                    out.append(raw)
                    data = json.loads(raw)["data"]
                    if data["e"] == "depthUpdate" and data["u"] >= last_u:
                        return out

    a, b, c = asyncio.run(capture(8)), asyncio.run(capture(8)), asyncio.run(capture(9))
    assert a == b and a != c and len(a) > 30


def test_partial_depth_stream_is_a_top_n_snapshot() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=7, rate=2000, manual=True) as srv:
            url = f"{srv.endpoints()['binance-usdm']['ws_public']}/ws/ethusdt@depth5@100ms"
            async with connect(url, max_queue=None) as ws:
                srv.advance(25)
                msg = json.loads(await asyncio.wait_for(ws.recv(), 3))
                assert msg["e"] == "depthUpdate" and len(msg["b"]) == 5 and len(msg["a"]) == 5
                assert float(msg["b"][0][0]) < float(msg["a"][0][0])

    asyncio.run(main())


def test_live_clock_sync_with_rest_mid_stream_then_freeze_and_compare() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=12, rate=1500) as srv:
            base = srv.endpoints()["binance-usdm"]
            async with connect(f"{base['ws_public']}/stream?streams=altusdt@depth", max_queue=None) as ws:
                client = BinanceSyncBook()
                fetch = None
                t_end = asyncio.get_running_loop().time() + 1.5
                while asyncio.get_running_loop().time() < t_end:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 2))
                    client.on_event(msg["data"])
                    if fetch is None:
                        fetch = asyncio.ensure_future(http_get(f"{base['rest']}/fapi/v1/depth?symbol=ALTUSDT&limit=1000"))
                    elif fetch.done() and not client.synced:
                        assert client.on_snapshot(json.loads(fetch.result()[1]))
                await srv.pause()
                srv.flush()
                last_u = srv.model.books["ALTUSDT"].update_id
                while client.last_u != last_u:
                    client.on_event(json.loads(await asyncio.wait_for(ws.recv(), 2))["data"])
                assert client.synced and client.gaps == 0 and client.applied >= 3
                assert normalize(client.sides()[0]) == model_sides(srv, "ALTUSDT")[0]
                assert normalize(client.sides()[1]) == model_sides(srv, "ALTUSDT")[1]

    asyncio.run(main())
