"""Export a capture's normalized events to hftbacktest's ``.npz`` (``np.savez_compressed(data=...)``).

The events are the venue processor's batches (the same as replay and live), in hftbacktest's 64-byte
``event_dtype`` (our ``EVENT_DTYPE`` is that layout). Adjustments hftbacktest needs, as its own
converters make them:

* only hftbacktest's kinds (depth, trade, clear, snapshot, BBO) by default; ``include_own_kinds`` keeps
  DepthDesk's mark/funding/liquidation/open-interest/gap rows (kinds 100+, hftbacktest's user range);
* a both-sides ``DEPTH_CLEAR_EVENT`` becomes a bid clear and an ask clear whose price is how far to
  clear (the snapshot's deepest level, or everything when no snapshot follows, as after a gap);
* negative feed latency (local clock behind the exchange's) is removed by shifting ``local_ts``
  (hftbacktest's ``correct_local_timestamp``);
* rows are ordered for both clocks (hftbacktest's ``correct_event_order``): a row whose position agrees
  in exchange-time and local-time order keeps both flags, otherwise it is written once per clock.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.core.events import (
    BUY_EVENT,
    DEPTH_BBO_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_DTYPE,
    EXCH_EVENT,
    KIND_MASK,
    LOCAL_EVENT,
    SELL_EVENT,
    SIDE_MASK,
    TRADE_EVENT,
)
from feeds.capture.readers import CaptureError
from feeds.capture.replay import ReplayFeed, make_router

HFTBACKTEST_KINDS = np.array([DEPTH_EVENT, TRADE_EVENT, DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT, DEPTH_BBO_EVENT],
                             dtype=np.uint64)
_ALL_CLEAR_ASK = float(np.finfo(np.float64).max)


class _EventSink:
    """Collects each symbol's batches as bytes (cheap appends), splitting both-sides clears on the way."""

    def __init__(self, include_own_kinds: bool) -> None:
        self.parts: dict[str, list[bytes]] = {}
        self.include_own = include_own_kinds

    def on_instrument(self, instrument: object) -> None:
        return None

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        return None

    def on_raw(self, local_ns: int, raw: str) -> None:
        return None

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        kinds = batch["ev"] & np.uint64(KIND_MASK)
        if not self.include_own:
            keep = np.isin(kinds, HFTBACKTEST_KINDS)
            if not keep.all():
                batch = batch[keep]
                kinds = kinds[keep]
        if not len(batch):
            return
        if (kinds == DEPTH_CLEAR_EVENT).any():
            batch = split_clears(batch)
        self.parts.setdefault(symbol, []).append(batch.tobytes())

    def events(self, symbol: str) -> np.ndarray:
        return np.frombuffer(b"".join(self.parts.get(symbol, [])), dtype=EVENT_DTYPE).copy()


def split_clears(batch: np.ndarray) -> np.ndarray:
    """Both-sides clears -> one bid and one ask clear with hftbacktest's clear-up-to prices."""
    out = []
    kinds = batch["ev"] & np.uint64(KIND_MASK)
    sides = batch["ev"] & np.uint64(SIDE_MASK)
    snap = kinds == DEPTH_SNAPSHOT_EVENT
    bid_px = batch["px"][snap & (sides == BUY_EVENT)]
    ask_px = batch["px"][snap & (sides == SELL_EVENT)]
    for i in range(len(batch)):
        row = batch[i : i + 1]
        if kinds[i] == DEPTH_CLEAR_EVENT and sides[i] == 0:
            bid = row.copy()
            bid["ev"] = (row["ev"] & ~np.uint64(KIND_MASK | SIDE_MASK)) | np.uint64(BUY_EVENT | DEPTH_CLEAR_EVENT)
            bid["px"] = bid_px.min() if len(bid_px) else 0.0
            ask = row.copy()
            ask["ev"] = (row["ev"] & ~np.uint64(KIND_MASK | SIDE_MASK)) | np.uint64(SELL_EVENT | DEPTH_CLEAR_EVENT)
            ask["px"] = ask_px.max() if len(ask_px) else _ALL_CLEAR_ASK
            out += [bid, ask]
        else:
            out.append(row)
    return np.concatenate(out)


def correct_local_timestamp(data: np.ndarray, base_latency_ns: int = 0) -> int:
    """Shift ``local_ts`` in place so no row has negative feed latency; returns the shift (ns)."""
    if not len(data):
        return 0
    latency = int((data["local_ts"] - data["exch_ts"]).min())
    shift = -latency + base_latency_ns if latency < 0 else 0
    if shift:
        data["local_ts"] += shift
    return shift


def correct_event_order(data: np.ndarray) -> np.ndarray:
    """Order rows for both clocks; each row carries EXCH once and LOCAL once (both on one row when possible)."""
    n = len(data)
    base = data.copy()
    base["ev"] &= ~np.uint64(EXCH_EVENT | LOCAL_EVENT)
    by_exch = np.argsort(base["exch_ts"], kind="stable")
    by_local = np.argsort(base["local_ts"], kind="stable")
    same = by_exch == by_local
    # position k emits: the row by_exch[k] (EXCH, and LOCAL too when same), then by_local[k] (LOCAL) if not same
    counts = np.where(same, 1, 2)
    out = np.empty(int(counts.sum()), dtype=EVENT_DTYPE)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out[first] = base[by_exch]
    out["ev"][first] |= np.where(same, np.uint64(EXCH_EVENT | LOCAL_EVENT), np.uint64(EXCH_EVENT))
    second = first[~same] + 1
    out[second] = base[by_local[~same]]
    out["ev"][second] |= np.uint64(LOCAL_EVENT)
    assert len(out) >= n
    return out


def export_npz(
    path: str | Path,
    out: str | Path,
    *,
    venue: str | None = None,
    tick_size: float | None = None,
    symbols: list[str] | None = None,
    include_own_kinds: bool = False,
    base_latency_ns: int = 0,
    progress: Callable[[float], None] | None = None,
) -> dict[str, tuple[Path, int]]:
    """Write one hftbacktest ``.npz`` per symbol; returns ``{symbol: (file, rows)}``."""
    feed = ReplayFeed(path, venue=venue, tick_size=tick_size, symbols=symbols)
    sink = _EventSink(include_own_kinds)
    router = make_router(feed.contents.venue, feed.reader.format, feed.instruments, sink)
    for rec in feed.reader:
        router(rec)
    finish = getattr(router, "finish", None)
    if finish is not None:
        finish()
    out = Path(out)
    written: dict[str, tuple[Path, int]] = {}
    for sym in feed.symbols:
        data = sink.events(sym)
        if not len(data):
            continue
        correct_local_timestamp(data, base_latency_ns)
        data = correct_event_order(data)
        target = out if len(feed.symbols) == 1 else out.with_name(f"{out.stem}_{sym}{out.suffix or '.npz'}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(target, data=data)
        except OSError as exc:
            raise CaptureError(f"cannot write {target}: {exc.strerror or exc}") from None
        # np.savez adds .npz when missing
        real = target if target.suffix == ".npz" else target.with_name(target.name + ".npz")
        written[sym] = (real, len(data))
    if not written:
        raise CaptureError(f"{Path(path).name}: no events to export")
    return written
