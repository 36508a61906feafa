"""The engine's own cost: ``MarketState.apply`` per message on the real BTCUSDT capture (book, ring,
aggregates; then with the detectors), frame building for the GUI clock, and the live loopback path
(simulator → real Binance adapter → engine thread) with the engine lag it keeps.

The capture is decoded once by the real Binance processor before timing, so the apply rows measure
the engine alone (``feeds.binance.decode_sync_apply`` in bench_feeds measures the whole path).
"""

from __future__ import annotations

import gzip
import statistics
import threading
import time
from typing import Any

import numpy as np

from app.config import load_config
from app.core.instrument import Instrument
from app.paths import recorded
from benchmarks import BenchResult

ROWS = ("engine.apply", "engine.apply_detectors", "engine.frame_us", "engine.loopback")
CAPTURE = ("binance_usdm", "hftbacktest_usdm_btcusdt_20240808.gz")
BTC = Instrument("binance-usdm", "BTCUSDT", tick_size=0.1, lot_size=0.001)


class _Collect:
    """A FeedSink that keeps the decoded batches."""

    def __init__(self) -> None:
        self.batches: list[tuple[np.ndarray, int | None]] = []

    def on_instrument(self, instrument: Instrument) -> None:
        """Ignored."""

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        """Keep one message's batch."""
        self.batches.append((batch, update_id))

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        """Ignored."""

    def on_raw(self, local_ns: int, raw: str) -> None:
        """Ignored."""


def decoded_capture() -> list[tuple[np.ndarray, int | None]]:
    """Every message of the real capture as (batch, update id), through the real Binance processor."""
    from feeds.binance_usdm import BinanceUsdmProcessor

    sink = _Collect()
    proc = BinanceUsdmProcessor([BTC], sink)  # type: ignore[arg-type]
    with gzip.open(recorded(*CAPTURE), "rt") as fh:
        for line in fh:
            local_ns, _, raw = line.partition(" ")
            proc.on_line(raw, int(local_ns))
    return sink.batches


def time_apply(batches: list[tuple[np.ndarray, int | None]], config: dict[str, Any], detectors: bool) -> float:
    """Seconds (process time) for one MarketState to apply every batch."""
    from app.analytics.detectors import DetectorSet
    from app.market import MarketState

    market = MarketState(BTC, config, detectors=DetectorSet(BTC, config) if detectors else None)
    apply = market.apply
    start = time.process_time()
    for batch, update_id in batches:
        apply(batch, update_id)
    return time.process_time() - start


def time_frames(batches: list[tuple[np.ndarray, int | None]], config: dict[str, Any], rows: int, group: int,
                n: int) -> list[float]:
    """Microseconds per ``frame()`` on the book the whole capture left."""
    from app.market import MarketState

    market = MarketState(BTC, config)
    for batch, update_id in batches:
        market.apply(batch, update_id)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        market.frame(ladder_rows=rows, group=group)
        out.append((time.perf_counter() - t) * 1e6)
    return out


def loopback(seconds: float, rate: float) -> dict[str, float]:
    """The demo path live: messages/s the engine thread applied and its lag, sampled like a status bar."""
    from app.engine import Engine

    config = dict(load_config())
    config["simulator"] = {"rate": rate, "coalesce": False}
    config["engine"] = {"ring_capacity": 1 << 20}
    engine = Engine(config, detect=False)
    engine.add_source("demo:ALTUSDT")
    engine.start()
    lags: list[float] = []
    try:
        deadline = time.monotonic() + 10
        while engine.status("demo:ALTUSDT")[0] != "live" and time.monotonic() < deadline:
            time.sleep(0.02)
        market = engine.market("demo:ALTUSDT")
        assert market is not None
        first = market.messages
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            time.sleep(0.05)
            lags.append(engine.lag_ns("demo:ALTUSDT") / 1e6)
        applied = market.messages - first
        elapsed = time.monotonic() - start
    finally:
        engine.stop()
    assert not [t for t in threading.enumerate() if t.name in ("depthdesk-engine", "depthdesk-simulator")]
    return {"rate": applied / elapsed, "lag_p50_ms": statistics.median(lags),
            "lag_p99_ms": float(np.percentile(lags, 99)), "lag_max_ms": max(lags)}


def run(quick: bool = False) -> list[BenchResult]:
    """The engine rows (see the module docstring)."""
    config = dict(load_config())
    config["engine"] = {"ring_capacity": 1 << 20}
    batches = decoded_capture()
    n = len(batches)
    repeats = 1 if quick else 3
    plain = min(time_apply(batches, config, False) for _ in range(repeats))
    with_det = min(time_apply(batches, config, True) for _ in range(repeats))
    frames = time_frames(batches, config, 60, 1, 50 if quick else 300)
    grouped = time_frames(batches, config, 60, 10, 50 if quick else 300)
    live = loopback(2.0 if quick else 5.0, 5000.0)
    common = {"messages": n, "clock": "process_time", "repeats": repeats}
    return [
        BenchResult("engine.apply", n / plain, "messages/s",
                    extra=dict(common, us_per_message=round(plain / n * 1e6, 2))),
        BenchResult("engine.apply_detectors", n / with_det, "messages/s",
                    extra=dict(common, us_per_message=round(with_det / n * 1e6, 2),
                               detectors_share=round((with_det - plain) / with_det, 3))),
        BenchResult("engine.frame_us", statistics.median(frames), "us",
                    extra={"rows": 60, "p99_us": round(float(np.percentile(frames, 99)), 1),
                           "grouped_10_median_us": round(statistics.median(grouped), 1)}),
        BenchResult("engine.loopback", live["rate"], "messages/s",
                    extra={"source": "demo:ALTUSDT (uncoalesced, model rate 5000/s)",
                           **{k: round(v, 1) for k, v in live.items() if k != "rate"}}),
    ]


if __name__ == "__main__":
    for row in run(quick=False):
        print(row.as_json())
