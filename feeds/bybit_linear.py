"""Bybit v5 public linear: pure parsers, the snapshot/delta ``u`` sync, a pure processor, the I/O feed.

Same layers as :mod:`feeds.binance_usdm`. One websocket carries every topic of every symbol
(``orderbook.{depth}``, ``publicTrade``, ``tickers``, ``allLiquidation``); tickers carry mark, index,
funding and open interest, so nothing is polled. Recorded REST lines use
:func:`feeds.common.rest_line` (``{"rest":"/v5/market/instruments-info?...","data":<body>}``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

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
from feeds.base import CONNECTING, DISCONNECTED, LIVE, RESYNCING, STOPPED, SYNCING, FeedCounters, FeedSink
from feeds.common import (
    CLOSE_TIMEOUT_S,
    MS,
    RUN_MAX,
    FeedError,
    RunSink,
    SyncBatch,
    decode_levels,
    gap_batch,
    levels_to_rows,
    message_queued,
    parse_rest_line,
    rest_line,
    rows,
    snapshot_batch,
    tick_of,
)
from feeds.http import HttpError, http_get

VENUE = "bybit-linear"
BOOK_DEPTHS = (1, 50, 200, 1000)  # 500 was removed in 2025 (protocols.md B.2)
log = logging.getLogger(__name__)

_BID_BBO = BOTH_CLOCKS | BUY_EVENT | DEPTH_BBO_EVENT
_ASK_BBO = BOTH_CLOCKS | SELL_EVENT | DEPTH_BBO_EVENT
_MARK = BOTH_CLOCKS | MARK_PRICE_EVENT
_FUNDING = BOTH_CLOCKS | FUNDING_EVENT
_OPEN_INTEREST = BOTH_CLOCKS | OPEN_INTEREST_EVENT
_LONG_LIQUIDATED = BOTH_CLOCKS | SELL_EVENT | LIQUIDATION_EVENT
_SHORT_LIQUIDATED = BOTH_CLOCKS | BUY_EVENT | LIQUIDATION_EVENT

Level = tuple[float, float]


class Frame(msgspec.Struct):
    """Any frame: a topic message (``data`` decoded per topic later) or an op reply (ack, pong)."""

    topic: str = ""
    type: str = ""
    ts: int = 0
    cts: int = 0
    data: msgspec.Raw = msgspec.Raw(b"null")
    op: str = ""
    success: bool | None = None
    ret_msg: str = ""


class BookData(msgspec.Struct):
    """``data`` of ``orderbook.{depth}.{symbol}``."""

    s: str
    b: msgspec.Raw  # decoded by feeds.common.decode_levels
    a: msgspec.Raw
    u: int
    seq: int = 0


class TradeItem(msgspec.Struct):
    """One item of ``publicTrade`` ``data``."""

    T: int
    s: str
    S: str
    v: float
    p: float
    i: str = ""
    seq: int = 0


class LiquidationItem(msgspec.Struct):
    """One item of ``allLiquidation`` ``data``."""

    T: int
    s: str
    S: str
    v: float
    p: float


_FRAME = msgspec.json.Decoder(Frame)
_BOOK = msgspec.json.Decoder(BookData, strict=False)
_TRADES = msgspec.json.Decoder(list[TradeItem], strict=False)
_LIQUIDATIONS = msgspec.json.Decoder(list[LiquidationItem] | LiquidationItem, strict=False)
_TICKER = msgspec.json.Decoder(dict[str, Any])
_ANY = msgspec.json.Decoder()
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)


def _frame(raw: bytes | str | Frame) -> Frame:
    return raw if isinstance(raw, Frame) else _FRAME.decode(raw)


def topic_symbol(topic: str) -> str:
    """``orderbook.200.BTCUSDT`` / ``tickers.BTCUSDT`` -> ``BTCUSDT``."""
    return topic.rsplit(".", 1)[-1]


# --- pure parsers -------------------------------------------------------------------------------------


class BookUpdate(NamedTuple):
    """A parsed orderbook message: snapshot or delta, its ``u``/``seq`` and its rows."""

    is_snapshot: bool
    update_id: int
    seq: int
    exch_ts: int
    local_ts: int
    batch: np.ndarray
    off_grid: int = 0  # levels left out: price off the tick grid


def parse_orderbook(raw: bytes | str | Frame, inst: Instrument, local_ns: int) -> BookUpdate:
    """``orderbook.{1,50,200,1000}`` -> :class:`BookUpdate`; a snapshot is ``DEPTH_CLEAR_EVENT`` +
    ``DEPTH_SNAPSHOT_EVENT`` rows, a delta ``DEPTH_EVENT`` rows (size "0" deletes); exch_ts = ``cts``.

    Sample: ``{"topic":"orderbook.200.BTCUSDT","type":"delta","ts":1786310818328,"data":{"s":"BTCUSDT",
    "b":[["65103.90","0.094"],["65092.40","0"]],"a":[["65116.80","0"],["65117.00","0.002"]],"u":15076955,
    "seq":753843918854},"cts":1786310818327}``
    """
    f = _frame(raw)
    d = _BOOK.decode(f.data)
    exch_ts = (f.cts or f.ts) * MS
    bids, asks = decode_levels(d.b), decode_levels(d.a)
    if f.type == "snapshot":
        batch, off_grid = snapshot_batch(bids, asks, inst, exch_ts, local_ns, d.u)
    elif f.type == "delta":
        batch, off_grid = levels_to_rows(bids, asks, inst, exch_ts, local_ns, d.u, DEPTH_EVENT)
    else:
        raise ValueError(f"orderbook type {f.type!r}")
    return BookUpdate(f.type == "snapshot", d.u, d.seq, exch_ts, local_ns, batch, off_grid)


def _trade_id(text: str) -> int:
    """The first 64 bits of Bybit's UUID trade id (enough to tell trades apart), 0 if not hex."""
    try:
        return int(text.replace("-", "")[:16], 16)
    except ValueError:
        return 0


