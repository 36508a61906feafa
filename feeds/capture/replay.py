"""Replay a capture as a :class:`feeds.base.Feed`: the same venue processors as live, at any speed.

Two modes:

* **raw** (default): records go through the venue's own pure processor and sync objects
  (:class:`feeds.binance_usdm.BinanceUsdmProcessor`, :class:`feeds.bybit_linear.BybitLinearProcessor`)
  exactly as websocket frames do live, so a replay is the live code path. Seeking forward
  fast-forwards; seeking backward needs the cache.
* **cache** (``cache=True``, or a ``start`` time): batches come from the seek cache
  (:mod:`feeds.capture.index`), which holds exactly the batches the processor produced, built on first
  open; seek anywhere = nearest keyframe + catch-up.

At full speed (``--max``) both modes hand over runs of messages: raw records go through the Binance
processor's bulk ``on_lines`` (one decode per run of frames), and a sink with ``on_batches`` (the
engine) receives each run in one call and applies it with ``MarketState.apply_many``; every message is
still its own batch, in the same order as one by one (tests/app/test_replay_bulk.py holds the output
equal). Paced replay, stepping and seeking deliver message by message.

Tardis CSV needs no venue parser: :class:`TardisRouter` turns rows into events directly (rows with the
same local timestamp are one message; a run of ``is_snapshot`` rows is one clear + snapshot batch; Tardis
has no update ids, so book batches carry a running message number as their id).

Controls (thread-safe, for the GUI): :meth:`ReplayFeed.pause`, :meth:`~ReplayFeed.resume`,
:meth:`~ReplayFeed.step`, :meth:`~ReplayFeed.seek`, :meth:`~ReplayFeed.set_speed`. Times given to
``start``/``end``/``seek`` are on the capture's clock: local receive time in ns (exchange time for the
Bybit archive, which records no receive time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from app.core.events import (
    ASK,
    BID,
    BOTH_CLOCKS,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    depth_rows,
    trade_row,
)
from app.core.instrument import Instrument
from feeds.base import LIVE, STOPPED, FeedCounters, FeedSink
from feeds.capture.index import CaptureIndex, open_index
from feeds.capture.instruments import CaptureContents, resolve_instruments
from feeds.capture.readers import (
    BINANCE_USDM,
    BYBIT_LINEAR,
    FORMAT_TARDIS,
    CaptureReader,
    RawRecord,
    open_capture,
)

MIN_SPEED = 0.1
MAX_SPEED = 1000.0
_YIELD_EVERY = 256  # records between event-loop yields in max-speed mode (keeps the GUI/stop responsive)
_BULK_RECORDS = 512  # raw records per slice at max speed (decoded in bulk; still ~1-2 ms between yields)
_LAST_UPDATE_ID = re.compile(r'"lastUpdateId":(\d+)')
_FIRST_BID = re.compile(r'"bids":\[\["([0-9.eE+-]+)"')


class _PriceTap:
    """Passes batches on and remembers each symbol's last price (to place bare snapshots; multi-symbol only)."""

    def __init__(self, sink: FeedSink) -> None:
        self._sink = sink
        self.last_px: dict[str, float] = {}
        self.on_instrument = sink.on_instrument
        self.on_status = sink.on_status
        self.on_raw = sink.on_raw

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        if len(batch):
            px = float(batch["px"][-1])
            if px > 0:
                self.last_px[symbol] = px
        self._sink.on_batch(symbol, batch, update_id)


