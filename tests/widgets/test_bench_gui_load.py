"""The GUI benchmark's load and bookkeeping: the exchange process it drives and the wire counter."""

from __future__ import annotations

import json

from benchmarks.bench_gui import PROCESS_VENUE, _ProcessLoad, _WireCounter


def _depth(u: int) -> str:
    return json.dumps({"stream": "altusdt@depth@0ms", "data": {"e": "depthUpdate", "s": "ALTUSDT", "U": u, "u": u,
                                                               "pu": u - 1, "b": [], "a": []}})


def test_wire_counter_counts_frames_rest_lines_and_the_diffs_a_snapshot_makes_obsolete():
    wire = _WireCounter()
    wire("binance-usdm", 1_000_000_000, '{"rest":"/fapi/v1/exchangeInfo","data":{}}')  # not through the processor
    for u in (10, 11, 12, 13):
        wire("binance-usdm", 1_000_000_000, _depth(u))
    wire("binance-usdm", 1_500_000_000, '{"rest":"/fapi/v1/depth?symbol=ALTUSDT&limit=1000","data":'
                                         '{"lastUpdateId":12,"bids":[],"asks":[]}}')
    wire("binance-usdm", 2_100_000_000, _depth(14))
    wire("binance-usdm", 2_200_000_000, '{"rest":"/fapi/v1/openInterest?symbol=ALTUSDT","data":{}}')
    assert wire.frames == 5 and wire.rest == 2
    assert wire.presnapshot_dropped == 2  # u=10 and u=11 are older than lastUpdateId 12
    assert wire.per_second == {1: 4, 2: 1}


def test_exchange_process_obeys_rate_pause_stats_and_quits():
    load = _ProcessLoad(200.0)
    try:
        assert set(load.endpoints) == {"rest", "ws_public", "ws_market"}
        assert load.endpoints["ws_public"].startswith("ws://127.0.0.1:")
        load.set_rate(500.0)  # answered later: the next command reads that answer first
        stats = load.command("stats")
        assert stats["connections"] == 0 and stats["queued"] == 0
        assert load.command("pause") == {"paused": True}
        assert "error" in load.command("no-such-command")
    finally:
        load.close()
    assert load.proc.returncode == 0
    assert PROCESS_VENUE == "binance-usdm"
