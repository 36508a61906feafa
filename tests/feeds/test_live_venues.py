"""Live checks against the real venues (need internet; deselected by default: ``pytest -m live``).

Each connects to the configured endpoints for about 10 s and asserts that the book synced, is not
crossed, and that its top is close to the venue's own best bid/ask (bookTicker / tickers).
"""

from __future__ import annotations

import asyncio

import pytest

from app.config import load_config, venue_endpoints
from app.core.events import DEPTH_BBO_EVENT, KIND_MASK, TRADE_EVENT
from feeds.base import LIVE
from feeds.binance_usdm import BinanceUsdmFeed
from feeds.bybit_linear import BybitLinearFeed
from tests.feeds._helpers import TopCheckSink

pytestmark = pytest.mark.live


async def _run_for(feed, seconds: float) -> TopCheckSink:  # noqa: ANN001
    sink = TopCheckSink([])
    task = asyncio.create_task(feed.run(sink))
    await asyncio.sleep(seconds)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return sink


def _check(sink: TopCheckSink, feed, symbol: str) -> None:  # noqa: ANN001
    assert (symbol, LIVE, "") in sink.statuses, sink.statuses
    book = sink.books[symbol]
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is not None and ask is not None and bid[0] < ask[0]
    assert DEPTH_BBO_EVENT in sink.kinds()
    # our top and the venue's latest own top are within a few ticks (they are sampled at different times)
    venue_tops = [top for sym, _, top in sink.venue_top_seq if sym == symbol]
    assert venue_tops
    last = venue_tops[-1]
    assert abs(last[0] - bid[0]) < 200 and abs(last[2] - ask[0]) < 200
    counters = feed.counters()
    assert counters.messages > 50 and counters.malformed == 0


def test_binance_usdm_live() -> None:
    feed = BinanceUsdmFeed(["BTCUSDT", "ETHUSDT"], **venue_endpoints(load_config(), "binance-usdm"))
    sink = asyncio.run(_run_for(feed, 10.0))
    _check(sink, feed, "BTCUSDT")
    _check(sink, feed, "ETHUSDT")
    common, equal = sink.matches()
    assert common == 0 or equal >= 0.95 * common  # ids where depth u == bookTicker u


def test_bybit_linear_live() -> None:
    feed = BybitLinearFeed(["BTCUSDT", "SOLUSDT"], **venue_endpoints(load_config(), "bybit-linear"), depth=50)
    sink = asyncio.run(_run_for(feed, 10.0))
    _check(sink, feed, "BTCUSDT")
    _check(sink, feed, "SOLUSDT")
    assert TRADE_EVENT in sink.kinds() or len(sink.batches) > 100
    assert all(int(b["ev"][0]) & KIND_MASK != 0 for _, b, _ in sink.batches if len(b))