class BinanceRouter:
    """Routes records of a Binance USDⓈ-M capture into the adapter's :class:`BinanceUsdmProcessor`."""

    def __init__(self, instruments: dict[str, Instrument], sink: FeedSink) -> None:
        from feeds.binance_usdm import BinanceUsdmProcessor

        self.tap = _PriceTap(sink) if len(instruments) > 1 else None
        self.proc = BinanceUsdmProcessor(list(instruments.values()), self.tap or sink)
        self.symbols = list(instruments)
        self.opened: set[str] = set()
        self.reconnects = 0
        self.ignored = 0

    def __call__(self, rec: RawRecord) -> None:
        ch = rec.channel
        if ch[:2] == "ws":
            if "@kline" in rec.raw[:40]:
                self.ignored += 1  # candles: the app builds its own from trades
                return
            self.proc.on_line(rec.raw, rec.local_ns)
        elif ch.startswith("rest:"):
            parts = urlsplit(ch[5:])
            if parts.path.endswith("/depth") and "symbol=" not in parts.query:
                path = f"{parts.path}?symbol={self._owner(rec.raw)}"
            else:
                path = parts.path + ("?" + parts.query if parts.query else "")
            self.proc.on_rest(path, rec.raw, rec.local_ns)
        elif ch.startswith("open:"):
            self._opened(ch[5:], rec.local_ns)

    def many(self, recs: list[RawRecord]) -> None:
        """Records in order, as ``__call__`` on each; runs of websocket frames go through the processor's
        bulk ``on_lines`` (a replay at full speed)."""
        raws: list[str] = []
        stamps: list[int] = []
        for rec in recs:
            if rec.channel[:2] == "ws" and "@kline" not in rec.raw[:40]:
                raws.append(rec.raw)
                stamps.append(rec.local_ns)
                continue
            if raws:
                self.proc.on_lines(raws, stamps)
                raws, stamps = [], []
            self(rec)
        if raws:
            self.proc.on_lines(raws, stamps)

    def _owner(self, body: str) -> str:
        """The symbol a bare snapshot (hftbacktest lines carry none) belongs to.

        Binance update ids are one sequence across symbols, so an id inside a waiting stream's buffered
        range is only a hint; the snapshot's best bid against each waiting symbol's last price decides.
        """
        wanted = self.proc.snapshots_wanted()
        if len(wanted) <= 1:
            return wanted[0] if wanted else self.symbols[0]
        m = _LAST_UPDATE_ID.search(body[:40])
        bridging = [s for s in wanted if m and self.proc.syncs[s].bridges(int(m.group(1)))]
        candidates = bridging or wanted
        bid = _FIRST_BID.search(body, 0, 300)
        if bid is None or self.tap is None or len(candidates) == 1:
            return candidates[0]
        px = float(bid.group(1))
        known = [(abs(math.log(px / ref)), s) for s in candidates if (ref := self._reference_px(s)) > 0 and px > 0]
        return min(known)[1] if known else candidates[0]

    def _reference_px(self, symbol: str) -> float:
        """The symbol's last delivered price, else a price from its buffered diffs (0.0: none known)."""
        assert self.tap is not None
        px = self.tap.last_px.get(symbol, 0.0)
        if px > 0:
            return px
        for diff in reversed(getattr(self.proc.syncs[symbol], "_buffer", ())):  # no public view of the buffer
            prices = diff.batch["px"]
            if len(prices):
                return float(prices[-1])
        return 0.0

    def _opened(self, url: str, local_ns: int) -> None:
        if url in self.opened:  # a recorded reconnect: the live feed resets its books here too
            self.reconnects += 1
            for sym in self.symbols:
                self.proc.reset(sym, "reconnect (recorded)", local_ns)
        self.opened.add(url)


class BybitRouter:
    """Routes records of a Bybit capture into :class:`BybitLinearProcessor`; spot/inverse and kline skipped."""

    def __init__(self, instruments: dict[str, Instrument], sink: FeedSink) -> None:
        from feeds.bybit_linear import BybitLinearProcessor

        self.proc = BybitLinearProcessor(list(instruments.values()), sink)
        self.symbols = list(instruments)
        self.opened: set[str] = set()
        self.reconnects = 0
        self.ignored = 0

    def __call__(self, rec: RawRecord) -> None:
        ch = rec.channel
        if ch[:2] == "ws":
            if "/spot" in ch or "/inverse" in ch or "/option" in ch:
                self.ignored += 1  # another market on the same recorder: not this feed's data
                return
            if '"topic":"kline.' in rec.raw[:24]:
                self.ignored += 1  # candles: the app builds its own from trades
                return
            self.proc.on_line(rec.raw, rec.local_ns)
        elif ch.startswith("open:"):
            url = ch[5:]
            if "/linear" not in url and url.startswith("wss"):
                return
            if url in self.opened:
                self.reconnects += 1
                for sym in self.symbols:
                    self.proc.reset(sym, "reconnect (recorded)", rec.local_ns)
            self.opened.add(url)
        # REST lines (instruments-info) were read when the instruments were resolved


