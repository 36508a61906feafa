"""Capture-driven simulator: replays recorded raw messages to clients on the matching routes.

Records are ``(local_ns, raw_text)`` pairs from any reader (hftbacktest collector lines, a native
capture, Bybit archives). Binance combined-stream envelopes go to subscribers of the same stream
(any diff-depth speed gets the recorded depth events, re-enveloped with the client's stream name);
the recorded REST snapshot (the line with ``lastUpdateId``) is what ``/fapi/v1/depth`` serves — held
back until the replay reaches it, and rebuilt from the snapshot + replayed diffs (``lastUpdateId`` =
last replayed ``u``) once diffs have moved the book on. Bybit ``orderbook.*`` messages go to
subscribers of any ``orderbook.{50,200,1000}`` topic of the symbol (topic renamed); a late subscriber
gets a snapshot rebuilt from the replayed book with the current ``u``. Speed 1 = recorded pace,
0 = as fast as the clients take it. Instruments (tick and lot size) are inferred from the recorded
snapshots unless given.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from math import gcd
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from feeds.simulator.binance import DEPTH_INTERVALS_MS
from feeds.simulator.market import SymbolSpec

if TYPE_CHECKING:
    from feeds.simulator.conn import ClientConn
    from feeds.simulator.server import SimulatorServer

PRESCAN_RECORDS = 5000
BOOK_DEPTHS = (50, 200, 1000)


def read_hftbacktest(path: str | Path) -> Iterator[tuple[int, str]]:
    """Records of an hftbacktest collector file (``<local_ns> <raw>`` per line, gzip or plain)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for line in fh:
            stamp, sep, raw = line.rstrip("\n").partition(" ")
            if sep and stamp.isdigit():
                yield int(stamp), raw


