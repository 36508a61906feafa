"""``depthdesk scenarios``: the labelled scenario suite written to a folder, and scored through the real path."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from app.cli import main


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_writes_captures_and_labels_and_scores_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "suite"
    assert main(["scenarios", str(out), "--seeds", "303", "--kinds", "absorption,eaten_through",
                 "--score", "--json"]) == 0
    lines = _json_lines(capsys.readouterr().out)
    written = [x for x in lines if x["type"] == "scenario"]
    assert [x["name"] for x in written] == ["absorption-s303", "eaten_through-s303"]
    for x in written:
        capture, labels_file = Path(x["capture"]), Path(x["labels_file"])
        assert capture.parent == out and labels_file.parent == out
        with gzip.open(capture, "rt", encoding="utf-8") as fh:
            first = fh.readline()
        local, raw = first.split(" ", 1)
        assert int(local) > 0 and json.loads(raw)  # hftbacktest collector lines: "<local_ns> <json>"
        meta = json.loads(labels_file.read_text(encoding="utf-8"))
        assert meta["capture"] == capture.name and meta["tick_size"] > 0 and len(meta["labels"]) == x["labels"]
        for lab in meta["labels"]:
            assert lab["side"] in ("bid", "ask") and lab["end_ns"] >= lab["start_ns"]
    # The hard negatives are in the label files.
    eaten = json.loads(Path(written[1]["labels_file"]).read_text(encoding="utf-8"))["labels"]
    assert {(lab["kind"], lab["negative"]) for lab in eaten} >= {("absorption", True), ("iceberg", True)}
    scores = {x["kind"]: x for x in lines if x["type"] == "score"}
    # The planted absorption is found; the level eaten through is not called absorption.
    assert scores["absorption"]["labels"] == 1 and scores["absorption"]["recall"] == 1.0
    assert scores["absorption"]["precision"] == 1.0
    assert scores["absorption"]["median_delay_ms"] <= 1000.0
    assert scores["large_order"]["recall"] == 1.0
    assert "iceberg" not in scores or scores["iceberg"]["detections"] == 0


def test_scores_are_the_bench_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.bench_detectors import default_detectors_config, score_suite

    assert main(["scenarios", str(tmp_path), "--seeds", "202", "--kinds", "iceberg,pull_not_iceberg",
                 "--score", "--json"]) == 0
    cli = {x["kind"]: x for x in _json_lines(capsys.readouterr().out) if x["type"] == "score"}
    bench, _ = score_suite(default_detectors_config(), seeds=(202,), kinds=("iceberg", "pull_not_iceberg"))
    assert cli == {k: {"type": "score", **v.as_dict()} for k, v in bench.items()}
    assert cli["iceberg"]["recall"] == 1.0 and cli["pull"]["recall"] == 1.0


def test_table_output_and_disabled_detector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "user.toml"
    cfg.write_text("[detectors.iceberg]\nenabled = false\n", encoding="utf-8")
    assert main(["--config", str(cfg), "scenarios", str(tmp_path / "s"), "--seeds", "101", "--kinds", "iceberg",
                 "--score"]) == 0
    text = capsys.readouterr().out
    assert "iceberg-s101: iceberg-s101.binance-usdm.gz + iceberg-s101.binance-usdm.labels.json" in text
    header, *rows = text.splitlines()[1:]
    assert header.split() == ["kind", "precision", "recall", "delay_ms", "detections", "labels"]
    iceberg = next(r.split() for r in rows if r.startswith("iceberg"))
    assert iceberg[2] == "0.000" and iceberg[3] == "-"  # the detector is off: the planted iceberg is missed


@pytest.mark.parametrize(("argv", "message"), [
    (["--seeds", "1x"], "--seeds must be comma-separated integers"),
    (["--kinds", "iceberg,bogus"], "unknown scenario kind(s) bogus"),
])
def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                           message: str) -> None:
    assert main(["scenarios", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_output_that_is_a_file_and_bad_detector_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "file"
    f.write_text("x", encoding="utf-8")
    assert main(["scenarios", str(f), "--seeds", "101", "--kinds", "iceberg"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[detectors.iceberg]\nratio_typo = 3\n", encoding="utf-8")
    assert main(["--config", str(cfg), "scenarios", str(tmp_path / "s"), "--seeds", "101", "--kinds", "iceberg",
                 "--score"]) == 2
    err = capsys.readouterr().err
    assert "ratio_typo" in err and len(err.strip().splitlines()) == 1
