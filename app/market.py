"""The live state of one symbol: book, event ring, traded volume, funding, detections, counters.

:meth:`MarketState.apply` takes one exchange message's batch and applies it atomically (under the
state's lock) to the book, the rings and the aggregations; it returns what the engine must emit.
:meth:`MarketState.apply_many` does the same for a run of messages (a replay at full speed) under one
lock with one ring append: the same books, tops, detections and aggregates, message by message.
:meth:`MarketState.frame` builds the immutable :class:`~app.core.frame.Frame` the GUI draws.

In-sync rule for ``top`` output: the book is *synced* only after a batch that carries snapshot rows
(the feed's ``DEPTH_CLEAR`` + ``DEPTH_SNAPSHOT`` after (re)sync); a clear without a snapshot (a feed's
gap batch is ``GAP_EVENT`` + ``DEPTH_CLEAR``), a batch the book rejects, or a feed state of
connecting/resyncing/disconnected/stopped unsyncs it. A crossed book is never reported either (it is counted in ``crossed``), and an update id is reported
once: a book message whose id does not advance past the last reported one gives no second ``top``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from app.core.book import DepthBook
from app.core.chartframe import ChartFrame
from app.core.detection import Detection
from app.core.events import (
    BUY_EVENT,
    DEPTH_BBO_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    FUNDING_EVENT,
    GAP_EVENT,
    KIND_MASK,
    LIQUIDATION_EVENT,
    MARK_PRICE_EVENT,
    NO_PRICE,
    OPEN_INTEREST_EVENT,
    TRADE_EVENT,
)
from app.core.footprint import FootprintAggregator, FootprintBar
from app.core.frame import Frame
from app.core.funding import FundingState, FundingTracker
from app.core.heatmap import HeatmapHistory, HeatmapSnapshot
from app.core.instrument import Instrument
from app.core.profile import VolumeProfile
from app.core.ring import EventRing, RingOverrun
from feeds.base import CONNECTING, DISCONNECTED, RESYNCING, STOPPED

log = logging.getLogger(__name__)
_monotonic_ns = time.monotonic_ns

_KIND_BIT = [0] * 256
for _i, _k in enumerate((DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT, DEPTH_CLEAR_EVENT, TRADE_EVENT, GAP_EVENT,
                         MARK_PRICE_EVENT, FUNDING_EVENT, OPEN_INTEREST_EVENT)):
    _KIND_BIT[_k] = 1 << _i
_KIND_BIT[DEPTH_BBO_EVENT] = 1 << 9  # quotes: ring (and the detectors' clock) only
_OTHER_BIT = 1 << 8  # every other kind (liquidation …): ring only, liquidations kept
for _k in range(256):
    _KIND_BIT[_k] = _KIND_BIT[_k] or _OTHER_BIT
_SNAPSHOT_BIT = _KIND_BIT[DEPTH_SNAPSHOT_EVENT]
_CLEAR_BIT = _KIND_BIT[DEPTH_CLEAR_EVENT]
_BOOK_BITS = _KIND_BIT[DEPTH_EVENT] | _SNAPSHOT_BIT | _CLEAR_BIT
_TRADE_BIT = _KIND_BIT[TRADE_EVENT]
_GAP_BIT = _KIND_BIT[GAP_EVENT]
_FUNDING_BITS = _KIND_BIT[MARK_PRICE_EVENT] | _KIND_BIT[FUNDING_EVENT] | _KIND_BIT[OPEN_INTEREST_EVENT]
_MARK_FUNDING_BITS = _KIND_BIT[MARK_PRICE_EVENT] | _KIND_BIT[FUNDING_EVENT]
_KIND_MASK_U8 = np.uint64(KIND_MASK)


def _kinds_of(batch: np.ndarray) -> np.ndarray:
    """The kind of every row."""
    return batch["ev"] & _KIND_MASK_U8


_UNSYNCING_STATES = frozenset((CONNECTING, RESYNCING, DISCONNECTED, STOPPED))
_FUNDING_KINDS = (MARK_PRICE_EVENT, FUNDING_EVENT, OPEN_INTEREST_EVENT)

DEFAULT_RING_CAPACITY = 1 << 20
DEFAULT_SIZE_CHANGE_S = 5.0
SNAPSHOT_INTERVAL_NS = 250_000_000
SNAPSHOT_HALF_TICKS = 1024  # size-change memory covers mid ± this many ticks
TRADES_KEPT = 2000  # newest trade rows a frame can carry (the tape)


class TopOfBook(NamedTuple):
    """The values of one ``top`` line (prices in ticks; ``NO_PRICE`` for an empty side)."""

    exch_ts: int
    local_ts: int
    update_id: int
    bid_tick: int
    bid_qty: float
    ask_tick: int
    ask_qty: float


class Emit(NamedTuple):
    """What one applied message produced for listeners (None/empty when nothing)."""

    top: TopOfBook | None
    funding: FundingState | None
    detections: Sequence[Detection]
    exch_ts: int
    local_ts: int
    alerts: Sequence[Any] = ()  # app.analytics.alerts.Alert objects


DetectorHook = Callable[[np.ndarray, DepthBook], Sequence[Detection]]


def engine_setting(config: Mapping[str, Any], name: str, default: Any) -> Any:
    """``config["engine"][name]`` or ``default``."""
    section = config.get("engine", {}) if config else {}
    return section.get(name, default) if isinstance(section, Mapping) else default


class MarketState:
    """Everything the engine knows about one symbol; mutated only on the engine thread."""

    def __init__(
        self,
        instrument: Instrument,
        config: Mapping[str, Any] | None = None,
        detectors: DetectorHook | Any | None = None,
        alerts: Any = None,
    ) -> None:
        config = config or {}
        self.instrument = instrument
        self._ring_capacity = int(engine_setting(config, "ring_capacity", DEFAULT_RING_CAPACITY))
        self._size_change_ns = int(float(engine_setting(config, "size_change_s", DEFAULT_SIZE_CHANGE_S)) * 1e9)
        if self._ring_capacity <= 0 or self._size_change_ns <= 0:
            raise ValueError("engine ring_capacity and size_change_s must be > 0")
        self._profile_flush_rows = max(1, self._ring_capacity // 2)
        self._footprint_bar_ns = int(float(engine_setting(config, "footprint_bar_s", 60.0)) * 1e9)
        self._footprint_group = int(engine_setting(config, "footprint_group", 1))
        # chart history: 2 h of 100 ms heatmap columns x 256 rows = 73.7 MB float32 at most per symbol
        column_ms = float(engine_setting(config, "heatmap_column_ms", 100.0))
        self._heatmap_column_ns = int(column_ms * 1e6)
        self._heatmap_columns = int(float(engine_setting(config, "heatmap_minutes", 120.0)) * 60e3 / column_ms)
        self._heatmap_rows = int(engine_setting(config, "heatmap_rows", 256))
        self._heatmap_group = int(engine_setting(config, "heatmap_group", 0))  # 0: chosen from the price
        if self._footprint_bar_ns <= 0 or self._footprint_group < 1:
            raise ValueError("engine footprint_bar_s must be > 0 and footprint_group >= 1")
        self.detectors = detectors
        if detectors is not None and hasattr(detectors, "on_batch"):
            detectors = detectors.on_batch
        self._detect: DetectorHook | None = detectors
        self.alerts = alerts  # an app.analytics.alerts.AlertEngine (or None): matched under the lock
        self._lock = threading.Lock()
        self.state = CONNECTING
        self.version = 0
        self.ring = EventRing(self._ring_capacity)
        self._reset_session()

    def reset(self, detectors: DetectorHook | Any | None = None) -> None:
        """Start the session over: empty book, rings, profile, funding, detections and counters.

        Pass fresh ``detectors`` (their state belongs to the old session); without them the old
        ones are kept and told to ``reset()`` when they can.
        """
        with self._lock:
            self.ring.clear()
            if detectors is not None:
                self.detectors = detectors
                self._detect = detectors.on_batch if hasattr(detectors, "on_batch") else detectors
            elif self.detectors is not None and hasattr(self.detectors, "reset"):
                self.detectors.reset()
            self._reset_session()
            self.version += 1

    def _reset_session(self) -> None:
        self.book = DepthBook(self.instrument)
        self.profile = VolumeProfile()
        self.footprint = FootprintAggregator(bar_ns=self._footprint_bar_ns, group=self._footprint_group)
        self._footprint_ts = -(2**62)
        self.aggregate_rejected = 0
        self.funding = FundingTracker(multiplier=self.instrument.multiplier)
        self.funding_rejected = 0
        self.heatmap = HeatmapHistory(self._heatmap_columns, self._heatmap_rows, self._heatmap_column_ns,
                                      self._heatmap_group)
        self.liquidations = EventRing(4096)
        self.detection_log: deque[Detection] = deque(maxlen=4096)  # recent events, for chart markers
        self.detection_events = 0
        self._chart_cache: dict[str, tuple[int, object]] = {}
        self.synced = False
        self.messages = 0  # batches applied
        self.events = 0  # rows applied
        self.tops = 0  # top lines produced
        self.gaps = 0
        self.rejected = 0  # batches the book refused (invalid rows): book marked out of sync
        self.crossed = 0  # book messages after which the book was crossed (top withheld)
        self.repeated_ids = 0  # book messages that did not advance the update id (top withheld)
        self.analytics_errors = 0  # detector / alert-rule exceptions (logged, data goes on)
        self._last_top_id: int | None = None
        self.last_exch_ts = 0
        self.last_local_ts = 0
        self.last_trade_tick = NO_PRICE
        self.last_trade_side = 0
        self.last_trade_qty = 0.0
        self.open_detections: dict[int, Detection] = {}
        # message rate over ~1 s windows of wall-clock time (rolled when read)
        self._rate_window_ts = _monotonic_ns()
        self._rate_count = 0
        self._last_rate = 0.0
        self._profile_seq = self.ring.total_written  # ring rows before this were added to the profile
        self._trade_seq = self.ring.total_written  # ring rows before this were scanned for the tape
        self._trade_tape = np.zeros(0, dtype=self.ring.dtype)
        # (local_ts, lowest tick, bid+ask size per tick ascending) samples for the pull/stack column
        self._snapshots: deque[tuple[int, int, np.ndarray]] = deque(
            maxlen=max(2, self._size_change_ns // SNAPSHOT_INTERVAL_NS + 2)
        )
        self._next_snapshot_ts = 0

    # -- state --------------------------------------------------------------------------------

    def set_state(self, state: str) -> None:
        """The feed's state for this symbol; states that lose continuity unsync the book."""
        with self._lock:
            self.state = state
            if state in _UNSYNCING_STATES:
                self.synced = False
            self.version += 1

    # -- apply --------------------------------------------------------------------------------

    def apply(self, batch: np.ndarray, update_id: int | None) -> Emit | None:
        """Apply one message's rows atomically; returns what to emit, or None when nothing."""
        n = len(batch)
        if n == 0 and update_id is None:
            return None
        with self._lock:
            if n:
                self._to_ring(batch, n)
            return self._apply_one(batch, update_id, n)

    def apply_many(self, items: Sequence[tuple[np.ndarray, Any]]) -> list[Emit]:
        """Apply a run of messages (a replay at full speed) under one lock: what ``apply`` on each would
        do, in order, with the same results (tops, book, detections, profile, footprint), and their
        emits in order. The ring takes the run's rows in one append: nothing reads the ring between
        the messages of a run (frames take the lock), and the profile/footprint flush rule is checked
        for the run as a whole before the append, so no unaggregated trade is ever overwritten.

        An item is ``(batch, update_id)``, or ``(rows, ends)`` with ``ends`` an int array: several messages
        without update ids, message k being ``rows[ends[k-1]:ends[k]]``. Consecutive messages that leave
        the book alone (quotes and trades without an update id) are applied together by :meth:`_apply_run`.
        """
        out: list[Emit] = []
        with self._lock:
            lengths = [len(batch) for batch, _ in items]
            parts = [batch for (batch, _), n in zip(items, lengths, strict=True) if n]
            rows = None
            if parts:
                dtype = self.ring.dtype
                if all((p.dtype is dtype or p.dtype == dtype) and p.ndim == 1 and p.flags.c_contiguous
                       for p in parts):
                    # joined as bytes: np.concatenate promotes structured dtypes field by field (slow)
                    rows = parts[0] if len(parts) == 1 else np.frombuffer(b"".join(parts), dtype=dtype)
                    self._to_ring(rows, len(rows))
                else:  # odd rows: one by one, so the ring judges (and refuses) each as apply would
                    for p in parts:
                        self._to_ring(p, len(p))
            if rows is not None:
                self._apply_items(items, lengths, rows, out)
                return out
            apply_one = self._apply_one
            for batch, update_id in _messages(items):
                n = len(batch)
                if n == 0 and update_id is None:
                    continue
                emit = apply_one(batch, update_id, n)
                if emit is not None:
                    out.append(emit)
        return out

    def _apply_items(self, items: Sequence[tuple[np.ndarray, Any]], lengths: list[int], rows: np.ndarray,
                     out: list[Emit]) -> None:
        """The messages of ``apply_many`` (their rows joined in ``rows``, already in the ring): book
        messages one by one, each stretch of quote/trade messages in one :meth:`_apply_run`."""
        ends_l: list[int] = []  # per message: end row in `rows`, its item (-1: part of a run item), no id
        item_l: list[int] = []
        plain_l: list[bool] = []
        off = 0
        for i, ((_, uid), n) in enumerate(zip(items, lengths, strict=True)):
            if uid is None:
                if n:  # an empty message without an update id is no message at all
                    ends_l.append(off + n)
                    item_l.append(i)
                    plain_l.append(True)
            elif isinstance(uid, np.ndarray):
                k = len(uid)
                ends_l += (uid + off).tolist()
                item_l += [-1] * k
                plain_l += [True] * k
            else:
                ends_l.append(off + n)
                item_l.append(i)
                plain_l.append(False)
            off += n
        ends = np.array(ends_l, dtype=np.int64)
        lens = np.diff(ends, prepend=0)
        kinds = rows["ev"] & _KIND_MASK_U8
        quote_or_trade = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum((kinds == DEPTH_BBO_EVENT) | (kinds == TRADE_EVENT), out=quote_or_trade[1:])
        # a message of quote and trade rows only, no update id: it cannot touch the book or give a top
        runnable = (quote_or_trade[ends] - quote_or_trade[ends - lens] == lens) & (lens > 0)
        runnable &= np.array(plain_l, dtype=bool)
        flags = np.zeros(len(ends) + 2, dtype=np.int8)
        flags[1:-1] = runnable
        edges = np.flatnonzero(np.diff(flags)).tolist()  # starts and stops of the stretches, alternating
        i = 0
        for a, b in zip(edges[0::2], edges[1::2], strict=True):
            self._apply_each(items, item_l, ends_l, rows, i, a, out)
            r0 = ends_l[a - 1] if a else 0
            self._apply_run(rows[r0:ends_l[b - 1]], ends[a:b] - r0, out)
            i = b
        self._apply_each(items, item_l, ends_l, rows, i, len(ends_l), out)

    def _apply_each(self, items: Sequence[tuple[np.ndarray, Any]], item_l: list[int], ends_l: list[int],
                    rows: np.ndarray, a: int, b: int, out: list[Emit]) -> None:
        """Messages ``a .. b-1`` of ``_apply_items`` one by one."""
        apply_one = self._apply_one
        for k in range(a, b):
            i = item_l[k]
            if i >= 0:
                batch, update_id = items[i]
            else:
                batch, update_id = rows[ends_l[k - 1] if k else 0:ends_l[k]], None
            n = len(batch)
            if n == 0 and update_id is None:
                continue
            emit = apply_one(batch, update_id, n)
            if emit is not None:
                out.append(emit)

    def _apply_run(self, rows: np.ndarray, ends: np.ndarray, out: list[Emit]) -> None:
        """Messages of quote and trade rows only, no update ids (message ``k`` is ``rows[ends[k-1]:ends[k]]``;
        lock held, rows in the ring): exactly what ``_apply_one`` on each does, in one step.

        The book does not change across them, so the heatmap is sampled only where a message enters a
        new column, the detectors take the run at once (``on_run``), and only the messages that give
        detections, may hit a price alert or take a size snapshot are visited one by one.
        """
        m = len(ends)
        last = rows[ends - 1]  # each message's last row: its clocks
        exch = last["exch_ts"]
        local = last["local_ts"]
        self.messages += m
        self.events += len(rows)
        self.version += m
        self._rate_count += m
        self._sample_run(exch)
        kinds = rows["ev"] & _KIND_MASK_U8
        trade_rows = np.flatnonzero(kinds == TRADE_EVENT)
        found = self._detect_run(rows, ends) if self._detect is not None else {}
        alerter = self.alerts
        price_hits = self._price_hits(alerter, rows, trade_rows, ends) if alerter is not None else set()
        snaps = self._snapshot_messages(local)
        visit = sorted({*found, *price_hits, *snaps}) if found or price_hits or snaps else ()
        if visit:
            exch_l, local_l = exch.tolist(), local.tolist()
            no_book = self.book.best_bid_tick == NO_PRICE and self.book.best_ask_tick == NO_PRICE
            for k in visit:
                if no_book:  # the centre falls back on the last trade: as it was after message k
                    self._set_last_trade(rows, trade_rows[trade_rows < ends[k]])
                detections = found.get(k, ())
                if detections:
                    self._track(detections)
                alerts: Sequence[Any] = ()
                if alerter is not None and (detections or k in price_hits):
                    batch = rows[int(ends[k - 1]) if k else 0:int(ends[k])]
                    alerts = self._run_alerts(alerter, batch, detections, k in price_hits)
                if k in snaps:
                    self._take_snapshot(local_l[k])
                if detections or alerts:
                    out.append(Emit(None, None, detections, exch_l[k], local_l[k], alerts))
        if len(trade_rows):
            self._set_last_trade(rows, trade_rows)
        self.last_exch_ts = int(exch[-1])
        self.last_local_ts = int(local[-1])

    def _set_last_trade(self, rows: np.ndarray, trade_rows: np.ndarray) -> None:
        """The last-trade fields from the last of ``trade_rows`` (unchanged when there is none)."""
        if len(trade_rows):
            ev, _, _, _, qty, _, tick, _ = rows.item(int(trade_rows[-1]))
            self.last_trade_tick = tick
            self.last_trade_side = 1 if ev & BUY_EVENT else -1
            self.last_trade_qty = qty

    def _sample_run(self, exch: np.ndarray) -> None:
        """``heatmap.sample`` before each message of a run, called only where it does something: where a
        message's time passes every column seen so far (the book is the same for all of them)."""
        hm, book, synced = self.heatmap, self.book, self.synced
        if hm.open_col is not None and int(exch.max()) < (hm.open_col + 1) * hm.column_ns:
            return  # every message inside the open column (the common case)
        k0 = 0
        if hm.open_col is None:
            hm.sample(book, int(exch[0]), synced)
            k0 = 1
        cols = exch[k0:] // hm.column_ns
        if not len(cols) or int(cols.max()) <= hm.open_col:  # type: ignore[operator]
            return
        before = np.empty_like(cols)  # the newest column seen before each message
        before[0] = hm.open_col
        np.maximum(np.maximum.accumulate(cols)[:-1], hm.open_col, out=before[1:])
        for k in np.flatnonzero(cols > before).tolist():
            hm.sample(book, int(exch[k0 + k]), synced)

    def _detect_run(self, rows: np.ndarray, ends: np.ndarray) -> dict[int, Sequence[Detection]]:
        """The detectors' findings per message of a run (``{k: detections}``); a detector bug is logged."""
        on_run = getattr(self.detectors, "on_run", None)
        try:
            if on_run is not None:
                return dict(on_run(rows, ends, self.book))
            found: dict[int, Sequence[Detection]] = {}
            start = 0
            for k, end in enumerate(ends.tolist()):
                detections = self._detect(rows[start:end], self.book)  # type: ignore[misc]
                start = end
                if detections:
                    found[k] = detections
            return found
        except Exception:  # noqa: BLE001 - as in _run_detectors
            self.analytics_errors += 1
            if self.analytics_errors <= 3:
                log.exception("%s: detectors failed on a run of messages", self.instrument.key)
            return {}

    @staticmethod
    def _price_hits(alerter: Any, rows: np.ndarray, trade_rows: np.ndarray, ends: np.ndarray) -> set[int]:
        """Messages of a run with a trade that could set off a price alert (others cannot: no check needed)."""
        rules = alerter.price_rules
        if not rules or not len(trade_rows):
            return set()
        ticks = rows["ival"][trade_rows]
        hit = np.zeros(len(ticks), dtype=bool)
        for r in rules:
            hit |= ticks >= r.price_tick if r.direction == "up" else ticks <= r.price_tick
        return set(np.searchsorted(ends, trade_rows[hit], side="right").tolist())

    def _snapshot_messages(self, local: np.ndarray) -> list[int]:
        """The messages of a run after which ``_apply_one`` would take a size snapshot."""
        out: list[int] = []
        due = self._next_snapshot_ts
        k = 0
        while k < len(local):
            ge = local[k:] >= due
            if not ge.any():
                break
            k += int(ge.argmax())
            out.append(k)
            due = int(local[k]) + SNAPSHOT_INTERVAL_NS
            k += 1
        return out

    def _to_ring(self, rows: np.ndarray, n: int) -> None:
        """Append rows to the ring, aggregating first what it could overwrite (under the lock)."""
        big = False
        if self.ring.total_written + n - self._profile_seq > self._profile_flush_rows:
            self._flush_profile()  # before the ring could overwrite trades not yet aggregated
            big = n > self._profile_flush_rows
        self.ring.extend(rows)
        if big:  # more rows than the ring may keep unflushed: aggregate them from the rows themselves
            self._aggregate(rows)
            self._profile_seq = self.ring.total_written

    def _apply_one(self, batch: np.ndarray, update_id: int | None, n: int) -> Emit | None:
        """One message, lock held and its rows already in the ring: book, aggregates, detectors, top."""
        self.messages += 1
        self.events += n
        self.version += 1
        funding: FundingState | None = None
        detections: Sequence[Detection] = ()
        alerts: Sequence[Any] = ()
        if n:
            # One tuple read of the last row gives its clocks (cheaper than two field reads). Which
            # kinds are present, as bits: a Python pass over the few distinct ev values is several
            # times cheaper than numpy reductions on batches this small.
            last = batch.item(n - 1)
            exch_ts = last[1]
            local_ts = last[2]
            if n == 1:
                kinds = _KIND_BIT[last[0] & 0xFF]
            elif n == 2:
                kinds = _KIND_BIT[last[0] & 0xFF] | _KIND_BIT[batch.item(0)[0] & 0xFF]
            else:
                kinds = 0
                for e in set(batch["ev"].tolist()):
                    kinds |= _KIND_BIT[e & 0xFF]
            # before the batch: a column that ends here shows the book as it stood at its end
            self.heatmap.sample(self.book, exch_ts, self.synced)
            book_ok = True
            if kinds & _BOOK_BITS:
                try:
                    if n != 1 or not self.book.apply_row(last):  # one row: scalar work, its tuple read once
                        self.book.apply(batch)
                except ValueError as exc:
                    book_ok = False
                    self.rejected += 1
                    self.synced = False
                    log.warning("%s: book rejected a batch (%s); waiting for a resync", self.instrument.key, exc)
                else:
                    if kinds & _SNAPSHOT_BIT:
                        self.synced = True
                    elif kinds & _CLEAR_BIT:
                        self.synced = False
            if kinds & ~_BOOK_BITS:
                single = (kinds & (kinds - 1)) == 0  # one kind only: the whole batch is of it
                if kinds & _GAP_BIT:  # alone it marks a trades/mark gap; the book is judged by its rows
                    self.gaps += 1
                if kinds & _OTHER_BIT:
                    liq = batch[_kinds_of(batch) == LIQUIDATION_EVENT]
                    if len(liq):
                        self.liquidations.extend(liq)
                if kinds & _TRADE_BIT:
                    trade = batch[-1] if single else batch[_kinds_of(batch) == TRADE_EVENT][-1]
                    self.last_trade_tick = int(trade["ival"])
                    self.last_trade_side = 1 if int(trade["ev"]) & BUY_EVENT else -1
                    self.last_trade_qty = float(trade["qty"])
                if kinds & _FUNDING_BITS:
                    rows = batch if single else batch[np.isin(_kinds_of(batch), _FUNDING_KINDS)]
                    state = self._on_funding(rows)
                    if state is not None and kinds & _MARK_FUNDING_BITS:  # OI alone: frames only
                        funding = state
            if self._detect is not None and book_ok:
                detections = self._run_detectors(batch)
            alerter = self.alerts
            if alerter is not None and (detections or kinds & _TRADE_BIT):
                alerts = self._run_alerts(alerter, batch, detections, kinds & _TRADE_BIT)
            if local_ts >= self._next_snapshot_ts:
                self._take_snapshot(local_ts)
        else:
            exch_ts, local_ts = self.last_exch_ts, self.last_local_ts
        self.last_exch_ts = exch_ts
        self.last_local_ts = local_ts
        self._rate_count += 1
        top: TopOfBook | None = None
        # The snapshot rows prove sync even while the feed still says resyncing (it reports live after).
        # One top per book update id: the diff bridging a snapshot may end at the snapshot's own id.
        if update_id is not None and self.synced:
            uid = int(update_id)
            if n and kinds & _SNAPSHOT_BIT:
                self._last_top_id = None  # ids may restart after a snapshot (Bybit u=1)
            if self._last_top_id is None or uid > self._last_top_id:
                top = self._top(exch_ts, local_ts, uid)
                if top is not None:
                    self._last_top_id = uid
            else:
                self.repeated_ids += 1
        if top is None and funding is None and not detections and not alerts:
            return None
        return Emit(top, funding, detections, exch_ts, local_ts, alerts)

    def _run_detectors(self, batch: np.ndarray) -> Sequence[Detection]:
        """The detectors' findings for an applied batch; a detector bug is logged, never fatal to data."""
        try:
            detections = self._detect(batch, self.book) or ()  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - the book and the feed must go on without the analytics
            self.analytics_errors += 1
            if self.analytics_errors <= 3:
                log.exception("%s: detectors failed on a batch", self.instrument.key)
            return ()
        if detections:
            self._track(detections)
        return detections

    def _run_alerts(self, alerter: Any, batch: np.ndarray, detections: Sequence[Detection],
                    has_trades: int) -> Sequence[Any]:
        """Rule matches for these detections plus price alerts hit by the batch's trades."""
        try:
            alerts: list[Any] = []
            if detections and alerter.rules:
                alerts += alerter.match(detections, self._centre_tick(), self._median_level())
            if has_trades and alerter.price_rules:
                alerts += alerter.check_trades(batch)
            return alerts
        except Exception:  # noqa: BLE001 - as for detectors
            self.analytics_errors += 1
            if self.analytics_errors <= 3:
                log.exception("%s: alert rules failed on a batch", self.instrument.key)
            return ()

    def _track(self, detections: Sequence[Detection]) -> None:
        self.detection_log.extend(detections)
        self.detection_events += len(detections)
        for det in detections:
            if det.state == "close":
                self.open_detections.pop(det.id, None)
            else:
                self.open_detections[det.id] = det

    def _median_level(self) -> float | None:
        """Median size of the 20 best levels of both sides (for "k × median level" alert rules)."""
        sizes = np.concatenate([self.book.levels(1, 20)[1], self.book.levels(-1, 20)[1]])
        return float(np.median(sizes)) if len(sizes) else None

    def finish(self) -> Emit | None:
        """End of the stream: close every open detection (a replay never ends with one open)."""
        close_all = getattr(self.detectors, "close_all", None)
        if close_all is None:
            return None
        with self._lock:
            detections = close_all(self.last_exch_ts) or ()
            if not detections:
                return None
            self._track(detections)
            self.version += 1
            alerts: Sequence[Any] = ()
            if self.alerts is not None and self.alerts.rules:
                alerts = self.alerts.match(detections, self._centre_tick(), self._median_level())
        return Emit(None, None, detections, self.last_exch_ts, self.last_local_ts, alerts)

    def _top(self, exch_ts: int, local_ts: int, update_id: int) -> TopOfBook | None:
        book = self.book
        bid_tick = book.best_bid_tick
        ask_tick = book.best_ask_tick
        if bid_tick != NO_PRICE and ask_tick != NO_PRICE and bid_tick >= ask_tick:
            self.crossed += 1
            return None
        bid_qty, ask_qty = book.best_sizes()
        self.tops += 1
        return TopOfBook(exch_ts, local_ts, update_id, bid_tick, bid_qty, ask_tick, ask_qty)

    def _flush_profile(self) -> None:
        """Add the trades that arrived since the last flush to the profile and footprint in one call each.

        Lazy on purpose: both are read by frames and views (≤ 60 Hz), so per-message accumulation would
        cost more than the reads; the flush also runs before the ring could overwrite unflushed rows.
        A trade older than the one before it (a late print) is counted at the newest time seen.
        """
        try:
            rows = self.ring.since(self._profile_seq)
        except RingOverrun:  # cannot happen with apply's early flush; never lose the rest if it does
            self.aggregate_rejected += 1
            rows = self.ring.latest()
        self._profile_seq = self.ring.total_written
        if len(rows):
            self._aggregate(rows)

    def _aggregate(self, rows: np.ndarray) -> None:
        """Add the trade rows among ``rows`` to the profile and the footprint."""
        trades = rows[_kinds_of(rows) == TRADE_EVENT]  # a copy: the ring may move on
        if not len(trades):
            return
        try:
            self.profile.add(trades)
        except ValueError as exc:
            self.aggregate_rejected += 1
            log.warning("%s: volume profile refused trades (%s)", self.instrument.key, exc)
        ts = trades["exch_ts"]
        ordered = np.maximum(np.maximum.accumulate(ts), self._footprint_ts)
        if (ordered != ts).any():
            trades["exch_ts"] = ordered
        self._footprint_ts = int(ordered[-1])
        try:
            self.footprint.add(trades)
        except ValueError as exc:
            self.aggregate_rejected += 1
            log.warning("%s: footprint refused trades (%s)", self.instrument.key, exc)
        self.heatmap.add_trades(ts, trades["ival"], trades["qty"], (trades["ev"] & BUY_EVENT) != 0)

    def footprint_bars(self, last: int | None = None) -> list[FootprintBar]:
        """The newest ``last`` footprint bars (immutable; the open bar last)."""
        with self._lock:
            self._flush_profile()
            return self.footprint.bars(last)

    def _cached(self, name: str, version: int, build: Callable[[], Any]) -> Any:
        """The copy made for ``version`` of a chart part, rebuilt only when the version moved."""
        got = self._chart_cache.get(name)
        if got is None or got[0] != version:
            got = (version, build())
            self._chart_cache[name] = got
        return got[1]

    def chart_frame(self, bars: int = 200) -> ChartFrame:
        """What the charts draw (see :class:`~app.core.chartframe.ChartFrame`); parts copied only when changed."""
        with self._lock:
            self._flush_profile()
            hm = self.heatmap
            snap = None
            if hm.open_col is not None:
                snap = HeatmapSnapshot(hm, hm.last_closed, hm.open_col, hm.version, self.instrument.tick_size,
                                       hm.column_ns)
            fp = self.footprint
            footprint = self._cached("footprint", fp.version * 4096 + bars, lambda: tuple(fp.bars(bars)))
            prof = self.profile
            profile = self._cached("profile", prof.version, prof.session)
            fund = self.funding
            history = self._cached("funding", fund.version, lambda: fund.history().copy())
            liqs = self._cached("liq", self.liquidations.total_written, lambda: self.liquidations.latest().copy())
            dets = self._cached("det", self.detection_events, lambda: tuple(self.detection_log))
            bid, ask = self.book.best_bid_tick, self.book.best_ask_tick
            return ChartFrame(
                version=self.version, instrument=self.instrument, state=self.state, exch_ts=self.last_exch_ts,
                best_bid_tick=bid, best_ask_tick=ask, last_trade_tick=self.last_trade_tick,
                heatmap=snap, footprint=footprint, footprint_version=fp.version, profile=profile,
                profile_version=prof.version, funding=fund.state if fund.version else None,
                funding_history=history, funding_version=fund.version, liquidations=liqs,
                detections=dets, detections_version=self.detection_events,
            )

    def mid_series(self, seconds: float = 3600.0) -> tuple[np.ndarray, np.ndarray]:
        """(column end times ns, mid price) over the last ``seconds`` of closed heatmap columns (NaN in gaps)."""
        with self._lock:
            hm = self.heatmap
            if hm.open_col is None:
                return np.zeros(0, np.int64), np.zeros(0)
            n = int(seconds * 1e9) // hm.column_ns
            cols, mid = hm.mid_series(hm.last_closed - n + 1, hm.last_closed)
        return (cols + 1) * hm.column_ns, mid * self.instrument.tick_size

    def recent_trades(self, n: int) -> np.ndarray:
        """A copy of the newest ``n`` trade rows (oldest first; at most ``TRADES_KEPT``)."""
        with self._lock:
            return self._recent_trades(n)

    def _recent_trades(self, n: int) -> np.ndarray:
        # Incremental: only ring rows that arrived since the last call are scanned for trades.
        try:
            new = self.ring.since(self._trade_seq)
        except RingOverrun:  # not asked for longer than the ring holds: what is retained will do
            new = self.ring.latest()
        self._trade_seq = self.ring.total_written
        if len(new):
            trades = new[_kinds_of(new) == TRADE_EVENT]
            if len(trades):
                self._trade_tape = np.concatenate((self._trade_tape, trades))[-TRADES_KEPT:]
        return self._trade_tape[len(self._trade_tape) - min(n, len(self._trade_tape)):].copy()

    def _on_funding(self, rows: np.ndarray) -> FundingState | None:
        """Fold mark/funding/open-interest rows; a batch the tracker refuses (out of order) is counted."""
        try:
            self.funding.add(rows)
        except ValueError as exc:
            self.funding_rejected += 1
            log.warning("%s: funding rows refused (%s)", self.instrument.key, exc)
            return None
        return self.funding.state

    @property
    def message_rate(self) -> float:
        """Messages applied per wall-clock second, over the last ~1 s window (decays when quiet).

        Wall clock, not receive time: a replay at 100× shows the rate the engine really applies.
        """
        now = _monotonic_ns()
        elapsed = now - self._rate_window_ts
        if elapsed >= 1_000_000_000:  # roll the window on read: nothing to do per message
            self._last_rate = self._rate_count * 1e9 / elapsed
            self._rate_window_ts = now
            self._rate_count = 0
            return self._last_rate
        if elapsed <= 0:
            return self._last_rate
        # inside a window: blend the finished window with this one so the figure moves smoothly
        w = elapsed / 1e9
        return (1 - w) * self._last_rate + w * (self._rate_count * 1e9 / elapsed)

    def _take_snapshot(self, local_ts: int) -> None:
        self._next_snapshot_ts = local_ts + SNAPSHOT_INTERVAL_NS
        centre = self._centre_tick()
        if centre is None:
            return
        rows = 2 * SNAPSHOT_HALF_TICKS
        top_tick = centre + SNAPSHOT_HALF_TICKS - 1
        _ticks, bid, ask = self.book.ladder(top_tick, rows, 1)
        combined = (bid + ask)[::-1]  # ascending ticks from top_tick - rows + 1
        self._snapshots.append((local_ts, top_tick - rows + 1, combined))

    def _centre_tick(self) -> int | None:
        """Mid in whole ticks (either best alone, else the last trade), or None for an empty market."""
        bid, ask = self.book.best_bid_tick, self.book.best_ask_tick
        if bid != NO_PRICE and ask != NO_PRICE:
            return (bid + ask) // 2
        if bid != NO_PRICE:
            return bid
        if ask != NO_PRICE:
            return ask
        if self.last_trade_tick != NO_PRICE:
            return self.last_trade_tick
        return None

    # -- frame --------------------------------------------------------------------------------

    def frame(self, ladder_rows: int = 40, group: int = 1, centre_tick: int | None = None,
              trades: int = 200) -> Frame:
        """An immutable snapshot for the views: private copies only, never live arrays.

        The ladder has ``ladder_rows`` rows of ``group`` ticks each, highest first, centred on the mid
        (or on ``centre_tick`` when the view is scrolled); a row labelled ``t`` covers ticks
        ``t .. t + group - 1`` with ``t`` a multiple of ``group``.
        """
        if ladder_rows < 0 or group < 1:
            raise ValueError(f"ladder_rows must be >= 0 and group >= 1, got {ladder_rows}, {group}")
        with self._lock:
            self._flush_profile()
            book = self.book
            centre = self._centre_tick() if centre_tick is None else int(centre_tick)
            if centre is None or ladder_rows == 0:
                ticks = np.zeros(0, np.int64)
                bid = ask = traded_buy = traded_sell = change = np.zeros(0)
            else:
                top_row = (centre // group + ladder_rows // 2) * group
                n_ticks = ladder_rows * group
                top_tick = top_row + group - 1
                _t, bid1, ask1 = book.ladder(top_tick, n_ticks, 1)
                lo_tick = top_tick - n_ticks + 1
                buy1, sell1 = self.profile.volume_at(np.arange(lo_tick, lo_tick + n_ticks, dtype=np.int64))
                change1 = self._size_change(lo_tick, n_ticks, (bid1 + ask1)[::-1])
                ticks = top_row - group * np.arange(ladder_rows, dtype=np.int64)
                bid = _group_desc(np.asarray(bid1, dtype=np.float64), group)
                ask = _group_desc(np.asarray(ask1, dtype=np.float64), group)
                traded_buy = _group_desc(np.asarray(buy1, dtype=np.float64)[::-1], group)
                traded_sell = _group_desc(np.asarray(sell1, dtype=np.float64)[::-1], group)
                change = _group_desc(change1[::-1], group)
            best_bid = book.best_bid()
            best_ask = book.best_ask()
            return Frame(
                version=self.version,
                instrument=self.instrument,
                state=self.state,
                exch_ts=self.last_exch_ts,
                local_ts=self.last_local_ts,
                best_bid_tick=best_bid[0] if best_bid else NO_PRICE,
                best_bid_qty=best_bid[1] if best_bid else 0.0,
                best_ask_tick=best_ask[0] if best_ask else NO_PRICE,
                best_ask_qty=best_ask[1] if best_ask else 0.0,
                last_trade_tick=self.last_trade_tick,
                last_trade_side=self.last_trade_side,
                ladder_ticks=ticks,
                ladder_bid=bid,
                ladder_ask=ask,
                ladder_traded_buy=traded_buy,
                ladder_traded_sell=traded_sell,
                ladder_size_change=change,
                trades=self._recent_trades(trades),
                detections=tuple(self.open_detections.values()),
                funding=self.funding.state if self.funding.version else None,
                message_rate=self.message_rate,
                ring_fill=self.ring.fill,
            )

    def _size_change(self, lo_tick: int, n_ticks: int, now_asc: np.ndarray) -> np.ndarray:
        """Size now minus size ~N s ago per tick (ascending from ``lo_tick``); 0 where unknown."""
        out = np.zeros(n_ticks)
        if not self._snapshots:
            return out
        cutoff = self.last_local_ts - self._size_change_ns
        ref = None
        for snap in self._snapshots:  # oldest first: the first one inside the window
            if snap[0] >= cutoff:
                ref = snap
                break
        if ref is None:
            ref = self._snapshots[-1]
        _ts, snap_lo, snap_qty = ref
        a = max(lo_tick, snap_lo)
        b = min(lo_tick + n_ticks, snap_lo + len(snap_qty))
        if a < b:
            out[a - lo_tick:b - lo_tick] = now_asc[a - lo_tick:b - lo_tick] - snap_qty[a - snap_lo:b - snap_lo]
        return out


def _messages(items: Sequence[tuple[np.ndarray, Any]]) -> list[tuple[np.ndarray, int | None]]:
    """``apply_many``'s items as one ``(batch, update_id)`` per message (run items cut at their ends)."""
    out: list[tuple[np.ndarray, int | None]] = []
    for batch, uid in items:
        if isinstance(uid, np.ndarray):
            start = 0
            for end in uid.tolist():
                out.append((batch[start:end], None))
                start = end
        else:
            out.append((batch, uid))
    return out


def _group_desc(values_desc: np.ndarray, group: int) -> np.ndarray:
    """Sum consecutive runs of ``group`` values (a descending per-tick column -> per-row column)."""
    if group == 1:
        return np.array(values_desc, dtype=np.float64)
    return values_desc.reshape(-1, group).sum(axis=1)
