"""Readers: every recorded format becomes the same RawRecord stream; bad input is a clear error."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from app.paths import recorded
from feeds.capture.readers import (
    BINANCE_USDM,
    BYBIT_LINEAR,
    FORMAT_BYBIT_ARCHIVE,
    FORMAT_CRYPTOFEED_V1,
    FORMAT_CRYPTOFEED_V3,
    FORMAT_HFTBACKTEST,
    FORMAT_TARDIS,
    CaptureError,
    open_capture,
)


def test_hftbacktest_file_reads_every_line_and_finds_the_rest_snapshot(btc_capture: Path) -> None:
    reader = open_capture(btc_capture)
    assert reader.format == FORMAT_HFTBACKTEST and reader.venue == BINANCE_USDM
    records = list(reader)
    assert len(records) == 93_954 and reader.stats.garbage == 0
    rest = [r for r in records if r.channel.startswith("rest:")]
    assert len(rest) == 1 and rest[0].channel == "rest:/fapi/v1/depth"
    assert '"lastUpdateId":5123107852948' in rest[0].raw
    assert records[0].local_ns == 1723161255030314667
    assert all(a.local_ns <= b.local_ns for a, b in zip(records, records[1:], strict=False))


def test_cryptofeed_v1_merges_the_http_siblings_by_time() -> None:
    reader = open_capture(recorded("binance_usdm", "cryptofeed_BINANCE_FUTURES.ws.1.0"))
    assert reader.format == FORMAT_CRYPTOFEED_V1 and reader.venue == BINANCE_USDM
    records = list(reader)
    kinds = [r.channel.split(":", 1)[0] for r in records]
    assert kinds.count("ws") == 1535 and kinds.count("open") == 1 and kinds.count("rest") == 5
    snaps = [r for r in records if "/fapi/v1/depth?symbol=" in r.channel]
    assert [r.channel.split("symbol=")[1].split("&")[0] for r in snaps] == [
        "SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]
    assert records[0].channel.endswith("/fapi/v1/exchangeInfo")  # recorded first, merged first
    assert all(a.local_ns <= b.local_ns for a, b in zip(records, records[1:], strict=False))


def test_cryptofeed_v3_keeps_linear_and_spot_connections_apart() -> None:
    reader = open_capture(recorded("bybit_v5_agpl", "cryptofeed_v3_BYBIT.jsonl"))
    assert reader.format == FORMAT_CRYPTOFEED_V3 and reader.venue == BYBIT_LINEAR
    records = list(reader)
    linear = [r for r in records if r.channel == "ws:wss://stream.bybit.com/v5/public/linear"]
    spot = [r for r in records if r.channel == "ws:wss://stream.bybit.com/v5/public/spot"]
    assert len(linear) + len(spot) == 3227 and len(spot) == 681
    assert reader.stats.sent == 24 and reader.header is not None


def test_bybit_archive_uses_message_time() -> None:
    reader = open_capture(recorded("bybit_linear", "nautilus_2024-12-01_XRPUSDT_ob500.data"))
    assert reader.format == FORMAT_BYBIT_ARCHIVE and reader.venue == BYBIT_LINEAR
    records = list(reader)
    assert len(records) == 50 and records[0].local_ns == 1733011200691 * 1_000_000


def test_garbage_lines_are_skipped_and_counted(tmp_path: Path, btc_capture: Path) -> None:
    lines = gzip.open(btc_capture, "rt").read().splitlines()[:200]
    lines[50] = "this is not a record"
    lines[120] = "17231612 {broken"
    path = tmp_path / "dirty.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    reader = open_capture(path)
    assert len(list(reader)) == 198
    assert reader.stats.garbage == 2 and reader.stats.garbage_samples[0][0] == 51


def test_truncated_last_line_is_ignored_and_reported(tmp_path: Path, btc_capture: Path) -> None:
    text = gzip.open(btc_capture, "rt").read(200_000)
    path = tmp_path / "cut.txt"
    path.write_text(text)  # the cut falls inside a line
    reader = open_capture(path)
    records = list(reader)
    assert reader.stats.truncated_last_line
    assert len(records) == text.count("\n")


def test_gzip_stream_without_end_marker_reads_up_to_the_cut(tmp_path: Path, btc_capture: Path) -> None:
    data = btc_capture.read_bytes()[:500_000]
    path = tmp_path / "cut.gz"
    path.write_bytes(data)
    reader = open_capture(path)
    records = list(reader)
    assert reader.stats.truncated_stream and len(records) > 1000
    assert all(r.raw.endswith("}") for r in records)


def test_tardis_csv_pairs_book_and_trades(tmp_path: Path) -> None:
    book = tmp_path / "binance-futures_incremental_book_L2_2024-08-08_BTCUSDT.csv"
    trades = tmp_path / "binance-futures_trades_2024-08-08_BTCUSDT.csv"
    book.write_text(
        "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
        "binance-futures,BTCUSDT,1723161256000000,1723161256001000,true,bid,61800.2,2.5\n"
        "binance-futures,BTCUSDT,1723161256000000,1723161256001000,true,ask,61800.3,1.0\n"
        "binance-futures,BTCUSDT,1723161257000000,1723161257001000,false,ask,61800.3,0\n")
    trades.write_text(
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "binance-futures,BTCUSDT,1723161256500000,1723161256501000,77,buy,61800.3,0.5\n")
    reader = open_capture(book)
    assert reader.format == FORMAT_TARDIS and reader.venue == BINANCE_USDM
    assert [r.channel for r in reader] == ["tardis:book", "tardis:book", "tardis:trade", "tardis:book"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"hello world\nthis is text\n", "not a capture"), (b"\x00\x01\x02binary", "not a capture"),
     (b"\n\n\n", "no lines")],
)
def test_not_a_capture_is_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match=message) as info:
        open_capture(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_wrong_venue(tmp_path: Path, btc_capture: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        open_capture(tmp_path / "nope.gz")
    with pytest.raises(CaptureError, match="wrong --venue"):
        open_capture(btc_capture, venue=BYBIT_LINEAR)
    with pytest.raises(CaptureError, match="unknown venue"):
        open_capture(btc_capture, venue="kraken")
    assert open_capture(btc_capture, venue=BINANCE_USDM).venue == BINANCE_USDM