class TardisRouter:
    """Tardis CSV rows -> event batches directly (no venue parser): one batch per (channel, symbol, time)."""

    def __init__(self, instruments: dict[str, Instrument], sink: FeedSink) -> None:
        self.instruments = instruments
        self.sink = sink
        self.key: tuple[str, str, str] | None = None
        self.rows: list[list[str]] = []
        self.in_snapshot: dict[str, bool] = {}
        self.live: set[str] = set()
        self.book_messages = 0
        self.proc = self  # counters: messages / malformed / resyncs like a processor
        self.messages = 0
        self.malformed = 0
        self.resyncs = 0
        self.reconnects = 0
        self.ignored = 0

    def __call__(self, rec: RawRecord) -> None:
        cols = rec.raw.split(",")
        key = (rec.channel, cols[1], cols[3])
        if key != self.key:
            self.finish()
            self.key = key
        self.rows.append(cols)

    def finish(self) -> None:
        """Deliver the rows of the last group."""
        if not self.rows or self.key is None:
            return
        channel, symbol, _ = self.key
        rows, self.rows = self.rows, []
        inst = self.instruments.get(symbol)
        if inst is None:
            self.malformed += len(rows)
            return
        self.messages += 1
        try:
            if channel == "tardis:trade":
                for r in rows:
                    batch = trade_row(BID if r[5] == "buy" else ASK, inst.to_tick(r[6]), float(r[7]),
                                      inst.tick_size, int(r[2]) * 1000, int(r[3]) * 1000)
                    self.sink.on_batch(symbol, batch, None)
                return
            self._book(inst, symbol, rows)
        except ValueError:
            self.malformed += 1

    def _book(self, inst: Instrument, symbol: str, rows: list[list[str]]) -> None:
        exch_ts = int(rows[0][2]) * 1000
        local_ts = int(rows[0][3]) * 1000
        snap = rows[0][4] == "true"
        kind = DEPTH_SNAPSHOT_EVENT if snap else DEPTH_EVENT
        self.book_messages += 1
        parts = []
        if snap and not self.in_snapshot.get(symbol, False):
            clear = depth_rows(BID, np.zeros(1, np.int64), np.zeros(1), inst.tick_size, exch_ts, local_ts,
                               self.book_messages, DEPTH_CLEAR_EVENT)
            clear["ev"] = BOTH_CLOCKS | DEPTH_CLEAR_EVENT  # both sides
            clear["px"] = 0.0
            parts.append(clear)
        self.in_snapshot[symbol] = snap
        for side, name in ((BID, "bid"), (ASK, "ask")):
            sel = [r for r in rows if r[5] == name]
            if sel:
                ticks = inst.to_ticks(np.array([float(r[6]) for r in sel]))
                qty = np.array([float(r[7]) for r in sel])
                parts.append(depth_rows(side, ticks, qty, inst.tick_size, exch_ts, local_ts, self.book_messages, kind))
        if parts:
            self.sink.on_batch(symbol, np.concatenate(parts), self.book_messages)
        if symbol not in self.live:
            self.live.add(symbol)
            self.sink.on_status(symbol, LIVE, "")


def make_router(venue: str, fmt: str, instruments: dict[str, Instrument], sink: FeedSink) -> Callable:
    """The record router (venue processor) for a capture, feeding ``sink``."""
    if fmt == FORMAT_TARDIS:
        return TardisRouter(instruments, sink)
    if venue == BINANCE_USDM:
        return BinanceRouter(instruments, sink)
    if venue == BYBIT_LINEAR:
        return BybitRouter(instruments, sink)
    raise ValueError(f"no replay router for venue {venue!r}")


