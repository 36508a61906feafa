"""Core benchmarks: ring append and memory, footprint and volume profile on the real BTCUSDT trades.

Footprint/profile input: the 21,313 ``btcusdt@trade`` messages of hftbacktest's Binance USDⓈ-M capture
(2024-08-08), parsed untimed with the standard library. Each is raced two ways: one batch per message
(the live path: Binance sends one trade per message) and the whole capture as one batch (a rebuild
from the ring on replay or on a settings change). The peer is the obvious pure-Python implementation
(dicts keyed by bar and tick, one update per trade) fed the same event batches. The profile rows include
one value-area computation at the end, the footprint rows one ``bars()`` call.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable

import numpy as np

from app.core.events import BOTH_CLOCKS, BUY_EVENT, EVENT_DTYPE, SELL_EVENT, TRADE_EVENT
from app.core.footprint import FootprintAggregator
from app.core.profile import VolumeProfile
from app.core.ring import EventRing
from app.paths import recorded
from benchmarks import BenchResult

RING_ROWS = ("ring.append.batch1", "ring.append.batch100", "ring.append.batch1000", "ring.latest1000",
             "ring.nbytes")
FLOW_ROWS = ("footprint.add.per_message", "footprint.add.one_batch", "profile.add.per_message",
             "profile.add.one_batch")
ROWS = RING_ROWS + FLOW_ROWS  # every row name, so `--only` knows what this module can print
CAPTURE = ("binance_usdm", "hftbacktest_usdm_btcusdt_20240808.gz")
BTC_TICK = 0.1
BAR_NS = 60_000_000_000  # 1-minute footprint bars
RING_GOAL = 20e6  # issue 2: ring append >= 20 million events/s in batches


def _best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Smallest wall time of ``repeats`` runs of ``fn`` (the least disturbed by the shared machine)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# -- ring -------------------------------------------------------------------------------------------
def bench_ring(quick: bool) -> list[BenchResult]:
    """Append rate for batches of 1, 100 and 1000 rows, latest(n) cost, and the fixed memory."""
    capacity = 1 << 16 if quick else 1 << 18
    ring = EventRing(capacity)
    nbytes_before = ring.nbytes
    src = np.zeros(1 << 17 if quick else 1 << 20, dtype=EVENT_DTYPE)
    src["order_id"] = np.arange(src.size)
    out: list[BenchResult] = []
    for batch in (1, 100, 1000):
        n = min(src.size, 20_000 if quick else 200_000) if batch == 1 else src.size
        n -= n % batch
        chunks = [src[i:i + batch] for i in range(0, n, batch)]  # slicing is not what we time
        extend = ring.extend

        def go(chunks: list[np.ndarray] = chunks, extend: Callable[[np.ndarray], None] = extend) -> None:
            for c in chunks:
                extend(c)

        t = _best_of(2 if quick else 3, go)
        rate = n / t
        extra: dict[str, float] = {"batch": batch}
        if batch > 1:
            extra["goal"] = RING_GOAL
        out.append(BenchResult(f"ring.append.batch{batch}", rate, "events/s", extra=extra))
    # correctness of what was timed: the ring holds the newest rows in order
    assert ring.latest(3)["order_id"].tolist() == src["order_id"][n - 3:n].tolist()
    reps = 10_000 if quick else 100_000
    t0 = time.perf_counter()
    latest = ring.latest
    for _ in range(reps):
        latest(1000)
    out.append(BenchResult("ring.latest1000", (time.perf_counter() - t0) / reps * 1e9, "ns",
                           extra={"zero_copy": bool(np.shares_memory(ring.latest(1000), ring._buf))}))
    out.append(BenchResult(
        "ring.nbytes", float(ring.nbytes), "bytes",
        extra={"capacity": capacity, "rows_written": ring.total_written, "nbytes_at_creation": nbytes_before,
               "fixed": ring.nbytes == nbytes_before},
    ))
    return out


# -- footprint / profile ----------------------------------------------------------------------------
def load_trades() -> np.ndarray:
    """The capture's trades as EVENT_DTYPE rows (untimed; m=true means the seller was the aggressor)."""
    ts, local, px, qty, tid, sell = [], [], [], [], [], []
    with gzip.open(recorded(*CAPTURE), "rt") as f:
        for line in f:
            local_ns, raw = line.split(" ", 1)
            if '"btcusdt@trade"' not in raw[:40]:
                continue
            d = json.loads(raw)["data"]
            ts.append(d["T"] * 1_000_000)
            local.append(int(local_ns))
            px.append(float(d["p"]))
            qty.append(float(d["q"]))
            tid.append(d["t"])
            sell.append(d["m"])
    rows = np.zeros(len(ts), dtype=EVENT_DTYPE)
    side = np.where(np.asarray(sell, bool), SELL_EVENT, BUY_EVENT).astype(np.uint64)
    rows["ev"] = BOTH_CLOCKS | TRADE_EVENT | side
    rows["exch_ts"] = ts
    rows["local_ts"] = local
    rows["px"] = px
    rows["qty"] = qty
    rows["order_id"] = tid
    rows["ival"] = np.rint(np.asarray(px) / BTC_TICK).astype(np.int64)
    return rows


