"""BinanceBookSync (protocols.md A.4) on synthetic diffs, and the processor's error handling."""

from __future__ import annotations

import json

import numpy as np

from app.core.events import DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT, GAP_EVENT, KIND_MASK
from app.core.instrument import Instrument
from feeds.base import LIVE, RESYNCING, SYNCING
from feeds.binance_usdm import (
    BinanceBookSync,
    BinanceUsdmProcessor,
    parse_depth_snapshot,
    parse_depth_update,
)
from feeds.common import rest_line
from tests.feeds._helpers import RecordingSink

INST = Instrument("binance-usdm", "TESTUSDT", 0.1, 0.001)


def diff_json(first: int, final: int, prev: int, bids=(), asks=(), symbol: str = "TESTUSDT") -> str:  # noqa: ANN001
    data = {"e": "depthUpdate", "E": 1000 + final, "T": 999 + final, "s": symbol, "U": first, "u": final,
            "pu": prev, "b": [list(x) for x in bids], "a": [list(x) for x in asks]}  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": data})


def diff(first: int, final: int, prev: int, bids=(), asks=()):  # noqa: ANN001, ANN201
    return parse_depth_update(diff_json(first, final, prev, bids, asks), INST, final)


def snap_json(last: int, bids=(("100.0", "1"),), asks=(("100.1", "1"),)) -> str:  # noqa: ANN001
    return json.dumps({"lastUpdateId": last, "E": 1, "T": 1, "bids": [list(x) for x in bids],
                       "asks": [list(x) for x in asks]})  # fmt: skip


def snap(last: int):  # noqa: ANN201
    return parse_depth_snapshot(snap_json(last), INST, 0)


def kinds(batch: np.ndarray) -> list[int]:
    return [int(k) for k in batch["ev"] & KIND_MASK]


def test_buffers_until_snapshot_then_drops_old_and_bridges() -> None:
    s = BinanceBookSync(INST)
    assert s.state == SYNCING and s.needs_snapshot
    assert s.on_diff(diff(90, 95, 89)) == []
    assert s.on_diff(diff(96, 100, 95)) == []
    assert s.on_diff(diff(101, 110, 100)) == []
    assert s.on_diff(diff(111, 120, 110)) == []
    out = s.on_snapshot(snap(105))
    # snapshot, then 101..110 (U <= 105 <= u), then 111..120; 90..95 and 96..100 dropped (u < 105)
    assert [uid for _, uid in out] == [105, 110, 120]
    assert kinds(out[0].batch)[0] == DEPTH_CLEAR_EVENT and kinds(out[0].batch)[1] == DEPTH_SNAPSHOT_EVENT
    assert s.state == LIVE and not s.needs_snapshot and s.update_id == 120
    assert [uid for _, uid in s.on_diff(diff(121, 130, 120))] == [130]


def test_event_ending_exactly_at_last_update_id_is_kept() -> None:
    s = BinanceBookSync(INST)
    s.on_diff(diff(101, 105, 100))
    out = s.on_snapshot(snap(105))
    assert [uid for _, uid in out] == [105, 105]


def test_pu_gap_clears_and_resyncs() -> None:
    s = BinanceBookSync(INST)
    s.on_diff(diff(101, 110, 100))
    s.on_snapshot(snap(105))
    out = s.on_diff(diff(121, 130, 115))  # pu 115 != previous u 110
    assert len(out) == 1 and out[0].update_id is None
    assert kinds(out[0].batch) == [GAP_EVENT, DEPTH_CLEAR_EVENT]
    assert s.state == RESYNCING and s.needs_snapshot and s.resyncs == 1
    assert "pu=115" in s.reason
    assert s.on_diff(diff(131, 140, 130)) == []  # buffered again
    out = s.on_snapshot(snap(135))
    assert [uid for _, uid in out] == [135, 140] and s.state == LIVE


