"""Bybit v5 linear pure parsers and ticker merging against copy-exact samples (protocols.md B)."""

from __future__ import annotations

import json

import pytest

from app.core.events import (
    BUY_EVENT,
    DEPTH_BBO_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    FUNDING_EVENT,
    KIND_MASK,
    LIQUIDATION_EVENT,
    MARK_PRICE_EVENT,
    OPEN_INTEREST_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
)
from app.core.instrument import Instrument
from app.paths import recorded
from feeds.bybit_linear import (
    TOPIC_PARSERS,
    TickerState,
    parse_instruments_info,
    parse_liquidation,
    parse_orderbook,
    parse_public_trade,
    topic_symbol,
)
from feeds.common import FeedError

BTC = Instrument("bybit-linear", "BTCUSDT", 0.1, 0.001)
ROSE = Instrument("bybit-linear", "ROSEUSDT", 0.00001, 1.0)
LOCAL = 1_786_310_818_400_000_000

DELTA = (
    '{"topic":"orderbook.200.BTCUSDT","type":"delta","ts":1786310818328,"data":{"s":"BTCUSDT","b":[["65103.90","0.094"],'
    '["65103.80","0.039"],["65092.40","0"],["65092.10","0.015"]],"a":[["65116.80","0"],["65117.00","0.002"],'
    '["65119.40","0.028"],["65133.50","2.301"],["65133.60","0.001"],["65146.70","0"]],"u":15076955,'
    '"seq":753843918854},"cts":1786310818327}'
)
L1 = (
    '{"topic":"orderbook.1.BANDUSDT","type":"snapshot","ts":1749833474773,"data":{"s":"BANDUSDT",'
    '"b":[["0.6131","17.9"]],"a":[["0.6134","35.4"]],"u":24042997,"seq":209972815373},"cts":1749833474768}'
)
TRADE = (
    '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1786310819681,"data":[{"T":1786310819680,"s":"BTCUSDT",'
    '"S":"Sell","v":"0.004","p":"65114.20","L":"MinusTick","i":"a9188a0a-82bc-50de-be60-03eedbe3cdd7","BT":false,'
    '"RPI":false,"seq":753843954913}]}'
)
LIQ = (
    '{"topic":"allLiquidation.ROSEUSDT","type":"snapshot","ts":1739502303204,"data":[{"T":1739502302929,'
    '"s":"ROSEUSDT","S":"Sell","v":"20000","p":"0.04499"}]}'
)
TICKER_SNAPSHOT = (
    '{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT","tickDirection":"ZeroPlusTick",'
    '"price24hPcnt":"0.001624","lastPrice":"65114.30","prevPrice24h":"65008.70","highPrice24h":"65282.30",'
    '"lowPrice24h":"64694.40","prevPrice1h":"65083.80","markPrice":"65117.44","indexPrice":"65137.76",'
    '"openInterest":"59891.732","openInterestValue":"3899996265.01","turnover24h":"1142118412.9021",'
    '"volume24h":"17573.9120","fundingIntervalHour":"8","fundingCap":"0.005","singleOpenInterest":"29945.866",'
    '"singleOpenInterestValue":"1949998132.50","nextFundingTime":"1786320000000","fundingRate":"0.0001",'
    '"bid1Price":"65114.20","bid1Size":"5.954","ask1Price":"65114.30","ask1Size":"10.470","preOpenPrice":"",'
    '"preQty":"","curPreListingPhase":""},"cs":753843900397,"ts":1786310817583}'
)
TICKER_DELTA_1 = (
    '{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Price":"65114.20","bid1Size":"6.054",'
    '"ask1Price":"65114.30","ask1Size":"10.486"},"cs":753843907770,"ts":1786310817883}'
)
TICKER_DELTA_2 = (
    '{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","markPrice":"65117.43",'
    '"openInterestValue":"3899995666.09","ask1Price":"65114.30","ask1Size":"10.488",'
    '"singleOpenInterestValue":"1949997833.04"},"cs":753843915209,"ts":1786310818183}'
)