def parse_public_trade(raw: bytes | str | Frame, inst: Instrument, local_ns: int) -> np.ndarray:
    """``publicTrade`` -> ``TRADE_EVENT`` rows; ``S`` is the taker side (Buy = aggressive buy).

    Sample: ``{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1786310819681,"data":[{"T":1786310819680,
    "s":"BTCUSDT","S":"Sell","v":"0.004","p":"65114.20","L":"MinusTick",
    "i":"a9188a0a-82bc-50de-be60-03eedbe3cdd7","BT":false,"RPI":false,"seq":753843954913}]}``
    """
    f = _frame(raw)
    items = _TRADES.decode(f.data)
    out = np.empty(len(items), dtype=EVENT_DTYPE)
    tick_size = inst.tick_size
    for k, t in enumerate(items):
        if t.S not in ("Buy", "Sell"):
            raise ValueError(f"trade side {t.S!r}")
        tick = tick_of(inst, t.p)
        side = BUY_EVENT if t.S == "Buy" else SELL_EVENT
        out[k] = (BOTH_CLOCKS | side | TRADE_EVENT, t.T * MS, local_ns, tick * tick_size, t.v,
                  _trade_id(t.i), tick, 0.0)  # fmt: skip
    return out


def parse_liquidation(raw: bytes | str | Frame, inst: Instrument, local_ns: int) -> np.ndarray:
    """``allLiquidation`` (``data`` an object or an array) -> ``LIQUIDATION_EVENT`` rows; side flag =
    the liquidation order's side: ``S`` = Buy (a long was liquidated) -> ``SELL_EVENT``.

    Sample: ``{"topic":"allLiquidation.ROSEUSDT","type":"snapshot","ts":1739502303204,
    "data":[{"T":1739502302929,"s":"ROSEUSDT","S":"Sell","v":"20000","p":"0.04499"}]}``
    """
    f = _frame(raw)
    decoded = _LIQUIDATIONS.decode(f.data)
    items = decoded if isinstance(decoded, list) else [decoded]
    out = np.empty(len(items), dtype=EVENT_DTYPE)
    for k, q in enumerate(items):
        if q.S not in ("Buy", "Sell"):
            raise ValueError(f"liquidation side {q.S!r}")
        ev = _LONG_LIQUIDATED if q.S == "Buy" else _SHORT_LIQUIDATED
        out[k] = (ev, q.T * MS, local_ns, q.p, q.v, 0, round(q.p / inst.tick_size), 0.0)
    return out