def test_stale_snapshot_asks_for_another() -> None:
    s = BinanceBookSync(INST)
    s.on_diff(diff(200, 210, 199))
    assert s.on_snapshot(snap(150)) == []  # first buffered U=200 > lastUpdateId=150
    assert s.refetches == 1 and s.needs_snapshot and s.state == SYNCING
    assert "older than buffered" in s.reason
    out = s.on_snapshot(snap(205))
    assert [uid for _, uid in out] == [205, 210] and s.state == LIVE


def test_snapshot_with_empty_buffer_is_held_until_a_diff_bridges_it() -> None:
    s = BinanceBookSync(INST)
    assert s.on_snapshot(snap(105)) == []
    assert s.state == SYNCING and not s.needs_snapshot and "waiting for a diff" in s.reason
    assert s.on_diff(diff(90, 100, 89)) == [] and s.stale == 1  # older than the snapshot: dropped
    out = s.on_diff(diff(104, 108, 103))  # U <= 105 <= u
    assert [uid for _, uid in out] == [105, 108] and s.state == LIVE
    assert kinds(out[0].batch)[0] == DEPTH_CLEAR_EVENT
    assert [uid for _, uid in s.on_diff(diff(109, 112, 108))] == [112]


def test_held_snapshot_older_than_the_first_diff_is_fetched_again() -> None:
    s = BinanceBookSync(INST)
    s.on_snapshot(snap(105))
    assert s.on_diff(diff(110, 112, 109)) == []  # U=110 > 105: the snapshot was too old; nothing shown
    assert s.needs_snapshot and s.refetches == 1 and s.resyncs == 0 and s.state == SYNCING
    assert [uid for _, uid in s.on_snapshot(snap(111))] == [111, 112]


def test_duplicate_diff_is_dropped_not_a_gap() -> None:
    s = BinanceBookSync(INST)
    s.on_diff(diff(99, 110, 98))
    s.on_snapshot(snap(100))
    s.on_diff(diff(111, 120, 110))
    assert s.on_diff(diff(111, 120, 110)) == []
    assert s.stale == 1 and s.resyncs == 0 and s.state == LIVE


def test_unsolicited_snapshot_is_ignored() -> None:
    s = BinanceBookSync(INST)
    s.on_diff(diff(95, 100, 94))
    s.on_snapshot(snap(100))
    assert s.on_snapshot(snap(90)) == [] and s.update_id == 100


def test_buffer_is_bounded() -> None:
    s = BinanceBookSync(INST, max_buffer=3)
    for k in range(10):
        s.on_diff(diff(10 * k + 1, 10 * k + 10, 10 * k))
    assert s.on_snapshot(snap(5)) == []  # oldest kept U=71 > 5: too old, ask again
    assert [uid for _, uid in s.on_snapshot(snap(75))] == [75, 80, 90, 100]


def test_reset_marks_a_gap_only_after_a_book_was_delivered() -> None:
    s = BinanceBookSync(INST)
    assert s.reset("connected") == [] and s.state == SYNCING
    s.on_diff(diff(95, 100, 94))
    s.on_snapshot(snap(100))
    out = s.reset("connection lost", 5, 6)
    assert kinds(out[0].batch) == [GAP_EVENT, DEPTH_CLEAR_EVENT]
    assert int(out[0].batch["local_ts"][0]) == 6
    assert s.state == RESYNCING and s.needs_snapshot and s.resyncs == 1


# --- processor --------------------------------------------------------------------------------------