def kinds(batch) -> list[int]:  # noqa: ANN001
    return [int(k) for k in batch["ev"] & KIND_MASK]


def test_orderbook_delta() -> None:
    upd = parse_orderbook(DELTA, BTC, LOCAL)
    assert not upd.is_snapshot and upd.update_id == 15076955 and upd.seq == 753843918854
    b = upd.batch
    assert kinds(b) == [DEPTH_EVENT] * 10
    assert [bool(e & BUY_EVENT) for e in b["ev"]] == [True] * 4 + [False] * 6
    assert b["ival"][:2].tolist() == [651039, 651038]
    assert b["qty"].tolist()[2] == 0.0 and b["qty"].tolist()[4] == 0.0  # "0" deletes
    assert (b["exch_ts"] == 1786310818327 * 1_000_000).all()  # cts, the matching-engine time
    assert (b["order_id"] == 15076955).all()


def test_orderbook_level1_snapshot() -> None:
    band = Instrument("bybit-linear", "BANDUSDT", 0.0001, 0.1)
    upd = parse_orderbook(L1, band, LOCAL)
    assert upd.is_snapshot and upd.update_id == 24042997
    assert kinds(upd.batch) == [DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT, DEPTH_SNAPSHOT_EVENT]
    assert upd.batch["ival"][1:].tolist() == [6131, 6134]


def test_orderbook_bad_type_raises() -> None:
    with pytest.raises(ValueError, match="orderbook type"):
        parse_orderbook(DELTA.replace('"delta"', '"weird"'), BTC, LOCAL)


def test_public_trade_taker_side() -> None:
    b = parse_public_trade(TRADE, BTC, LOCAL)
    assert kinds(b) == [TRADE_EVENT]
    assert int(b["ev"][0]) & SELL_EVENT and not int(b["ev"][0]) & BUY_EVENT
    assert (int(b["ival"][0]), float(b["qty"][0])) == (651142, 0.004)
    assert int(b["order_id"][0]) == 0xA9188A0A82BC50DE
    assert int(b["exch_ts"][0]) == 1786310819680 * 1_000_000