class ReplayFeed:
    """A capture as a :class:`~feeds.base.Feed`: raw through the venue processor, or from the seek cache."""

    def __init__(
        self,
        path: str | Path,
        *,
        venue: str | None = None,
        tick_size: float | None = None,
        symbols: list[str] | None = None,
        speed: float | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        cache: bool = False,
        cache_dir: Path | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.reader: CaptureReader = open_capture(self.path, venue)
        self.contents: CaptureContents = resolve_instruments(self.reader, tick_size, symbols)
        # a demo capture is Binance wire shown as "demo": replay shows it under the same name
        self.venue = (self.reader.sidecar() or {}).get("source_venue") or self.contents.venue
        self.symbols = tuple(sorted(self.contents.instruments))
        self.instruments = dict(self.contents.instruments)
        self.speed = self._check_speed(speed)
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.use_cache = cache or start_ns is not None
        self.cache_dir = cache_dir
        self.progress = progress
        self.position_ns = 0
        self.finished = False
        self._index: CaptureIndex | None = None
        self._router: Callable | None = None
        self._batches_delivered = 0
        self._paused = False
        self._steps = 0
        self._seek_to: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._reanchor = True

    # -- the Feed protocol --------------------------------------------------------------------------

    async def run(self, sink: FeedSink) -> None:
        """Deliver the capture to ``sink`` (paced unless max speed); returns at the end of the capture."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        for inst in self.instruments.values():
            sink.on_instrument(dataclasses.replace(inst, venue=self.venue))
        try:
            if self.use_cache:
                await self._run_cached(sink)
            else:
                await self._run_raw(sink)
        finally:
            self.finished = True
        for sym in self.symbols:
            sink.on_status(sym, STOPPED, "end of capture")

    def counters(self) -> FeedCounters:
        """Messages, resyncs, recorded reconnects and malformed lines (garbage included)."""
        r = self._router
        garbage = self.reader.stats.garbage
        if r is None:
            return FeedCounters(messages=self._batches_delivered, malformed=garbage)
        proc = r.proc  # type: ignore[attr-defined]
        return FeedCounters(messages=proc.messages, resyncs=proc.resyncs, reconnects=r.reconnects,  # type: ignore[attr-defined]
                            malformed=proc.malformed + garbage)

    # -- controls (thread-safe) ---------------------------------------------------------------------

    @staticmethod
    def _check_speed(speed: float | None) -> float | None:
        if speed is None:
            return None
        if not (MIN_SPEED <= speed <= MAX_SPEED):
            raise ValueError(f"speed must be between {MIN_SPEED:g}x and {MAX_SPEED:g}x (or max), got {speed:g}")
        return float(speed)

    def set_speed(self, speed: float | None) -> None:
        """0.1x .. 1000x, or None for as fast as possible."""
        self.speed = self._check_speed(speed)
        self._reanchor = True
        self._poke()

    @property
    def paused(self) -> bool:
        """True while paused."""
        return self._paused

    def pause(self) -> None:
        """Stop delivering until :meth:`resume` or :meth:`step`."""
        self._paused = True

    def resume(self) -> None:
        """Continue at the current speed from where the replay stands."""
        self._paused = False
        self._reanchor = True
        self._poke()

    def step(self, n: int = 1) -> None:
        """While paused: deliver the next ``n`` messages."""
        with self._lock:
            self._steps += n
        self._poke()

    def seek(self, local_ns: int) -> None:
        """Jump to a time on the capture's clock (backwards needs ``cache=True``)."""
        if not self.use_cache and local_ns < self.position_ns:
            raise ValueError("seeking backwards needs the seek cache (open the replay with cache=True)")
        self._seek_to = int(local_ns)
        self._reanchor = True
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    # -- cache ---------------------------------------------------------------------------------------

    def index(self) -> CaptureIndex:
        """The seek cache, built (with progress) on first use."""
        if self._index is None:
            self._index = open_index(
                self.reader, self.instruments,
                lambda sink: make_router(self.contents.venue, self.reader.format, self.instruments, sink),
                cache_dir=self.cache_dir, progress=self.progress,
            )
        return self._index

    # -- loops ---------------------------------------------------------------------------------------

    async def _gate(self, capture_ns: int, anchor: list) -> None:
        """Pause/step and pacing before one message at ``capture_ns``; ``anchor`` = [wall_s, capture_ns]."""
        while self._paused:
            with self._lock:
                if self._steps > 0:
                    self._steps -= 1
                    self._reanchor = True
                    return
            assert self._wake is not None
            self._wake.clear()
            await self._wake.wait()
            if self._seek_to is not None:
                return
        speed = self.speed
        if speed is None:
            return
        if self._reanchor:
            anchor[0] = time.monotonic()
            anchor[1] = capture_ns
            self._reanchor = False
            return
        due = anchor[0] + (capture_ns - anchor[1]) / 1e9 / speed
        delay = due - time.monotonic()
        if delay > 0.001:
            assert self._wake is not None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    async def _run_raw(self, sink: FeedSink) -> None:
        router = make_router(self.contents.venue, self.reader.format, self.instruments, sink)
        self._router = router
        end_ns = self.end_ns
        anchor = [0.0, 0]
        records = iter(self.reader)
        many = getattr(router, "many", None)
        while True:
            if self.speed is None and not self._paused and self._seek_to is None and end_ns is None:
                # max speed, nothing to watch for: a tight loop, control flags checked between slices
                chunk = list(itertools.islice(records, _BULK_RECORDS))
                if not chunk:
                    break
                if many is not None:
                    many(chunk)
                else:
                    for rec in chunk:
                        router(rec)
                self.position_ns = chunk[-1].local_ns
                await asyncio.sleep(0)
                continue
            rec = next(records, None)
            if rec is None:
                break
            local_ns = rec.local_ns
            if end_ns is not None and local_ns > end_ns:
                break
            target = self._seek_to
            if target is not None and local_ns >= target:
                self._seek_to = None
                self._reanchor = True
                target = None
            if target is None and (self.speed is not None or self._paused):
                await self._gate(local_ns, anchor)
            self.position_ns = local_ns
            router(rec)
        finish = getattr(router, "finish", None)
        if finish is not None:
            finish()

    async def _run_cached(self, sink: FeedSink) -> None:
        idx = self.index()
        statuses = idx.statuses
        s_ptr = 0
        i = 0
        if self.start_ns is not None:
            self._seek_to = self.start_ns
        end_ns = self.end_ns
        anchor = [0.0, 0]
        n_total = idx.n_batches
        since_yield = 0
        while i < n_total:
            if self._seek_to is not None:
                target, self._seek_to = self._seek_to, None
                i, s_ptr = self._apply_seek(idx, sink, target)
                continue
            if self.speed is None and not self._paused:
                # max speed: a slice of batches per loop turn, control flags checked between slices
                # a sink with on_batches (the engine) takes the slice's batches in runs, each run handed
                # over before any status change, so it sees everything in the same order
                on_batches = getattr(sink, "on_batches", None)
                run: list[tuple[str, np.ndarray, int | None]] = []
                add = run.append if on_batches is not None else None
                on_batch = sink.on_batch
                ended = False
                for sym, rows, uid, t in idx.batch_slice(i, min(n_total, i + _YIELD_EVERY)):
                    if end_ns is not None and t > end_ns:
                        ended = True
                        break
                    while s_ptr < len(statuses) and statuses[s_ptr][0] <= i:
                        if run:
                            on_batches(run)  # type: ignore[misc]
                            run = []
                            add = run.append
                        _, ssym, state, reason = statuses[s_ptr]
                        sink.on_status(ssym, state, reason)
                        s_ptr += 1
                    if add is not None:
                        add((sym, rows, uid))
                    else:
                        on_batch(sym, rows, uid)
                    self.position_ns = t
                    self._batches_delivered += 1
                    i += 1
                if run:
                    on_batches(run)  # type: ignore[misc]
                if ended:
                    return
                await asyncio.sleep(0)
                continue
            local_ns = int(idx.batches["local_ns"][i])
            if end_ns is not None and local_ns > end_ns:
                break
            if self.speed is not None or self._paused:
                await self._gate(local_ns, anchor)
                if self._seek_to is not None:
                    continue
            else:
                since_yield += 1
                if since_yield >= _YIELD_EVERY:
                    since_yield = 0
                    await asyncio.sleep(0)
                    if self._seek_to is not None:
                        continue
            while s_ptr < len(statuses) and statuses[s_ptr][0] <= i:
                _, sym, state, reason = statuses[s_ptr]
                sink.on_status(sym, state, reason)
                s_ptr += 1
            sym, rows, uid = idx.batch(i)
            sink.on_batch(sym, rows, uid)
            self._batches_delivered += 1
            self.position_ns = local_ns
            i += 1

    def _apply_seek(self, idx: CaptureIndex, sink: FeedSink, target: int) -> tuple[int, int]:
        plan = idx.plan_seek(target)
        for sym, rows, uid in plan.keyframes:
            sink.on_batch(sym, rows, uid)
        for sym, rows, uid in plan.catch_up:
            sink.on_batch(sym, rows, uid)
        statuses = idx.statuses
        s_ptr = 0
        last: dict[str, tuple[str, str]] = {}
        while s_ptr < len(statuses) and statuses[s_ptr][0] <= plan.batch:
            _, sym, state, reason = statuses[s_ptr]
            last[sym] = (state, reason)
            s_ptr += 1
        for sym, (state, reason) in last.items():
            sink.on_status(sym, state, reason)
        self.position_ns = target
        self._reanchor = True
        return plan.batch, s_ptr
