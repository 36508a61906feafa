"""The seek cache of a capture: normalized event chunks, batch table, book keyframes; built on first open.

Layout of ``<capture>.ddcache/`` (or a per-user cache folder when the capture's folder is read-only):

* ``meta.json`` — cache version, the capture's size and mtime (a changed capture rebuilds the cache),
  venue, instruments, counts, feed statuses with the batch they precede;
* ``events_NNN.npy`` — ``EVENT_DTYPE`` rows exactly as the venue processor produced them, in chunks of
  :data:`CHUNK_ROWS` (loaded memory-mapped: memory stays bounded by what is read);
* ``batches.npy`` — one row per delivered batch (= one exchange message): first row, row count, symbol,
  update id, local time; replaying the cache replays exactly the live batches;
* ``keyframes.npy`` + ``keyframe_rows.bin`` — every few seconds of local time (when the book changed
  by about its own size since the last one, at least every 30 s), each symbol's whole book as one
  ``DEPTH_CLEAR_EVENT`` + ``DEPTH_SNAPSHOT_EVENT`` batch.

Seek to ``t`` = the nearest keyframe at or before ``t`` + the book rows of the batches between it and
``t`` (one batch per symbol), then play on from the first batch at ``t``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.events import (
    BOTH_CLOCKS,
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_DTYPE,
    KIND_MASK,
    SELL_EVENT,
    SIDE_MASK,
)
from app.core.instrument import Instrument
from feeds.capture.readers import CaptureError, CaptureReader

CACHE_VERSION = 2
CHUNK_ROWS = 1 << 20  # 64 MiB of events per chunk file
KEYFRAME_INTERVAL_NS = 2_000_000_000  # how often a keyframe is considered
MAX_KEYFRAME_GAP_NS = 30_000_000_000  # a keyframe at least this often, however quiet the book
MIN_KEYFRAME_ROWS = 1_000
KEYFRAME_ROWS_FILE = "keyframe_rows.bin"  # raw EVENT_DTYPE rows, appended while building
NO_UPDATE_ID = -1

BATCH_DTYPE = np.dtype([("row0", "<i8"), ("nrows", "<i4"), ("sym", "<i2"), ("update_id", "<i8"),
                        ("local_ns", "<i8")])
KEYFRAME_DTYPE = np.dtype([("batch", "<i8"), ("local_ns", "<i8"), ("sym", "<i2"), ("row0", "<i8"),
                           ("nrows", "<i4")])
_BOOK_KINDS = np.array([DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT, DEPTH_CLEAR_EVENT], dtype=np.uint64)


def default_cache_dir(capture: Path) -> Path:
    """``<capture>.ddcache`` beside the capture; under ``$DEPTHDESK_CACHE_DIR`` when set, else the user's
    cache folder, when the capture or its folder is read-only (never write beside shared data)."""
    beside = capture.with_name(capture.name + ".ddcache")
    env = os.environ.get("DEPTHDESK_CACHE_DIR")
    writable = os.access(capture.parent, os.W_OK) and (capture.stat().st_mode & 0o222) != 0
    if env is None and writable:
        return beside
    if env is not None:
        root = Path(env)
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("depthdesk")) / "captures"
    digest = hashlib.sha1(str(capture.resolve()).encode()).hexdigest()[:16]
    return root / f"{capture.name}.{digest}.ddcache"


class _BookState:
    """One symbol's book as sorted (side, tick) keys -> size, advanced a slice of rows at a time."""

    __slots__ = ("keys", "qty", "pending", "update_id", "exch_ts")
    _SIDE_SHIFT = np.int64(1) << np.int64(62)

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.int64)  # bid ticks as-is, ask ticks + 2**62 (ticks < 2**61)
        self.qty = np.empty(0, dtype=np.float64)
        self.pending: list[np.ndarray] = []
        self.update_id = 0
        self.exch_ts = 0

    def add(self, rows: np.ndarray) -> None:
        self.pending.append(rows)

    def settle(self) -> None:
        """Apply the pending book rows (clears split them into segments)."""
        if not self.pending:
            return
        # join raw bytes: np.concatenate of many small structured arrays is slow (field promotion)
        rows = np.frombuffer(b"".join([a.tobytes() for a in self.pending]), dtype=EVENT_DTYPE)
        self.pending = []
        rows = rows[np.isin(rows["ev"] & np.uint64(KIND_MASK), _BOOK_KINDS)]
        kinds = rows["ev"] & np.uint64(KIND_MASK)
        clears = np.flatnonzero(kinds == DEPTH_CLEAR_EVENT)
        start = 0
        for c in clears:
            self._merge(rows[start:c])
            side = int(rows["ev"][c]) & SIDE_MASK
            if side == 0:
                self.keys = self.keys[:0]
                self.qty = self.qty[:0]
            else:
                keep = (self.keys >= self._SIDE_SHIFT) if side == BUY_EVENT else (self.keys < self._SIDE_SHIFT)
                self.keys = self.keys[keep]
                self.qty = self.qty[keep]
            start = c + 1
        self._merge(rows[start:])
        if len(rows):
            self.exch_ts = int(rows["exch_ts"][-1])
            self.update_id = int(rows["order_id"][-1])

    def _merge(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        ask = (rows["ev"] & np.uint64(SELL_EVENT)) != 0
        keys = rows["ival"].astype(np.int64) + np.where(ask, self._SIDE_SHIFT, np.int64(0))
        all_keys = np.concatenate((self.keys, keys))
        all_qty = np.concatenate((self.qty, rows["qty"]))
        # the last write per key wins: unique over the reversed arrays finds each key's last position
        rev_keys = all_keys[::-1]
        uniq, idx = np.unique(rev_keys, return_index=True)
        qty = all_qty[::-1][idx]
        live = qty > 0
        self.keys = uniq[live]
        self.qty = qty[live]

    def snapshot_rows(self, tick_size: float, local_ns: int) -> np.ndarray:
        """The book as one clear + snapshot batch."""
        n = len(self.keys)
        out = np.zeros(n + 1, dtype=EVENT_DTYPE)
        out["exch_ts"] = self.exch_ts
        out["local_ts"] = local_ns
        out["order_id"] = self.update_id
        out["ev"][0] = BOTH_CLOCKS | DEPTH_CLEAR_EVENT
        ask = self.keys >= self._SIDE_SHIFT
        ticks = np.where(ask, self.keys - self._SIDE_SHIFT, self.keys)
        out["ev"][1:] = np.where(ask, np.uint64(BOTH_CLOCKS | SELL_EVENT | DEPTH_SNAPSHOT_EVENT),
                                 np.uint64(BOTH_CLOCKS | BUY_EVENT | DEPTH_SNAPSHOT_EVENT))
        out["ival"][1:] = ticks
        out["px"][1:] = ticks * tick_size
        out["qty"][1:] = self.qty
        return out


@dataclass(slots=True)
class SeekPlan:
    """What a seek delivers: per symbol one keyframe batch and one catch-up batch, then play from ``batch``."""

    keyframes: list[tuple[str, np.ndarray, int]]  # (symbol, rows, update id)
    catch_up: list[tuple[str, np.ndarray, int]]
    batch: int


class CaptureIndex:
    """An opened seek cache: batches and events by index, keyframes, and :meth:`plan_seek`."""

    def __init__(self, folder: Path, meta: dict) -> None:
        self.folder = folder
        self.meta = meta
        self.symbols: list[str] = list(meta["symbols"])
        self.instruments = {s: Instrument(meta["venue"], s, float(v["tick_size"]), float(v["lot_size"]))
                            for s, v in meta["instruments"].items()}
        self.batches: np.ndarray = np.load(folder / "batches.npy")
        self.keyframes: np.ndarray = np.load(folder / "keyframes.npy")
        kf_path = folder / KEYFRAME_ROWS_FILE
        self.keyframe_rows: np.ndarray = (np.memmap(kf_path, dtype=EVENT_DTYPE, mode="r") if kf_path.stat().st_size
                                          else np.zeros(0, dtype=EVENT_DTYPE))
        self._chunks = [np.load(folder / name, mmap_mode="r") for name in meta["chunks"]]
        self.chunk_rows = int(meta["chunk_rows"])
        self.statuses: list[tuple[int, str, str, str]] = [tuple(s) for s in meta["statuses"]]  # type: ignore[misc]
        self._batch_ns = self.batches["local_ns"]

    @property
    def n_batches(self) -> int:
        """Delivered batches (= messages that produced events)."""
        return len(self.batches)

    @property
    def first_ns(self) -> int:
        """Local time of the first batch."""
        return int(self.meta["first_ns"])

    @property
    def last_ns(self) -> int:
        """Local time of the last batch."""
        return int(self.meta["last_ns"])

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Event rows ``[start, stop)`` across chunk files (a copy only when the range spans two)."""
        cr = self.chunk_rows
        c0, c1 = start // cr, (stop - 1) // cr if stop > start else start // cr
        if c0 == c1:
            return self._chunks[c0][start - c0 * cr : stop - c0 * cr]
        parts = [self._chunks[c][max(start - c * cr, 0) : min(stop - c * cr, cr)] for c in range(c0, c1 + 1)]
        return np.concatenate(parts)

    def batch(self, i: int) -> tuple[str, np.ndarray, int | None]:
        """Batch ``i``: (symbol, rows, update id or None)."""
        b = self.batches[i]
        uid = int(b["update_id"])
        return (self.symbols[int(b["sym"])], self.rows(int(b["row0"]), int(b["row0"]) + int(b["nrows"])),
                None if uid == NO_UPDATE_ID else uid)

    def batch_slice(self, start: int, stop: int) -> list[tuple[str, np.ndarray, int | None, int]]:
        """Batches ``[start, stop)`` as (symbol, rows, update id or None, local ns): the fast replay path."""
        b = self.batches[start:stop]
        cr = self.chunk_rows
        chunks = self._chunks
        symbols = self.symbols
        out = []
        for r0, n, s, u, t in zip(b["row0"].tolist(), b["nrows"].tolist(), b["sym"].tolist(),
                                  b["update_id"].tolist(), b["local_ns"].tolist(), strict=True):
            c, off = divmod(r0, cr)
            rows = chunks[c][off : off + n] if off + n <= cr else self.rows(r0, r0 + n)
            out.append((symbols[s], rows, None if u == NO_UPDATE_ID else u, t))
        return out

    def batch_at(self, local_ns: int) -> int:
        """Index of the first batch at or after ``local_ns``."""
        return int(np.searchsorted(self._batch_ns, local_ns, side="left"))

    def plan_seek(self, local_ns: int) -> SeekPlan:
        """The batches that put every book where it was at ``local_ns``."""
        target = self.batch_at(local_ns)
        kfs = self.keyframes
        kf_end = int(np.searchsorted(kfs["batch"], target, side="right"))
        keyframes: list[tuple[str, np.ndarray, int]] = []
        catch_up: list[tuple[str, np.ndarray, int]] = []
        if kf_end == 0:
            start_batch = 0
        else:
            start_batch = int(kfs["batch"][kf_end - 1])
            group = kfs[kfs["batch"] == start_batch]
            for k in group:
                rows = np.asarray(self.keyframe_rows[int(k["row0"]) : int(k["row0"]) + int(k["nrows"])])
                keyframes.append((self.symbols[int(k["sym"])], rows, int(rows["order_id"][0])))
        if target > start_batch:
            b = self.batches[start_batch:target]
            row0 = int(b["row0"][0])
            row1 = int(b["row0"][-1]) + int(b["nrows"][-1])
            rows = self.rows(row0, row1)
            book = np.isin(rows["ev"] & np.uint64(KIND_MASK), _BOOK_KINDS)
            # which symbol each row belongs to, from the batch table
            sym_of_row = np.repeat(b["sym"], b["nrows"])
            for si, sym in enumerate(self.symbols):
                sel = book & (sym_of_row == si)
                if sel.any():
                    r = rows[sel]
                    catch_up.append((sym, r, int(r["order_id"][-1])))
        return SeekPlan(keyframes, catch_up, target)


FeedSinkLike = Any  # the _Collector below: on_batch/on_status/on_instrument/on_raw


class _BatchTable:
    """The batch table, grown in place (a Python tuple per batch would cost ~200 bytes each)."""

    def __init__(self) -> None:
        self.arr = np.zeros(1 << 16, dtype=BATCH_DTYPE)
        self.n = 0

    def append(self, row: tuple[int, int, int, int, int]) -> None:
        if self.n == len(self.arr):
            self.arr = np.concatenate((self.arr, np.zeros(len(self.arr), dtype=BATCH_DTYPE)))
        self.arr[self.n] = row
        self.n += 1

    def __len__(self) -> int:
        return self.n

    def local_ns(self, i: int) -> int:
        return int(self.arr["local_ns"][i])

    def array(self) -> np.ndarray:
        return self.arr[: self.n]


class _Collector:
    """A FeedSink that appends every batch to chunk files and keeps book state for keyframes.

    Keyframes are considered every ``keyframe_interval_ns`` and written when the rows since the last one
    reach the size of the book (or :data:`MAX_KEYFRAME_GAP_NS` passed): the keyframes then take at most
    about as much room as the events, and a seek's catch-up stays about one book's worth of rows.
    """

    def __init__(self, folder: Path, symbols: list[str], instruments: dict[str, Instrument],
                 keyframe_interval_ns: int) -> None:
        self.folder = folder
        self.sym_index = {s: i for i, s in enumerate(symbols)}
        self.symbols = symbols
        self.instruments = instruments
        self.chunk = np.empty(CHUNK_ROWS, dtype=EVENT_DTYPE)
        self.buf_rows = 0
        self.rows = 0
        self.chunks: list[str] = []
        self.batches = _BatchTable()
        self.books = {s: _BookState() for s in symbols}
        self.kf_interval = keyframe_interval_ns
        self.next_kf = 0
        self.last_kf_ns = 0
        self.rows_since_kf = 0
        self.keyframes: list[tuple[int, int, int, int, int]] = []
        self.kf_file = (folder / KEYFRAME_ROWS_FILE).open("wb")
        self.kf_row_count = 0
        self.statuses: list[tuple[int, str, str, str]] = []

    # FeedSink
    def on_instrument(self, instrument: Instrument) -> None:
        return None

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        self.statuses.append((len(self.batches), symbol, state, reason))

    def on_raw(self, local_ns: int, raw: str) -> None:
        return None

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        n = len(batch)
        if n == 0:
            return
        local_ns = int(batch["local_ts"][0])
        if local_ns >= self.next_kf:
            self._maybe_keyframe(local_ns)
        self.batches.append((self.rows, n, self.sym_index[symbol],
                             NO_UPDATE_ID if update_id is None else update_id, local_ns))
        self.books[symbol].add(batch)  # book rows are picked out once per keyframe tick, not per batch
        pos = 0
        while pos < n:  # copy into the preallocated chunk; a batch may straddle two chunk files
            take = min(n - pos, CHUNK_ROWS - self.buf_rows)
            self.chunk[self.buf_rows : self.buf_rows + take] = batch[pos : pos + take]
            self.buf_rows += take
            pos += take
            if self.buf_rows == CHUNK_ROWS:
                self._flush()
        self.rows += n
        self.rows_since_kf += n

    def _maybe_keyframe(self, local_ns: int) -> None:
        self.next_kf = (local_ns // self.kf_interval + 1) * self.kf_interval
        if not len(self.batches):  # the first keyframe would be an empty book: seeks start at batch 0
            return
        for state in self.books.values():
            state.settle()
        book_rows = sum(len(state.keys) for state in self.books.values())
        due = (not self.keyframes or self.rows_since_kf >= max(book_rows, MIN_KEYFRAME_ROWS)
               or local_ns - self.last_kf_ns >= MAX_KEYFRAME_GAP_NS)
        if not due:
            return
        for sym, state in self.books.items():
            rows = state.snapshot_rows(self.instruments[sym].tick_size, local_ns)
            self.keyframes.append((len(self.batches), local_ns, self.sym_index[sym], self.kf_row_count, len(rows)))
            self.kf_file.write(rows.tobytes())
            self.kf_row_count += len(rows)
        self.last_kf_ns = local_ns
        self.rows_since_kf = 0

    def _flush(self) -> None:
        if not self.buf_rows:
            return
        name = f"events_{len(self.chunks):03d}.npy"
        np.save(self.folder / name, self.chunk[: self.buf_rows])
        self.chunks.append(name)
        self.buf_rows = 0

    def finish(self) -> None:
        self._flush()
        self.kf_file.close()
        np.save(self.folder / "batches.npy", self.batches.array())
        k = np.array(self.keyframes, dtype=KEYFRAME_DTYPE) if self.keyframes else np.zeros(0, KEYFRAME_DTYPE)
        np.save(self.folder / "keyframes.npy", k)


def _capture_identity(paths: list[Path]) -> dict:
    """What the cache was built from: every file's size and mtime (siblings and rotated parts too)."""
    stats = [p.stat() for p in paths]
    return {"path": str(paths[0].resolve()), "size": sum(st.st_size for st in stats),
            "mtime_ns": max(st.st_mtime_ns for st in stats), "files": [p.name for p in paths]}


def open_index(
    reader: CaptureReader,
    instruments: dict[str, Instrument],
    route: Callable[[object], Callable],
    cache_dir: Path | None = None,
    progress: Callable[[float], None] | None = None,
    rebuild: bool = False,
    keyframe_interval_ns: int = KEYFRAME_INTERVAL_NS,
) -> CaptureIndex:
    """Open the capture's cache, building it first when missing, stale, or for other instruments.

    ``route(sink)`` returns the record router (venue processor) that feeds ``sink``; ``progress`` gets
    the fraction of the capture read (0..1) while building.
    """
    folder = cache_dir or default_cache_dir(reader.path)
    identity = _capture_identity(reader.files)
    inst_meta = {s: {"tick_size": i.tick_size, "lot_size": i.lot_size} for s, i in sorted(instruments.items())}
    meta_path = folder / "meta.json"
    if not rebuild and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            if (meta.get("version") == CACHE_VERSION and meta.get("capture") == identity
                    and meta.get("instruments") == inst_meta and meta.get("keyframe_interval_ns") == keyframe_interval_ns):
                return CaptureIndex(folder, meta)
        except (OSError, ValueError, KeyError):
            pass  # unreadable or half-written cache: rebuild it
    return _build(reader, instruments, route, folder, identity, inst_meta, progress, keyframe_interval_ns)


def _build(reader: CaptureReader, instruments: dict[str, Instrument], route: Callable, folder: Path,
           identity: dict, inst_meta: dict, progress: Callable[[float], None] | None,
           keyframe_interval_ns: int) -> CaptureIndex:
    size = max(1, sum(p.stat().st_size for p in reader.files))

    def feed(sink: _Collector) -> int:
        router = route(sink)
        many = getattr(router, "many", None)  # runs of frames decoded in bulk, same batches
        records = iter(reader)
        n = 0
        while chunk := list(itertools.islice(records, 512)):
            if many is not None:
                many(chunk)
            else:
                for rec in chunk:
                    router(rec)
            before = n
            n += len(chunk)
            if progress is not None and n // 20_000 != before // 20_000:
                progress(min(0.99, reader.stats.bytes_read / size))
        finish = getattr(router, "finish", None)
        if finish is not None:
            finish()
        return n

    index = write_index(folder, reader.venue or "", reader.format, instruments, feed, identity,
                        keyframe_interval_ns)
    if progress is not None:
        progress(1.0)
    return index


def write_index(folder: Path, venue: str, fmt: str, instruments: dict[str, Instrument],
                feed: Callable[[FeedSinkLike], int], identity: dict | None = None,
                keyframe_interval_ns: int = KEYFRAME_INTERVAL_NS) -> CaptureIndex:
    """Build a cache in ``folder`` from whatever ``feed(sink)`` delivers to the sink (returns records read).

    ``open_index`` feeds it a capture through the venue processor; benchmarks feed synthetic batches.
    """
    tmp = folder.with_name(folder.name + ".building")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise CaptureError(f"cannot build the seek cache in {tmp.parent}: {exc.strerror or exc}") from None
    symbols = sorted(instruments)
    sink = _Collector(tmp, symbols, instruments, keyframe_interval_ns)
    n = feed(sink)
    sink.finish()
    first = sink.batches.local_ns(0) if len(sink.batches) else 0
    last = sink.batches.local_ns(len(sink.batches) - 1) if len(sink.batches) else 0
    meta = {
        "version": CACHE_VERSION,
        "capture": identity or {},
        "format": fmt,
        "venue": venue,
        "symbols": symbols,
        "instruments": {s: {"tick_size": i.tick_size, "lot_size": i.lot_size} for s, i in sorted(instruments.items())},
        "rows": sink.rows,
        "batches": len(sink.batches),
        "chunk_rows": CHUNK_ROWS,
        "chunks": sink.chunks,
        "keyframe_interval_ns": keyframe_interval_ns,
        "keyframes": len(sink.keyframes),
        "first_ns": first,
        "last_ns": last,
        "records": n,
        "statuses": sink.statuses,
    }
    (tmp / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return CaptureIndex(folder, meta)
