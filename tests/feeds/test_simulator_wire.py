"""Exact wire text of each message kind, field by field in the venues' key order (protocols.md)."""

from __future__ import annotations

import json

from feeds.simulator.binance import BinanceVenue
from feeds.simulator.bybit import BybitVenue
from feeds.simulator.market import (
    ASK,
    BID,
    DEFAULT_SYMBOLS,
    BookChange,
    Liquidation,
    MarketModel,
    MarkUpdate,
    Top,
    TradeBurst,
)

T_NS = 1_767_225_600_123_000_000  # 2026-01-01 00:00:00.123
T_MS = T_NS // 1_000_000


class _Sink:
    combined = True
    closed = False
    conn_id = "c1"
    route = "test"

    def __init__(self) -> None:
        self.out: list[str] = []
        self.streams: list[str] = []

    def push(self, message: str) -> None:
        self.out.append(message)

    reply = push


def _binance(streams: list[str]) -> tuple[BinanceVenue, _Sink]:
    venue = BinanceVenue(MarketModel(DEFAULT_SYMBOLS, seed=1), DEFAULT_SYMBOLS)
    sink = _Sink()
    for s in streams:
        venue.subs[s] = {sink}  # type: ignore[arg-type]
    return venue, sink


def test_binance_depth_update_and_book_ticker_text() -> None:
    venue, sink = _binance(["btcusdt@depth@0ms", "btcusdt@bookTicker"])
    ev = BookChange("BTCUSDT", T_NS, 101, 103, [(650001, 2301), (650000, 0)], [(650003, 14960)],
                    Top(650001, 2301, 650003, 14960))
    venue.on_events([ev], T_NS)
    depth, ticker = (json.loads(m) for m in sink.out)
    assert depth == {"stream": "btcusdt@depth@0ms", "data": {
        "e": "depthUpdate", "E": T_MS + 1, "T": T_MS, "s": "BTCUSDT", "U": 101, "u": 103, "pu": 100,
        "b": [["65000.1", "2.301"], ["65000.0", "0.000"]], "a": [["65000.3", "14.960"]]}}
    assert list(depth["data"]) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]
    assert ticker["data"] == {"e": "bookTicker", "u": 103, "s": "BTCUSDT", "b": "65000.1", "B": "2.301",
                              "a": "65000.3", "A": "14.960", "T": T_MS, "E": T_MS + 1}


def test_binance_trades_side_flag_mark_and_liquidation_text() -> None:
    venue, sink = _binance(["altusdt@trade", "altusdt@aggTrade", "altusdt@markPrice@1s", "altusdt@forceOrder"])
    sell = TradeBurst("ALTUSDT", T_NS, ASK, [(4320, 500), (4319, 20)], 777)
    mark = MarkUpdate("ALTUSDT", T_NS, 0.4321, 0.43205, 0.00025, 1_767_254_400_000, 48_000_000.0)
    liq = Liquidation("ALTUSDT", T_NS, ASK, 4318, 1234)
    venue.on_events([sell, mark, liq], T_NS)
    msgs = [json.loads(m)["data"] for m in sink.out]
    trades = [m for m in msgs if m["e"] == "trade"]
    aggs = [m for m in msgs if m["e"] == "aggTrade"]
    assert [(t["t"], t["p"], t["q"], t["m"]) for t in trades] == [(777, "0.4320", "500", True), (778, "0.4319", "20", True)]
    assert list(trades[0]) == ["e", "E", "T", "s", "t", "p", "q", "X", "m"] and trades[0]["X"] == "MARKET"
    assert list(aggs[0]) == ["e", "E", "a", "s", "p", "q", "f", "l", "T", "m"] and aggs[0]["m"] is True
    (mp,) = [m for m in msgs if m["e"] == "markPriceUpdate"]
    assert mp == {"e": "markPriceUpdate", "E": T_MS, "s": "ALTUSDT", "p": "0.43210000", "i": "0.43205000",
                  "P": "0.43205000", "r": "0.00025000", "T": 1_767_254_400_000}
    (fo,) = [m for m in msgs if m["e"] == "forceOrder"]
    assert fo["o"]["S"] == "SELL" and fo["o"]["p"] == "0.4318" and fo["o"]["q"] == "1234"  # a long liquidated
    buy = TradeBurst("ALTUSDT", T_NS, BID, [(4322, 5)], 900)
    sink.out.clear()
    venue.on_events([buy], T_NS)
    assert all(json.loads(m)["data"]["m"] is False for m in sink.out)


