"""Detector benchmarks: replay overhead on the real BTCUSDT capture, and scores on labelled scenarios.

Rows: ``detect.replay_overhead`` (detectors' share of the headless replay time, %), ``detect.replay_s``
(replay time with and without detectors), ``detect.opens_per_min.<kind>`` on the real captures, and,
when the simulator's scenario suite is available, ``detect.<kind>.precision|recall|delay_ms``.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from app.analytics.detectors import DetectorSet
from app.core import events as E
from app.core.detection import Detection
from app.core.instrument import Instrument
from app.paths import REPO_ROOT, recorded
from benchmarks import BenchResult

BTC = Instrument("binance-usdm", "BTCUSDT", tick_size=0.1, lot_size=0.001)
ETH = Instrument("binance-usdm", "ETHUSDT", tick_size=0.01, lot_size=0.001)


def _ms(v: int) -> int:
    return int(v) * 1_000_000


def load_hftbacktest_capture(path: Path, inst: Instrument) -> list[np.ndarray]:
    """Batches of a hftbacktest Binance USDⓈ-M capture, parsed with the standard library.

    A stand-in for the feeds' parsers: depth diffs (synced on the REST snapshot: diffs before it and
    with ``u`` below its ``lastUpdateId`` dropped), fills, and quotes as ``DEPTH_BBO_EVENT`` rows.
    """
    out: list[np.ndarray] = []
    last_id: int | None = None
    tick = inst.tick_size
    with gzip.open(path, "rt") as fh:
        for line in fh:
            local_s, raw = line.split(" ", 1)
            local = int(local_s)
            msg = json.loads(raw)
            if "stream" not in msg:
                if "lastUpdateId" in msg:
                    last_id = int(msg["lastUpdateId"])
                    ts = _ms(msg["T"])
                    parts = [E.clear_row(ts, local)]
                    for side, key in ((E.BID, "bids"), (E.ASK, "asks")):
                        lv = msg[key]
                        if lv:
                            px = inst.to_ticks(np.array([float(p) for p, _ in lv]))
                            q = np.array([float(x) for _, x in lv])
                            parts.append(E.depth_rows(side, px, q, tick, ts, local, last_id,
                                                      kind=E.DEPTH_SNAPSHOT_EVENT))
                    out.append(np.concatenate(parts))
                continue
            d = msg["data"]
            et = d.get("e")
            if et == "trade":
                out.append(E.trade_row(E.ASK if d["m"] else E.BID, inst.to_tick(d["p"]),
                                       float(d["q"]), tick, _ms(d["T"]), local, int(d["t"])))
            elif et == "depthUpdate":
                if last_id is None or int(d["u"]) < last_id:
                    continue
                ts = _ms(d["T"])
                parts = []
                for side, key in ((E.BID, "b"), (E.ASK, "a")):
                    lv = d[key]
                    if lv:
                        px = inst.to_ticks(np.array([float(p) for p, _ in lv]))
                        q = np.array([float(x) for _, x in lv])
                        parts.append(E.depth_rows(side, px, q, tick, ts, local, int(d["u"])))
                if parts:
                    out.append(np.concatenate(parts))
            elif et == "bookTicker":
                ts = _ms(d["T"])
                rows = np.concatenate([
                    E.depth_rows(E.BID, np.array([inst.to_tick(d["b"])]), np.array([float(d["B"])]), tick, ts,
                                 local, int(d["u"]), kind=E.DEPTH_BBO_EVENT),
                    E.depth_rows(E.ASK, np.array([inst.to_tick(d["a"])]), np.array([float(d["A"])]), tick, ts,
                                 local, int(d["u"]), kind=E.DEPTH_BBO_EVENT)])
                out.append(rows)
    return out


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
    t0 = time.perf_counter()
    for b in batches:
        book.apply(b)
        if dets is not None:
            r = dets.on_batch(b, book)
            if r:
                found.extend(r)
    if dets is not None:
        found.extend(dets.close_all(int(batches[-1]["exch_ts"].max())))
    return time.perf_counter() - t0, found


def market_minutes(batches: list[np.ndarray]) -> float:
    """Exchange-time length of a capture in minutes."""
    ts = np.concatenate([b["exch_ts"] for b in (batches[0], batches[-1])])
    return float(ts.max() - ts.min()) / 60e9


def opens_per_minute(found: list[Detection], minutes: float) -> dict[str, float]:
    """Detections opened per minute of market, per kind."""
    c = Counter(d.kind for d in found if d.state == "open")
    return {k: v / minutes for k, v in sorted(c.items())}


def run(quick: bool = False) -> list[BenchResult]:
    """Replay overhead and quietness on the real BTCUSDT capture."""
    from app.config import load_default_detectors  # type: ignore[import-not-found]  # noqa: F401


def _default_detectors_config() -> dict[str, Any]:
    import tomllib

    with open(REPO_ROOT / "resources" / "default.toml", "rb") as fh:
        return tomllib.load(fh).get("detectors", {})


def run_real(quick: bool = False) -> list[BenchResult]:  # noqa: D401
    """Rows for the real captures."""
    rows: list[BenchResult] = []
    cfg = _default_detectors_config()
    _, book_name = book_class()
    for inst, name in ((BTC, "hftbacktest_usdm_btcusdt_20240808.gz"), (ETH, "hftbacktest_usdm_ethusdt_20240808.gz")):
        batches = load_hftbacktest_capture(recorded("binance_usdm", name), inst)
        minutes = market_minutes(batches)
        if inst is BTC:
            reps = 1 if quick else 3
            base = min(replay(batches, inst, cfg, detect=False)[0] for _ in range(reps))
            with_det = min(replay(batches, inst, cfg, detect=True)[0] for _ in range(reps))
            rows.append(BenchResult("detect.replay_s", with_det, "s",
                                    extra={"without": round(base, 4), "book": book_name}))
            rows.append(BenchResult("detect.replay_overhead", 100.0 * (with_det - base) / base, "%",
                                    extra={"book": book_name}))
        _, found = replay(batches, inst, cfg)
        for kind, rate in opens_per_minute(found, minutes).items():
            rows.append(BenchResult(f"detect.opens_per_min.{inst.symbol}.{kind}", rate, "1/min"))
    return rows
