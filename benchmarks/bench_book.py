"""Depth book benchmarks: rebuild the real Binance BTCUSDT book, message by message, against peers.

Data: hftbacktest's capture ``binance_usdm/hftbacktest_usdm_btcusdt_20240808.gz`` (6,551
``btcusdt@depth@0ms`` diffs, 443,521 level changes) plus its REST snapshot (1000 levels a side).
Setup (untimed): every diff is parsed into (bid ticks, bid sizes, ask ticks, ask sizes) with tick 0.1,
once as numpy arrays (for DepthBook) and once as Python lists (for the dict-like peers), and each
book is loaded with the snapshot. Timed: all diffs in order, one message at a time, each side applied,
then best bid and best ask read (as any consumer does after a message). Every peer is driven the
fastest way its documentation shows:

* ``DepthBook``: ``apply_diff`` (both sides of the message in one call), then ``best_bid()`` /
  ``best_ask()``; at the end the far rows still in its log are merged, inside the timing.
* ``sortedcontainers.SortedDict`` (one per side, int tick keys): ``d[k] = q`` / ``d.pop(k, None)``,
  best via ``peekitem(-1)`` / ``peekitem(0)``.
* ``order-book`` (bmoscon's C extension, the one cryptofeed uses; float price keys): ``bids[p] = q``,
  and for a zero size ``if p in bids: del bids[p]`` (cryptofeed's own update loop), best via
  ``bids.index(0)`` / ``asks.index(0)`` (its README).

All three must end with the same book (asserted). The races are repeated interleaved (ours, SortedDict,
order-book, ours, ...) and each one's best time is kept. For information (no peer): ``book.apply_side``
(the same race through ``apply_side`` once per side; its book is checked too) and ``book.apply_batch``
(the engine's path, ``apply`` on EVENT_DTYPE batches with every row validated).
"""

from __future__ import annotations

import functools
import gzip
import json
import time
from dataclasses import dataclass

import numpy as np

from app.core.book import DepthBook
from app.core.events import ASK, BID, depth_rows
from app.core.instrument import Instrument
from app.paths import recorded
from benchmarks import BenchResult

CAPTURE = ("binance_usdm", "hftbacktest_usdm_btcusdt_20240808.gz")
TICK = 0.1
INSTRUMENT = Instrument("binance-usdm", "BTCUSDT", TICK, 0.001)


@dataclass(frozen=True, slots=True)
class Capture:
    """The pre-parsed diffs and snapshot, in the shapes each book consumes."""

    arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]  # ticks int64, sizes f64
    tick_lists: list[tuple[list[int], list[float], list[int], list[float]]]
    price_lists: list[tuple[list[float], list[float], list[float], list[float]]]
    snapshot_bids: list[tuple[float, float]]  # (price, size)
    snapshot_asks: list[tuple[float, float]]
    levels: int


def _ticks(prices: list[float]) -> np.ndarray:
    return np.rint(np.asarray(prices, dtype=np.float64) / TICK).astype(np.int64)


@functools.cache
def load_capture() -> Capture:
    """Parse every depth diff of the capture (stdlib json; untimed setup)."""
    arrays = []
    tick_lists = []
    price_lists = []
    snapshot = None
    with gzip.open(recorded(*CAPTURE), "rt") as fh:
        for line in fh:
            _, raw = line.split(" ", 1)
            if "@depth" not in raw and "lastUpdateId" not in raw:
                continue
            msg = json.loads(raw)
            if "lastUpdateId" in msg:
                snapshot = msg
                continue
            if not msg.get("stream", "").endswith("@depth@0ms"):
                continue
            data = msg["data"]
            bp = [float(p) for p, _ in data["b"]]
            bq = [float(q) for _, q in data["b"]]
            ap = [float(p) for p, _ in data["a"]]
            aq = [float(q) for _, q in data["a"]]
            bt, at = _ticks(bp), _ticks(ap)
            arrays.append((bt, np.asarray(bq, dtype=np.float64), at, np.asarray(aq, dtype=np.float64)))
            tick_lists.append((bt.tolist(), bq, at.tolist(), aq))
            price_lists.append((bp, bq, ap, aq))
    if snapshot is None:
        raise RuntimeError("capture has no REST depth snapshot")
    levels = sum(len(m[0]) + len(m[2]) for m in tick_lists)
    return Capture(
        arrays,
        tick_lists,
        price_lists,
        [(float(p), float(q)) for p, q in snapshot["bids"]],
        [(float(p), float(q)) for p, q in snapshot["asks"]],
        levels,
    )