def python_footprint(batches: list[np.ndarray]) -> dict:
    """Peer: the obvious footprint, a dict of bars of dicts of [buy, sell, count] updated per trade."""
    bars: dict[int, dict[int, list]] = {}
    for batch in batches:
        for ev, ts, _, _, q, _, tick, _ in batch.tolist():
            if ev & 0xFF != TRADE_EVENT:
                continue
            rows = bars.get(ts // BAR_NS)
            if rows is None:
                rows = bars[ts // BAR_NS] = {}
            cell = rows.get(tick)
            if cell is None:
                cell = rows[tick] = [0.0, 0.0, 0]
            cell[0 if ev & BUY_EVENT else 1] += q
            cell[2] += 1
    return bars


def python_profile(batches: list[np.ndarray]) -> tuple[dict, dict]:
    """Peer: the obvious volume profile, two dicts tick -> volume updated per trade."""
    buy: dict[int, float] = {}
    sell: dict[int, float] = {}
    for batch in batches:
        for ev, _, _, _, q, _, tick, _ in batch.tolist():
            if ev & 0xFF != TRADE_EVENT:
                continue
            d = buy if ev & BUY_EVENT else sell
            d[tick] = d.get(tick, 0.0) + q
    return buy, sell


def bench_order_flow(quick: bool, only: str | None) -> list[BenchResult]:
    """Footprint and profile accumulation rates on the real capture, per message and in one batch."""
    rows = load_trades()
    n = rows.size
    per_message = [rows[i:i + 1] for i in range(n)]
    one_batch = [rows]
    repeats = 1 if quick else 3
    out: list[BenchResult] = []

    def want(name: str) -> bool:
        return only is None or only in name

    def fp_batches(batches: list[np.ndarray]) -> Callable[[], None]:
        def go() -> None:
            fp = FootprintAggregator(bar_ns=BAR_NS)
            for b in batches:
                fp.add(b)
            fp.bars()
        return go

    def prof_batches(batches: list[np.ndarray]) -> Callable[[], None]:
        def go() -> None:
            prof = VolumeProfile()
            for b in batches:
                prof.add(b)
            prof.value_area()
        return go

    # sanity: the vectorised results equal the peers' before anything is timed
    fp = FootprintAggregator(bar_ns=BAR_NS)
    fp.add(rows)
    ref = python_footprint(one_batch)
    assert [b.index for b in fp.bars()] == sorted(ref)
    assert all(b.trade_count == sum(c[2] for c in ref[b.index].values()) for b in fp.bars())
    prof = VolumeProfile()
    prof.add(rows)
    ref_buy, _ = python_profile(one_batch)
    assert abs(prof.buy_volume - sum(ref_buy.values())) < 1e-6

    # each race: ours and the peer on the same event batches (one per message, or one for all)
    cases = [
        ("footprint.add.per_message", fp_batches(per_message), lambda: python_footprint(per_message)),
        ("footprint.add.one_batch", fp_batches(one_batch), lambda: python_footprint(one_batch)),
        ("profile.add.per_message", prof_batches(per_message), lambda: python_profile(per_message)),
        ("profile.add.one_batch", prof_batches(one_batch), lambda: python_profile(one_batch)),
    ]
    for name, ours, peer in cases:
        if not want(name):
            continue
        t = _best_of(repeats, ours)
        peer_t = _best_of(repeats, peer)
        out.append(BenchResult(name, n / t, "trades/s", peer="python dicts per trade", ratio=peer_t / t,
                               extra={"trades": n}))
    return out


def run(quick: bool = False, only: str | None = None) -> list[BenchResult]:
    """All core rows (``only``: a substring of the row names to keep, skipping unselected parts)."""
    out: list[BenchResult] = []
    if only is None or any(only in r for r in RING_ROWS):
        out += bench_ring(quick)
    if only is None or any(only in r for r in FLOW_ROWS):
        out += bench_order_flow(quick, only)
    return out
