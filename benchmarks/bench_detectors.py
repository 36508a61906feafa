"""Detector benchmarks: replay overhead on the real BTCUSDT capture, and scores on labelled scenarios.

Rows: ``detect.replay_overhead`` (detectors' share of the headless replay time, %), ``detect.replay_s``
(replay time with and without detectors), ``detect.opens_per_min.<kind>`` on the real captures, and,
when the simulator's scenario suite is available, ``detect.<kind>.precision|recall|delay_ms``.
"""

from __future__ import annotations

import gzip
import importlib.util
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from app.analytics.detectors import DetectorSet
from app.core.detection import Detection
from app.core.instrument import Instrument
from app.paths import REPO_ROOT, recorded
from benchmarks import BenchResult

BTC = Instrument("binance-usdm", "BTCUSDT", tick_size=0.1, lot_size=0.001)
ETH = Instrument("binance-usdm", "ETHUSDT", tick_size=0.01, lot_size=0.001)


class _Collect:
    """A FeedSink that keeps the batches of one symbol."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def on_instrument(self, instrument: Instrument) -> None:
        pass

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        if len(batch):
            self.batches.append(batch)

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        pass

    def on_raw(self, local_ns: int, raw: str) -> None:
        pass


def load_hftbacktest_capture(path: Path, inst: Instrument) -> list[np.ndarray]:
    """Batches of a hftbacktest Binance USDⓈ-M capture, through the real Binance parsers and book sync."""
    from feeds.binance_usdm import BinanceUsdmProcessor

    sink = _Collect()
    proc = BinanceUsdmProcessor([inst], sink)
    with gzip.open(path, "rb") as fh:
        for line in fh:
            local, raw = line.split(b" ", 1)
            proc.on_line(raw, int(local))
    return sink.batches


def book_class() -> tuple[type, str]:
    """The real DepthBook, or the tests' stand-in until the core-book branch is merged."""
    try:
        from app.core.book import DepthBook  # type: ignore[import-not-found]

        return DepthBook, "DepthBook"
    except ImportError:
        spec = importlib.util.spec_from_file_location(
            "_analytics_conftest", REPO_ROOT / "tests" / "analytics" / "conftest.py")
        mod = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(mod)
        return mod.StandInBook, "StandInBook"


def replay(batches: list[np.ndarray], inst: Instrument, config: dict[str, Any] | None,
           detect: bool = True) -> tuple[float, list[Detection]]:
    """Apply every batch to a fresh book (and the detectors); returns (seconds, detections)."""
    cls, _ = book_class()
    book = cls(inst)
    dets = DetectorSet(inst, config) if detect else None
    found: list[Detection] = []
    t0 = time.process_time()
    for b in batches:
        book.apply(b)
        if dets is not None:
            r = dets.on_batch(b, book)
            if r:
                found.extend(r)
    if dets is not None:
        found.extend(dets.close_all(int(batches[-1]["exch_ts"].max())))
    return time.process_time() - t0, found


def market_minutes(batches: list[np.ndarray]) -> float:
    """Exchange-time length of a capture in minutes."""
    ts = np.concatenate([b["exch_ts"] for b in (batches[0], batches[-1])])
    return float(ts.max() - ts.min()) / 60e9


def opens_per_minute(found: list[Detection], minutes: float) -> dict[str, float]:
    """Detections opened per minute of market, per kind."""
    c = Counter(d.kind for d in found if d.state == "open")
    return {k: v / minutes for k, v in sorted(c.items())}


def default_detectors_config() -> dict[str, Any]:
    import tomllib

    with open(REPO_ROOT / "resources" / "default.toml", "rb") as fh:
        return tomllib.load(fh).get("detectors", {})


def run(quick: bool = False) -> list[BenchResult]:
    """Replay overhead and quietness on the real captures; scenario scores when the suite exists."""
    rows = run_real(quick)
    rows.extend(run_scenarios(quick))
    return rows


def run_real(quick: bool = False) -> list[BenchResult]:
    """Rows for the real captures."""
    rows: list[BenchResult] = []
    cfg = default_detectors_config()
    _, book_name = book_class()
    for inst, name in ((BTC, "hftbacktest_usdm_btcusdt_20240808.gz"), (ETH, "hftbacktest_usdm_ethusdt_20240808.gz")):
        batches = load_hftbacktest_capture(recorded("binance_usdm", name), inst)
        minutes = market_minutes(batches)
        if inst is BTC:
            reps = 1 if quick else 3
            base = min(replay(batches, inst, cfg, detect=False)[0] for _ in range(reps))
            with_det = min(replay(batches, inst, cfg, detect=True)[0] for _ in range(reps))
            # The replay here is book-only (the cheapest possible pipeline), so this overstates the
            # share of a full headless replay (parsing + engine + book).
            rows.append(BenchResult("detect.replay_s", with_det, "s",
                                    extra={"without": round(base, 4), "book": book_name}))
            rows.append(BenchResult("detect.replay_overhead", 100.0 * (with_det - base) / base, "%",
                                    extra={"book": book_name}))
        _, found = replay(batches, inst, cfg)
        for kind, rate in opens_per_minute(found, minutes).items():
            rows.append(BenchResult(f"detect.opens_per_min.{inst.symbol}.{kind}", rate, "1/min"))
    return rows


def run_scenarios(quick: bool = False) -> list[BenchResult]:
    """``detect.<kind>.precision|recall|delay_ms`` over the simulator's scenario suite (when merged)."""
    try:
        from feeds.simulator.scenarios import ScenarioSuite  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return [BenchResult("detect.scenarios", float("nan"), "",
                            extra={"error": "feeds.simulator.scenarios not merged yet"})]
    return []
