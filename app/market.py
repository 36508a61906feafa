"""The live state of one symbol: book, event ring, traded volume, funding, detections, counters.

:meth:`MarketState.apply` takes one exchange message's batch and applies it atomically (under the
state's lock) to the book, the rings and the aggregations; it returns what the engine must emit.
:meth:`MarketState.frame` builds the immutable :class:`~app.core.frame.Frame` the GUI draws.

In-sync rule for ``top`` output: the book is *synced* only after a batch that carries snapshot rows
(the feed's ``DEPTH_CLEAR`` + ``DEPTH_SNAPSHOT`` after (re)sync); a clear without a
snapshot (a feed's gap batch is ``GAP_EVENT`` + ``DEPTH_CLEAR``), a rejected batch or a feed state of connecting/resyncing/disconnected/stopped unsyncs it.
A crossed book is never reported either (it is counted in ``crossed``).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from app.core.book import DepthBook
from app.core.detection import Detection
from app.core.events import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    FUNDING_EVENT,
    GAP_EVENT,
    KIND_MASK,
    MARK_PRICE_EVENT,
    NO_PRICE,
    OPEN_INTEREST_EVENT,
    TRADE_EVENT,
)
from app.core.frame import Frame, FundingState
from app.core.instrument import Instrument
from app.core.profile import VolumeProfile
from app.core.ring import EventRing
from feeds.base import CONNECTING, DISCONNECTED, RESYNCING, STOPPED

log = logging.getLogger(__name__)

_UNSYNCING_STATES = frozenset((CONNECTING, RESYNCING, DISCONNECTED, STOPPED))
_FUNDING_KINDS = (MARK_PRICE_EVENT, FUNDING_EVENT, OPEN_INTEREST_EVENT)

DEFAULT_RING_CAPACITY = 1 << 20
DEFAULT_TRADE_CAPACITY = 4096
DEFAULT_SIZE_CHANGE_S = 5.0
SNAPSHOT_INTERVAL_NS = 250_000_000
SNAPSHOT_HALF_TICKS = 1024  # size-change memory covers mid ± this many ticks


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
    ) -> None:
        config = config or {}
        self.instrument = instrument
        self.book = DepthBook(instrument)
        self.ring = EventRing(int(engine_setting(config, "ring_capacity", DEFAULT_RING_CAPACITY)))
        self.trades = EventRing(int(engine_setting(config, "trade_capacity", DEFAULT_TRADE_CAPACITY)))
        self.profile = VolumeProfile()
        self.funding_state: FundingState | None = None
        self._size_change_ns = int(float(engine_setting(config, "size_change_s", DEFAULT_SIZE_CHANGE_S)) * 1e9)
        if detectors is not None and hasattr(detectors, "on_batch"):
            detectors = detectors.on_batch
        self._detect: DetectorHook | None = detectors
        self._lock = threading.Lock()
        self.state = CONNECTING
        self.synced = False
        self.version = 0
        self.messages = 0  # batches applied
        self.events = 0  # rows applied
        self.tops = 0  # top lines produced
        self.gaps = 0
        self.rejected = 0  # batches the book refused (invalid rows): book marked out of sync
        self.crossed = 0  # book messages after which the book was crossed (top withheld)
        self.last_exch_ts = 0
        self.last_local_ts = 0
        self.last_trade_tick = NO_PRICE
        self.last_trade_side = 0
        self.last_trade_qty = 0.0
        self.open_detections: dict[int, Detection] = {}
        # message rate over ~1 s windows of receive time
        self._rate_window_ts = 0
        self._rate_window_count = 0
        self.message_rate = 0.0
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
            self.messages += 1
            self.events += n
            self.version += 1
            if n:
                exch_ts = int(batch["exch_ts"][-1])
                local_ts = int(batch["local_ts"][-1])
            else:
                exch_ts, local_ts = self.last_exch_ts, self.last_local_ts
            self.last_exch_ts = exch_ts
            self.last_local_ts = local_ts
            self._count_rate(local_ts)
            funding: FundingState | None = None
            detections: Sequence[Detection] = ()
            if n:
                kinds = batch["ev"] & KIND_MASK
                kmin = int(kinds.min())
                kmax = int(kinds.max())
                if kmin == kmax:  # the common case: one kind per message
                    has = {kmin}
                else:
                    has = set(np.unique(kinds).tolist())
                if GAP_EVENT in has:  # alone it marks a trades/mark gap; the book is judged by its rows
                    self.gaps += 1
                if has & {DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT, DEPTH_CLEAR_EVENT}:
                    try:
                        self.book.apply(batch)
                    except ValueError as exc:
                        self.rejected += 1
                        self.synced = False
                        log.warning("%s: book rejected a batch (%s); waiting for a resync", self.instrument.key, exc)
                    else:
                        if DEPTH_SNAPSHOT_EVENT in has:
                            self.synced = True
                        elif DEPTH_CLEAR_EVENT in has:
                            self.synced = False
                self.ring.extend(batch)
                if TRADE_EVENT in has:
                    trades = batch if kmin == kmax else batch[kinds == TRADE_EVENT]
                    self._on_trades(trades)
                if has.intersection(_FUNDING_KINDS):
                    rows = batch if kmin == kmax else batch[np.isin(kinds, _FUNDING_KINDS)]
                    funding = self._on_funding(rows)
                if self._detect is not None:
                    detections = self._detect(batch, self.book) or ()
                    for det in detections:
                        if det.state == "close":
                            self.open_detections.pop(det.id, None)
                        else:
                            self.open_detections[det.id] = det
                if local_ts >= self._next_snapshot_ts:
                    self._take_snapshot(local_ts)
            top: TopOfBook | None = None
            # The snapshot rows prove sync even while the feed still says resyncing (it reports live after).
            if update_id is not None and self.synced:
                top = self._top(exch_ts, local_ts, int(update_id))
        if top is None and funding is None and not detections:
            return None
        return Emit(top, funding, detections, exch_ts, local_ts)

    def _top(self, exch_ts: int, local_ts: int, update_id: int) -> TopOfBook | None:
        book = self.book
        bid_tick = book.best_bid_tick
        ask_tick = book.best_ask_tick
        if bid_tick != NO_PRICE and ask_tick != NO_PRICE and bid_tick >= ask_tick:
            self.crossed += 1
            return None
        bid_qty = book.qty_at(1, bid_tick) if bid_tick != NO_PRICE else 0.0
        ask_qty = book.qty_at(-1, ask_tick) if ask_tick != NO_PRICE else 0.0
        self.tops += 1
        return TopOfBook(exch_ts, local_ts, update_id, bid_tick, bid_qty, ask_tick, ask_qty)

    def _on_trades(self, trades: np.ndarray) -> None:
        self.trades.extend(trades)
        self.profile.add(trades)
        last = trades[-1]
        self.last_trade_tick = int(last["ival"])
        self.last_trade_side = 1 if int(last["ev"]) & BUY_EVENT else -1
        self.last_trade_qty = float(last["qty"])

    def _on_funding(self, rows: np.ndarray) -> FundingState:
        """Fold mark (px mark, fval index), funding (fval rate, ival next time) and open-interest (qty) rows."""
        cur = self.funding_state or FundingState()
        mark, index, rate, next_ts, oi = cur.mark_px, cur.index_px, cur.rate, cur.next_funding_ts, cur.open_interest
        for row in rows:  # a handful of rows per second at most
            kind = int(row["ev"]) & KIND_MASK
            if kind == MARK_PRICE_EVENT:
                mark = float(row["px"])
                index = float(row["fval"]) or index
            elif kind == FUNDING_EVENT:
                rate = float(row["fval"])
                next_ts = int(row["ival"])
                mark = float(row["px"]) or mark
            else:
                oi = float(row["qty"])
        self.funding_state = FundingState(rate=rate, next_funding_ts=next_ts, mark_px=mark, index_px=index,
                                          open_interest=oi, interval_hours=cur.interval_hours)
        return self.funding_state

    def _count_rate(self, local_ts: int) -> None:
        self._rate_window_count += 1
        start = self._rate_window_ts
        if start == 0:
            self._rate_window_ts = local_ts
            self._rate_window_count = 0
        elif local_ts - start >= 1_000_000_000:
            self.message_rate = self._rate_window_count * 1e9 / (local_ts - start)
            self._rate_window_ts = local_ts
            self._rate_window_count = 0

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
                trades=self.trades.latest(trades).copy(),
                detections=tuple(self.open_detections.values()),
                funding=self.funding_state,
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


def _group_desc(values_desc: np.ndarray, group: int) -> np.ndarray:
    """Sum consecutive runs of ``group`` values (a descending per-tick column -> per-row column)."""
    if group == 1:
        return np.array(values_desc, dtype=np.float64)
    return values_desc.reshape(-1, group).sum(axis=1)