def test_public_trade_many() -> None:
    item = json.loads(TRADE)["data"][0]
    buy = dict(item, S="Buy", p="65114.30", i="not-a-uuid")
    raw = json.dumps({"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1, "data": [item, buy]})
    b = parse_public_trade(raw, BTC, LOCAL)
    assert [bool(e & BUY_EVENT) for e in b["ev"]] == [False, True]
    assert int(b["order_id"][1]) == 0


def test_liquidation_array_and_object() -> None:
    b = parse_liquidation(LIQ, ROSE, LOCAL)
    assert kinds(b) == [LIQUIDATION_EVENT]
    assert int(b["ev"][0]) & BUY_EVENT  # S=Sell: a short was liquidated, the venue buys
    assert (float(b["px"][0]), float(b["qty"][0]), int(b["ival"][0])) == (0.04499, 20000.0, 4499)
    obj = LIQ.replace('"data":[{', '"data":{').replace("}]}", "}}").replace('"S":"Sell"', '"S":"Buy"')
    b2 = parse_liquidation(obj, ROSE, LOCAL)
    assert len(b2) == 1 and int(b2["ev"][0]) & SELL_EVENT  # S=Buy: a long was liquidated


def test_ticker_snapshot_then_deltas_merge() -> None:
    t = TickerState(BTC)
    b = t.update(TICKER_SNAPSHOT, LOCAL)
    assert kinds(b) == [MARK_PRICE_EVENT, FUNDING_EVENT, OPEN_INTEREST_EVENT, DEPTH_BBO_EVENT, DEPTH_BBO_EVENT]
    assert (b["px"][0], b["fval"][0]) == (pytest.approx(65117.44), pytest.approx(65137.76))
    assert b["fval"][1] == pytest.approx(0.0001) and int(b["ival"][1]) == 1786320000000 * 1_000_000
    assert float(b["qty"][2]) == 59891.732 and b["px"][2] == pytest.approx(3899996265.01)
    assert b["ival"][3:].tolist() == [651142, 651143]
    d1 = t.update(TICKER_DELTA_1, LOCAL)
    assert kinds(d1) == [DEPTH_BBO_EVENT, DEPTH_BBO_EVENT] and d1["qty"].tolist() == [6.054, 10.486]
    d2 = t.update(TICKER_DELTA_2, LOCAL)
    # mark changed: mark row with the merged (unchanged) index; bid side carried over from the last delta
    assert kinds(d2) == [MARK_PRICE_EVENT, DEPTH_BBO_EVENT, DEPTH_BBO_EVENT]
    assert d2["px"][0] == pytest.approx(65117.43) and d2["fval"][0] == pytest.approx(65137.76)
    assert d2["qty"].tolist()[1:] == [6.054, 10.488]
    assert t.fields["fundingRate"] == "0.0001" and t.fields["openInterestValue"] == "3899995666.09"


def test_ticker_delta_with_nothing_we_use_is_empty() -> None:
    t = TickerState(BTC)
    t.update(TICKER_SNAPSHOT, LOCAL)
    raw = '{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","volume24h":"1"},"cs":1,"ts":2}'
    assert len(t.update(raw, LOCAL)) == 0


def _v3_instruments_body() -> str:
    for line in recorded("bybit_v5_agpl", "cryptofeed_v3_BYBIT.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["t"] == "http" and "category=linear" in rec["url"]:
            return rec["data"]
    raise AssertionError("no linear instruments-info in the capture")


def test_instruments_info_real_response() -> None:
    body = _v3_instruments_body()
    btc = parse_instruments_info(body, "BTCUSDT")
    assert (btc.venue, btc.tick_size, btc.lot_size) == ("bybit-linear", 0.1, 0.001)
    doge = parse_instruments_info(body, "DOGEUSDT")
    assert (doge.tick_size, doge.lot_size) == (0.00001, 1.0)


def test_instruments_info_errors() -> None:
    with pytest.raises(FeedError, match="unknown symbol NOPEUSDT"):
        parse_instruments_info(_v3_instruments_body(), "NOPEUSDT")
    with pytest.raises(FeedError, match="failed: params error"):
        parse_instruments_info('{"retCode":10001,"retMsg":"params error","result":{}}', "X")
    with pytest.raises(FeedError, match="not the expected JSON"):
        parse_instruments_info("[]", "X")
    closed = '{"retCode":0,"result":{"list":[{"symbol":"X","status":"Closed","priceFilter":{"tickSize":"1"}}]}}'
    with pytest.raises(FeedError, match=r"X is not trading \(status Closed\)"):
        parse_instruments_info(closed, "X")


def test_dispatch_and_topic_symbol() -> None:
    assert set(TOPIC_PARSERS) == {"orderbook", "publicTrade", "allLiquidation", "tickers"}
    assert topic_symbol("orderbook.200.BTCUSDT") == "BTCUSDT"
    assert topic_symbol("tickers.1000PEPEUSDT") == "1000PEPEUSDT"


def test_processor_dispatches_every_topic() -> None:
    from feeds.bybit_linear import BybitLinearProcessor
    from tests.feeds._helpers import RecordingSink

    sink = RecordingSink()
    p = BybitLinearProcessor([BTC, ROSE], sink)
    snapshot = DELTA.replace('"type":"delta"', '"type":"snapshot"')
    for raw in (snapshot, TRADE, LIQ, TICKER_SNAPSHOT, TICKER_DELTA_1):
        p.on_line(raw, LOCAL)
    assert p.malformed == 0
    assert [sym for sym, _, _ in sink.batches] == ["BTCUSDT", "BTCUSDT", "ROSEUSDT", "BTCUSDT", "BTCUSDT"]
    assert sink.batches[0][2] == 15076955 and all(uid is None for _, _, uid in sink.batches[1:])
    assert kinds(sink.batches[2][1]) == [LIQUIDATION_EVENT]
