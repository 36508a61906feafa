"""``depthdesk replay`` end to end: real files to the end, windows, bad input, and the record round trip."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import pytest

from app.cli import main
from app.commands.record import attach_recorder
from app.commands.replay import parse_time
from app.engine import Engine
from app.paths import recorded
from feeds.capture.replay import ReplayFeed
from feeds.capture.writer import CaptureWriter

REAL = [
    ("binance_usdm", "hftbacktest_usdm_ethusdt_20240808.gz", None),
    ("binance_usdm", "cryptofeed_BINANCE_FUTURES.ws.1.0", None),
    ("bybit_linear", "nautilus_2024-12-01_XRPUSDT_ob500.data", 50),
    ("bybit_linear", "cryptofeed_pr1085_BYBIT.ws.1.0", None),
    ("bybit_v5_agpl", "cryptofeed_v3_BYBIT.jsonl", None),
]


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize(("folder", "name", "tops"), REAL)
def test_replay_max_json_runs_every_real_file_to_the_end(folder: str, name: str, tops: int | None,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(recorded(folder, name)), "--max", "--json"]) == 0
    lines = _lines(capsys.readouterr().out)
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["malformed"] == 0 and summary["resyncs"] == 0
    top = [ln for ln in lines if ln["type"] == "top"]
    assert top and (tops is None or len(top) == tops)
    assert all(t["bid_px"] is None or t["ask_px"] is None or t["bid_px"] < t["ask_px"] for t in top)
    stopped = [ln for ln in lines if ln["type"] == "status" and ln["state"] == "stopped"]
    assert {s["symbol"] for s in stopped} == set(summary["sources"][0]["symbols"])


def test_btc_runs_to_the_end_and_tops_match_the_venues_book_ticker(
        btc_capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(btc_capture), "--max", "--json"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert lines[-1]["type"] == "summary" and lines[-1]["messages"] == 93_954 and lines[-1]["malformed"] == 0
    assert lines[-2] == {"type": "status", "venue": "binance-usdm", "symbol": "BTCUSDT", "state": "stopped",
                         "reason": "end of capture"}
    tops = {t["update_id"]: t for t in lines if t["type"] == "top"}
    assert len(tops) == 6548
    matched = 0
    with gzip.open(btc_capture, "rt") as f:
        for line in f:
            if "@bookTicker" not in line[:60]:
                continue
            d = json.loads(line.split(" ", 1)[1])["data"]
            t = tops.get(d["u"])
            if t is not None:
                matched += 1
                assert (t["bid_px"], t["bid_qty"], t["ask_px"], t["ask_qty"]) == (
                    float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]))
    assert matched == 629  # the same count verify compares: every bookTicker at an applied id


def test_from_to_window_in_seconds_after_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = recorded("bybit_v5_agpl", "cryptofeed_v3_BYBIT.jsonl")
    assert main(["replay", str(path), "--max", "--json", "--from", "20", "--to", "+30",
                 "--cache-dir", str(tmp_path / "c")]) == 0
    lines = _lines(capsys.readouterr().out)
    local = [ln["local_ts"] for ln in lines if ln["type"] == "top"]
    first = next(iter(ReplayFeed(path).reader)).local_ns
    start, end = first + 20_000_000_000, first + 30_000_000_000
    # the seek's keyframe/catch-up tops carry their rows' times (up to one keyframe interval before)
    assert local and min(local) >= start - 2_000_000_000 and max(local) <= end
    played = [t for t in local if t >= start]
    assert len(played) > 100 and len(local) - len(played) <= 8
    assert (tmp_path / "c" / "meta.json").exists()


def test_parse_time_forms() -> None:
    first = 1_723_161_255_000_000_000
    assert parse_time("90", first) == first + 90_000_000_000
    assert parse_time("+1.5", first) == first + 1_500_000_000
    assert parse_time("1723161300", first) == 1_723_161_300_000_000_000
    assert parse_time("1723161300000", first) == 1_723_161_300_000_000_000
    assert parse_time("2024-08-08T23:55:00", first) == 1_723_161_300_000_000_000


XRP = ("bybit_linear", "nautilus_2024-12-01_XRPUSDT_ob500.data")
SUSHI = ("binance_usdm", "cryptofeed_BINANCE_FUTURES.ws.1.0")


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"", ["--max"], "empty file"),
        (b"hello\nworld\n", ["--max"], "not a capture"),
        (SUSHI, ["--max", "--venue", "bybit-linear"], "wrong --venue"),
        (XRP, ["--speed", "5000"], "--speed"),
        (XRP, ["--max", "--from", "yesterday"], "cannot read time"),
        (XRP, ["--max", "--tick-size", "-1"], "--tick-size"),
        (XRP, ["--max", "--symbol", "BTCUSDT"], "not in this capture"),
        (("okx", "cryptofeed_OKX.ws.1.0"), ["--max"], "cannot be replayed"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, content: bytes | tuple[str, str], args: list[str],
                                      message: str, capsys: pytest.CaptureFixture[str]) -> None:
    if isinstance(content, tuple):
        path = recorded(*content)
    else:
        path = tmp_path / "x.gz"
        path.write_bytes(content)
    assert main(["replay", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_garbage_lines_are_skipped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = recorded("bybit_linear", "nautilus_2024-12-01_XRPUSDT_ob500.data").read_text().splitlines()
    path = tmp_path / "dirty.data"
    path.write_text("\n".join(src[:20] + ["<<garbage>>", "{not json"] + src[20:]) + "\n")
    assert main(["replay", str(path), "--max", "--json"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert lines[-1]["malformed"] == 2 and len([ln for ln in lines if ln["type"] == "top"]) == 50


def test_cut_capture_replays_up_to_its_last_complete_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = recorded("bybit_linear", "nautilus_2024-12-01_XRPUSDT_ob500.data").read_bytes()
    path = tmp_path / "cut.data"
    path.write_bytes(src[: src.index(b"\n", len(src) // 2) + 200])  # the cut falls mid-line
    assert main(["replay", str(path), "--max", "--json"]) == 0
    lines = _lines(capsys.readouterr().out)
    n_complete = path.read_bytes().count(b"\n")
    assert len([ln for ln in lines if ln["type"] == "top"]) == n_complete


def _tops(engine: Engine, into: list) -> None:
    engine.listen("top", lambda inst, *rest: into.append((inst.key, *rest)))


def test_round_trip_record_from_the_simulator_then_replay_gives_the_same_tops(tmp_path: Path) -> None:
    from app.commands.watch import load_user_config

    config = load_user_config(None)
    path = tmp_path / "demo.gz"
    live: list = []
    engine = Engine(config)
    engine.add_sources(["demo:ALTUSDT"])
    writer = attach_recorder(engine, str(path), "demo", ["ALTUSDT"])  # what record / watch --record use
    _tops(engine, live)
    try:
        asyncio.run(engine.run_until(3.0))
    finally:
        writer.close()
    assert len(live) > 10
    replayed: list = []
    again = Engine(config)
    again.add_feed(ReplayFeed(path))
    _tops(again, replayed)
    asyncio.run(again.run_until(None))
    assert replayed == live


def test_record_command_writes_a_capture_that_verifies_and_replays(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rec" / "demo.zst"
    assert main(["record", "demo:ALTUSDT", "--out", str(out), "--duration", "2"]) == 0
    assert "recorded" in capsys.readouterr().err
    side = json.loads((tmp_path / "rec" / "demo.zst.json").read_text())
    assert side["venue"] == "binance-usdm" and side["source_venue"] == "demo" and side["tick_sizes"]["ALTUSDT"] > 0
    assert side["stopped_ns"] > side["started_ns"] and side["lines"] > 20
    assert main(["verify", str(out)]) == 0
    assert "result: OK" in capsys.readouterr().out
    assert main(["replay", str(out), "--max", "--json"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert lines[-1]["messages"] == side["lines"] and any(ln["type"] == "top" for ln in lines)
    assert all(ln["venue"] == "demo" for ln in lines if ln["type"] == "top")


def test_record_refuses_mixed_venues_and_unwritable_places(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "demo:ALTUSDT", "bybit-linear:BTCUSDT", "--out", str(tmp_path / "x.gz")]) == 2
    assert "one venue per capture" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["record", "demo:ALTUSDT", "--out", str(blocker / "x.gz"), "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert "cannot record" in err and err.count("\n") == 1


def test_disk_full_stops_the_recording_but_the_live_view_goes_on(tmp_path: Path) -> None:
    from app.commands.watch import load_user_config

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    engine = Engine(load_user_config(None))
    engine.add_sources(["demo:ALTUSDT"])
    errors: list[tuple[float, str]] = []
    writer = CaptureWriter("/dev/full", "binance-usdm", ["ALTUSDT"], sidecar=tmp_path / "full.json", flush_lines=1,
                           on_error=lambda msg: errors.append((len(tops), msg)))
    tops: list = []
    engine.listen("raw", lambda _v, ns, raw: writer.write(ns, raw))
    _tops(engine, tops)
    asyncio.run(engine.run_until(2.0))
    writer.close()
    assert len(errors) == 1 and "No space left" in errors[0][1]
    assert len(tops) > errors[0][0] + 5  # the book kept updating after the recording stopped
