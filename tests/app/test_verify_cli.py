"""``depthdesk verify`` on every real Binance/Bybit file, on damaged captures and on non-captures."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli import main
from app.paths import REPO_ROOT, recorded

REAL = [
    ("binance_usdm", "hftbacktest_usdm_btcusdt_20240808.gz"),
    ("binance_usdm", "hftbacktest_usdm_ethusdt_20240808.gz"),
    ("binance_usdm", "cryptofeed_BINANCE_FUTURES.ws.1.0"),
    ("bybit_linear", "nautilus_2024-12-01_XRPUSDT_ob500.data"),
    ("bybit_linear", "cryptofeed_pr1085_BYBIT.ws.1.0"),
    ("bybit_v5_agpl", "cryptofeed_v3_BYBIT.jsonl"),
]


@pytest.mark.parametrize(("folder", "name"), REAL)
def test_verify_passes_on_every_real_file(folder: str, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(recorded(folder, name)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["defects"] == [] and out["books"]
    assert all(b["gaps"] == 0 and b["crossed"] == 0 and b["top_mismatches"] == 0 for b in out["books"])
    if folder == "binance_usdm":  # bookTicker checks at equal update ids really happened
        assert sum(b["top_compared"] for b in out["books"]) > 40


def test_verify_btc_report_text(btc_capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(btc_capture)]) == 0
    text = capsys.readouterr().out
    assert "dropped before sync 4" in text and "629 compared, 0 mismatched" in text and "result: OK" in text


def _rewrite(src: Path, dst: Path, edit) -> None:  # noqa: ANN001
    lines = gzip.open(src, "rt").read().splitlines()
    with gzip.open(dst, "wt") as f:
        f.write("\n".join(edit(lines)) + "\n")


def test_a_dropped_diff_is_a_gap_and_a_defect(tmp_path: Path, btc_capture: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    def drop_one_diff(lines: list[str]) -> list[str]:
        idx = [i for i, ln in enumerate(lines) if "@depth" in ln[:60]][3000]
        return lines[:idx] + lines[idx + 1 :]

    path = tmp_path / "gap.gz"
    _rewrite(btc_capture, path, drop_one_diff)
    assert main(["verify", str(path)]) == 1
    text = capsys.readouterr().out
    assert "gaps 1" in text and "pu=" in text and "result: DEFECTS" in text


def test_a_corrupted_book_fails_the_top_of_book_check(tmp_path: Path, btc_capture: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    def inflate_ticker_bid_size(lines: list[str]) -> list[str]:
        return [ln.replace('"B":"', '"B":"9') if "@bookTicker" in ln[:50] else ln for ln in lines[:30000]]

    path = tmp_path / "bad.gz"
    _rewrite(btc_capture, path, inflate_ticker_bid_size)
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "top-of-book mismatch" in out and "0 mismatched" not in out


def test_garbage_in_the_middle_is_reported(tmp_path: Path, btc_capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "garbage.gz"
    _rewrite(btc_capture, path, lambda lines: lines[:5000] + ["@@@ not a record @@@"] + lines[5000:20000])
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "garbage   1 line(s)" in out and "line 5001" in out


@pytest.mark.parametrize("content", [b"", b"just some text\nnothing else\n"])
def test_not_a_capture_is_one_line_exit_2(tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(content)
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("depthdesk: ") and err.count("\n") == 1 and "Traceback" not in err


def test_wrong_venue_is_a_clear_error(btc_capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(btc_capture), "--venue", "bybit-linear"]) == 2
    assert "wrong --venue" in capsys.readouterr().err


_CHILD = """
import sys, time, gzip
sys.path.insert(0, {root!r})
from feeds.capture.writer import CaptureWriter
w = CaptureWriter({out!r}, "binance-usdm", ["BTCUSDT"], flush_lines=64, flush_interval_s=0.01)
with gzip.open({src!r}, "rt") as f:
    for i, line in enumerate(f):
        ns, raw = line.rstrip("\\n").split(" ", 1)
        w.write(int(ns), raw)
        if i % 2000 == 0:
            time.sleep(0.002)
time.sleep(60)
"""


def test_kill_9_mid_recording_verifies_with_truncation_and_no_traceback(tmp_path: Path, btc_capture: Path) -> None:
    out = tmp_path / "killed.gz"
    code = _CHILD.format(root=str(REPO_ROOT), out=str(out), src=str(btc_capture))
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 400_000):
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    res = subprocess.run([sys.executable, "-m", "app.cli", "verify", str(out)], capture_output=True, text=True,
                         env=env, timeout=60)
    assert "Traceback" not in res.stderr + res.stdout
    assert "recording was killed" in res.stdout
    assert res.returncode == 0, res.stdout  # a cut recording is a warning; everything before it is sound
    assert "synced=yes" in res.stdout and "0 mismatched" in res.stdout