class TickerState:
    """Bybit ``tickers``: snapshot then field-wise deltas merged into it (absent field = unchanged)."""

    def __init__(self, inst: Instrument) -> None:
        self.instrument = inst
        self.fields: dict[str, Any] = {}

    def _num(self, name: str) -> float | None:
        value = self.fields.get(name)
        if value in (None, ""):
            return None
        return float(value)

    def update(self, raw: bytes | str | Frame, local_ns: int) -> np.ndarray:
        """Merge one message; rows for what it touched: ``MARK_PRICE_EVENT`` (px mark, fval index),
        ``FUNDING_EVENT`` (fval rate, ival next funding ns), ``OPEN_INTEREST_EVENT`` (qty open interest,
        px its value) and two ``DEPTH_BBO_EVENT`` rows (bid1/ask1) — merged values, not just the delta.

        Sample: ``{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","bid1Price":"65114.20",
        "bid1Size":"6.054","ask1Price":"65114.30","ask1Size":"10.486"},"cs":753843907770,"ts":1786310817883}``
        """
        f = _frame(raw)
        delta = _TICKER.decode(f.data)
        if f.type == "snapshot":
            self.fields = dict(delta)
        else:
            self.fields.update(delta)
        ts = f.ts * MS
        out: list[float] = []
        mark = self._num("markPrice")
        if mark is not None and ("markPrice" in delta or "indexPrice" in delta):
            out += (_MARK, ts, local_ns, mark, 0.0, 0, 0, self._num("indexPrice") or 0.0)
        rate = self._num("fundingRate")
        if rate is not None and ("fundingRate" in delta or "nextFundingTime" in delta):
            out += (_FUNDING, ts, local_ns, mark or 0.0, 0.0, 0, int(self._num("nextFundingTime") or 0) * MS, rate)
        oi = self._num("openInterest")
        if oi is not None and "openInterest" in delta:
            out += (_OPEN_INTEREST, ts, local_ns, self._num("openInterestValue") or 0.0, oi, 0, 0, 0.0)
        if any(k in delta for k in ("bid1Price", "bid1Size", "ask1Price", "ask1Size")):
            bid, ask = self._num("bid1Price"), self._num("ask1Price")
            if bid is not None and ask is not None:
                inst = self.instrument
                bt, at = tick_of(inst, bid), tick_of(inst, ask)
                out += (_BID_BBO, ts, local_ns, bt * inst.tick_size, self._num("bid1Size") or 0.0, 0, bt, 0.0,
                        _ASK_BBO, ts, local_ns, at * inst.tick_size, self._num("ask1Size") or 0.0, 0, at, 0.0)  # fmt: skip
        if not out:
            return np.empty(0, dtype=EVENT_DTYPE)
        return rows(*out)


def parse_instruments_info(raw: bytes | str, symbol: str) -> Instrument:
    """REST ``/v5/market/instruments-info?category=linear`` -> the :class:`Instrument` of ``symbol``
    (``priceFilter.tickSize``, ``lotSizeFilter.qtyStep``); :class:`FeedError` when not listed.

    Sample (trimmed): ``{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[{"symbol":"BTCUSDT",
    "quoteCoin":"USDT","priceFilter":{"tickSize":"0.10"},"lotSizeFilter":{"qtyStep":"0.001"}}]}}``
    """
    try:
        info = _ANY.decode(raw)
        if info.get("retCode", 0) != 0:
            raise FeedError(f"{VENUE}: instruments-info for {symbol} failed: {info.get('retMsg', '')}")
        entries = info["result"]["list"]
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
        raise FeedError(f"{VENUE}: instruments-info is not the expected JSON") from None
    for entry in entries:
        if entry.get("symbol") != symbol:
            continue
        status = entry.get("status", "Trading")
        if status not in ("Trading", "PreLaunch"):  # PreLaunch: listed, the feed starts with trading
            raise FeedError(f"{VENUE}: {symbol} is not trading (status {status})")
        try:
            tick = float(entry["priceFilter"]["tickSize"])
            lot = float(entry.get("lotSizeFilter", {}).get("qtyStep", 0.0))
            return Instrument(VENUE, symbol, tick, lot, 1.0, entry.get("quoteCoin", "USDT"))
        except (KeyError, ValueError, TypeError) as exc:
            raise FeedError(f"{VENUE}: {symbol} has no usable priceFilter/lotSizeFilter ({exc})") from None
    raise FeedError(f"{VENUE}: unknown symbol {symbol} (not listed in instruments-info, category linear)")


# Dispatch table: topic prefix -> parser.
TOPIC_PARSERS: dict[str, Callable[..., Any]] = {
    "orderbook": parse_orderbook,
    "publicTrade": parse_public_trade,
    "allLiquidation": parse_liquidation,
    "tickers": TickerState.update,
}