class _Book:
    """A replayed book kept as raw strings (exactly what the venue sent), keyed by float price."""

    __slots__ = ("bids", "asks", "u", "seq", "changed", "ready", "raw_snapshot")

    def __init__(self) -> None:
        self.bids: dict[float, tuple[str, str]] = {}
        self.asks: dict[float, tuple[str, str]] = {}
        self.u = 0
        self.seq = 0
        self.changed = False
        self.ready = False
        self.raw_snapshot = ""

    def reset(self, bids: list, asks: list) -> None:
        self.bids = {float(p): (p, q) for p, q in bids if float(q) != 0}
        self.asks = {float(p): (p, q) for p, q in asks if float(q) != 0}
        self.ready = True

    def apply(self, bids: list, asks: list) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                key = float(p)
                if float(q) == 0:
                    side.pop(key, None)
                else:
                    side[key] = (p, q)
        self.changed = True

    def sides(self, limit: int | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bids = [self.bids[k] for k in sorted(self.bids, reverse=True)[:limit]]
        asks = [self.asks[k] for k in sorted(self.asks)[:limit]]
        return bids, asks


def _levels_json(levels: list[tuple[str, str]]) -> str:
    return ",".join(f'["{p}","{q}"]' for p, q in levels)


def _infer_spec(symbol: str, bids: list, asks: list) -> SymbolSpec:
    """Tick = gcd of the snapshot's price steps; lot = the finest quantity decimals."""
    prices = [Decimal(p) for p, _ in list(bids) + list(asks)]
    qtys = [Decimal(q) for _, q in list(bids) + list(asks)]
    pdec = max((-p.as_tuple().exponent for p in prices), default=2)  # type: ignore[operator]
    qdec = max((-q.as_tuple().exponent for q in qtys), default=3)  # type: ignore[operator]
    units = [int(p.scaleb(pdec)) for p in prices]
    step = 0
    for a, b in itertools.pairwise(sorted(set(units))):
        step = gcd(step, b - a)
    tick = float(Decimal(max(step, 1)).scaleb(-pdec))
    lot = float(Decimal(1).scaleb(-qdec))
    mid = float(prices[0]) if prices else 1.0
    return SymbolSpec(symbol, tick, lot, mid, median_lots=1)


class CaptureSource:
    """Feeds a :class:`SimulatorServer` from recorded raw records instead of the market model."""

    def __init__(self, records: Iterable[tuple[int, str]], speed: float = 1.0,
                 specs: Iterable[SymbolSpec] | None = None, start_on_subscribe: bool = True,
                 max_backlog: int = 20_000) -> None:
        if speed < 0:
            raise ValueError(f"replay speed must be >= 0 (0 = max), got {speed!r}")
        self.speed = speed
        self.start_on_subscribe = start_on_subscribe
        self.max_backlog = max_backlog
        it = iter(records)
        self._head = list(itertools.islice(it, PRESCAN_RECORDS))
        self._records = itertools.chain(self._head, it)
        self.binance_books: dict[str, _Book] = {}
        self.bybit_books: dict[str, _Book] = {}
        self.bybit_tickers: dict[str, dict[str, Any]] = {}
        self.replayed = 0
        self.now_ns = self._head[0][0] if self._head else 0
        self.specs = list(specs) if specs is not None else self._prescan()
        self._server: SimulatorServer | None = None
        self._started: asyncio.Event | None = None
        self.done: asyncio.Event | None = None
        self._snapshot_seen: dict[str, asyncio.Event] = {}
        self._last_depth_symbol = ""

    # -- setup ----------------------------------------------------------------------------------
    def _prescan(self) -> list[SymbolSpec]:
        """Symbols and tick/lot sizes from the first records' snapshots."""
        specs: dict[str, SymbolSpec] = {}
        bybit_levels: dict[str, tuple[list, list]] = {}
        last_symbol = ""
        for _, raw in self._head:
            if raw.startswith('{"stream":"'):
                last_symbol = raw[11:raw.index("@", 11)].upper()
                specs.setdefault(last_symbol, SymbolSpec(last_symbol, 0.01, 0.001, 1.0, median_lots=1))
            elif raw.startswith('{"lastUpdateId"') and last_symbol:
                snap = json.loads(raw)
                specs[last_symbol] = _infer_spec(last_symbol, snap["bids"], snap["asks"])
            elif raw.startswith('{"rest":"/fapi/v1/depth?'):
                line = json.loads(raw)
                sym = dict(parse_qsl(urlsplit(line["rest"]).query)).get("symbol", "")
                if sym and isinstance(line.get("data"), dict) and "bids" in line["data"]:
                    specs[sym] = _infer_spec(sym, line["data"]["bids"], line["data"]["asks"])
            elif '"topic":"orderbook.' in raw[:40] and '"type":"snapshot"' in raw[:80]:
                # every snapshot in the head counts: an orderbook.1 stream shows one level a side per
                # message, too few price steps for the gcd to find the tick
                msg = json.loads(raw)
                sym = msg["data"]["s"]
                bids, asks = bybit_levels.setdefault(sym, ([], []))
                bids += msg["data"]["b"]
                asks += msg["data"]["a"]
                specs[sym] = _infer_spec(sym, bids, asks)
            elif raw.startswith('{"topic":"'):
                topic = raw[10:raw.index('"', 10)]
                sym = topic.rsplit(".", 1)[-1]
                specs.setdefault(sym, SymbolSpec(sym, 0.01, 0.001, 1.0, median_lots=1))
        if not specs:
            raise ValueError("the capture holds no Binance stream or Bybit topic messages in its first records")
        return list(specs.values())

    def attach(self, server: SimulatorServer) -> None:
        """Called by the server it feeds."""
        self._server = server
        server.bybit.attach_hook = self._bybit_attach

    def on_open(self, conn: ClientConn) -> None:
        """A client connected (streams in its URL count as a subscription)."""
        if conn.streams and self._started is not None:
            self._started.set()

    def on_subscribe(self, conn: ClientConn) -> None:
        """A client sent a frame (maybe a subscription)."""
        if conn.streams and self._started is not None:
            self._started.set()

    # -- replay ---------------------------------------------------------------------------------
    async def run(self) -> None:
        """Replay every record, paced by ``speed``; sets ``done`` at the end."""
        assert self._server is not None
        self._started = asyncio.Event()
        self.done = asyncio.Event()
        if not self.start_on_subscribe or any(c.streams for c in self._server.connections):
            self._started.set()
        await self._started.wait()
        loop = asyncio.get_running_loop()
        wall0 = loop.time()
        t0: int | None = None
        conns = self._server.connections
        for local_ns, raw in self._records:
            if t0 is None:
                t0 = local_ns
            self.now_ns = local_ns
            if self.speed > 0:
                ahead = (local_ns - t0) / 1e9 / self.speed - (loop.time() - wall0)
                if ahead > 0.002:
                    await asyncio.sleep(ahead)
            elif self.replayed % 256 == 0:
                await asyncio.sleep(0)
                while any(len(c.out) > self.max_backlog for c in conns if not c.closed):
                    await asyncio.sleep(0.002)  # max speed, but never faster than the clients read
            self._dispatch(raw)
            self.replayed += 1
        self.done.set()

    def _dispatch(self, raw: str) -> None:
        if raw.startswith('{"stream":"'):
            self._binance_stream(raw)
        elif raw.startswith('{"lastUpdateId"'):
            self._binance_snapshot(raw)
        elif raw.startswith('{"rest":"'):
            self._rest_record(raw)
        elif raw.startswith('{"topic":"'):
            self._bybit(raw)
        # acks, HTTP bodies, klines of other venues: not replayed

    def _binance_stream(self, raw: str) -> None:
        assert self._server is not None
        venue = self._server.binance
        end = raw.index('"', 11)
        stream = raw[11:end]
        start = raw.find('"data":', end)
        if start < 0:
            return
        data = raw[start + 7:raw.rindex("}")]
        sym_low, _, kind = stream.partition("@")
        symbol = sym_low.upper()
        if kind == "depth" or kind.startswith("depth@"):  # diff depth at any speed (not partial depthN)
            self._last_depth_symbol = symbol
            book = self.binance_books.setdefault(symbol, _Book())
            if book.ready:
                msg = json.loads(data)
                if msg["u"] >= book.u:
                    book.apply(msg["b"], msg["a"])
                    book.u = msg["u"]
            for suffix in DEPTH_INTERVALS_MS:
                venue.publish(f"{sym_low}@{suffix}", data)
            return
        if kind.startswith("markPrice"):
            venue.publish(f"{sym_low}@markPrice", data)
            venue.publish(f"{sym_low}@markPrice@1s", data)
            return
        venue.publish(stream, data)

    def _binance_snapshot(self, raw: str) -> None:
        symbol = self._last_depth_symbol or (self.specs[0].symbol if self.specs else "")
        snap = json.loads(raw)
        book = self.binance_books.setdefault(symbol, _Book())
        book.reset(snap["bids"], snap["asks"])
        book.u = snap["lastUpdateId"]
        book.changed = False
        book.raw_snapshot = raw
        self._snapshot_event(symbol).set()

    def _rest_record(self, raw: str) -> None:
        """A native capture's REST line ``{"rest":"/fapi/v1/depth?symbol=X&limit=N","data":<body>}``."""
        end = raw.index('"', 9)
        url = urlsplit(raw[9:end])
        if url.path != "/fapi/v1/depth":
            return
        symbol = dict(parse_qsl(url.query)).get("symbol", "")
        body = raw[raw.index('"data":', end) + 7:raw.rindex("}")]
        if symbol and body.startswith('{"lastUpdateId"'):
            self._last_depth_symbol = symbol
            self._binance_snapshot(body)

    def _snapshot_event(self, symbol: str) -> asyncio.Event:
        event = self._snapshot_seen.get(symbol)
        if event is None:
            event = self._snapshot_seen[symbol] = asyncio.Event()
        return event

    def _bybit(self, raw: str) -> None:
        assert self._server is not None
        venue = self._server.bybit
        topic = raw[10:raw.index('"', 10)]
        head, _, symbol = topic.rpartition(".")
        if head.startswith("orderbook."):
            msg = json.loads(raw)
            data = msg["data"]
            book = self.bybit_books.setdefault(symbol, _Book())
            if msg.get("type") == "snapshot":
                book.reset(data["b"], data["a"])
            elif book.ready:
                book.apply(data["b"], data["a"])
            book.u, book.seq = data["u"], data.get("seq", 0)
            if head == "orderbook.1":
                venue.publish(topic, raw)
                return
            for depth in BOOK_DEPTHS:
                client_topic = f"orderbook.{depth}.{symbol}"
                if venue.subs.get(client_topic):
                    text = raw if client_topic == topic else raw.replace(f'"topic":"{topic}"',
                                                                         f'"topic":"{client_topic}"', 1)
                    venue.publish(client_topic, text)
            return
        if head == "tickers":
            msg = json.loads(raw)
            state = self.bybit_tickers.setdefault(symbol, {})
            if msg.get("type") == "snapshot":
                state.clear()
            state.update(msg.get("data", {}))
        venue.publish(topic, raw)

    def _bybit_attach(self, conn: ClientConn, topic: str, now_ns: int) -> None:
        """A late Bybit subscriber gets a snapshot rebuilt from the replayed state."""
        head, _, symbol = topic.rpartition(".")
        ms = self.now_ns // 1_000_000
        if head.startswith("orderbook.") and head != "orderbook.1":
            book = self.bybit_books.get(symbol)
            if book is None or not book.ready:
                return  # the recorded snapshot is still ahead: it will arrive in order
            depth = int(head.split(".")[1])
            bids, asks = book.sides(depth)
            conn.push(f'{{"topic":"{topic}","type":"snapshot","ts":{ms},"data":{{"s":"{symbol}",'
                      f'"b":[{_levels_json(bids)}],"a":[{_levels_json(asks)}],"u":{book.u},"seq":{book.seq}}},'
                      f'"cts":{ms}}}')
        elif head == "tickers" and self.bybit_tickers.get(symbol):
            body = json.dumps(self.bybit_tickers[symbol], separators=(",", ":"))
            conn.push(f'{{"topic":"{topic}","type":"snapshot","data":{body},"cs":0,"ts":{ms}}}')

    # -- REST -------------------------------------------------------------------------------------
    async def rest(self, venue: str, path: str, query: dict[str, str]) -> tuple[int, str]:
        """REST in replay: depth/orderbook from the recording; metadata from the inferred instruments."""
        assert self._server is not None
        symbol = query.get("symbol", "")
        ms = self.now_ns // 1_000_000
        if venue == "binance-usdm" and path == "/fapi/v1/depth":
            if symbol not in {s.symbol for s in self.specs}:
                return 400, '{"code":-1121,"msg":"Invalid symbol."}'
            try:
                await asyncio.wait_for(self._snapshot_event(symbol).wait(), 10.0)
            except TimeoutError:
                return 503, '{"code":-1007,"msg":"Timeout waiting for response from backend server."}'
            book = self.binance_books[symbol]
            if not book.changed:
                return 200, book.raw_snapshot
            limit = int(query.get("limit", "500")) if query.get("limit", "500").isdigit() else 500
            bids, asks = book.sides(limit)
            return 200, (f'{{"lastUpdateId":{book.u},"E":{ms},"T":{ms},"bids":[{_levels_json(bids)}],'
                         f'"asks":[{_levels_json(asks)}]}}')
        if venue == "bybit-linear" and path == "/v5/market/orderbook":
            book = self.bybit_books.get(symbol)
            if book is None or not book.ready:
                return 200, ('{"retCode":10001,"retMsg":"params error: symbol invalid","result":{},'
                             f'"retExtInfo":{{}},"time":{ms}}}')
            limit = int(query.get("limit", "1")) if query.get("limit", "1").isdigit() else 1
            bids, asks = book.sides(limit)
            result = (f'{{"s":"{symbol}","b":[{_levels_json(bids)}],"a":[{_levels_json(asks)}],"ts":{ms},'
                      f'"u":{book.u},"seq":{book.seq},"cts":{ms}}}')
            return 200, f'{{"retCode":0,"retMsg":"OK","result":{result},"retExtInfo":{{}},"time":{ms}}}'
        if path in ("/fapi/v1/openInterest", "/fapi/v1/premiumIndex"):
            return 404, '{"code":-1000,"msg":"This capture holds no open interest or mark price for REST."}'
        target = self._server.binance if venue == "binance-usdm" else self._server.bybit
        return target.rest(path, query, self.now_ns)

    def levels(self, symbol: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The replayed book (Binance if present, else Bybit) in ticks and base units, best-first."""
        book = self.binance_books.get(symbol) or self.bybit_books.get(symbol)
        spec = next(s for s in self.specs if s.symbol == symbol)
        if book is None:
            raise KeyError(symbol)
        bids, asks = book.sides()

        def arrays(levels: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
            ticks = np.array([round(float(p) / spec.tick_size) for p, _ in levels], dtype=np.int64)
            return ticks, np.array([float(q) for _, q in levels], dtype=np.float64)

        return arrays(bids), arrays(asks)
