"""Feed decode + sync + book apply on the real BTCUSDT capture, raced against hftbacktest's converter.

Both sides read the same gzip file (hftbacktest_usdm_btcusdt_20240808.gz: 93,954 lines: depth diffs,
trades, bookTicker, one REST snapshot) and turn every line into event rows:

* ours: ``BinanceUsdmProcessor`` (msgspec decode, ticks, ``BinanceBookSync``) with a sink that applies
  every book batch to a ``DepthBook`` (the engine's work) and receives trade and BBO rows;
* peer: ``hftbacktest.data.utils.binancefutures.convert(path, opt="t")`` (json + per-row numpy writes
  + its latency/order correction), warmed once first so numba's compile time is not counted.

Figures are CPU time of this process (``time.process_time``): the test machine is shared and wall
time swings 2x with other load; the best of several runs is kept for both sides.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import time
from pathlib import Path

import numpy as np

from app.core.instrument import Instrument
from app.paths import recorded
from benchmarks import BenchResult
from feeds.binance_usdm import BinanceUsdmProcessor

CAPTURE = ("binance_usdm", "hftbacktest_usdm_btcusdt_20240808.gz")
BTCUSDT = Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001)


class _BookSink:
    """What the engine does with a feed's output, minus the ring: apply book batches, keep the rest."""

    def __init__(self) -> None:
        from app.core.book import DepthBook

        self.book = DepthBook(BTCUSDT)
        self.batches = 0
        self.book_messages = 0

    def on_instrument(self, instrument: Instrument) -> None:
        pass

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        self.batches += 1
        if update_id is not None:
            self.book.apply(batch)
            self.book_messages += 1

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        pass

    def on_raw(self, local_ns: int, raw: str) -> None:
        pass


def run_ours(path: Path) -> tuple[float, int, _BookSink]:
    """CPU seconds and line count for read + decode + sync + apply of the whole file."""
    sink = _BookSink()
    proc = BinanceUsdmProcessor([BTCUSDT], sink)
    start = time.process_time()
    with gzip.open(path, "rb") as f:
        on_line = proc.on_line
        for line in f:
            on_line(line[20:], int(line[:19]))
    elapsed = time.process_time() - start
    if proc.malformed or proc.resyncs:
        raise RuntimeError(f"benchmark replay went wrong: {proc.malformed} malformed, {proc.resyncs} resyncs")
    return elapsed, proc.messages, sink


def run_peer(path: Path) -> float | None:
    """CPU seconds of hftbacktest's converter on the same file, or None when it is not installed."""
    try:
        from hftbacktest.data.utils import binancefutures
    except ImportError:
        return None
    start = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints progress lines
        binancefutures.convert(str(path), opt="t", buffer_size=2_000_000)
    return time.process_time() - start


def run(quick: bool = False) -> list[BenchResult]:
    """One row: messages/s of our full path, with hftbacktest's converter as the peer when installed."""
    path = recorded(*CAPTURE)
    repeats = 1 if quick else 3
    run_peer(path)  # warm-up: numba compiles its helpers on first use
    ours: list[float] = []
    peer: list[float] = []
    messages = 0
    for _ in range(repeats):
        elapsed, messages, sink = run_ours(path)
        ours.append(elapsed)
        p = run_peer(path)
        if p is not None:
            peer.append(p)
    best = min(ours)
    rate = messages / best
    extra = {"messages": messages, "book_messages": sink.book_messages, "seconds": round(best, 4),
             "clock": "process_time", "repeats": repeats}  # fmt: skip
    if not peer:
        return [BenchResult("feeds.binance.decode_sync_apply", rate, "messages/s", extra=extra)]
    peer_rate = messages / min(peer)
    extra["peer_messages_per_s"] = round(peer_rate)
    return [BenchResult("feeds.binance.decode_sync_apply", rate, "messages/s", "hftbacktest.convert",
                        rate / peer_rate, extra)]  # fmt: skip


if __name__ == "__main__":
    for row in run():
        print(row.as_json())