# --- book sync -------------------------------------------------------------------------------------


class BybitBookSync:
    """Snapshot/delta rule for one ``orderbook.{depth}`` topic, pure.

    A ``snapshot`` (first after subscribe, Bybit-side restart with ``u`` = 1, or the level-1 topic's every
    message, re-sent with the same ``u``) replaces the book. A ``delta`` must have ``u == previous u + 1``
    (inferred from the recordings, protocols.md B.2); otherwise ``GAP_EVENT`` + ``DEPTH_CLEAR_EVENT``,
    state ``resyncing`` and ``needs_resubscribe`` until a new snapshot comes. A delta with ``u`` not
    newer than the book is dropped (``stale``); deltas before the first snapshot are dropped (``unsynced``).
    """

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.state = SYNCING
        self.reason = "waiting for snapshot"
        self.needs_resubscribe = False
        self.update_id: int | None = None
        self.resyncs = 0
        self.snapshots = 0
        self.stale = 0
        self.unsynced = 0
        self._delivered = False

    def on_update(self, upd: BookUpdate) -> list[SyncBatch]:
        """One orderbook message: the batches to deliver now."""
        if upd.is_snapshot:
            self.snapshots += 1
            self.state = LIVE
            self.reason = ""
            self.needs_resubscribe = False
            self.update_id = upd.update_id
            self._delivered = True
            return [SyncBatch(upd.batch, upd.update_id)]
        last = self.update_id
        if self.state != LIVE or last is None:
            self.unsynced += 1
            return []
        if upd.update_id == last + 1:
            self.update_id = upd.update_id
            return [SyncBatch(upd.batch, upd.update_id)]
        if upd.update_id <= last:
            self.stale += 1
            return []
        self.resyncs += 1
        self.state = RESYNCING
        self.reason = f"delta u={upd.update_id} after u={last}"
        self.needs_resubscribe = True
        self.update_id = None
        self._delivered = False
        return [SyncBatch(gap_batch(upd.exch_ts, upd.local_ts), None)]

    def reset(self, reason: str, exch_ts: int = 0, local_ts: int = 0) -> list[SyncBatch]:
        """Start over (reconnect): a gap + clear batch if the book had content; wait for a snapshot."""
        out = [SyncBatch(gap_batch(exch_ts, local_ts), None)] if self._delivered else []
        if self._delivered:
            self.resyncs += 1
        self._delivered = False
        self.needs_resubscribe = False
        self.update_id = None
        self.state = RESYNCING if out else SYNCING
        self.reason = reason
        return out


# --- the pure processor ------------------------------------------------------------------------------


