"""Binance USDⓈ-M futures: pure parsers, the U/u/pu book sync, a pure message processor, the I/O feed.

Layers, each usable alone (the capture replay uses the pure ones without any network):

* ``parse_*`` functions: one raw message (``bytes``/``str``, with or without the combined-stream
  envelope, or an already decoded struct) -> an ``EVENT_DTYPE`` batch.
* :class:`BinanceBookSync`: protocols.md A.4 exactly, no I/O; says when it needs a REST snapshot.
* :class:`BinanceUsdmProcessor`: routes raw lines (websocket frames and recorded REST lines) through
  the parsers and syncs to a :class:`~feeds.base.FeedSink`; counts messages, resyncs, malformed.
* :class:`BinanceUsdmFeed`: two websocket connections (``/public``: depth + bookTicker, ``/market``:
  trades, mark price, liquidations), REST snapshot / exchangeInfo / openInterest, reconnects.

Recorded REST lines (``FeedSink.on_raw``) have the form ``{"rest":"/fapi/v1/depth?symbol=BTCUSDT&limit=1000",
"data":<body exactly as received>}`` (see :func:`feeds.common.rest_line`); a bare snapshot body (the
hftbacktest collector's form) is also accepted when the processor has one symbol.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import msgspec
import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from app.core.events import (
    BOTH_CLOCKS,
    BUY_EVENT,
    DEPTH_BBO_EVENT,
    DEPTH_EVENT,
    EVENT_DTYPE,
    FUNDING_EVENT,
    LIQUIDATION_EVENT,
    MARK_PRICE_EVENT,
    OPEN_INTEREST_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
)
from app.core.instrument import Instrument
from feeds.backoff import Backoff
from feeds.base import (
    CONNECTING,
    DISCONNECTED,
    LIVE,
    RESYNCING,
    STOPPED,
    SYNCING,
    FeedCounters,
    FeedSink,
)
from feeds.common import (
    CLOSE_TIMEOUT_S,
    MS,
    ROW_FORMAT,
    RUN_MAX,
    FeedError,
    RunSink,
    SyncBatch,
    decode_levels,
    gap_batch,
    gap_marker,
    levels_to_rows,
    message_queued,
    parse_rest_line,
    rest_line,
    rows,
    snapshot_batch,
    tick_of,
)
from feeds.http import HttpError, http_get

VENUE = "binance-usdm"
log = logging.getLogger(__name__)

_BUY_TRADE = BOTH_CLOCKS | BUY_EVENT | TRADE_EVENT
_SELL_TRADE = BOTH_CLOCKS | SELL_EVENT | TRADE_EVENT
_BID_BBO = BOTH_CLOCKS | BUY_EVENT | DEPTH_BBO_EVENT
_ASK_BBO = BOTH_CLOCKS | SELL_EVENT | DEPTH_BBO_EVENT
_MARK = BOTH_CLOCKS | MARK_PRICE_EVENT
_FUNDING = BOTH_CLOCKS | FUNDING_EVENT
_OPEN_INTEREST = BOTH_CLOCKS | OPEN_INTEREST_EVENT
_LONG_LIQUIDATED = BOTH_CLOCKS | SELL_EVENT | LIQUIDATION_EVENT  # the venue sells the long's position
_SHORT_LIQUIDATED = BOTH_CLOCKS | BUY_EVENT | LIQUIDATION_EVENT
_DEPTH_BID = BOTH_CLOCKS | BUY_EVENT | DEPTH_EVENT
_DEPTH_ASK = BOTH_CLOCKS | SELL_EVENT | DEPTH_EVENT

Level = tuple[float, float]


# --- wire structs (msgspec, lax: "61800.20" decodes into a float field) -------------------------------


class DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    """``<symbol>@depth@100ms`` diff (also the partial ``@depthN`` form)."""

    E: int
    s: str
    U: int
    u: int
    pu: int
    b: msgspec.Raw  # level arrays are decoded by feeds.common.decode_levels (3x faster)
    a: msgspec.Raw
    T: int = 0


class Trade(msgspec.Struct, tag_field="e", tag="trade"):
    """``<symbol>@trade``."""

    E: int
    s: str
    t: int
    p: float
    q: float
    m: bool
    T: int = 0
    X: str = "MARKET"


class AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade"):
    """``<symbol>@aggTrade``."""

    E: int
    s: str
    a: int
    p: float
    q: float
    m: bool
    T: int = 0
    f: int = 0
    l: int = 0  # noqa: E741 - the venue's field name


class BookTicker(msgspec.Struct, tag_field="e", tag="bookTicker"):
    """``<symbol>@bookTicker``."""

    u: int
    s: str
    b: float
    B: float
    a: float
    A: float
    T: int = 0
    E: int = 0


class MarkPrice(msgspec.Struct, tag_field="e", tag="markPriceUpdate"):
    """``<symbol>@markPrice@1s``; strings kept because ``r``/``i`` may be empty for some contracts."""

    E: int
    s: str
    p: str
    i: str = ""
    r: str = ""
    T: int = 0
    P: str = ""


class ForceOrderBody(msgspec.Struct):
    """The ``o`` object of a ``forceOrder`` event."""

    s: str
    S: str
    q: float
    p: float
    ap: float = 0.0
    z: float = 0.0
    T: int = 0
    X: str = ""


class ForceOrder(msgspec.Struct, tag_field="e", tag="forceOrder"):
    """``<symbol>@forceOrder`` (sampled: at most the latest liquidation per symbol per second)."""

    E: int
    o: ForceOrderBody


Payload = DepthUpdate | Trade | AggTrade | BookTicker | MarkPrice | ForceOrder


class Envelope(msgspec.Struct):
    """Combined-stream frame ``{"stream": ..., "data": ...}``."""

    stream: str
    data: Payload


class DepthSnapshot(msgspec.Struct):
    """REST ``GET /fapi/v1/depth`` body."""

    lastUpdateId: int
    bids: msgspec.Raw
    asks: msgspec.Raw
    E: int = 0
    T: int = 0


class OpenInterest(msgspec.Struct):
    """REST ``GET /fapi/v1/openInterest`` body."""

    symbol: str
    openInterest: float
    time: int = 0


_ENVELOPE = msgspec.json.Decoder(Envelope, strict=False)
_PACK1 = struct.Struct("<" + ROW_FORMAT).pack
_PACK2 = struct.Struct("<" + ROW_FORMAT * 2).pack
_PAYLOAD = msgspec.json.Decoder(Payload, strict=False)
_SNAPSHOT = msgspec.json.Decoder(DepthSnapshot, strict=False)
_OI_DECODER = msgspec.json.Decoder(OpenInterest, strict=False)
_ANY = msgspec.json.Decoder()
_ENVELOPES = msgspec.json.Decoder(list[Envelope], strict=False)
_FLAT_FLOATS = msgspec.json.Decoder(list[float])  # as in feeds.common.decode_levels
_BRACKETS_AND_QUOTES = b'[]"'
_BULK_CHUNK = 512  # frames per bulk decode: long enough to amortise the call, short enough to stay in cache
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)


def _payload(raw: bytes | str | Any, kind: type) -> Any:
    """A decoded payload of type ``kind`` from a raw frame (enveloped or bare) or a struct."""
    if isinstance(raw, kind):
        return raw
    if isinstance(raw, Envelope):
        data = raw.data
    else:
        try:
            data = _ENVELOPE.decode(raw).data
        except _DECODE_ERRORS:
            data = _PAYLOAD.decode(raw)
    if not isinstance(data, kind):
        raise ValueError(f"expected a {kind.__name__} message, got {type(data).__name__}")
    return data


# --- pure parsers -------------------------------------------------------------------------------------


class DepthDiff(NamedTuple):
    """A parsed diff: its ids for the sync rule and its depth rows (``order_id`` = ``u``)."""

    first_id: int  # U
    final_id: int  # u
    prev_final_id: int  # pu
    exch_ts: int
    local_ts: int
    batch: np.ndarray
    off_grid: int = 0  # levels left out: price off the tick grid


def parse_depth_update(raw: bytes | str | DepthUpdate | Envelope, inst: Instrument, local_ns: int) -> DepthDiff:
    """``@depth`` diff -> :class:`DepthDiff` (``DEPTH_EVENT`` rows, bids first; qty 0 deletes).

    Sample: ``{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161292018,"T":1723161292007,
    "s":"BTCUSDT","U":5123110691500,"u":5123110692581,"pu":5123110691288,"b":[["61763.10","0.092"]],
    "a":[["61858.10","14.960"],["61858.40","0.030"]]}}``
    """
    d = _payload(raw, DepthUpdate)
    exch_ts = (d.T or d.E) * MS
    batch, off_grid = levels_to_rows(decode_levels(d.b), decode_levels(d.a), inst, exch_ts, local_ns, d.u,
                                     DEPTH_EVENT)  # fmt: skip
    return DepthDiff(d.U, d.u, d.pu, exch_ts, local_ns, batch, off_grid)


class Snapshot(NamedTuple):
    """A parsed REST snapshot: ``lastUpdateId`` and the clear + snapshot rows."""

    last_update_id: int
    exch_ts: int
    local_ts: int
    batch: np.ndarray
    off_grid: int = 0  # levels left out: price off the tick grid


def parse_depth_snapshot(raw: bytes | str | DepthSnapshot, inst: Instrument, local_ns: int) -> Snapshot:
    """REST depth body -> :class:`Snapshot` (``DEPTH_CLEAR_EVENT`` + ``DEPTH_SNAPSHOT_EVENT`` rows).

    Sample: ``{"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,
    "bids":[["61800.20","2.909"],["61800.10","0.696"]],"asks":[["61800.30","3.330"]]}``
    """
    d = raw if isinstance(raw, DepthSnapshot) else _SNAPSHOT.decode(raw)
    exch_ts = (d.T or d.E) * MS
    bids, asks = decode_levels(d.bids), decode_levels(d.asks)
    batch, off_grid = snapshot_batch(bids, asks, inst, exch_ts, local_ns, d.lastUpdateId)
    return Snapshot(d.lastUpdateId, exch_ts, local_ns, batch, off_grid)


def parse_trade(raw: bytes | str | Trade | Envelope, inst: Instrument, local_ns: int) -> np.ndarray:
    """``@trade`` -> one ``TRADE_EVENT`` row; ``m`` true (buyer is maker) = aggressive sell.

    Sample: ``{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,
    "s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}``
    """
    d = _payload(raw, Trade)
    tick = tick_of(inst, d.p)
    return rows(_SELL_TRADE if d.m else _BUY_TRADE, (d.T or d.E) * MS, local_ns,
                tick * inst.tick_size, d.q, d.t, tick, 0.0)  # fmt: skip


def parse_agg_trade(raw: bytes | str | AggTrade | Envelope, inst: Instrument, local_ns: int) -> np.ndarray:
    """``@aggTrade`` -> one ``TRADE_EVENT`` row (``order_id`` = aggregate id); ``m`` true = aggressive sell.

    Sample: ``{"stream":"ctkusdt@aggTrade","data":{"e":"aggTrade","E":1626992741575,"a":16599292,
    "s":"CTKUSDT","p":"1.01100","q":"10","f":23961322,"l":23961322,"T":1626992741421,"m":false}}``
    """
    d = _payload(raw, AggTrade)
    tick = tick_of(inst, d.p)
    return rows(_SELL_TRADE if d.m else _BUY_TRADE, (d.T or d.E) * MS, local_ns,
                tick * inst.tick_size, d.q, d.a, tick, 0.0)  # fmt: skip


def parse_book_ticker(raw: bytes | str | BookTicker | Envelope, inst: Instrument, local_ns: int) -> np.ndarray:
    """``@bookTicker`` -> two ``DEPTH_BBO_EVENT`` rows (bid, then ask), ``order_id`` = book id ``u``.

    The book is not changed by these rows; they are the venue's own top used to verify ours.
    Sample: ``{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT",
    "b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}``
    """
    d = _payload(raw, BookTicker)
    ts = (d.T or d.E) * MS
    bt = tick_of(inst, d.b)
    at = tick_of(inst, d.a)
    tick_size = inst.tick_size
    return rows(_BID_BBO, ts, local_ns, bt * tick_size, d.B, d.u, bt, 0.0,
                _ASK_BBO, ts, local_ns, at * tick_size, d.A, d.u, at, 0.0)  # fmt: skip


def parse_mark_price(raw: bytes | str | MarkPrice | Envelope, inst: Instrument, local_ns: int) -> np.ndarray:
    """``@markPrice@1s`` -> ``MARK_PRICE_EVENT`` (px mark, fval index) + ``FUNDING_EVENT`` (fval rate,
    ival next funding time ns); the funding row is left out when the contract has no funding rate.

    Sample: ``{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,
    "s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167",
    "T":1562306400000}}``
    """
    d = _payload(raw, MarkPrice)
    ts = d.E * MS
    mark = float(d.p)
    index = float(d.i) if d.i else 0.0
    if not d.r:
        return rows(_MARK, ts, local_ns, mark, 0.0, 0, 0, index)
    return rows(_MARK, ts, local_ns, mark, 0.0, 0, 0, index,
                _FUNDING, ts, local_ns, mark, 0.0, 0, d.T * MS, float(d.r))  # fmt: skip


def parse_force_order(raw: bytes | str | ForceOrder | Envelope, inst: Instrument, local_ns: int) -> np.ndarray:
    """``@forceOrder`` -> one ``LIQUIDATION_EVENT`` row; side flag = the liquidation order's side, so
    ``SELL_EVENT`` (``o.S`` = SELL) means a long was liquidated. px = average fill price (else order
    price), qty = filled quantity (else order quantity), ival = px rounded to the nearest tick.

    Sample: ``{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC",
    "q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}``
    """
    d = _payload(raw, ForceOrder)
    o = d.o
    if o.S not in ("SELL", "BUY"):
        raise ValueError(f"forceOrder side {o.S!r}")
    px = o.ap or o.p
    return rows(_LONG_LIQUIDATED if o.S == "SELL" else _SHORT_LIQUIDATED, (o.T or d.E) * MS, local_ns,
                px, o.z or o.q, 0, round(px / inst.tick_size), 0.0)  # fmt: skip


def parse_open_interest(raw: bytes | str | OpenInterest, inst: Instrument, local_ns: int) -> np.ndarray:
    """REST ``/fapi/v1/openInterest`` -> one ``OPEN_INTEREST_EVENT`` row (qty = open interest, base units).

    Sample: ``{"openInterest":"10659.509","symbol":"BTCUSDT","time":1589437530011}``
    """
    d = raw if isinstance(raw, OpenInterest) else _OI_DECODER.decode(raw)
    return rows(_OPEN_INTEREST, d.time * MS, local_ns, 0.0, d.openInterest, 0, 0, 0.0)


def parse_exchange_info(raw: bytes | str, symbol: str) -> Instrument:
    """REST ``/fapi/v1/exchangeInfo`` -> the :class:`Instrument` of ``symbol`` (tickSize from
    PRICE_FILTER, stepSize from LOT_SIZE); :class:`FeedError` when the venue does not list it.

    Sample (one symbol, trimmed): ``{"symbols":[{"symbol":"BTCUSDT","status":"TRADING","quoteAsset":"USDT",
    "filters":[{"filterType":"PRICE_FILTER","tickSize":"0.10"},{"filterType":"LOT_SIZE","stepSize":"0.001"}]}]}``
    """
    try:
        info = _ANY.decode(raw)
        symbols = info["symbols"]
    except (msgspec.DecodeError, KeyError, TypeError):
        raise FeedError(f"{VENUE}: exchangeInfo is not the expected JSON") from None
    for entry in symbols:
        if entry.get("symbol") != symbol:
            continue
        status = entry.get("status", "TRADING")
        if status != "TRADING":
            raise FeedError(f"{VENUE}: {symbol} is not trading (status {status})")
        filters = {f.get("filterType"): f for f in entry.get("filters", ())}
        try:
            tick = float(filters["PRICE_FILTER"]["tickSize"])
            lot = float(filters.get("LOT_SIZE", {}).get("stepSize", 0.0))
            return Instrument(VENUE, symbol, tick, lot, 1.0, entry.get("quoteAsset", "USDT"))
        except (KeyError, ValueError, TypeError) as exc:
            raise FeedError(f"{VENUE}: {symbol} has no usable PRICE_FILTER/LOT_SIZE ({exc})") from None
    raise FeedError(f"{VENUE}: unknown symbol {symbol} (not listed in exchangeInfo)")


# Dispatch table: stream-name suffix -> parser (for docs, the simulator and the capture replay); the
# processor dispatches on the decoded payload type, which is the same mapping.
STREAM_PARSERS: dict[str, Callable[..., Any]] = {
    "depth": parse_depth_update,
    "bookTicker": parse_book_ticker,
    "trade": parse_trade,
    "aggTrade": parse_agg_trade,
    "markPrice": parse_mark_price,
    "forceOrder": parse_force_order,
}


# --- book sync (protocols.md A.4) ---------------------------------------------------------------------


class BinanceBookSync:
    """The futures local-book algorithm (protocols.md A.4), pure: diffs and snapshots in, batches out.

    1. Buffer diffs until a snapshot (``needs_snapshot``). 2. On the snapshot drop diffs with
    ``u < lastUpdateId``; if the first left has ``U > lastUpdateId`` the snapshot is older than the
    buffer: discard it, keep buffering, ask again (``refetches``). 3. Deliver the snapshot (clear +
    snapshot rows) together with the first diff, which must satisfy ``U <= lastUpdateId <= u``; with
    nothing buffered yet the snapshot is held until such a diff arrives (a diff with ``U`` past it means
    it was too old: ask again), so a book is never shown before it is known to be in sync. 4. Each next
    diff needs ``pu == previous u``; a broken chain delivers ``GAP_EVENT`` + ``DEPTH_CLEAR_EVENT``, goes
    ``resyncing`` and buffers again. A diff whose ``u`` is not newer than the book (duplicate, replayed)
    is dropped and counted in ``stale``: its content is older than what the book already has.
    """

    def __init__(self, instrument: Instrument, max_buffer: int = 10_000) -> None:
        self.instrument = instrument
        self.state = SYNCING
        self.reason = "waiting for snapshot"
        self.needs_snapshot = True
        self.update_id: int | None = None  # u of the last delivered book change
        self.resyncs = 0
        self.refetches = 0
        self.stale = 0
        self.before_snapshot = 0  # buffered diffs the snapshot already contains (dropped by A.4 step 4)
        self._buffer: deque[DepthDiff] = deque(maxlen=max_buffer)
        self._held: Snapshot | None = None  # a snapshot waiting for its bridging diff
        self._delivered = False  # anything reached the book since the last clear

    def bridges(self, last_update_id: int) -> bool:
        """Whether a snapshot with this ``lastUpdateId`` would sync the buffered diffs (A.4 step 5):
        lets a replay find which symbol a bare, symbol-less recorded snapshot belongs to."""
        return self.needs_snapshot and any(d.first_id <= last_update_id <= d.final_id for d in self._buffer)

    def on_diff(self, diff: DepthDiff) -> list[SyncBatch]:
        """One ``depthUpdate``: the batches to deliver now (none while buffering)."""
        last = self.update_id
        if self.state == LIVE and diff.prev_final_id == last:
            self.update_id = diff.final_id
            return [SyncBatch(diff.batch, diff.final_id)]
        if self._held is not None:
            return self._bridge(diff)
        if self.needs_snapshot:
            self._buffer.append(diff)
            return []
        assert last is not None
        if diff.final_id <= last:
            self.stale += 1
            return []
        return self._gap(diff, f"pu={diff.prev_final_id} but the previous u={last}")

    def on_snapshot(self, snap: Snapshot) -> list[SyncBatch]:
        """A REST snapshot: deliver it with the buffered diffs, hold it, or ask again when too old."""
        if not self.needs_snapshot:
            return []  # unsolicited (a late duplicate answer): the book is already synced
        last_id = snap.last_update_id
        buf = self._buffer
        while buf and buf[0].final_id < last_id:
            buf.popleft()
            self.before_snapshot += 1
        if buf and buf[0].first_id > last_id:
            self.refetches += 1
            self.reason = f"snapshot lastUpdateId={last_id} older than buffered U={buf[0].first_id}"
            return []
        self.needs_snapshot = False
        if not buf:
            self._held = snap
            self.reason = f"snapshot lastUpdateId={last_id} waiting for a diff that bridges it"
            return []
        pending = list(buf)
        buf.clear()
        return self._deliver(snap, pending)

    def reset(self, reason: str, exch_ts: int = 0, local_ts: int = 0) -> list[SyncBatch]:
        """Start over (reconnect): a gap + clear batch if the book had content, then wait for a snapshot."""
        out = [SyncBatch(gap_batch(exch_ts, local_ts), None)] if self._delivered else []
        if self._delivered:
            self.resyncs += 1
        self._delivered = False
        self._buffer.clear()
        self._held = None
        self.needs_snapshot = True
        self.update_id = None
        self.state = RESYNCING if out else SYNCING
        self.reason = reason
        return out

    def _bridge(self, diff: DepthDiff) -> list[SyncBatch]:
        snap = self._held
        assert snap is not None
        last_id = snap.last_update_id
        if diff.final_id < last_id:
            self.stale += 1
            return []
        self._held = None
        if diff.first_id <= last_id:
            return self._deliver(snap, [diff])
        self.refetches += 1
        self.needs_snapshot = True
        self.reason = f"snapshot lastUpdateId={last_id} older than the first diff U={diff.first_id}"
        self._buffer.append(diff)
        return []

    def _deliver(self, snap: Snapshot, pending: list[DepthDiff]) -> list[SyncBatch]:
        """The snapshot, the first diff (it bridges the snapshot by construction), then the rest."""
        first = pending[0]
        out = [SyncBatch(snap.batch, snap.last_update_id), SyncBatch(first.batch, first.final_id)]
        self.state = LIVE
        self.reason = ""
        self.update_id = first.final_id
        self._delivered = True
        for diff in pending[1:]:
            out.extend(self.on_diff(diff))
        return out

    def _gap(self, diff: DepthDiff, reason: str) -> list[SyncBatch]:
        self.resyncs += 1
        self.state = RESYNCING
        self.reason = reason
        self.needs_snapshot = True
        self.update_id = None
        self._delivered = False
        self._buffer.clear()
        self._buffer.append(diff)
        return [SyncBatch(gap_batch(diff.exch_ts, diff.local_ts), None)]


# --- the pure processor ------------------------------------------------------------------------------


class BinanceUsdmProcessor:
    """Raw lines in (websocket frames, recorded REST lines), sink calls out; no I/O, no clocks.

    Frames of symbols it was not given, unknown event types, bad JSON and off-grid prices are
    counted in ``malformed`` and logged (first few), never raised.
    """

    def __init__(self, instruments: list[Instrument], sink: FeedSink) -> None:
        self.instruments = {inst.symbol: inst for inst in instruments}
        self.syncs = {inst.symbol: BinanceBookSync(inst) for inst in instruments}
        self.sink = sink
        self.messages = 0
        self.malformed = 0
        self.off_grid: dict[str, int] = {}  # symbol -> book levels left out for a price off the grid
        self._logged = 0
        self._handlers: dict[type, Callable[[Any, Instrument, int], np.ndarray]] = {
            BookTicker: parse_book_ticker,
            Trade: parse_trade,
            AggTrade: parse_agg_trade,
            MarkPrice: parse_mark_price,
        }

    @property
    def resyncs(self) -> int:
        """Sequence gaps and reconnect resets that cleared a book, all symbols."""
        return sum(s.resyncs for s in self.syncs.values())

    def snapshots_wanted(self) -> list[str]:
        """Symbols whose sync waits for a REST depth snapshot."""
        return [sym for sym, s in self.syncs.items() if s.needs_snapshot]

    def on_line(self, raw: bytes | str, local_ns: int) -> None:
        """One websocket frame or recorded REST line."""
        self.messages += 1
        try:
            data = _ENVELOPE.decode(raw).data
        except _DECODE_ERRORS:
            self._on_other(raw, local_ns)
            return
        # Fast paths for the two most frequent messages (bookTicker ~70 %, trades ~23 % of a real
        # capture): the same rows as parse_book_ticker / parse_trade (a test holds them equal) without
        # the generic dispatch. Anything unusual (unknown symbol, off-grid price) takes the general path.
        cls = type(data)
        batch = None
        try:  # the arithmetic only: NaN/inf or an absurd number falls to the general path, which reports it
            if cls is BookTicker:
                inst = self.instruments.get(data.s)
                if inst is not None:
                    tick = inst.tick_size
                    rb = data.b / tick
                    ra = data.a / tick
                    bt = round(rb)
                    at = round(ra)
                    if abs(rb - bt) <= 1e-6 and abs(ra - at) <= 1e-6:
                        ts = (data.T or data.E) * MS
                        u = data.u
                        batch = np.frombuffer(bytearray(_PACK2(
                            _BID_BBO, ts, local_ns, bt * tick, data.B, u, bt, 0.0,
                            _ASK_BBO, ts, local_ns, at * tick, data.A, u, at, 0.0)), dtype=EVENT_DTYPE)  # fmt: skip
            elif cls is Trade:
                inst = self.instruments.get(data.s)
                if inst is not None:
                    tick = inst.tick_size
                    rp = data.p / tick
                    pt = round(rp)
                    if abs(rp - pt) <= 1e-6:
                        batch = np.frombuffer(bytearray(_PACK1(
                            _SELL_TRADE if data.m else _BUY_TRADE, (data.T or data.E) * MS, local_ns, pt * tick,
                            data.q, data.t, pt, 0.0)), dtype=EVENT_DTYPE)  # fmt: skip
        except (ValueError, OverflowError, struct.error):
            batch = None
        if batch is not None:
            self.sink.on_batch(data.s, batch, None)
            return
        self._on_payload(data, local_ns, raw)

    def on_lines(self, raws: Sequence[bytes] | Sequence[str], local_ns: Sequence[int]) -> None:
        """Many frames in arrival order (a capture replayed at full speed): exactly the sink calls that
        ``on_line`` on each would make, in the same order, for a fraction of the cost.

        Runs of combined-stream frames (each starting ``{"stream":`` and ending ``}``) are decoded in one
        msgspec call each (joined into one JSON array, which must hold exactly one object per frame);
        the bookTicker, trade and depth rows of a run are computed as arrays, and every message is still
        delivered as its own batch (a view of the run's rows), each diff through the sync rule as live.
        A run that does not decode whole (a garbage frame) goes frame by frame through ``on_line``, so
        the bad one is counted and skipped like live; a message with anything unusual (off-grid price,
        unknown symbol, NaN) takes the one-message path, which reports it. ``raws`` are all ``bytes`` or all ``str``. A sink with an ``on_batches(items)``
        method (the engine's) gets the batches as ``(symbol, batch, update_id)`` lists, each flushed
        before any status change, so the order of everything it receives is the same as one by one.
        """
        n = len(raws)
        if len(local_ns) != n:
            raise ValueError(f"on_lines: {n} frames but {len(local_ns)} receive times")
        if not n:
            return
        sink = self.sink
        if hasattr(sink, "on_batches"):  # the engine takes a run of messages in one call
            buffer = RunSink(sink)
            self.sink = buffer
            try:
                self._on_lines(raws, local_ns)
            finally:
                self.sink = sink
                buffer.flush()
        else:
            self._on_lines(raws, local_ns)

    def _on_lines(self, raws: Sequence[bytes] | Sequence[str], local_ns: Sequence[int]) -> None:
        n = len(raws)
        text = isinstance(raws[0], str)
        head = '{"stream":' if text else b'{"stream":'
        tail = "}" if text else b"}"
        i = 0
        while i < n:
            j = i
            stop = min(n, i + _BULK_CHUNK)
            while j < stop:
                r = raws[j]
                if not (r.startswith(head) and r.endswith(tail)):  # type: ignore[arg-type]
                    break
                j += 1
            if j - i > 1:
                self._on_run(raws[i:j], local_ns[i:j], text)
            elif j > i:
                self.on_line(raws[i], local_ns[i])
            if j < stop:  # a REST line, an ack or garbage: the one-frame path
                self.on_line(raws[j], local_ns[j])
                j += 1
            i = j

    def _on_run(self, raws: Sequence[bytes] | Sequence[str], local_ns: Sequence[int], text: bool) -> None:
        """A run of combined-stream frames: one decode, vectorised bookTicker/trade rows, in-order delivery."""
        m = len(raws)
        try:
            if text:
                envs = _ENVELOPES.decode("[" + ",".join(raws) + "]")  # type: ignore[arg-type]
            else:
                envs = _ENVELOPES.decode(b"[" + b",".join(raws) + b"]")  # type: ignore[arg-type]
        except _DECODE_ERRORS:
            envs = None
        if envs is None or len(envs) != m:  # a bad frame (or frames that only parse when joined)
            for raw, ts in zip(raws, local_ns, strict=True):
                self.on_line(raw, ts)
            return
        instruments = self.instruments
        # pass 1: which message is which, and the fields of the quotes, trades and depth diffs
        plan: list[int] = []  # per message: 0 general path, 1 bookTicker, 2 trade, 3 depth diff
        q_f: list[float] = []  # bookTicker: bid, bid qty, ask, ask qty, tick size
        q_i: list[int] = []  # bookTicker: exchange ms, u, local ns
        t_f: list[float] = []  # trade: price, qty, tick size
        t_i: list[int] = []  # trade: exchange ms, trade id, local ns, 1 if the buyer is the maker
        d_texts: list[bytes] = []  # depth: each side's levels as flat numbers (see decode_levels)
        d_info: list[tuple] = []  # depth: (bid levels, ask levels, tick size, exchange ns, local ns, u)
        syms: list[str] = []
        for d, ts in zip([env.data for env in envs], local_ns, strict=True):
            cls = type(d)
            if cls is BookTicker:
                inst = instruments.get(d.s)
                if inst is not None:
                    plan.append(1)
                    syms.append(d.s)
                    q_f += (d.b, d.B, d.a, d.A, inst.tick_size)
                    q_i += (d.T or d.E, d.u, ts)
                    continue
            elif cls is Trade:
                inst = instruments.get(d.s)
                if inst is not None:
                    plan.append(2)
                    syms.append(d.s)
                    t_f += (d.p, d.q, inst.tick_size)
                    t_i += (d.T or d.E, d.t, ts, d.m)
                    continue
            elif cls is DepthUpdate:
                inst = instruments.get(d.s)
                if inst is not None:
                    # decode_levels' shape rule per side: "[" count - 1 pairs, i.e. 2 x pairs numbers
                    rb, ra = bytes(d.b), bytes(d.a)
                    xb, xa = rb.translate(None, _BRACKETS_AND_QUOTES), ra.translate(None, _BRACKETS_AND_QUOTES)
                    nb, na = rb.count(b"[") - 1, ra.count(b"[") - 1
                    if ((xb.count(b",") + 1 == 2 * nb) if xb else nb == 0) and (
                            (xa.count(b",") + 1 == 2 * na) if xa else na == 0):
                        plan.append(3)
                        syms.append(d.s)
                        if xb:
                            d_texts.append(xb)
                        if xa:
                            d_texts.append(xa)
                        d_info.append((nb, na, inst.tick_size, (d.T or d.E) * MS, ts, d.u))
                        continue
            plan.append(0)
            syms.append("")
        try:
            quotes = _quote_rows(q_f, q_i) if q_f else None
            trades = _trade_rows(t_f, t_i) if t_f else None
            depth = _depth_rows(d_texts, d_info) if d_info else None
        except OverflowError:  # an id or time beyond int64: let the one-message path judge each frame
            for raw, ts in zip(raws, local_ns, strict=True):
                self.on_line(raw, ts)
            return
        # pass 2: deliver in arrival order (anything unusual takes the one-message path, which reports it);
        # list() of a 2-D array makes every message's row view in C, cheaper than slicing one by one
        self.messages += m
        on_message_run = getattr(self.sink, "on_message_run", None)
        if on_message_run is not None and (quotes or trades) and len(instruments) == 1:
            self._deliver_runs(plan, syms, envs, local_ns, raws, quotes, trades, depth, d_info, on_message_run)
            return
        on_batch = self.sink.on_batch
        q_next = iter(zip(list(quotes[0].reshape(-1, 2)), quotes[1], strict=True)).__next__ if quotes else None
        t_next = iter(zip(list(trades[0].reshape(-1, 1)), trades[1], strict=True)).__next__ if trades else None
        nd = 0
        for kind, sym, env, ts, raw in zip(plan, syms, envs, local_ns, raws, strict=True):
            if kind == 1:
                rows, ok = q_next()  # type: ignore[misc]
                if ok:
                    on_batch(sym, rows, None)
                    continue
            elif kind == 2:
                rows, ok = t_next()  # type: ignore[misc]
                if ok:
                    on_batch(sym, rows, None)
                    continue
            elif kind == 3:
                if depth is not None and depth[1][nd]:
                    d = env.data
                    info = d_info[nd]
                    rows = depth[0][depth[2][nd] : depth[2][nd + 1]]
                    nd += 1
                    self._on_diff(sym, DepthDiff(d.U, d.u, d.pu, info[3], info[4], rows), raw)
                    continue
                nd += 1
            self._on_payload(env.data, ts, raw)

    def _deliver_runs(self, plan: list[int], syms: list[str], envs: Any, local_ns: Sequence[int],
                      raws: Sequence[bytes] | Sequence[str], quotes: tuple | None, trades: tuple | None,
                      depth: tuple | None, d_info: list[tuple], on_message_run: Callable) -> None:
        """Pass 2 for a sink that takes message runs (one symbol): each stretch of usable bookTicker and
        trade messages goes out as one ``on_message_run(symbol, rows, ends)`` (message k is
        ``rows[ends[k-1]:ends[k]]``, the rows ``on_batch`` would get one by one); the rest as usual."""
        kind = np.array(plan, dtype=np.int8)
        is_q, is_t = kind == 1, kind == 2
        good = np.zeros(len(plan), dtype=bool)  # a usable quote or trade: part of a run
        if quotes:
            good[is_q] = quotes[1]
        if trades:
            good[is_t] = trades[1]
        # rows of every usable message in arrival order, gathered in one go: quote j is rows 2j, 2j+1 of
        # rows_all, trade j is row t_base + j (rows_all: the quote rows, then the trade rows)
        parts = [x[0].view(np.int64).reshape(-1, 8) for x in (quotes, trades) if x is not None]
        rows_all = parts[0] if len(parts) == 1 else np.concatenate(parts)
        t_base = len(quotes[0]) if quotes else 0
        first = np.where(is_q, 2 * (np.cumsum(is_q) - 1), t_base + np.cumsum(is_t) - 1)[good]
        size = np.where(is_q, 2, 1)[good]
        ends = np.cumsum(size)
        rows = rows_all[np.repeat(first - (ends - size), size) + np.arange(int(ends[-1]) if len(ends) else 0)]
        rows = rows.view(EVENT_DTYPE).reshape(-1)
        flags = np.zeros(len(plan) + 2, dtype=np.int8)
        flags[1:-1] = good
        edges = np.flatnonzero(np.diff(flags)).tolist()  # starts and stops of the runs, alternating
        d_index = (np.cumsum(kind == 3) - 1).tolist()  # each message's place among the depth diffs
        g_before = 0  # usable messages before the current run
        i = 0
        for a, b in (*zip(edges[0::2], edges[1::2], strict=True), (len(plan), len(plan))):
            for k in range(i, a):  # the messages between two runs, one by one
                env = envs[k]
                if plan[k] == 3:
                    nd = d_index[k]
                    if depth is not None and depth[1][nd]:
                        d = env.data
                        info = d_info[nd]
                        diff = DepthDiff(d.U, d.u, d.pu, info[3], info[4], depth[0][depth[2][nd] : depth[2][nd + 1]])
                        self._on_diff(syms[k], diff, raws[k])
                        continue
                self._on_payload(env.data, local_ns[k], raws[k])
            if b > a:
                g_after = g_before + b - a
                r0 = int(ends[g_before - 1]) if g_before else 0
                on_message_run(syms[a], rows[r0:int(ends[g_after - 1])], ends[g_before:g_after] - r0)
                g_before = g_after
            i = b

    def on_rest(self, path: str, body: str | bytes, local_ns: int) -> None:
        """A REST response for ``path`` (``/fapi/v1/depth?symbol=..`` or ``/fapi/v1/openInterest?..``)."""
        self.messages += 1
        self._on_rest(path, body, local_ns)

    def reset(self, symbol: str, reason: str, local_ns: int, report: bool = True) -> None:
        """Reconnect: clear ``symbol``'s book (gap marked at ``local_ns``, which also stands in for the
        exchange time the venue did not send) and wait for a new snapshot."""
        sync = self.syncs[symbol]
        self._deliver(symbol, sync, sync.reset(reason, local_ns, local_ns))
        if report:
            self._status(symbol, sync, sync.state)

    def _on_payload(self, data: Any, local_ns: int, raw: bytes | str) -> None:
        symbol = data.o.s if type(data) is ForceOrder else data.s
        inst = self.instruments.get(symbol)
        if inst is None:
            self._bad(raw, f"symbol {symbol} not subscribed")
            return
        try:
            if type(data) is DepthUpdate:
                diff = parse_depth_update(data, inst, local_ns)
                if diff.off_grid:
                    self._off_grid(symbol, diff.off_grid)
                self._sync_diff(symbol, diff)
                return
            handler = self._handlers.get(type(data), parse_force_order)
            batch = handler(data, inst, local_ns)
        except (*_DECODE_ERRORS, ValueError, OverflowError, struct.error) as exc:
            self._bad(raw, str(exc))
            return
        self.sink.on_batch(symbol, batch, None)

    def _sync_diff(self, symbol: str, diff: DepthDiff) -> None:
        """A parsed diff through the symbol's sync rule, delivered, state changes reported."""
        sync = self.syncs[symbol]
        before = sync.state
        self._deliver(symbol, sync, sync.on_diff(diff))
        if sync.state != before:
            self._status(symbol, sync, before)

    def _on_diff(self, symbol: str, diff: DepthDiff, raw: bytes | str) -> None:
        """A diff parsed in bulk: what ``_on_payload`` does after parsing (same error handling)."""
        try:
            self._sync_diff(symbol, diff)
        except (*_DECODE_ERRORS, ValueError, OverflowError, struct.error) as exc:
            self._bad(raw, str(exc))

    def _on_other(self, raw: bytes | str, local_ns: int) -> None:
        rest = parse_rest_line(raw)
        if rest is not None:
            self._on_rest(rest[0], rest[1], local_ns)
            return
        try:
            obj = _ANY.decode(raw)
        except msgspec.DecodeError as exc:
            self._bad(raw, f"bad JSON: {exc}")
            return
        if not isinstance(obj, dict):
            self._bad(raw, "not a JSON object")
        elif "lastUpdateId" in obj and len(self.syncs) == 1:
            self._on_snapshot(next(iter(self.syncs)), raw, local_ns)
        elif "result" in obj and "id" in obj:
            pass  # a SUBSCRIBE/UNSUBSCRIBE acknowledgement
        elif "e" in obj:
            try:
                data = msgspec.convert(obj, Payload, strict=False)
            except msgspec.ValidationError as exc:
                self._bad(raw, f"unexpected event: {exc}")
                return
            self._on_payload(data, local_ns, raw)
        else:
            self._bad(raw, "unexpected message")

    def _on_rest(self, path: str, body: str | bytes, local_ns: int) -> None:
        parts = urlsplit(path)
        symbol = parse_qs(parts.query).get("symbol", [""])[0]
        inst = self.instruments.get(symbol)
        try:
            if parts.path.endswith("/depth") and inst is not None:
                self._on_snapshot(symbol, body, local_ns)
            elif parts.path.endswith("/openInterest") and inst is not None:
                self.sink.on_batch(symbol, parse_open_interest(body, inst, local_ns), None)
            elif parts.path.endswith("/exchangeInfo"):
                pass  # instruments are resolved before any line is processed
            else:
                self._bad(path, "unexpected REST line")
        except (*_DECODE_ERRORS, ValueError) as exc:
            self._bad(body, f"bad REST body for {path}: {exc}")

    def _on_snapshot(self, symbol: str, body: str | bytes, local_ns: int) -> None:
        sync = self.syncs[symbol]
        try:
            snap = parse_depth_snapshot(body, sync.instrument, local_ns)
        except (*_DECODE_ERRORS, ValueError) as exc:
            self._bad(body, f"bad depth snapshot: {exc}")
            return
        if snap.off_grid:
            self._off_grid(symbol, snap.off_grid)
        before = sync.state
        self._deliver(symbol, sync, sync.on_snapshot(snap))
        if sync.state != before:
            self._status(symbol, sync, before)

    def _deliver(self, symbol: str, sync: BinanceBookSync, out: list[SyncBatch]) -> None:
        on_batch = self.sink.on_batch
        for batch, update_id in out:
            on_batch(symbol, batch, update_id)

    def _status(self, symbol: str, sync: BinanceBookSync, before: str) -> None:
        self.sink.on_status(symbol, sync.state, sync.reason)

    def _off_grid(self, symbol: str, n: int) -> None:
        if symbol not in self.off_grid:
            log.warning("%s: %s has book levels off its tick grid %g (left out, counted)", VENUE, symbol,
                        self.instruments[symbol].tick_size)  # fmt: skip
        self.off_grid[symbol] = self.off_grid.get(symbol, 0) + n

    def _bad(self, raw: bytes | str, why: str) -> None:
        self.malformed += 1
        if self._logged < 20:  # a flood of bad frames must not flood the log
            self._logged += 1
            text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")
            log.warning("%s: skipped a frame (%s): %.200s", VENUE, why, text)


def _depth_rows(texts: list[bytes], info: list[tuple]) -> tuple[np.ndarray, list[bool], list[int]] | None:
    """The depth rows of many diffs at once -> (rows, usable flag per diff, row offsets), or None when
    the levels do not decode (each diff then takes the one-message path, which reports the bad one).

    ``texts``: each non-empty side's levels as flat numbers (``decode_levels``' form), bids then asks per
    diff; ``info``: per diff (bid levels, ask levels, tick size, exchange ns, local ns, u). A usable
    diff gets exactly the rows ``parse_depth_update`` makes. A diff with anything unusual (a price off
    the grid, a negative, non-finite or absurd number) is flagged unusable: the one-message path then
    leaves out / counts / rejects it by its own rules.
    """
    try:
        flat = _FLAT_FLOATS.decode(b"[" + b",".join(texts) + b"]")
    except msgspec.DecodeError:
        return None
    lv = np.array(flat, dtype=np.float64).reshape(-1, 2)
    counts = np.array([(nb, na) for nb, na, *_ in info], dtype=np.int64).reshape(-1)  # bid, ask, bid, ...
    if lv.shape[0] != int(counts.sum()):
        return None
    per_diff = counts[0::2] + counts[1::2]
    fields = np.array([(tick, exch, local, u) for _, _, tick, exch, local, u in info], dtype=object)
    tick = np.repeat(fields[:, 0].astype(np.float64), per_diff)
    px = lv[:, 0]
    qty = lv[:, 1]
    raw = px / tick
    ticks = np.rint(raw)
    ok = (np.abs(px) < 1e15) & (qty >= 0) & (qty < 1e15) & (np.abs(raw - ticks) <= 1e-6)
    n = lv.shape[0]
    out = np.empty((n, 8), dtype=np.int64)
    fo = out.view(np.float64)
    out[:, 0] = np.repeat(np.tile(np.array([_DEPTH_BID, _DEPTH_ASK], dtype=np.int64), len(info)), counts)
    out[:, 1] = np.repeat(fields[:, 1].astype(np.int64), per_diff)
    out[:, 2] = np.repeat(fields[:, 2].astype(np.int64), per_diff)
    np.multiply(ticks, tick, out=fo[:, 3])
    fo[:, 4] = qty
    out[:, 5] = np.repeat(fields[:, 3].astype(np.int64), per_diff)
    out[:, 6] = np.where(ok, ticks, 0.0)  # rows of unusable diffs are never delivered
    out[:, 7] = 0
    offsets = np.zeros(len(info) + 1, dtype=np.int64)
    np.cumsum(per_diff, out=offsets[1:])
    bad = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(~ok, out=bad[1:])
    usable = (bad[offsets[1:]] - bad[offsets[:-1]]) == 0
    return out.view(EVENT_DTYPE).reshape(n), usable.tolist(), offsets.tolist()


def _quote_rows(f: list[float], i: list[int]) -> tuple[np.ndarray, list[bool]]:
    """bookTicker fields of many messages -> (two ``DEPTH_BBO_EVENT`` rows each, on-grid flag each).

    The rows of message k are ``[2k, 2k + 2)``; the same values as ``parse_book_ticker`` (ticks by
    round-half-even, px = ticks x tick size). A message with a price off its tick grid gets rows that
    must not be used (flag False): it goes through the one-message path, which reports it.
    """
    fv = np.array(f, dtype=np.float64).reshape(-1, 5)
    iv = np.array(i, dtype=np.int64).reshape(-1, 3)
    k = fv.shape[0]
    tick = fv[:, 4]
    rb = fv[:, 0] / tick
    ra = fv[:, 2] / tick
    bt = np.rint(rb)
    at = np.rint(ra)
    ok = (np.abs(rb - bt) <= 1e-6) & (np.abs(ra - at) <= 1e-6) & (np.abs(bt) < 2.0**62) & (np.abs(at) < 2.0**62)
    out = np.empty((k, 2, 8), dtype=np.int64)
    fo = out.view(np.float64)
    ts = iv[:, 0] * MS
    for side, ticks, qty, ev in ((0, bt, fv[:, 1], _BID_BBO), (1, at, fv[:, 3], _ASK_BBO)):
        out[:, side, 0] = ev
        out[:, side, 1] = ts
        out[:, side, 2] = iv[:, 2]
        np.multiply(ticks, tick, out=fo[:, side, 3])
        fo[:, side, 4] = qty
        out[:, side, 5] = iv[:, 1]
        out[:, side, 6] = np.where(ok, ticks, 0.0)  # off-grid rows are never delivered
        out[:, side, 7] = 0
    return out.view(EVENT_DTYPE).reshape(2 * k), ok.tolist()


def _trade_rows(f: list[float], i: list[int]) -> tuple[np.ndarray, list[bool]]:
    """trade fields of many messages -> (one ``TRADE_EVENT`` row each, on-grid flag each); the same
    values as ``parse_trade`` (``m`` true = aggressive sell)."""
    fv = np.array(f, dtype=np.float64).reshape(-1, 3)
    iv = np.array(i, dtype=np.int64).reshape(-1, 4)
    k = fv.shape[0]
    tick = fv[:, 2]
    rp = fv[:, 0] / tick
    pt = np.rint(rp)
    ok = (np.abs(rp - pt) <= 1e-6) & (np.abs(pt) < 2.0**62)
    out = np.empty((k, 8), dtype=np.int64)
    fo = out.view(np.float64)
    out[:, 0] = np.where(iv[:, 3] != 0, _SELL_TRADE, _BUY_TRADE)
    out[:, 1] = iv[:, 0] * MS
    out[:, 2] = iv[:, 2]
    np.multiply(pt, tick, out=fo[:, 3])
    fo[:, 4] = fv[:, 1]
    out[:, 5] = iv[:, 1]
    out[:, 6] = np.where(ok, pt, 0.0)
    out[:, 7] = 0
    return out.view(EVENT_DTYPE).reshape(k), ok.tolist()


# --- the I/O feed ------------------------------------------------------------------------------------


class BinanceUsdmFeed:
    """Live Binance USDⓈ-M adapter: the ``Feed`` protocol over two websockets plus REST polling."""

    venue = VENUE

    def __init__(
        self,
        symbols: list[str] | tuple[str, ...],
        rest: str,
        ws_public: str,
        ws_market: str,
        *,
        depth_stream: str = "depth@100ms",
        trade_stream: str = "aggTrade",
        snapshot_limit: int = 1000,
        open_interest_poll_s: float = 10.0,
        max_connection_age_s: float = 23.5 * 3600,
        backoff: Backoff | None = None,
        http_timeout_s: float = 10.0,
        ping_interval_s: float | None = 20.0,
    ) -> None:
        if not symbols:
            raise FeedError(f"{VENUE}: no symbols given")
        self.symbols = tuple(s.upper() for s in symbols)
        self.rest = rest.rstrip("/")
        self.ws_public = ws_public.rstrip("/")
        self.ws_market = ws_market.rstrip("/")
        self.depth_stream = depth_stream
        self.trade_stream = trade_stream
        self.snapshot_limit = snapshot_limit
        self.open_interest_poll_s = open_interest_poll_s
        self.max_connection_age_s = max_connection_age_s
        self.http_timeout_s = http_timeout_s
        self.ping_interval_s = ping_interval_s
        self._backoff_template = backoff or Backoff()
        self._reconnects = 0
        self._proc: BinanceUsdmProcessor | None = None
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}

    def public_url(self) -> str:
        """The ``/public`` combined-stream URL: depth diffs and bookTicker of every symbol."""
        names = [f"{s.lower()}@{kind}" for s in self.symbols for kind in (self.depth_stream, "bookTicker")]
        return f"{self.ws_public}/stream?streams=" + "/".join(names)

    def market_url(self) -> str:
        """The ``/market`` combined-stream URL: trades, mark price (1 s) and liquidations."""
        kinds = (self.trade_stream, "markPrice@1s", "forceOrder")
        names = [f"{s.lower()}@{kind}" for s in self.symbols for kind in kinds]
        return f"{self.ws_market}/stream?streams=" + "/".join(names)

    def counters(self) -> FeedCounters:
        """Totals so far."""
        p = self._proc
        if p is None:
            return FeedCounters(reconnects=self._reconnects)
        return FeedCounters(p.messages, p.resyncs, self._reconnects, p.malformed)

    async def run(self, sink: FeedSink) -> None:
        """Resolve instruments, then keep both connections and the OI poll going until cancelled."""
        for sym in self.symbols:
            sink.on_status(sym, CONNECTING, "")
        try:
            instruments = await self._instruments(sink)
        except FeedError as exc:
            for sym in self.symbols:
                sink.on_status(sym, STOPPED, str(exc))
            raise
        for inst in instruments:
            sink.on_instrument(inst)
        self._proc = BinanceUsdmProcessor(instruments, sink)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._public_loop(sink))
                tg.create_task(self._market_loop(sink))
                if self.open_interest_poll_s > 0:
                    tg.create_task(self._open_interest_loop(sink))
        finally:
            for task in self._snapshot_tasks.values():
                task.cancel()
            for sym in self.symbols:
                sink.on_status(sym, STOPPED, "")

    async def _instruments(self, sink: FeedSink) -> list[Instrument]:
        path = "/fapi/v1/exchangeInfo"
        try:
            body = await http_get(self.rest + path, self.http_timeout_s)
        except HttpError as exc:
            raise FeedError(f"{VENUE}: cannot load exchangeInfo: {exc}") from None
        sink.on_raw(time.time_ns(), rest_line(path, body))
        return [parse_exchange_info(body, sym) for sym in self.symbols]

    async def _public_loop(self, sink: FeedSink) -> None:
        proc = self._proc
        assert proc is not None

        def on_open() -> None:
            now = time.time_ns()
            for sym in self.symbols:
                proc.reset(sym, "connected", now)  # -> syncing
            self._request_snapshots(sink)  # also for a quiet symbol that sends nothing for a while

        def on_close(reason: str) -> None:
            self._cancel_snapshots()
            now = time.time_ns()
            for sym in self.symbols:
                proc.reset(sym, reason, now, report=False)
                sink.on_status(sym, DISCONNECTED, reason)

        await self._connection_loop(self.public_url(), sink, on_open, on_close, lambda: self._request_snapshots(sink))

    async def _market_loop(self, sink: FeedSink) -> None:
        def on_close(reason: str) -> None:
            log.warning("%s: market connection lost: %s", VENUE, reason)
            now = time.time_ns()
            for sym in self.symbols:  # trades were lost while away: mark it for the tape/charts
                sink.on_batch(sym, gap_marker(now, now), None)

        await self._connection_loop(self.market_url(), sink, lambda: None, on_close, None)

    async def _connection_loop(
        self,
        url: str,
        sink: FeedSink,
        on_open: Callable[[], None],
        on_close: Callable[[str], None],
        after_frame: Callable[[], None] | None,
    ) -> None:
        """Connect, pump frames into the processor, reconnect with backoff (and before the 24 h cut)."""
        proc = self._proc
        assert proc is not None
        backoff = Backoff(self._backoff_template.base_s, self._backoff_template.cap_s)
        attempts = 0
        while True:
            if attempts:
                self._reconnects += 1
                for sym in self.symbols:
                    sink.on_status(sym, CONNECTING, "reconnecting")
            attempts += 1
            connected = False
            try:
                async with connect(url, max_size=None, compression=None, ping_interval=self.ping_interval_s,
                                   open_timeout=self.http_timeout_s,
                                   close_timeout=CLOSE_TIMEOUT_S) as ws:  # fmt: skip
                    connected = True
                    on_open()
                    opened = time.monotonic()
                    async with asyncio.timeout(self.max_connection_age_s):
                        try:
                            await self._pump(ws, sink, after_frame)
                        finally:
                            if attempts > 1 and time.monotonic() - opened > 5.0:
                                backoff.reset()  # the connection held: next drop starts from base delay
                reason = "connection closed by the server"
            except TimeoutError:
                reason = "planned reconnect before the 24 h cut" if connected else "connect timed out"
            except (OSError, WebSocketException) as exc:
                reason = f"{exc.__class__.__name__}: {exc}"
            on_close(reason)
            if connected and reason.startswith("planned"):
                backoff.reset()
                continue
            await asyncio.sleep(backoff.next_delay())

    async def _pump(self, ws: Any, sink: FeedSink, after_frame: Callable[[], None] | None) -> None:
        """Frames into the processor until the connection ends: a lone frame at once, a backlog (frames
        already received, a burst) as runs through the bulk ``on_lines`` (the same sink calls, cheaper).

        A run is gathered only while the next frame is already queued, so the receive never waits and
        nothing else on the loop runs in between: the order of everything is the one frame by frame.
        Whatever was recorded (``on_raw``) is processed, even when the connection ends or is cancelled.
        """
        proc = self._proc
        assert proc is not None
        raws: list[str] = []
        stamps: list[int] = []
        try:
            async for raw in ws:
                local_ns = time.time_ns()
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                sink.on_raw(local_ns, text)
                raws.append(text)
                stamps.append(local_ns)
                if len(raws) < RUN_MAX and message_queued(ws):
                    continue
                run, times, raws, stamps = raws, stamps, [], []  # handed over: never processed twice
                self._process(run, times)
                if after_frame is not None:
                    after_frame()
        finally:
            if raws:
                self._process(raws, stamps)

    def _process(self, raws: list[str], stamps: list[int]) -> None:
        proc = self._proc
        assert proc is not None
        if len(raws) == 1:
            proc.on_line(raws[0], stamps[0])
        else:
            proc.on_lines(raws, stamps)

    def _request_snapshots(self, sink: FeedSink) -> None:
        proc = self._proc
        assert proc is not None
        for sym in proc.snapshots_wanted():
            task = self._snapshot_tasks.get(sym)
            if task is None or task.done():
                self._snapshot_tasks[sym] = asyncio.create_task(self._fetch_snapshot(sym, sink))

    async def _fetch_snapshot(self, symbol: str, sink: FeedSink) -> None:
        """Fetch REST snapshots for ``symbol`` until its sync takes one; paced, so a venue answering
        with errors or stale snapshots is never hammered (a 1000-level snapshot weighs 20)."""
        proc = self._proc
        assert proc is not None
        path = f"/fapi/v1/depth?symbol={symbol}&limit={self.snapshot_limit}"
        pace = Backoff(0.25, 10.0)
        await asyncio.sleep(0.2)  # let a diff or two (100 ms cadence) arrive first, as A.4 advises
        while proc.syncs[symbol].needs_snapshot:
            try:
                body = await http_get(self.rest + path, self.http_timeout_s)
            except HttpError as exc:
                log.warning("%s: depth snapshot for %s failed: %s", VENUE, symbol, exc)
                if exc.status in (418, 429):  # rate limited or banned: back off hard
                    pace.attempts = max(pace.attempts, 6)
                await asyncio.sleep(pace.next_delay())
                continue
            local_ns = time.time_ns()
            sink.on_raw(local_ns, rest_line(path, body))
            proc.on_rest(path, body, local_ns)
            if proc.syncs[symbol].needs_snapshot:
                # older than the buffered diffs (the venue's REST cache lags) or unusable: wait, retry
                await asyncio.sleep(pace.next_delay())

    def _cancel_snapshots(self) -> None:
        for task in self._snapshot_tasks.values():
            task.cancel()
        self._snapshot_tasks.clear()

    async def _open_interest_loop(self, sink: FeedSink) -> None:
        proc = self._proc
        assert proc is not None
        while True:
            for sym in self.symbols:
                path = f"/fapi/v1/openInterest?symbol={sym}"
                try:
                    body = await http_get(self.rest + path, self.http_timeout_s)
                except HttpError as exc:
                    log.warning("%s: open interest for %s failed: %s", VENUE, sym, exc)
                    continue
                local_ns = time.time_ns()
                sink.on_raw(local_ns, rest_line(path, body))
                proc.on_rest(path, body, local_ns)
            await asyncio.sleep(self.open_interest_poll_s)
