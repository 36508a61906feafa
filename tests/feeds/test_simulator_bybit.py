"""The simulator speaks Bybit v5 linear: acks, pong, orderbook snapshot/delta with u+1, trades, tickers, REST."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from feeds.simulator.server import SimulatorServer
from feeds.simulator.testing import BybitBook, http_get, model_sides, normalize

pytestmark = pytest.mark.timeout(20)


async def _recv(ws, timeout: float = 3.0) -> dict:  # noqa: ANN001
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def _collect(ws, quiet: float = 0.3) -> list[dict]:  # noqa: ANN001
    """Everything that arrives until the socket is quiet for ``quiet`` seconds."""
    out = []
    while True:
        try:
            out.append(await _recv(ws, quiet))
        except TimeoutError:
            return out


@pytest.mark.parametrize(("depth", "coalesce"), [(50, True), (200, True), (1000, True), (50, False), (1000, False)])
def test_orderbook_snapshot_then_deltas_u_plus_one_and_book_equals_model(depth: int, coalesce: bool) -> None:
    async def main() -> None:
        async with SimulatorServer(seed=21, rate=3000, manual=True, coalesce=coalesce) as srv:
            async with connect(srv.endpoints()["bybit-linear"]["ws"], max_queue=None) as ws:
                await ws.send(json.dumps({"req_id": "r1", "op": "subscribe", "args": [f"orderbook.{depth}.ALTUSDT"]}))
                ack = await _recv(ws)
                assert ack["success"] is True and ack["op"] == "subscribe" and ack["req_id"] == "r1"
                assert ack["ret_msg"] == "" and ack["conn_id"]
                srv.advance(80)
                srv.flush()
                msgs = await _collect(ws)
                assert msgs[0]["type"] == "snapshot" and msgs[0]["topic"] == f"orderbook.{depth}.ALTUSDT"
                assert len(msgs) > 5 and all(m["type"] == "delta" for m in msgs[1:])
                book = BybitBook()
                for m in msgs:
                    assert set(m) == {"topic", "type", "ts", "data", "cts"}
                    book.on_message(m)
                assert book.gaps == 0
                assert [m["data"]["u"] for m in msgs] == list(range(msgs[0]["data"]["u"],
                                                                    msgs[0]["data"]["u"] + len(msgs)))
                mb, ma = model_sides(srv, "ALTUSDT", depth)
                bb, ba = book.sides()
                assert normalize(bb) == mb and normalize(ba) == ma
                assert len(bb) <= depth
                if not coalesce and depth == 1000:  # real-time whole-book view: one delta per model message
                    assert len(msgs) > 80 * 5  # ~18 ALTUSDT messages per 10 ms step at this rate
                    assert msgs[-1]["data"]["seq"] == srv.model.books["ALTUSDT"].update_id

    asyncio.run(main())


def test_level1_is_snapshot_only_and_500_is_rejected() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=22, rate=2000, manual=True) as srv:
            async with connect(srv.endpoints()["bybit-linear"]["ws"], max_queue=None) as ws:
                await ws.send(json.dumps({"op": "subscribe", "args": ["orderbook.500.ALTUSDT"]}))
                nack = await _recv(ws)
                assert nack["success"] is False and "orderbook.500.ALTUSDT" in nack["ret_msg"]
                await ws.send(json.dumps({"op": "subscribe", "args": ["orderbook.1.FOOUSDT"]}))
                assert (await _recv(ws))["success"] is False
                await ws.send(json.dumps({"op": "subscribe", "args": ["orderbook.1.ALTUSDT"]}))
                assert (await _recv(ws))["success"] is True
                await ws.send(json.dumps({"op": "subscribe", "args": ["orderbook.1.ALTUSDT"]}))
                dup = await _recv(ws)
                snap0 = dup if dup.get("topic") else await _recv(ws)
                srv.advance(50)
                msgs = [m for m in await _collect(ws) if "topic" in m]
                acks = [m for m in [dup] if "success" in m]
                assert not acks or acks[0]["success"] is False
                msgs = [snap0, *msgs]
                assert all(m["type"] == "snapshot" for m in msgs) and len(msgs) > 2
                assert all(len(m["data"]["b"]) == 1 and len(m["data"]["a"]) == 1 for m in msgs)
                top = srv.model.books["ALTUSDT"].top()
                assert msgs[-1]["data"]["b"][0][0] == srv.bybit.fmt["ALTUSDT"].px(top.bid_tick)
                assert list(msgs[-1])[:3] == ["topic", "ts", "type"]  # level 1: ts before type

    asyncio.run(main())


def test_ping_pong_unsubscribe_trades_tickers_and_liquidations() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=23, rate=3000, manual=True) as srv:
            async with connect(srv.endpoints()["bybit-linear"]["ws"], max_queue=None) as ws:
                await ws.send(json.dumps({"req_id": "100001", "op": "ping"}))
                pong = await _recv(ws)
                assert pong["success"] is True and pong["ret_msg"] == "pong" and pong["op"] == "ping"
                assert pong["req_id"] == "100001"
                topics = ["publicTrade.ALTUSDT", "tickers.ALTUSDT", "allLiquidation.ALTUSDT"]
                await ws.send(json.dumps({"op": "subscribe", "args": topics}))
                assert (await _recv(ws))["success"] is True
                first = await _recv(ws)
                assert first["topic"] == "tickers.ALTUSDT" and first["type"] == "snapshot"
                assert {"fundingRate", "nextFundingTime", "markPrice", "openInterest", "bid1Price"} <= set(first["data"])
                srv.advance(400)  # 4 s: trades, ticker deltas, probably a liquidation
                msgs = await _collect(ws)
                trades = [m for m in msgs if m["topic"] == "publicTrade.ALTUSDT"]
                deltas = [m for m in msgs if m["topic"] == "tickers.ALTUSDT"]
                assert trades and deltas
                t = trades[0]["data"][0]
                assert t["S"] in ("Buy", "Sell") and t["s"] == "ALTUSDT" and t["L"].endswith("Tick")
                assert all(m["type"] == "delta" and m["data"]["symbol"] == "ALTUSDT" for m in deltas)
                assert any("markPrice" in m["data"] for m in deltas)
                await ws.send(json.dumps({"op": "unsubscribe", "args": topics}))
                ack = await _recv(ws)
                while "success" not in ack:
                    ack = await _recv(ws)
                assert ack["success"] is True and ack["op"] == "unsubscribe"
                await _collect(ws, 0.1)
                srv.advance(100)
                assert await _collect(ws, 0.2) == []

    asyncio.run(main())


def test_rest_instruments_orderbook_and_errors() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=24, manual=True) as srv:
            rest = srv.endpoints()["bybit-linear"]["rest"]
            status, body = await http_get(f"{rest}/v5/market/instruments-info?category=linear&symbol=ALTUSDT")
            info = json.loads(body)
            assert status == 200 and info["retCode"] == 0
            (inst,) = info["result"]["list"]
            assert inst["priceFilter"]["tickSize"] == "0.0001" and inst["lotSizeFilter"]["qtyStep"] == "1"
            status, body = await http_get(f"{rest}/v5/market/orderbook?category=linear&symbol=ALTUSDT&limit=50")
            ob = json.loads(body)["result"]
            assert len(ob["b"]) == 50 and ob["u"] == srv.model.books["ALTUSDT"].update_id
            status, body = await http_get(f"{rest}/v5/market/orderbook?category=linear&symbol=NOPE&limit=5")
            assert json.loads(body)["retCode"] == 10001
            status, body = await http_get(f"{rest}/v5/market/instruments-info?category=linear&symbol=NOPE")
            assert json.loads(body)["result"]["list"] == []
            status, body = await http_get(f"{rest}/v5/market/tickers?category=linear&symbol=BTCUSDT")
            assert json.loads(body)["result"]["list"][0]["symbol"] == "BTCUSDT"

    asyncio.run(main())
