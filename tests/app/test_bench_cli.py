"""``depthdesk bench``: JSON rows, the table, error rows for a failing module, filtering, --gui."""

from __future__ import annotations

import json
import sys
import types

import pytest

from app.cli import main
from app.core.events import EVENT_DTYPE
from benchmarks import BenchResult, runner


def json_rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def core_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only bench_core: other areas' benches (and their run time or failures) stay out of these tests."""
    real = runner.discover
    monkeypatch.setattr(runner, "discover", lambda include_gui=False: [n for n in real() if n == "bench_core"])


@pytest.mark.usefixtures("core_only")
def test_bench_json_quick_only_ring(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--json", "--quick", "--only", "ring"]) == 0
    rows = json_rows(capsys.readouterr().out)
    names = [r["name"] for r in rows]
    assert {"ring.append.batch1", "ring.append.batch100", "ring.append.batch1000", "ring.nbytes"} <= set(names)
    assert all("ring" in n for n in names)  # footprint/profile rows were filtered out (and not run)
    for row in rows:
        assert set(row) >= {"name", "value", "unit"}
        assert isinstance(row["value"], float) and row["value"] > 0
        assert isinstance(row["unit"], str) and row["unit"]
        assert ("peer" in row) == ("ratio" in row)
    by_name = {r["name"]: r for r in rows}
    assert by_name["ring.append.batch1000"]["unit"] == "events/s"
    mem = by_name["ring.nbytes"]
    assert mem["unit"] == "bytes" and mem["fixed"] is True
    assert mem["value"] == 2 * mem["capacity"] * EVENT_DTYPE.itemsize
    assert mem["rows_written"] > mem["capacity"]  # it wrapped many times and did not grow


@pytest.mark.usefixtures("core_only")
def test_bench_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--quick", "--only", "ring.nbytes"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "value", "unit", "peer", "ratio"]
    assert [line.split()[0] for line in out[2:]] == ["ring.nbytes"]
    assert "bytes" in out[2]


@pytest.mark.usefixtures("core_only")
def test_only_matching_nothing_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--json", "--quick", "--only", "no-such-row"]) == 0
    assert capsys.readouterr().out == ""


def test_gui_flag_without_the_gui_bench(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(runner, "gui_available", lambda: False)
    assert main(["bench", "--gui"]) == 2
    assert "GUI benchmark" in capsys.readouterr().err


def test_discover_finds_core_and_hides_gui() -> None:
    names = runner.discover()
    assert "bench_core" in names and "bench_gui" not in names
    assert all(n.startswith("bench_") for n in names)


@pytest.fixture
def fake_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake bench modules: one raises, one returns a row with a peer, one declares ROWS that never match."""
    broken = types.ModuleType("benchmarks.bench_aaa_broken")

    def boom(quick: bool = False) -> list[BenchResult]:
        raise RuntimeError("disk on fire")

    broken.run = boom  # type: ignore[attr-defined]
    good = types.ModuleType("benchmarks.bench_zzz_good")

    def fine(quick: bool = False) -> list[BenchResult]:
        return [BenchResult("zzz.rate", 5.0, "ops/s", peer="other", ratio=2.5), BenchResult("yyy.x", 1.0, "s")]

    good.run = fine  # type: ignore[attr-defined]
    skipped = types.ModuleType("benchmarks.bench_mmm_book")
    skipped.ROWS = ("book.apply",)  # type: ignore[attr-defined]

    def must_not_run(quick: bool = False) -> list[BenchResult]:
        raise AssertionError("a module whose ROWS cannot match --only must not run")

    skipped.run = must_not_run  # type: ignore[attr-defined]
    for mod in (broken, good, skipped):
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setattr(
        runner, "discover", lambda include_gui=False: ["bench_aaa_broken", "bench_mmm_book", "bench_zzz_good"]
    )


@pytest.mark.usefixtures("fake_modules")
def test_failing_module_gives_an_error_row_and_the_rest_run(capsys: pytest.CaptureFixture[str]) -> None:
    # bench_aaa_broken declares no ROWS, so it may match: it runs, fails and reports; zzz still runs
    assert main(["bench", "--json", "--only", "rate"]) == 1
    rows = json_rows(capsys.readouterr().out)
    assert rows == [
        {"name": "bench_aaa_broken.error", "value": None, "unit": "error", "error": "RuntimeError: disk on fire"},
        {"name": "zzz.rate", "value": 5.0, "unit": "ops/s", "peer": "other", "ratio": 2.5},
    ]


@pytest.mark.usefixtures("fake_modules")
def test_error_row_in_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.run_all(as_json=False, only="rate") == 1
    captured = capsys.readouterr()
    assert "bench_aaa_broken.error" in captured.out and "FAILED" in captured.out
    assert "disk on fire" in captured.out
    assert "x2.50" in captured.out
    assert "RuntimeError" in captured.err  # the traceback goes to stderr, the table stays readable


@pytest.mark.usefixtures("fake_modules")
def test_only_naming_a_module_keeps_all_its_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.run_all(as_json=True, only="zzz") == 0  # the broken module is not run at all
    assert [r["name"] for r in json_rows(capsys.readouterr().out)] == ["zzz.rate", "yyy.x"]


def test_every_row_name_is_declared() -> None:
    from benchmarks import bench_core

    assert set(bench_core.ROWS) == set(bench_core.RING_ROWS) | set(bench_core.FLOW_ROWS)
    assert runner._may_match("bench_core", bench_core, "add.one")  # a middle substring of a row name
    assert not runner._may_match("bench_core", bench_core, "book")


def test_format_value() -> None:
    assert runner.format_value(12_345_678.9) == "12,345,679"
    assert runner.format_value(0.012345) == "0.01235"
    assert runner.format_value(None) == "-"


@pytest.mark.usefixtures("core_only", "btc_capture")  # btc_capture: the real data must be there
def test_order_flow_rows_race_a_peer_on_the_real_trades(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--json", "--quick", "--only", "profile."]) == 0
    rows = json_rows(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["profile.add.per_message", "profile.add.one_batch"]
    for row in rows:
        assert row["unit"] == "trades/s" and row["trades"] == 21_313
        assert row["peer"] == "python dicts per trade" and row["ratio"] > 0


def test_unmeasurable_figures_print_as_null_so_every_line_is_json() -> None:
    import io

    from benchmarks import BenchResult
    from benchmarks.runner import _emit

    out = io.StringIO()
    _emit(BenchResult("x.delay_ms", float("nan"), "ms", extra={"p99": float("inf"), "runs": [1.0, float("nan")]}),
          True, out)
    assert json.loads(out.getvalue()) == {"name": "x.delay_ms", "value": None, "unit": "ms", "p99": None,
                                          "runs": [1.0, None]}
