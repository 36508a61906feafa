"""verify's checks on small hand-made captures: Bybit u gaps, orderbook.1 at equal seq, crossed books."""

from __future__ import annotations

import json
from pathlib import Path

from feeds.capture.verify import verify_capture


def _ob(depth: int, kind: str, u: int, seq: int, bids: list, asks: list, ts: int) -> str:
    return json.dumps({"topic": f"orderbook.{depth}.XRPUSDT", "type": kind, "ts": ts,
                       "data": {"s": "XRPUSDT", "b": bids, "a": asks, "u": u, "seq": seq}, "cts": ts - 1})


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bybit.data"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bybit_level1_is_compared_with_the_deeper_book_at_equal_seq(tmp_path: Path) -> None:
    lines = [
        _ob(200, "snapshot", 10, 100, [["1.0000", "5"], ["0.9999", "7"]], [["1.0002", "4"]], 1_000),
        _ob(1, "snapshot", 77, 100, [["1.0000", "5"]], [["1.0002", "4"]], 1_001),
        _ob(200, "delta", 11, 105, [["1.0000", "0"]], [["1.0001", "2"]], 1_100),
        _ob(1, "snapshot", 78, 105, [["0.9999", "7"]], [["1.0001", "2"]], 1_101),
        _ob(1, "snapshot", 79, 106, [["0.9999", "7"]], [["1.0001", "3"]], 1_150),  # no depth-200 message at seq 106
        _ob(200, "delta", 12, 107, [], [["1.0001", "9"]], 1_200),
        _ob(1, "snapshot", 80, 107, [["0.9999", "7"]], [["1.0001", "8"]], 1_201),  # wrong size: a defect
    ]
    report = verify_capture(_write(tmp_path, lines))
    level1 = next(b for b in report.books if "orderbook.1" in b.name)
    assert level1.top_compared == 3 and level1.top_mismatches == 1
    assert not report.ok and "mismatch" in " ".join(report.defects)


def test_bybit_u_gap_is_a_defect_and_a_snapshot_resyncs(tmp_path: Path) -> None:
    lines = [
        _ob(200, "snapshot", 10, 100, [["1.0000", "5"]], [["1.0002", "4"]], 1_000),
        _ob(200, "delta", 11, 101, [["1.0000", "6"]], [], 1_100),
        _ob(200, "delta", 13, 103, [["1.0000", "7"]], [], 1_200),  # u 12 lost
        _ob(200, "delta", 14, 104, [["1.0000", "8"]], [], 1_300),  # ignored until the next snapshot
        _ob(200, "snapshot", 20, 110, [["1.0000", "9"]], [["1.0002", "4"]], 1_400),
        _ob(200, "delta", 21, 111, [["1.0001", "1"]], [], 1_500),
    ]
    report = verify_capture(_write(tmp_path, lines))
    book = report.books[0]
    assert len(book.gaps) == 1 and "11 -> 13" in book.gaps[0]
    assert book.applied == 4 and book.dropped_before_sync == 1
    assert not report.ok


def test_a_crossed_book_is_reported_with_the_update(tmp_path: Path) -> None:
    lines = [
        _ob(200, "snapshot", 10, 100, [["1.0000", "5"]], [["1.0002", "4"]], 1_000),
        _ob(200, "delta", 11, 101, [["1.0003", "1"]], [], 1_100),
    ]
    report = verify_capture(_write(tmp_path, lines))
    assert report.books[0].crossed == 1 and "u=11" in report.books[0].crossed_examples[0]
    assert "crossed book" in report.text()


def test_tardis_csv_is_checked_for_crossed_books(tmp_path: Path) -> None:
    head = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
    rows = [
        "bybit,XRPUSDT,1000,1001,true,bid,1.0000,5",
        "bybit,XRPUSDT,1000,1001,true,ask,1.0002,4",
        "bybit,XRPUSDT,2000,2001,false,bid,1.0001,3",
    ]
    good = tmp_path / "bybit_incremental_book_L2_2024-12-01_XRPUSDT.csv"
    good.write_text(head + "\n".join(rows) + "\n")
    report = verify_capture(good)
    assert report.venue == "bybit-linear" and report.ok and report.books[0].applied == 3
    good.write_text(head + "\n".join([*rows, "bybit,XRPUSDT,3000,3001,false,bid,1.0005,1"]) + "\n")
    report = verify_capture(good)
    assert report.books[0].crossed == 1 and not report.ok