class BybitLinearProcessor:
    """Raw frames in, sink calls out; no I/O. Bad or unexpected frames are counted in ``malformed``."""

    def __init__(self, instruments: list[Instrument], sink: FeedSink) -> None:
        self.instruments = {inst.symbol: inst for inst in instruments}
        self.syncs = {inst.symbol: BybitBookSync(inst) for inst in instruments}
        self.tickers = {inst.symbol: TickerState(inst) for inst in instruments}
        self.sink = sink
        self.messages = 0
        self.malformed = 0
        self.off_grid: dict[str, int] = {}  # symbol -> book levels left out for a price off the grid
        self.rejected: list[str] = []  # ret_msg of failed subscribe replies
        self._logged = 0

    @property
    def resyncs(self) -> int:
        """Sequence gaps and reconnect resets that cleared a book, all symbols."""
        return sum(s.resyncs for s in self.syncs.values())

    def resubscribes_wanted(self) -> list[str]:
        """Symbols whose book lost continuity and needs a fresh snapshot (unsubscribe + subscribe)."""
        return [sym for sym, s in self.syncs.items() if s.needs_resubscribe]

    def reset(self, symbol: str, reason: str, local_ns: int, report: bool = True) -> None:
        """Reconnect: clear ``symbol``'s book (gap marked) and wait for the snapshot after subscribe."""
        sync = self.syncs[symbol]
        for batch, update_id in sync.reset(reason, local_ns, local_ns):
            self.sink.on_batch(symbol, batch, update_id)
        if report:
            self.sink.on_status(symbol, sync.state, sync.reason)

    def on_line(self, raw: bytes | str, local_ns: int) -> None:
        """One websocket frame or recorded REST line."""
        self.messages += 1
        try:
            f = _FRAME.decode(raw)
        except _DECODE_ERRORS:
            self._other(raw)
            return
        topic = f.topic
        if not topic:
            if f.op and f.success is False:
                self.rejected.append(f.ret_msg)
                self._bad(raw, f"{f.op} rejected: {f.ret_msg}")
            elif not f.op:
                self._other(raw)
            return  # subscribe acks and pongs
        symbol = topic_symbol(topic)
        inst = self.instruments.get(symbol)
        if inst is None:
            self._bad(raw, f"symbol {symbol} not subscribed")
            return
        kind = topic.split(".", 1)[0]
        try:
            if kind == "orderbook":
                sync = self.syncs[symbol]
                before = sync.state
                upd = parse_orderbook(f, inst, local_ns)
                if upd.off_grid:
                    if symbol not in self.off_grid:
                        log.warning("%s: %s has book levels off its tick grid (left out, counted)", VENUE, symbol)
                    self.off_grid[symbol] = self.off_grid.get(symbol, 0) + upd.off_grid
                for batch, update_id in sync.on_update(upd):
                    self.sink.on_batch(symbol, batch, update_id)
                if sync.state != before:
                    self.sink.on_status(symbol, sync.state, sync.reason)
                return
            if kind == "publicTrade":
                batch = parse_public_trade(f, inst, local_ns)
            elif kind == "tickers":
                batch = self.tickers[symbol].update(f, local_ns)
            elif kind == "allLiquidation":
                batch = parse_liquidation(f, inst, local_ns)
            else:
                self._bad(raw, f"unexpected topic {topic}")
                return
        except (*_DECODE_ERRORS, ValueError, OverflowError, TypeError) as exc:
            self._bad(raw, str(exc))
            return
        if len(batch):
            self.sink.on_batch(symbol, batch, None)

    def _other(self, raw: bytes | str) -> None:
        if parse_rest_line(raw) is not None:
            return  # recorded REST (instruments-info): instruments are resolved before lines
        self._bad(raw, "unexpected frame")

    def _bad(self, raw: bytes | str, why: str) -> None:
        self.malformed += 1
        if self._logged < 20:
            self._logged += 1
            text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")
            log.warning("%s: skipped a frame (%s): %.200s", VENUE, why, text)


# --- the I/O feed ------------------------------------------------------------------------------------


