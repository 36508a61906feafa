"""``BinanceUsdmProcessor.on_lines`` (bulk decode) makes exactly the sink calls ``on_line`` makes per frame."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from app.core.instrument import Instrument
from feeds.binance_usdm import BinanceUsdmProcessor

BTC = Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001)


class Recorder:
    """Every sink call, batches as bytes (so views and fresh arrays compare by content)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_batch(self, symbol: str, batch, update_id: int | None) -> None:  # noqa: ANN001
        self.calls.append(("batch", symbol, batch.dtype.str, batch.tobytes(), update_id))

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        self.calls.append(("status", symbol, state, reason))

    def on_instrument(self, instrument: Instrument) -> None:
        self.calls.append(("instrument", instrument))

    def on_raw(self, local_ns: int, raw: str) -> None:
        pass


def per_line(lines: list[tuple[int, bytes]], instruments: list[Instrument]) -> tuple[BinanceUsdmProcessor, Recorder]:
    sink = Recorder()
    proc = BinanceUsdmProcessor(instruments, sink)
    for ts, raw in lines:
        proc.on_line(raw, ts)
    return proc, sink


def bulk(lines: list[tuple[int, bytes]], instruments: list[Instrument], chunk: int = 10_000
         ) -> tuple[BinanceUsdmProcessor, Recorder]:
    sink = Recorder()
    proc = BinanceUsdmProcessor(instruments, sink)
    for i in range(0, len(lines), chunk):
        part = lines[i:i + chunk]
        proc.on_lines([raw for _, raw in part], [ts for ts, _ in part])
    return proc, sink


@pytest.fixture(scope="module")
def btc_lines(btc_capture: Path) -> list[tuple[int, bytes]]:
    with gzip.open(btc_capture, "rb") as f:
        return [(int(ts), raw) for ts, raw in (line.rstrip(b"\n").split(b" ", 1) for line in f)]


def test_bulk_equals_per_line_on_the_real_capture(btc_lines: list[tuple[int, bytes]]) -> None:
    a_proc, a = per_line(btc_lines, [BTC])
    b_proc, b = bulk(btc_lines, [BTC])
    assert len(a.calls) > 90_000
    assert b.calls == a.calls
    assert (b_proc.messages, b_proc.malformed, b_proc.resyncs) == (a_proc.messages, a_proc.malformed, 0)


def test_bulk_takes_text_frames_too(btc_lines: list[tuple[int, bytes]]) -> None:
    head = btc_lines[:3000]
    _, a = per_line(head, [BTC])
    sink = Recorder()
    BinanceUsdmProcessor([BTC], sink).on_lines([raw.decode() for _, raw in head], [ts for ts, _ in head])
    assert sink.calls == a.calls


def test_bulk_handles_garbage_off_grid_and_unknown_symbols_like_per_line(btc_lines: list[tuple[int, bytes]]) -> None:
    """Bad frames inside a run: counted and skipped exactly as one by one, the rest delivered."""
    head = list(btc_lines[:2000])
    quote = next(i for i, (_, r) in enumerate(head) if b"bookTicker" in r[:40])
    trade = next(i for i, (_, r) in enumerate(head) if b"@trade" in r[:40])
    ts = head[quote][0]
    bad = [
        b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"BTCUSDT","b":"61800.25",'
        b'"B":"1","a":"61800.30","A":"1","T":1723161256313,"E":1723161256313}}',  # bid off the grid
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT",'
        b'"t":5,"p":"61800.33","q":"0.006","X":"MARKET","m":false}}',  # trade off the grid
        b'{"stream":"ethusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"XYZUSDT","b":"1.0",'
        b'"B":"1","a":"1.1","A":"1","T":1723161256313,"E":1723161256313}}',  # not subscribed
        b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker"',  # cut
        b'{"stream":"x","data":{"e":"bookTicker"}},{"stream":"x"}',  # two objects on one line
        b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"BTCUSDT","b":"NaN",'
        b'"B":"1","a":"61800.30","A":"1","T":1723161256313,"E":1723161256313}}',
        b"not json at all",
    ]
    head.insert(trade + 40, (ts, head[trade][1]))  # a duplicate trade is data, not garbage
    for k, raw in enumerate(bad):
        head.insert(quote + 1 + 3 * k, (ts, raw))
    a_proc, a = per_line(head, [BTC])
    for chunk in (7, 512, 100_000):
        b_proc, b = bulk(head, [BTC], chunk)
        assert b.calls == a.calls
        assert (b_proc.messages, b_proc.malformed) == (a_proc.messages, a_proc.malformed)
    assert a_proc.malformed == len(bad)


def test_bulk_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="receive times"):
        BinanceUsdmProcessor([BTC], Recorder()).on_lines([b"{}"], [])
