"""The real Binance captures rebuilt through our parsers + BinanceBookSync + a book: the top of our book
equals the venue's own bookTicker at every update id both streams carry."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from app.core.events import DEPTH_CLEAR_EVENT, GAP_EVENT, KIND_MASK
from app.core.instrument import Instrument
from app.paths import recorded
from feeds.base import LIVE, RESYNCING
from feeds.binance_usdm import BinanceUsdmProcessor, parse_exchange_info
from tests.feeds._helpers import TopCheckSink

BTC = Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001)
ETH = Instrument("binance-usdm", "ETHUSDT", 0.01, 0.001)


def hftbacktest_lines(path: Path) -> list[tuple[int, bytes]]:
    with gzip.open(path, "rb") as f:
        return [(int(ts), raw) for ts, raw in (line.rstrip(b"\n").split(b" ", 1) for line in f)]


def replay(lines: list[tuple[int, bytes]], instruments: list[Instrument]) -> tuple[BinanceUsdmProcessor, TopCheckSink]:
    sink = TopCheckSink(instruments)
    proc = BinanceUsdmProcessor(instruments, sink)
    for local_ns, raw in lines:
        proc.on_line(raw, local_ns)
    return proc, sink


@pytest.fixture(scope="module")
def btc_lines(btc_capture: Path) -> list[tuple[int, bytes]]:
    return hftbacktest_lines(btc_capture)


def test_must_hold_btcusdt_top_equals_book_ticker(btc_lines: list[tuple[int, bytes]]) -> None:
    proc, sink = replay(btc_lines, [BTC])
    assert proc.messages == 93_954
    assert proc.malformed == 0 and proc.resyncs == 0
    assert sink.statuses == [("BTCUSDT", LIVE, "")]
    common, equal = sink.matches()
    assert common == 629
    assert equal == 629  # price and size of both sides
    sync = proc.syncs["BTCUSDT"]
    assert sync.stale == 0 and sync.refetches == 0


def test_ethusdt_top_equals_book_ticker(eth_capture: Path) -> None:
    proc, sink = replay(hftbacktest_lines(eth_capture), [ETH])
    assert proc.messages == 74_655 and proc.malformed == 0 and proc.resyncs == 0
    common, equal = sink.matches()
    assert common > 300
    assert equal == common


def test_dropped_depth_message_in_real_data_is_detected(btc_lines: list[tuple[int, bytes]]) -> None:
    depth_at = [k for k, (_, raw) in enumerate(btc_lines) if b"@depth" in raw[:40]]
    victim = depth_at[len(depth_at) // 2]
    lines = btc_lines[:victim] + btc_lines[victim + 1 :]
    proc, sink = replay(lines, [BTC])
    assert proc.resyncs == 1
    assert [s for _, s, _ in sink.statuses] == [LIVE, RESYNCING]
    gap = [b for _, b, uid in sink.batches if uid is None and int(b["ev"][0]) & KIND_MASK == GAP_EVENT]
    assert len(gap) == 1 and int(gap[0]["ev"][1]) & KIND_MASK == DEPTH_CLEAR_EVENT
    assert proc.snapshots_wanted() == ["BTCUSDT"]
    # nothing after the gap reached the book: every id we checked is before the dropped message
    dropped_u = int(re.search(rb"\"u\":(\d+)", btc_lines[victim][1]).group(1))
    assert max(uid for _, uid in sink.book_top) < dropped_u
    common, equal = sink.matches()
    assert equal == common > 0


# --- cryptofeed 2021 (format B): one combined stream for 4 symbols + 4 REST snapshots -------------------

_RECV = re.compile(r"^(\d+\.\d+): (.*)$")
_HTTP = re.compile(r"^(\S+) -> (\d+\.\d+): (.*)$")


def cryptofeed_lines() -> tuple[list[tuple[int, str]], list[Instrument]]:
    ws = recorded("binance_usdm", "cryptofeed_BINANCE_FUTURES.ws.1.0").read_text().splitlines()
    http = recorded("binance_usdm", "cryptofeed_BINANCE_FUTURES.http.0.0").read_text().splitlines()
    info = recorded("binance_usdm", "cryptofeed_BINANCE_FUTURES.0").read_text().splitlines()
    events: list[tuple[int, str]] = []
    for line in ws:
        m = _RECV.match(line)
        if m:
            events.append((int(float(m.group(1)) * 1e9), m.group(2)))
    for line in http:
        m = _HTTP.match(line)
        if m:
            url = m.group(1)
            path = url.split("fapi.binance.com", 1)[1]
            body = m.group(3)
            events.append((int(float(m.group(2)) * 1e9), '{"rest":"' + path + '","data":' + body + "}"))
    events.sort(key=lambda e: e[0])  # stable: same-time frames keep file order
    exchange_info = next(ln for ln in info if "/exchangeInfo" in ln).split(": ", 1)[1]
    symbols = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]
    return events, [parse_exchange_info(exchange_info, s) for s in symbols]


def test_cryptofeed_four_symbols_top_equals_book_ticker() -> None:
    events, instruments = cryptofeed_lines()
    proc, sink = replay(events, instruments)
    assert proc.resyncs == 0
    assert proc.malformed == 67  # the @kline_1m frames we never subscribe to
    # CTKUSDT's 2021 book still held orders from before a tick change (0.00001 -> 0.001): left out
    assert set(proc.off_grid) == {"CTKUSDT"} and proc.off_grid["CTKUSDT"] >= 131
    assert {sym for sym, state, _ in sink.statuses if state == LIVE} == {i.symbol for i in instruments}
    per_symbol = {}
    for (sym, uid), top in sink.book_top.items():
        if (sym, uid) in sink.venue_top:
            hit = per_symbol.setdefault(sym, [0, 0])
            hit[0] += 1
            hit[1] += top == sink.venue_top[(sym, uid)]
    assert set(per_symbol) == {i.symbol for i in instruments}
    for sym, (common, equal) in per_symbol.items():
        assert common > 0 and equal == common, sym


def test_benchmark_sink_builds_the_same_book(btc_capture: Path, btc_lines: list[tuple[int, bytes]]) -> None:
    """The benchmark's apply_side fast path ends on the same book as plain apply."""
    from benchmarks.bench_feeds import run_ours

    _, messages, fast = run_ours(btc_capture)
    _, plain = replay(btc_lines, [BTC])
    assert messages == 93_954
    ref = plain.books["BTCUSDT"]
    assert fast.book.best_bid() == ref.best_bid() and fast.book.best_ask() == ref.best_ask()
    for side in (1, -1):
        ticks, qty = fast.book.levels(side, 200)
        ref_ticks, ref_qty = ref.levels(side, 200)
        assert ticks.tolist() == ref_ticks.tolist() and qty.tolist() == ref_qty.tolist()
