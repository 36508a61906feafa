"""Export to hftbacktest .npz: its dtype, its ordering rules (checked with hftbacktest itself), clears."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hftbacktest.data.validation import validate_event_order
from hftbacktest.types import event_dtype

from app.cli import main
from app.core.events import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_DTYPE,
    EXCH_EVENT,
    KIND_MASK,
    LOCAL_EVENT,
    SELL_EVENT,
    SIDE_MASK,
    TRADE_EVENT,
    clear_row,
    depth_rows,
)
from app.paths import recorded
from feeds.capture.export import correct_event_order, correct_local_timestamp, export_npz, split_clears


def test_bybit_archive_exports_valid_hftbacktest_data(tmp_path: Path) -> None:
    written = export_npz(recorded("bybit_linear", "nautilus_2024-12-01_XRPUSDT_ob500.data"), tmp_path / "xrp.npz")
    path, rows = written["XRPUSDT"]
    data = np.load(path)["data"]
    assert data.dtype == event_dtype and len(data) == rows
    validate_event_order(data)
    kinds = data["ev"] & KIND_MASK
    clears = data[kinds == DEPTH_CLEAR_EVENT]
    # the snapshot's both-sides clear became one bid and one ask clear up to the snapshot's deepest prices
    assert len(clears) == 2
    assert {int(e) & SIDE_MASK for e in clears["ev"]} == {BUY_EVENT, SELL_EVENT}
    snap = data[kinds == DEPTH_SNAPSHOT_EVENT]
    assert len(snap) == 1000
    bid_clear = clears[(clears["ev"] & SIDE_MASK) == BUY_EVENT]["px"][0]
    assert bid_clear == snap[(snap["ev"] & SIDE_MASK) == BUY_EVENT]["px"].min()


def test_multi_symbol_capture_writes_one_file_per_symbol(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = recorded("binance_usdm", "cryptofeed_BINANCE_FUTURES.ws.1.0")
    assert main(["export", str(path), "--out", str(tmp_path / "cf.npz")]) == 0
    out = capsys.readouterr().out
    files = sorted(tmp_path.glob("cf_*.npz"))
    assert [f.name for f in files] == ["cf_AKROUSDT.npz", "cf_CTKUSDT.npz", "cf_KEEPUSDT.npz", "cf_SUSHIUSDT.npz"]
    for f in files:
        data = np.load(f)["data"]
        validate_event_order(data)
        assert (data["ev"] & KIND_MASK == TRADE_EVENT).any() or f.name == "cf_KEEPUSDT.npz"
    assert out.count("events ->") == 4


def test_every_row_carries_each_clock_exactly_once() -> None:
    rows = np.zeros(5, dtype=EVENT_DTYPE)
    rows["ev"] = TRADE_EVENT | BUY_EVENT
    rows["exch_ts"] = [10, 20, 30, 40, 50]
    rows["local_ts"] = [15, 35, 25, 45, 55]  # rows 1 and 2 arrive out of exchange order
    rows["qty"] = np.arange(5)
    out = correct_event_order(rows)
    validate_event_order(out)
    exch = out[(out["ev"] & EXCH_EVENT) != 0]
    local = out[(out["ev"] & LOCAL_EVENT) != 0]
    assert exch["qty"].tolist() == [0, 1, 2, 3, 4] and local["qty"].tolist() == [0, 2, 1, 3, 4]
    assert len(out) == 7  # rows 1 and 2 are written once per clock


def test_negative_latency_is_shifted_away() -> None:
    rows = np.zeros(3, dtype=EVENT_DTYPE)
    rows["exch_ts"] = [100, 200, 300]
    rows["local_ts"] = [90, 230, 320]
    assert correct_local_timestamp(rows, base_latency_ns=1) == 11
    assert rows["local_ts"].tolist() == [101, 241, 331]


def test_a_gap_clear_clears_everything() -> None:
    batch = clear_row(5, 6)
    out = split_clears(batch)
    assert [int(e) & SIDE_MASK for e in out["ev"]] == [BUY_EVENT, SELL_EVENT]
    assert out["px"][0] == 0.0 and out["px"][1] == np.finfo(np.float64).max
    snap = np.concatenate((clear_row(5, 6), depth_rows(1, np.array([100, 99]), np.ones(2), 0.5, 5, 6,
                                                        kind=DEPTH_SNAPSHOT_EVENT)))
    assert split_clears(snap)["px"][0] == 49.5


def test_export_of_a_non_capture_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("nothing here\n")
    assert main(["export", str(bad), "--out", str(tmp_path / "x.npz")]) == 2
    assert "not a capture" in capsys.readouterr().err
