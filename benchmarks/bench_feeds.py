"""Feed decode + sync + book apply on the real BTCUSDT capture, raced against hftbacktest's converter.

Both sides read the same gzip file (hftbacktest_usdm_btcusdt_20240808.gz: 93,954 lines: depth diffs,
trades, bookTicker, one REST snapshot) and turn every line into event rows:

* ours: ``BinanceUsdmProcessor`` (msgspec decode, ticks, ``BinanceBookSync``) with a sink that applies
  every book batch to a ``DepthBook`` (the engine's work; diffs via ``apply_side``) and receives trade
  and BBO rows; a second row leaves the book out (decode + sync only: the peer builds no book);
* peer: ``hftbacktest.data.utils.binancefutures.convert(path, opt="t")`` (json + per-row numpy writes
  + its latency/order correction), warmed once first so numba's compile time is not counted.

Figures are CPU time of this process (``time.process_time``): the test machine is shared and wall
time swings 2x with other load; the best of several runs is kept for both sides.
"""

from __future__ import annotations

import contextlib
import io
import time
import zlib
from pathlib import Path

import numpy as np

from app.core.events import ASK, BID, BUY_EVENT, DEPTH_EVENT, KIND_MASK
from app.core.instrument import Instrument
from app.paths import recorded
from benchmarks import BenchResult
from feeds.binance_usdm import BinanceUsdmProcessor

CAPTURE = ("binance_usdm", "hftbacktest_usdm_btcusdt_20240808.gz")
ROWS = ("feeds.binance.decode_sync_apply", "feeds.binance.decode_sync")  # every row name, for `--only`
BTCUSDT = Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001)


class _BookSink:
    """What the engine does with a feed's output, minus the ring: apply book batches, keep the rest.

    A diff batch (only ``DEPTH_EVENT`` rows, bids first; the feeds' layout) goes through the book's
    ``apply_side`` fast path, twice, about 3x cheaper than ``apply``; snapshots and gaps use ``apply``.

    With ``apply=False`` book batches are only counted: decode + sync alone, the same work as the peer
    (which builds rows and no book).
    """

    def __init__(self, apply: bool = True) -> None:
        from app.core.book import DepthBook

        self.book = DepthBook(BTCUSDT)
        self.apply = apply
        self.batches = 0
        self.book_messages = 0

    def on_instrument(self, instrument: Instrument) -> None:
        pass

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        self.batches += 1
        if update_id is not None:
            self.book_messages += 1
            if not self.apply:
                return
            ev = batch["ev"]
            if len(batch) and ((ev & KIND_MASK) == DEPTH_EVENT).all():
                nb = int(np.count_nonzero(ev & BUY_EVENT))
                ticks = batch["ival"]
                qty = batch["qty"]
                if nb:
                    self.book.apply_side(BID, ticks[:nb], qty[:nb])
                if nb < len(batch):
                    self.book.apply_side(ASK, ticks[nb:], qty[nb:])
            else:
                self.book.apply(batch)

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        pass

    def on_raw(self, local_ns: int, raw: str) -> None:
        pass


def run_ours(path: Path, apply: bool = True) -> tuple[float, int, _BookSink]:
    """CPU seconds and line count for read + decode + sync (+ book apply) of the whole file.

    The way a capture is replayed at full speed: the file is gunzipped in 1 MiB blocks, split into
    lines, and each block's frames go to the processor's bulk entry ``on_lines`` (one msgspec call per
    run of frames; every message still reaches the sink as its own batch, as live).
    """
    sink = _BookSink(apply)
    proc = BinanceUsdmProcessor([BTCUSDT], sink)
    start = time.process_time()
    on_lines = proc.on_lines
    inflate = zlib.decompressobj(31)
    tail = b""
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            lines = (tail + inflate.decompress(block)).split(b"\n")
            tail = lines.pop()
            on_lines([line[20:] for line in lines], [int(line[:19]) for line in lines])
    lines = (tail + inflate.flush()).split(b"\n")
    lines = [line for line in lines if line]
    on_lines([line[20:] for line in lines], [int(line[:19]) for line in lines])
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
    """Rows: messages/s of our full path (decode + sync + apply) and of decode + sync alone, each with
    hftbacktest's converter as the peer when installed."""
    path = recorded(*CAPTURE)
    repeats = 1 if quick else 3
    run_peer(path)  # warm-up: numba compiles its helpers on first use
    full: list[float] = []
    bare: list[float] = []
    peer: list[float] = []
    messages = book_messages = 0
    for _ in range(repeats):  # interleaved, so load changes hit all three alike
        elapsed, messages, sink = run_ours(path)
        full.append(elapsed)
        book_messages = sink.book_messages
        bare.append(run_ours(path, apply=False)[0])
        p = run_peer(path)
        if p is not None:
            peer.append(p)
    common = {"messages": messages, "book_messages": book_messages, "clock": "process_time", "repeats": repeats}
    peer_rate = messages / min(peer) if peer else None
    rows = []
    for name, times in (("feeds.binance.decode_sync_apply", full), ("feeds.binance.decode_sync", bare)):
        rate = messages / min(times)
        extra = dict(common, seconds=round(min(times), 4))
        if peer_rate is None:
            rows.append(BenchResult(name, rate, "messages/s", extra=extra))
        else:
            extra["peer_messages_per_s"] = round(peer_rate)
            rows.append(BenchResult(name, rate, "messages/s", "hftbacktest.convert", rate / peer_rate, extra))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row.as_json())
