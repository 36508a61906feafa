"""Loopback throughput of one venue adapter against the simulator (issue 3).

The exchange runs in its own process, as a real venue would (``depthdesk simulate --capture FILE
--speed 0``: the real BTCUSDT capture replayed as fast as the client reads). In this process the real
:class:`~feeds.binance_usdm.BinanceUsdmFeed` connects to it over 127.0.0.1 exactly as to Binance —
exchangeInfo, REST snapshot, two websockets, decode, sync — into a counting sink. At ``--speed 0`` the
server only sends as fast as the client reads, so the figure is the adapter's own sustained rate.

Row ``feeds.loopback.binance`` (messages/s delivered to the sink, with the websocket frames received).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import numpy as np

from app.paths import REPO_ROOT, recorded
from benchmarks import BenchResult
from feeds.base import NullSink

ROWS = ("feeds.loopback.binance",)
CAPTURE = ("binance_usdm", "hftbacktest_usdm_btcusdt_20240808.gz")
QUIET_S = 2.0  # the capture is over once no frame arrived for this long


class _Counter(NullSink):
    """Counts raw frames and delivered batches, with the time of the first and the last."""

    def __init__(self) -> None:
        self.frames = 0
        self.batches = 0
        self.first = 0.0
        self.last = 0.0

    def on_raw(self, local_ns: int, raw: str) -> None:
        if not self.frames:
            self.first = time.perf_counter()
        self.frames += 1
        self.last = time.perf_counter()

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        self.batches += 1


async def _drive(endpoints: dict[str, str], sink: _Counter, limit_s: float) -> None:
    from feeds.binance_usdm import BinanceUsdmFeed

    feed = BinanceUsdmFeed(["BTCUSDT"], endpoints["rest"], endpoints["ws_public"], endpoints["ws_market"],
                           trade_stream="trade", depth_stream="depth@0ms")
    task = asyncio.create_task(feed.run(sink))
    deadline = time.perf_counter() + limit_s
    try:
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.25)
            if sink.frames and time.perf_counter() - sink.last > QUIET_S:
                break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def run(quick: bool = False) -> list[BenchResult]:
    """One pass of the real capture through the adapter, the exchange in a subprocess."""
    path = recorded(*CAPTURE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "simulate", "--capture", str(path), "--speed", "0", "--json",
         "--duration", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=str(REPO_ROOT))
    try:
        assert proc.stdout is not None
        hello: dict[str, Any] = json.loads(proc.stdout.readline())
        sink = _Counter()
        asyncio.run(_drive(hello["venues"]["binance-usdm"], sink, 60.0 if quick else 110.0))
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    elapsed = max(sink.last - sink.first, 1e-9)
    return [BenchResult("feeds.loopback.binance", sink.batches / elapsed, "messages/s",
                        extra={"frames": sink.frames, "batches": sink.batches, "seconds": round(elapsed, 3),
                               "goal": 50_000})]


if __name__ == "__main__":
    for row in run():
        print(row.as_json())