def test_bybit_trade_liquidation_and_ticker_delta_text() -> None:
    model = MarketModel(DEFAULT_SYMBOLS, seed=1, start_ns=T_NS)
    venue = BybitVenue(model, DEFAULT_SYMBOLS)
    sink = _Sink()
    for topic in ("publicTrade.ALTUSDT", "allLiquidation.ALTUSDT", "tickers.ALTUSDT"):
        venue.on_text(sink, json.dumps({"op": "subscribe", "args": [topic]}), T_NS)  # type: ignore[arg-type]
    acks = [json.loads(m) for m in sink.out if '"op":"subscribe"' in m]
    assert [a["success"] for a in acks] == [True, True, True]
    assert list(acks[0]) == ["success", "ret_msg", "conn_id", "req_id", "op"]
    sink.out.clear()
    venue.on_events([TradeBurst("ALTUSDT", T_NS, ASK, [(4320, 500)], 42),
                     Liquidation("ALTUSDT", T_NS, ASK, 4318, 1234),
                     MarkUpdate("ALTUSDT", T_NS, 0.4321, 0.4320, 0.0003, 1_767_254_400_000, 48_000_100.0)],
                    T_NS + 200_000_000)
    msgs = [json.loads(m) for m in sink.out]
    (trade,) = [m for m in msgs if m["topic"] == "publicTrade.ALTUSDT"]
    assert list(trade) == ["topic", "type", "ts", "data"] and trade["type"] == "snapshot"
    t = trade["data"][0]
    assert list(t) == ["T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq"]
    assert (t["S"], t["v"], t["p"], t["T"]) == ("Sell", "500", "0.4320", T_MS)
    (liq,) = [m for m in msgs if m["topic"] == "allLiquidation.ALTUSDT"]
    assert liq["data"] == [{"T": T_MS, "s": "ALTUSDT", "S": "Buy", "v": "1234", "p": "0.4318"}]  # Buy = long liq
    (delta,) = [m for m in msgs if m["topic"] == "tickers.ALTUSDT"]
    assert delta["type"] == "delta" and list(delta) == ["topic", "type", "data", "cs", "ts"]
    assert delta["data"]["symbol"] == "ALTUSDT" and delta["data"]["fundingRate"] == "0.000300"
    assert delta["data"]["lastPrice"] == "0.4320" and "volume24h" not in delta["data"]  # only what changed


def test_bybit_delta_deletes_with_a_bare_zero_and_snapshot_is_sorted() -> None:
    model = MarketModel(DEFAULT_SYMBOLS, seed=2, start_ns=T_NS, rate=3000)
    venue = BybitVenue(model, DEFAULT_SYMBOLS)
    sink = _Sink()
    venue.on_text(sink, '{"op":"subscribe","args":["orderbook.200.BTCUSDT"]}', T_NS)  # type: ignore[arg-type]
    for _ in range(30):
        venue.on_events(model.step(10_000_000), model.now_ns)
    msgs = [json.loads(m) for m in sink.out if '"topic"' in m]
    snap = msgs[0]["data"]
    assert [float(p) for p, _ in snap["b"]] == sorted((float(p) for p, _ in snap["b"]), reverse=True)
    assert [float(p) for p, _ in snap["a"]] == sorted(float(p) for p, _ in snap["a"])
    sizes = [q for m in msgs[1:] for side in ("b", "a") for _, q in m["data"][side]]
    assert "0" in sizes and "0.000" not in sizes
    assert all(list(m) == ["topic", "type", "ts", "data", "cts"] for m in msgs)