def test_processor_reports_status_and_counts_malformed() -> None:
    sink = RecordingSink()
    p = BinanceUsdmProcessor([INST], sink)
    p.on_line(diff_json(101, 110, 100, bids=[("100.0", "2")]), 1)
    assert p.snapshots_wanted() == ["TESTUSDT"]
    p.on_rest("/fapi/v1/depth?symbol=TESTUSDT&limit=1000", snap_json(105), 2)
    assert sink.statuses == [("TESTUSDT", LIVE, "")]
    assert [uid for _, _, uid in sink.batches] == [105, 110]
    bad = [
        b"{not json",
        b"[1,2]",
        b'{"stream":"testusdt@kline_1m","data":{"e":"kline","E":1,"s":"TESTUSDT","k":{}}}',
        diff_json(111, 120, 110, symbol="OTHERUSDT"),
        diff_json(111, 120, 110, bids=[("100.0", "-1")]),  # negative size
        b'{"hello":1}',
        b'{"rest":"/fapi/v1/unknown","data":{}}',
        b'{"stream":"testusdt@trade","data":{"e":"trade","E":1,"s":"TESTUSDT"}}',
    ]
    for k, raw in enumerate(bad):
        p.on_line(raw, 10 + k)
    assert p.malformed == len(bad)
    assert p.messages == 1 + 1 + len(bad)
    assert p.syncs["TESTUSDT"].state == LIVE  # bad frames never broke the book
    p.on_line(b'{"result":null,"id":1}', 50)  # subscribe ack: fine
    assert p.malformed == len(bad)
    p.on_line(diff_json(111, 120, 110, bids=[("100.0", "3")]), 60)
    assert sink.batches[-1][2] == 120


def test_processor_recorded_rest_lines_and_bare_snapshot() -> None:
    sink = RecordingSink()
    p = BinanceUsdmProcessor([INST], sink)
    p.on_line(diff_json(101, 110, 100), 1)
    p.on_line(snap_json(105), 2)  # the hftbacktest collector's bare body
    assert p.syncs["TESTUSDT"].state == LIVE
    p.on_line(rest_line("/fapi/v1/openInterest?symbol=TESTUSDT",
                        '{"openInterest":"7.5","symbol":"TESTUSDT","time":3}'), 3)  # fmt: skip
    assert float(sink.batches[-1][1]["qty"][0]) == 7.5
    p.on_line(rest_line("/fapi/v1/depth?symbol=TESTUSDT&limit=1000", snap_json(300)), 4)  # unsolicited
    assert p.syncs["TESTUSDT"].update_id == 110
    assert p.malformed == 0


def test_processor_gap_then_resync_statuses() -> None:
    sink = RecordingSink()
    p = BinanceUsdmProcessor([INST], sink)
    p.on_line(diff_json(95, 105, 94), 1)
    p.on_line(snap_json(100), 2)
    p.on_line(diff_json(120, 130, 119), 3)  # gap
    assert [s for _, s, _ in sink.statuses] == [LIVE, RESYNCING]
    assert p.resyncs == 1 and p.snapshots_wanted() == ["TESTUSDT"]
    p.on_line(diff_json(131, 140, 130), 4)
    p.on_rest("/fapi/v1/depth?symbol=TESTUSDT", snap_json(135), 5)
    assert [s for _, s, _ in sink.statuses] == [LIVE, RESYNCING, LIVE]


def test_off_grid_levels_are_left_out_and_counted() -> None:
    sink = RecordingSink()
    p = BinanceUsdmProcessor([INST], sink)
    p.on_line(snap_json(100, bids=(("100.0", "1"), ("99.95", "4")), asks=(("100.1", "1"),)), 1)
    assert p.off_grid == {"TESTUSDT": 1}
    p.on_line(diff_json(99, 110, 98, bids=[("100.03", "1"), ("100.0", "2")]), 2)
    assert sink.batches[-2][1]["ival"].tolist() == [0, 1000, 1001]  # clear row, then on-grid levels
    assert p.off_grid == {"TESTUSDT": 2} and p.malformed == 0
    assert sink.batches[-1][2] == 110 and sink.batches[-1][1]["qty"].tolist() == [2.0]


def test_bridges_tells_which_buffer_a_snapshot_fits() -> None:
    s = BinanceBookSync(INST)
    s.on_diff(diff(101, 110, 100))
    s.on_diff(diff(111, 120, 110))
    assert s.bridges(105) and s.bridges(120) and not s.bridges(100) and not s.bridges(121)
    s.on_snapshot(snap(105))
    assert not s.bridges(115)  # synced: wants no snapshot