# ---------------------------------------------------------------------- the three races


def _loaded_book(cap: Capture) -> DepthBook:
    """A DepthBook holding the capture's REST snapshot (untimed)."""
    book = DepthBook(INSTRUMENT)
    snap = (cap.snapshot_bids, cap.snapshot_asks)
    book.apply_diff(
        *(a for levels in snap for a in (_ticks([p for p, _ in levels]), np.asarray([q for _, q in levels])))
    )
    return book


def _final(book: DepthBook) -> tuple[dict[int, float], dict[int, float]]:
    """The whole book (far levels included) as dicts, to compare racers."""
    final = []
    for side in (BID, ASK):
        t, q = book.levels(side)
        final.append(dict(zip(t.tolist(), q.tolist(), strict=True)))
    return final[0], final[1]


def race_depthbook(cap: Capture) -> tuple[float, dict[int, float], dict[int, float]]:
    """DepthBook.apply_diff, one call per message: seconds for all diffs, and the final book."""
    book = _loaded_book(cap)
    apply_diff = book.apply_diff
    best_bid = book.best_bid
    best_ask = book.best_ask
    t0 = time.perf_counter()
    for bt, bq, at, aq in cap.arrays:
        apply_diff(bt, bq, at, aq)
        best_bid()
        best_ask()
    book.levels(BID, 1)  # merges the far rows still in the log: no work left outside the timing
    elapsed = time.perf_counter() - t0
    return elapsed, *_final(book)


def race_depthbook_sides(cap: Capture) -> tuple[float, dict[int, float], dict[int, float]]:
    """DepthBook.apply_side, one call per side of each message (for information)."""
    book = _loaded_book(cap)
    apply_side = book.apply_side
    best_bid = book.best_bid
    best_ask = book.best_ask
    t0 = time.perf_counter()
    for bt, bq, at, aq in cap.arrays:
        apply_side(BID, bt, bq)
        apply_side(ASK, at, aq)
        best_bid()
        best_ask()
    book.levels(BID, 1)  # as in race_depthbook
    elapsed = time.perf_counter() - t0
    return elapsed, *_final(book)


def race_sorteddict(cap: Capture) -> tuple[float, dict[int, float], dict[int, float]]:
    """sortedcontainers.SortedDict per side, int tick keys."""
    from sortedcontainers import SortedDict

    bids = SortedDict({round(p / TICK): q for p, q in cap.snapshot_bids})
    asks = SortedDict({round(p / TICK): q for p, q in cap.snapshot_asks})
    bpop, apop = bids.pop, asks.pop
    t0 = time.perf_counter()
    for bt, bq, at, aq in cap.tick_lists:
        for k, q in zip(bt, bq):  # noqa: B905 - hot loop, lengths equal by construction
            if q:
                bids[k] = q
            else:
                bpop(k, None)
        for k, q in zip(at, aq):  # noqa: B905
            if q:
                asks[k] = q
            else:
                apop(k, None)
        if bids:
            bids.peekitem(-1)
        if asks:
            asks.peekitem(0)
    elapsed = time.perf_counter() - t0
    return elapsed, dict(bids), dict(asks)


def race_order_book(cap: Capture) -> tuple[float, dict[int, float], dict[int, float]]:
    """bmoscon's order-book C extension, float price keys, cryptofeed's update loop."""
    from order_book import OrderBook

    ob = OrderBook()
    ob.bids = dict(cap.snapshot_bids)
    ob.asks = dict(cap.snapshot_asks)
    bids, asks = ob.bids, ob.asks
    t0 = time.perf_counter()
    for bp, bq, ap, aq in cap.price_lists:
        for p, q in zip(bp, bq):  # noqa: B905
            if q:
                bids[p] = q
            elif p in bids:
                del bids[p]
        for p, q in zip(ap, aq):  # noqa: B905
            if q:
                asks[p] = q
            elif p in asks:
                del asks[p]
        if len(bids):
            bids.index(0)
        if len(asks):
            asks.index(0)
    elapsed = time.perf_counter() - t0
    final_b = {round(p / TICK): q for p, q in bids.to_dict().items()}
    final_a = {round(p / TICK): q for p, q in asks.to_dict().items()}
    return elapsed, final_b, final_a


