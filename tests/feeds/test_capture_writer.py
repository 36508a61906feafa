"""CaptureWriter: collector lines, sidecar, rotation, crash safety and write errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.paths import REPO_ROOT
from feeds.capture.readers import FORMAT_NATIVE, CaptureError, open_capture
from feeds.capture.writer import CaptureWriter

MSG = '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":%d,"p":"1.0","q":"1","m":false}}'


@pytest.mark.parametrize("name", ["cap.gz", "cap.zst", "cap.txt"])
def test_round_trip_every_compression(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with CaptureWriter(path, "binance-usdm", ["BTCUSDT"], {"BTCUSDT": 0.1}, flush_lines=7) as w:
        for i in range(100):
            w.write(1_000 + i, MSG % i)
    reader = open_capture(path)
    records = list(reader)
    assert reader.format == FORMAT_NATIVE and reader.venue == "binance-usdm"
    assert [r.local_ns for r in records] == list(range(1_000, 1_100))
    assert records[42].raw == MSG % 42 and not reader.stats.truncated_stream
    side = reader.sidecar()
    assert side is not None and side["symbols"] == ["BTCUSDT"] and side["tick_sizes"] == {"BTCUSDT": 0.1}
    assert side["lines"] == 100 and side["stopped_ns"] is not None


def test_sidecar_is_written_at_start(tmp_path: Path) -> None:
    w = CaptureWriter(tmp_path / "c.gz", "bybit-linear", ["SOLUSDT"])
    side = json.loads((tmp_path / "c.gz.json").read_text())
    assert side["venue"] == "bybit-linear" and side["stopped_ns"] is None
    w.note_gap("SOLUSDT", 5, "u jumped")
    w.close()
    assert json.loads((tmp_path / "c.gz.json").read_text())["gaps"][0]["reason"] == "u jumped"


def test_flush_by_time_makes_lines_readable_before_close(tmp_path: Path) -> None:
    now = [0]
    w = CaptureWriter(tmp_path / "c.gz", flush_lines=10_000, flush_interval_s=0.1, clock_ns=lambda: now[0])
    w.write(1, MSG % 1)
    assert (tmp_path / "c.gz").stat().st_size < 30  # only the gzip header so far
    now[0] = 200_000_000
    w.write(2, MSG % 2)
    assert [r.local_ns for r in open_capture(tmp_path / "c.gz")] == [1, 2]  # readable mid-recording
    w.close()


def test_multiline_rest_body_stays_one_line(tmp_path: Path) -> None:
    with CaptureWriter(tmp_path / "c.txt") as w:
        w.write(5, '{"lastUpdateId": 1,\n "bids": [], "asks": []}')
    recs = list(open_capture(tmp_path / "c.txt"))
    assert len(recs) == 1 and recs[0].channel == "rest:/fapi/v1/depth" or recs[0].raw.startswith('{"lastUpdateId"')


def test_rotation_by_size_lists_every_part(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    with CaptureWriter(path, flush_lines=10, rotate_bytes=400) as w:
        for i in range(300):
            w.write(i, MSG % i)
        parts = w.parts
    assert len(parts) > 2 and all(p.exists() for p in parts)
    later = sum(len(list(open_capture(p))) for p in parts[1:])  # each later part reads alone too
    assert 0 < later < 300
    whole = list(open_capture(path))  # the first part's sidecar lists the rest: one reader reads them all
    assert [r.local_ns for r in whole] == list(range(300))
    assert json.loads((tmp_path / "r.gz.json").read_text())["parts"] == [p.name for p in parts]


def test_disk_full_stops_recording_with_a_message_and_never_raises(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    errors: list[str] = []
    w = CaptureWriter("/dev/full", sidecar=tmp_path / "full.json", flush_lines=1, on_error=errors.append)
    w.write(1, MSG % 1)  # ENOSPC here: must not raise
    w.write(2, MSG % 2)
    w.close()
    assert not w.recording and len(errors) == 1
    assert "recording stopped" in errors[0] and "No space" in errors[0]
    assert json.loads((tmp_path / "full.json").read_text())["error"] == errors[0]


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CaptureError, match="cannot record"):
        CaptureWriter(blocker / "sub" / "c.gz")


_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from feeds.capture.writer import CaptureWriter
w = CaptureWriter({path!r}, "binance-usdm", ["BTCUSDT"], flush_lines=50, flush_interval_s=0.01)
i = 0
while True:
    w.write(1_000_000 + i, {msg!r} % i)
    i += 1
    if i % 1000 == 0:
        time.sleep(0.001)
"""


def test_kill_9_leaves_a_file_readable_up_to_its_last_complete_line(tmp_path: Path) -> None:
    path = tmp_path / "killed.gz"
    code = _CHILD.format(root=str(REPO_ROOT), path=str(path), msg=MSG)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 60_000):
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reader = open_capture(path)
    records = list(reader)
    assert len(records) > 1000 and reader.stats.truncated_stream
    assert [r.local_ns for r in records] == list(range(1_000_000, 1_000_000 + len(records)))
    assert records[-1].raw == MSG % (len(records) - 1)
