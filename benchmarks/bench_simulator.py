"""Simulator throughput: model + encoding per CPU second, and loopback messages/s to one client.

The server runs in a child process (``depthdesk simulate``) so it does not share the GIL with the
receiving client; the client only counts frames. Figures on a loaded 2-core box vary by ±30 %.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

from app.paths import REPO_ROOT, recorded
from benchmarks import BenchResult
from feeds.simulator.binance import BinanceVenue
from feeds.simulator.market import DEFAULT_SYMBOLS, MarketModel


class _Null:
    """A subscriber that only counts (isolates model + encoding cost)."""

    combined = True
    closed = False

    def __init__(self) -> None:
        self.n = 0

    def push(self, message: str) -> None:
        self.n += 1


def model_capacity(seconds: float = 2.0, rate: float = 60_000.0) -> BenchResult:
    """Book messages generated and encoded (Binance @depth@0ms envelope) per CPU second."""
    model = MarketModel(DEFAULT_SYMBOLS[:1], seed=1, rate=rate)
    venue = BinanceVenue(model, DEFAULT_SYMBOLS[:1], coalesce=False)
    sink = _Null()
    venue.subs["altusdt@depth@0ms"] = {sink}  # type: ignore[arg-type]
    cpu0 = time.process_time()
    steps = int(seconds * 100)
    for _ in range(steps):
        venue.on_events(model.step(10_000_000), model.now_ns)
    cpu = time.process_time() - cpu0
    return BenchResult("simulator model+encode", sink.n / cpu, "msg/cpu-s",
                       extra={"messages": sink.n, "cpu_s": round(cpu, 3)})


async def _count(url: str, warmup: float, window: float) -> tuple[int, float]:
    """Frames received in ``window`` seconds after ``warmup``; stops early when the stream runs dry."""
    from websockets.asyncio.client import connect

    async with connect(url, max_queue=None, compression=None, open_timeout=20) as ws:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < warmup:
            await ws.recv()
        n = 0
        t0 = last = time.perf_counter()
        try:
            # One timeout for the whole window: a wait_for per recv() would cost more than the frame.
            async with asyncio.timeout(window):
                while True:
                    await ws.recv()
                    n += 1
                    if n & 255 == 0:
                        last = time.perf_counter()
        except TimeoutError:
            pass
        end = time.perf_counter()
        if end - last > 0.5:  # the source ran dry before the window ended: rate over the active span
            end = last
        return n, end - t0


def _spawn(extra: list[str]) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())",
                             "simulate", "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO_ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("the simulator child process did not start")
    return proc, json.loads(line)["port"]


def _finish(proc: subprocess.Popen) -> dict:
    """Wait for the child's own end (``--duration``) and read its final stats line."""
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    for line in reversed(out.splitlines()):
        if line.startswith('{"type": "stats"'):
            return json.loads(line)
    return {}


def loopback_synthetic(rate: float, window: float) -> BenchResult:
    """Messages/s one plain websocket client receives from the synthetic market (real-time depth)."""
    proc, port = _spawn(["--rate", str(rate), "--realtime-depth", "--symbols", "ALTUSDT",
                         "--duration", str(window + 2)])
    try:
        n, elapsed = asyncio.run(_count(f"ws://127.0.0.1:{port}/public/ws/altusdt@depth@0ms", 1.0, window))
    except BaseException:
        proc.kill()
        raise
    stats = _finish(proc)
    got = n / elapsed
    sent = stats.get("data_messages_sent", 0)
    cpu_us = 1e3 * stats["cpu_ms"] / sent if sent else None
    return BenchResult(f"simulator loopback synthetic @{rate:.0f}/s", got, "msg/s",
                       extra={"target": rate, "kept_up": got >= 0.95 * rate,
                              "server_cpu_us_per_msg": round(cpu_us, 2) if cpu_us else None,
                              "server_capacity_msg_per_cpu_s": round(1e6 / cpu_us) if cpu_us else None})


def loopback_capture(window: float) -> BenchResult:
    """Messages/s one client receives from a max-speed replay of the real BTCUSDT capture."""
    path = recorded("binance_usdm", "hftbacktest_usdm_btcusdt_20240808.gz")
    proc, port = _spawn(["--capture", str(path), "--speed", "0", "--duration", str(window + 3)])
    try:
        url = f"ws://127.0.0.1:{port}/public/stream?streams=btcusdt@depth@0ms/btcusdt@bookTicker"
        n, elapsed = asyncio.run(_count(url, 0.2, window))
    except BaseException:
        proc.kill()
        raise
    stats = _finish(proc)
    sent = stats.get("data_messages_sent", 0)
    cpu_us = 1e3 * stats["cpu_ms"] / sent if sent else None
    return BenchResult("simulator loopback capture replay (max speed)", n / elapsed, "msg/s",
                       extra={"messages": n, "server_cpu_us_per_msg": round(cpu_us, 2) if cpu_us else None,
                              "server_capacity_msg_per_cpu_s": round(1e6 / cpu_us) if cpu_us else None})


def run(quick: bool = False) -> list[BenchResult]:
    """All simulator figures; ``quick`` shortens every window."""
    window = 2.0 if quick else 5.0
    results = [model_capacity(1.0 if quick else 3.0)]
    for rate in ((60_000.0,) if quick else (20_000.0, 60_000.0)):
        results.append(loopback_synthetic(rate, window))
    results.append(loopback_capture(window))
    return results


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row.as_json()))