def _micro(quick: bool) -> list[BenchResult]:
    """walk / ladder / levels on the final real book."""
    cap = load_capture()
    book = _loaded_book(cap)
    for bt, bq, at, aq in cap.arrays:
        book.apply_diff(bt, bq, at, aq)
    n = 2_000 if quick else 20_000
    top = book.best_ask_tick + 30
    cases = [
        ("book.walk", "walk(ASK, 25 BTC)", lambda: book.walk(ASK, 25.0)),
        ("book.ladder", "ladder(60 rows)", lambda: book.ladder(top, 60)),
        ("book.ladder", "ladder(60 rows x 10 ticks)", lambda: book.ladder(top, 60, 10)),
        ("book.cumulative_depth", "cumulative_depth(BID, 50)", lambda: book.cumulative_depth(BID, 50)),
    ]
    out = []
    for name, what, fn in cases:
        fn()
        best = float("inf")
        for _ in range(1 if quick else 3):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            best = min(best, time.perf_counter() - t0)
        out.append(BenchResult(name, n / best, "ops/s", extra={"case": what}))
    return out


def race_depthbook_batches(cap: Capture) -> float:
    """DepthBook.apply on EVENT_DTYPE batches (the engine's path: validation of every row included)."""
    book = _loaded_book(cap)
    batches = []
    for i, (bt, bq, at, aq) in enumerate(cap.arrays):
        rows = [depth_rows(BID, bt, bq, TICK, i, i, i), depth_rows(ASK, at, aq, TICK, i, i, i)]
        batches.append(np.concatenate(rows))
    apply = book.apply
    t0 = time.perf_counter()
    for batch in batches:
        apply(batch)
        book.best_bid()
        book.best_ask()
    book.levels(BID, 1)  # as in race_depthbook
    return time.perf_counter() - t0


def run(quick: bool = False) -> list[BenchResult]:
    """Race DepthBook against SortedDict and order-book on the real capture; micro figures."""
    cap = load_capture()
    repeats = 1 if quick else 5
    races = {
        "ours": race_depthbook,
        "sortedcontainers.SortedDict": race_sorteddict,
        "order-book": race_order_book,
        "apply_side": race_depthbook_sides,
    }
    times: dict[str, list[float]] = {name: [] for name in races}
    finals: dict[str, tuple[dict[int, float], dict[int, float]]] = {}
    # Interleaved repeats, best time of each: a shared machine's load swings hit every racer alike.
    for _ in range(repeats):
        for name, race in races.items():
            elapsed, bids, asks = race(cap)
            times[name].append(elapsed)
            finals[name] = (bids, asks)
    for name in races:
        if finals[name] != finals["ours"]:
            raise AssertionError(f"{name} ended with a different book than DepthBook")
    ours_s = min(times["ours"])
    ours_rate = cap.levels / ours_s
    msgs = len(cap.arrays)
    results = []
    for peer in ("sortedcontainers.SortedDict", "order-book"):
        peer_s = min(times[peer])
        peer_rate = cap.levels / peer_s
        extra = {
            "messages": msgs,
            "levels": cap.levels,
            "repeats": repeats,
            "peer_value": peer_rate,
            "us_per_msg": 1e6 * ours_s / msgs,
            "peer_us_per_msg": 1e6 * peer_s / msgs,
        }
        results.append(
            BenchResult(
                "book.apply", ours_rate, "levels/s", peer=peer, ratio=ours_rate / peer_rate, extra=extra
            )
        )
    sides_s = min(times["apply_side"])
    sd_s = min(times["sortedcontainers.SortedDict"])
    results.append(
        BenchResult(
            "book.apply_side",
            cap.levels / sides_s,
            "levels/s",
            peer="sortedcontainers.SortedDict",
            ratio=sd_s / sides_s,
            extra={
                "case": "apply_side per side + best (information)",
                "peer_value": cap.levels / sd_s,
                "us_per_msg": 1e6 * sides_s / msgs,
            },
        )
    )
    batch_s = min(race_depthbook_batches(cap) for _ in range(repeats))
    results.append(
        BenchResult(
            "book.apply_batch",
            cap.levels / batch_s,
            "levels/s",
            extra={"case": "apply(EVENT_DTYPE batch) + best", "us_per_msg": 1e6 * batch_s / msgs},
        )
    )
    results.extend(_micro(quick))
    return results


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        peer = (
            f"  vs {row.peer}: {row.ratio:.2f}x ({row.extra['peer_value']:,.0f} {row.unit})"
            if row.peer
            else ""
        )
        case = f" [{row.extra['case']}]" if "case" in row.extra else ""
        print(f"{row.name:24s} {row.value:14,.0f} {row.unit}{case}{peer}")
