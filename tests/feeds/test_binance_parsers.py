"""Binance USDⓈ-M pure parsers against copy-exact samples (protocols.md) and the real exchangeInfo."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.events import (
    BUY_EVENT,
    DEPTH_BBO_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_DTYPE,
    FUNDING_EVENT,
    KIND_MASK,
    LIQUIDATION_EVENT,
    MARK_PRICE_EVENT,
    OPEN_INTEREST_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
)
from app.core.instrument import Instrument, OffGridPrice
from app.paths import recorded
from feeds.binance_usdm import (
    STREAM_PARSERS,
    parse_agg_trade,
    parse_book_ticker,
    parse_depth_snapshot,
    parse_depth_update,
    parse_exchange_info,
    parse_force_order,
    parse_mark_price,
    parse_open_interest,
    parse_trade,
)
from feeds.common import FeedError, rest_line

BTC = Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001)
LOCAL = 1_723_161_292_100_000_000

DEPTH = (
    '{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161292018,"T":1723161292007,"s":"BTCUSDT",'
    '"U":5123110691500,"u":5123110692581,"pu":5123110691288,"b":[["5000.00","2.301"],["33000.00","5.203"],'
    '["61763.10","0.092"],["61807.70","0.075"]],"a":[["61858.10","14.960"],["61858.40","0.030"]]}}'
)
TRADE = (
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT",'
    '"t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}'
)
BOOK_TICKER = (
    '{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20",'
    '"B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}'
)
AGG_TRADE = (
    '{"stream":"ctkusdt@aggTrade","data":{"e":"aggTrade","E":1626992741575,"a":16599292,"s":"CTKUSDT",'
    '"p":"1.01100","q":"10","f":23961322,"l":23961322,"T":1626992741421,"m":false}}'
)
MARK = (
    '{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091",'
    '"P":"11784.25641265","r":"0.00038167","T":1562306400000}'
)
FORCE = (
    '{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014",'
    '"p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}'
)


def kinds(batch: np.ndarray) -> list[int]:
    return [int(k) for k in batch["ev"] & KIND_MASK]


def test_depth_update_rows() -> None:
    diff = parse_depth_update(DEPTH, BTC, LOCAL)
    assert (diff.first_id, diff.final_id, diff.prev_final_id) == (5123110691500, 5123110692581, 5123110691288)
    b = diff.batch
    assert b.dtype == EVENT_DTYPE and len(b) == 6
    assert kinds(b) == [DEPTH_EVENT] * 6
    assert list(b["ev"] & BUY_EVENT > 0) == [True] * 4 + [False] * 2
    assert list(b["ev"] & SELL_EVENT > 0) == [False] * 4 + [True] * 2
    assert b["ival"].tolist() == [50000, 330000, 617631, 618077, 618581, 618584]
    assert b["qty"].tolist() == [2.301, 5.203, 0.092, 0.075, 14.96, 0.03]
    assert (b["order_id"] == 5123110692581).all()
    assert (b["exch_ts"] == 1723161292007 * 1_000_000).all()  # T (transaction time), ns
    assert (b["local_ts"] == LOCAL).all()
    assert b["px"][2] == pytest.approx(61763.1)


def test_depth_update_accepts_bare_payload_and_bytes() -> None:
    bare = DEPTH.split('"data":', 1)[1][:-1]
    a = parse_depth_update(bare.encode(), BTC, LOCAL).batch
    b = parse_depth_update(DEPTH, BTC, LOCAL).batch
    assert a.tobytes() == b.tobytes()


def test_zero_quantity_is_a_delete_row() -> None:
    raw = DEPTH.replace('["61858.40","0.030"]', '["61858.40","0.000"]')
    assert parse_depth_update(raw, BTC, LOCAL).batch["qty"][-1] == 0.0


def test_snapshot_is_clear_then_levels() -> None:
    raw = (
        '{"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,"bids":[["61800.20","2.909"],'
        '["61800.10","0.696"]],"asks":[["61800.30","3.330"]]}'
    )
    snap = parse_depth_snapshot(raw, BTC, LOCAL)
    assert snap.last_update_id == 5123107852948
    assert kinds(snap.batch) == [DEPTH_CLEAR_EVENT] + [DEPTH_SNAPSHOT_EVENT] * 3
    assert int(snap.batch["ev"][0]) & (BUY_EVENT | SELL_EVENT) == 0  # clears both sides
    assert snap.batch["ival"][1:].tolist() == [618002, 618001, 618003]


def test_trade_side_rule() -> None:
    row = parse_trade(TRADE, BTC, LOCAL)
    assert kinds(row) == [TRADE_EVENT]
    assert int(row["ev"][0]) & BUY_EVENT  # m=false -> aggressive buy
    assert (int(row["ival"][0]), float(row["qty"][0]), int(row["order_id"][0])) == (618003, 0.006, 5266583935)
    sell = parse_trade(TRADE.replace('"m":false', '"m":true'), BTC, LOCAL)
    assert int(sell["ev"][0]) & SELL_EVENT and not int(sell["ev"][0]) & BUY_EVENT


def test_agg_trade() -> None:
    ctk = Instrument("binance-usdm", "CTKUSDT", 0.001, 1.0)
    row = parse_agg_trade(AGG_TRADE, ctk, LOCAL)
    assert kinds(row) == [TRADE_EVENT] and int(row["ev"][0]) & BUY_EVENT
    assert (int(row["ival"][0]), float(row["qty"][0]), int(row["order_id"][0])) == (1011, 10.0, 16599292)
    assert int(row["exch_ts"][0]) == 1626992741421 * 1_000_000


def test_book_ticker_is_two_bbo_rows() -> None:
    b = parse_book_ticker(BOOK_TICKER, BTC, LOCAL)
    assert kinds(b) == [DEPTH_BBO_EVENT, DEPTH_BBO_EVENT]
    assert int(b["ev"][0]) & BUY_EVENT and int(b["ev"][1]) & SELL_EVENT
    assert b["ival"].tolist() == [618002, 618003]
    assert b["qty"].tolist() == [2.507, 2.51]
    assert (b["order_id"] == 5123107839020).all()
    assert b.flags.writeable


def test_mark_price_and_funding() -> None:
    b = parse_mark_price(MARK, BTC, LOCAL)
    assert kinds(b) == [MARK_PRICE_EVENT, FUNDING_EVENT]
    assert b["px"][0] == pytest.approx(11794.15) and b["fval"][0] == pytest.approx(11784.62659091)
    assert b["fval"][1] == pytest.approx(0.00038167)
    assert int(b["ival"][1]) == 1562306400000 * 1_000_000
    no_rate = parse_mark_price(MARK.replace('"r":"0.00038167"', '"r":""'), BTC, LOCAL)
    assert kinds(no_rate) == [MARK_PRICE_EVENT]


def test_force_order_sell_means_long_liquidated() -> None:
    b = parse_force_order(FORCE, BTC, LOCAL)
    assert kinds(b) == [LIQUIDATION_EVENT]
    assert int(b["ev"][0]) & SELL_EVENT
    assert (float(b["px"][0]), float(b["qty"][0]), int(b["ival"][0])) == (9910.0, 0.014, 99100)
    buy = parse_force_order(FORCE.replace('"S":"SELL"', '"S":"BUY"'), BTC, LOCAL)
    assert int(buy["ev"][0]) & BUY_EVENT


def test_open_interest() -> None:
    b = parse_open_interest('{"openInterest":"10659.509","symbol":"BTCUSDT","time":1589437530011}', BTC, LOCAL)
    assert kinds(b) == [OPEN_INTEREST_EVENT]
    assert float(b["qty"][0]) == 10659.509 and int(b["exch_ts"][0]) == 1589437530011 * 1_000_000


def test_off_grid_price_raises() -> None:
    with pytest.raises(OffGridPrice):
        parse_trade(TRADE.replace("61800.30", "61800.33"), BTC, LOCAL)


def test_wrong_kind_raises() -> None:
    with pytest.raises(ValueError, match="expected a Trade"):
        parse_trade(BOOK_TICKER, BTC, LOCAL)


def test_dispatch_table_names_every_stream() -> None:
    assert set(STREAM_PARSERS) == {"depth", "bookTicker", "trade", "aggTrade", "markPrice", "forceOrder"}


def _cryptofeed_exchange_info() -> str:
    text = recorded("binance_usdm", "cryptofeed_BINANCE_FUTURES.0").read_text()
    line = next(ln for ln in text.splitlines() if "/fapi/v1/exchangeInfo" in ln)
    return line.split(": ", 1)[1]


def test_exchange_info_real_response() -> None:
    body = _cryptofeed_exchange_info()
    sushi = parse_exchange_info(body, "SUSHIUSDT")
    assert (sushi.venue, sushi.symbol, sushi.tick_size, sushi.lot_size) == ("binance-usdm", "SUSHIUSDT", 0.001, 1.0)
    btc = parse_exchange_info(body, "BTCUSDT")
    assert (btc.tick_size, btc.lot_size) == (0.01, 0.001)  # 2021 values


def test_unknown_symbol_is_a_feed_error() -> None:
    with pytest.raises(FeedError, match="unknown symbol NOPEUSDT") as info:
        parse_exchange_info(_cryptofeed_exchange_info(), "NOPEUSDT")
    assert "\n" not in str(info.value)
    with pytest.raises(FeedError, match="not the expected JSON"):
        parse_exchange_info("<html>", "BTCUSDT")
    with pytest.raises(FeedError, match=r"BTCSTUSDT is not trading \(status PENDING_TRADING\)"):
        parse_exchange_info(_cryptofeed_exchange_info(), "BTCSTUSDT")


def test_rest_line_embeds_body_verbatim() -> None:
    body = '{"openInterest":"1.5","symbol":"BTCUSDT","time":1}'
    line = rest_line("/fapi/v1/openInterest?symbol=BTCUSDT", body)
    assert line == '{"rest":"/fapi/v1/openInterest?symbol=BTCUSDT","data":' + body + "}"


def test_decode_levels_flat_and_strict() -> None:
    from feeds.common import decode_levels

    assert decode_levels(b'[["61800.20","2.909"],["5000.00","0.000"]]') == [61800.2, 2.909, 5000.0, 0.0]
    assert decode_levels(b"[]") == []
    for bad in (b'[["abc","1"]]', b'[["NaN","1"]]', b'[["1","2","3"]]', b'[["1"]]', b'[["1","2"],["3"]]'):
        with pytest.raises(ValueError):
            decode_levels(bad)


def test_bad_level_text_is_malformed_not_fatal() -> None:
    from feeds.binance_usdm import BinanceUsdmProcessor
    from tests.feeds._helpers import RecordingSink

    p = BinanceUsdmProcessor([BTC], RecordingSink())
    p.on_line(DEPTH.replace('"0.092"', '"zero"'), LOCAL)
    assert p.malformed == 1


def test_processor_fast_paths_equal_the_pure_parsers() -> None:
    from feeds.binance_usdm import BinanceUsdmProcessor
    from tests.feeds._helpers import RecordingSink

    sink = RecordingSink()
    p = BinanceUsdmProcessor([BTC], sink)
    for raw in (BOOK_TICKER, TRADE, TRADE.replace('"m":false', '"m":true')):
        p.on_line(raw, LOCAL)
    got = [b.tobytes() for _, b, _ in sink.batches]
    want = [parse_book_ticker(BOOK_TICKER, BTC, LOCAL).tobytes(), parse_trade(TRADE, BTC, LOCAL).tobytes(),
            parse_trade(TRADE.replace('"m":false', '"m":true'), BTC, LOCAL).tobytes()]  # fmt: skip
    assert got == want
    assert all(b.flags.writeable for _, b, _ in sink.batches)


def test_parse_rest_line_round_trip() -> None:
    from feeds.common import parse_rest_line

    body = '{"lastUpdateId":1,"bids":[],"asks":[]}'
    assert parse_rest_line(rest_line("/fapi/v1/depth?symbol=X&limit=5", body)) == (
        "/fapi/v1/depth?symbol=X&limit=5", body.encode())  # fmt: skip
    assert parse_rest_line(BOOK_TICKER) is None
    assert parse_rest_line("not json") is None


def test_processor_dispatches_every_stream() -> None:
    from feeds.binance_usdm import BinanceUsdmProcessor
    from tests.feeds._helpers import RecordingSink

    sink = RecordingSink()
    p = BinanceUsdmProcessor([BTC, Instrument("binance-usdm", "CTKUSDT", 0.001, 1.0)], sink)
    frames = [
        BOOK_TICKER, TRADE, AGG_TRADE,
        '{"stream":"btcusdt@markPrice@1s","data":' + MARK + "}",
        '{"stream":"btcusdt@forceOrder","data":' + FORCE + "}",
        MARK,  # a bare payload (raw /ws/ mode)
    ]  # fmt: skip
    for raw in frames:
        p.on_line(raw, LOCAL)
    assert p.malformed == 0
    assert [sym for sym, _, _ in sink.batches] == ["BTCUSDT", "BTCUSDT", "CTKUSDT", "BTCUSDT", "BTCUSDT", "BTCUSDT"]
    assert sink.kinds() == [DEPTH_BBO_EVENT, DEPTH_BBO_EVENT, TRADE_EVENT, TRADE_EVENT, MARK_PRICE_EVENT,
                            FUNDING_EVENT, LIQUIDATION_EVENT, MARK_PRICE_EVENT, FUNDING_EVENT]  # fmt: skip
    assert all(uid is None for _, _, uid in sink.batches)
