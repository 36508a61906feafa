"""The engine's own cost: ``MarketState.apply`` per message on the real BTCUSDT capture (book, ring,
aggregates; then with the detectors), the same on the simulator's uncoalesced ALTUSDT stream (the GUI
burst's traffic: ~79 % one-row depth diffs), frame building for the GUI clock, and the live loopback path
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

ROWS = ("engine.apply", "engine.apply_detectors", "engine.apply_sim", "engine.frame_us", "engine.loopback")
ALT = Instrument("binance-usdm", "ALTUSDT", tick_size=0.0001, lot_size=1.0)
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


class _Wire:
    """A simulator subscriber that keeps the wire messages."""

    combined = True
    closed = False

    def __init__(self) -> None:
        self.messages: list[str] = []

    def push(self, message: str) -> None:
        """Keep one message."""
        self.messages.append(message)


def simulator_batches(seconds: float, rate: float = 20_000.0) -> list[tuple[np.ndarray, int | None]]:
    """``seconds`` of the simulator's ALTUSDT (uncoalesced depth, trades, quotes, mark) decoded by the real
    Binance processor, from its REST snapshot on: the messages the desk applies during the GUI burst."""
    from feeds.binance_usdm import BinanceUsdmProcessor
    from feeds.simulator.binance import BinanceVenue
    from feeds.simulator.market import DEFAULT_SYMBOLS, MarketModel

    specs = DEFAULT_SYMBOLS[:1]
    model = MarketModel(specs, seed=1, rate=rate)
    venue = BinanceVenue(model, specs, coalesce=False)
    wire = _Wire()
    for stream in ("altusdt@depth@0ms", "altusdt@trade", "altusdt@bookTicker", "altusdt@markPrice@1s"):
        venue.subs[stream] = {wire}  # type: ignore[assignment]
    sink = _Collect()
    proc = BinanceUsdmProcessor([ALT], sink)  # type: ignore[arg-type]
    for step in range(int(seconds * 100) + 1):
        venue.on_events(model.step(10_000_000), model.now_ns)
        for raw in wire.messages:
            proc.on_line(raw, model.now_ns)
        wire.messages.clear()
        if step == 0:  # diffs buffered so far bridge the snapshot, as on a live connection
            body = venue.depth_snapshot("ALTUSDT", 1000, model.now_ns // 1_000_000)
            proc.on_rest("/fapi/v1/depth?symbol=ALTUSDT&limit=1000", body, model.now_ns)
    return sink.batches


def time_depth(batches: list[tuple[np.ndarray, int | None]], config: dict[str, Any]) -> tuple[float, float]:
    """(all messages, depth-diff messages only): mean wall microseconds of ``apply`` with the detectors,
    each message timed on its own (perf_counter; its ~0.1 us call cost included)."""
    from app.analytics.detectors import DetectorSet
    from app.core.events import DEPTH_EVENT, KIND_MASK
    from app.market import MarketState

    depth = [bool(len(b)) and bool(((b["ev"] & KIND_MASK) == DEPTH_EVENT).all()) for b, _ in batches]
    market = MarketState(ALT, config, detectors=DetectorSet(ALT, config))
    apply = market.apply
    clock = time.perf_counter
    total = in_depth = 0.0
    for (batch, update_id), is_depth in zip(batches, depth, strict=True):
        t = clock()
        apply(batch, update_id)
        dt = clock() - t
        total += dt
        if is_depth:
            in_depth += dt
    return total / len(batches) * 1e6, in_depth / max(1, sum(depth)) * 1e6


def time_apply(batches: list[tuple[np.ndarray, int | None]], config: dict[str, Any], detectors: bool,
               instrument: Instrument = BTC) -> float:
    """Seconds (process time) for one MarketState to apply every batch."""
    from app.analytics.detectors import DetectorSet
    from app.market import MarketState

    market = MarketState(instrument, config, detectors=DetectorSet(instrument, config) if detectors else None)
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
    sim = simulator_batches(1.0 if quick else 4.0)
    sim_plain = min(time_apply(sim, config, False, ALT) for _ in range(repeats))
    sim_det = min(time_apply(sim, config, True, ALT) for _ in range(repeats))
    sim_all_us, sim_depth_us = min(time_depth(sim, config) for _ in range(repeats))
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
        BenchResult("engine.apply_sim", len(sim) / sim_det, "messages/s",
                    extra={"source": "simulator ALTUSDT, uncoalesced, model rate 20000/s", "messages": len(sim),
                           "clock": "process_time", "repeats": repeats,
                           "us_per_message": round(sim_det / len(sim) * 1e6, 2),
                           "us_per_message_no_detectors": round(sim_plain / len(sim) * 1e6, 2),
                           "wall_us_per_depth_message": round(sim_depth_us, 2),
                           "wall_us_per_message": round(sim_all_us, 2)}),
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