class BybitLinearFeed:
    """Live Bybit v5 linear adapter: one websocket, subscribe ops, app-level ping every 20 s."""

    venue = VENUE

    def __init__(
        self,
        symbols: list[str] | tuple[str, ...],
        rest: str,
        ws: str,
        *,
        depth: int = 200,
        ping_every_s: float = 20.0,
        backoff: Backoff | None = None,
        http_timeout_s: float = 10.0,
        topics_per_request: int = 10,
    ) -> None:
        if not symbols:
            raise FeedError(f"{VENUE}: no symbols given")
        if depth not in BOOK_DEPTHS:
            raise FeedError(f"{VENUE}: order book depth must be one of {BOOK_DEPTHS}, got {depth}")
        self.symbols = tuple(s.upper() for s in symbols)
        self.rest = rest.rstrip("/")
        self.ws = ws.rstrip("/")
        self.depth = depth
        self.ping_every_s = ping_every_s
        self.http_timeout_s = http_timeout_s
        self.topics_per_request = topics_per_request
        self._backoff_template = backoff or Backoff()
        self._reconnects = 0
        self._proc: BybitLinearProcessor | None = None

    def topics(self, symbol: str) -> list[str]:
        """Every topic subscribed for ``symbol``."""
        return [f"orderbook.{self.depth}.{symbol}", f"publicTrade.{symbol}", f"tickers.{symbol}",
                f"allLiquidation.{symbol}"]  # fmt: skip

    def counters(self) -> FeedCounters:
        """Totals so far."""
        p = self._proc
        if p is None:
            return FeedCounters(reconnects=self._reconnects)
        return FeedCounters(p.messages, p.resyncs, self._reconnects, p.malformed)

    async def run(self, sink: FeedSink) -> None:
        """Resolve instruments, then keep the connection going until cancelled."""
        for sym in self.symbols:
            sink.on_status(sym, CONNECTING, "")
        try:
            instruments = [await self._instrument(sym, sink) for sym in self.symbols]
        except FeedError as exc:
            for sym in self.symbols:
                sink.on_status(sym, STOPPED, str(exc))
            raise
        for inst in instruments:
            sink.on_instrument(inst)
        self._proc = BybitLinearProcessor(instruments, sink)
        try:
            await self._connection_loop(sink)
        finally:
            for sym in self.symbols:
                sink.on_status(sym, STOPPED, "")

    async def _instrument(self, symbol: str, sink: FeedSink) -> Instrument:
        path = f"/v5/market/instruments-info?category=linear&symbol={symbol}"
        try:
            body = await http_get(self.rest + path, self.http_timeout_s)
        except HttpError as exc:
            raise FeedError(f"{VENUE}: cannot load instruments-info: {exc}") from None
        sink.on_raw(time.time_ns(), rest_line(path, body))
        return parse_instruments_info(body, symbol)

    async def _pump(self, ws: Any, sink: FeedSink) -> None:
        """Frames into the processor until the connection ends: a lone frame at once, a backlog (frames
        already received, a burst) as runs whose batches the engine applies together (``on_batches``).

        A run is gathered only while the next frame is already queued, so the receive never waits and
        nothing else on the loop runs in between: the order of everything is the one frame by frame.
        Whatever was received is recorded and processed, even when the connection ends or is cancelled.
        """
        proc = self._proc
        assert proc is not None
        raws: list[str] = []
        stamps: list[int] = []
        try:
            async for raw in ws:
                stamps.append(time.time_ns())
                raws.append(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
                if len(raws) < RUN_MAX and message_queued(ws):
                    continue
                run, times, raws, stamps = raws, stamps, [], []  # handed over: never processed twice
                self._process(sink, run, times)
                for sym in proc.resubscribes_wanted():
                    proc.syncs[sym].needs_resubscribe = False
                    book_topic = [f"orderbook.{self.depth}.{sym}"]
                    await self._send(ws, "unsubscribe", book_topic)
                    await self._send(ws, "subscribe", book_topic)
        finally:
            if raws:
                self._process(sink, raws, stamps)

    def _process(self, sink: FeedSink, raws: list[str], stamps: list[int]) -> None:
        """Each frame recorded (``on_raw``) then processed, as one by one; for a sink that takes runs
        (``on_batches``: the engine) the run's batches are handed over together at its end."""
        proc = self._proc
        assert proc is not None
        batches = proc.sink
        run = RunSink(batches) if len(raws) > 1 and hasattr(batches, "on_batches") else None
        if run is not None:
            proc.sink = run
        try:
            for raw, local_ns in zip(raws, stamps, strict=True):
                sink.on_raw(local_ns, raw)
                proc.on_line(raw, local_ns)
        finally:
            if run is not None:
                proc.sink = batches
                run.flush()

    async def _send(self, ws: Any, op: str, topics: list[str]) -> None:
        step = self.topics_per_request
        for k in range(0, len(topics), step):
            await ws.send(msgspec.json.encode({"op": op, "args": topics[k : k + step]}).decode())

    async def _pinger(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self.ping_every_s)
            await ws.send('{"op":"ping"}')

    async def _connection_loop(self, sink: FeedSink) -> None:
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
                async with connect(self.ws, max_size=None, compression=None,
                                   open_timeout=self.http_timeout_s,
                                   close_timeout=CLOSE_TIMEOUT_S) as ws:  # fmt: skip
                    connected = True
                    now = time.time_ns()
                    for sym in self.symbols:
                        proc.reset(sym, "connected", now)
                    await self._send(ws, "subscribe", [t for sym in self.symbols for t in self.topics(sym)])
                    pinger = asyncio.create_task(self._pinger(ws))
                    opened = time.monotonic()
                    try:
                        await self._pump(ws, sink)
                    finally:
                        pinger.cancel()
                        if attempts > 1 and time.monotonic() - opened > 5.0:
                            backoff.reset()  # the connection held: next drop starts from base delay
                reason = "connection closed by the server"
            except TimeoutError:
                reason = "connect timed out"
            except (OSError, WebSocketException) as exc:
                reason = f"{exc.__class__.__name__}: {exc}"
            now = time.time_ns()
            for sym in self.symbols:
                proc.reset(sym, reason, now, report=False)
                sink.on_status(sym, DISCONNECTED, reason)
            if not connected:
                log.warning("%s: %s", VENUE, reason)
            await asyncio.sleep(backoff.next_delay())
