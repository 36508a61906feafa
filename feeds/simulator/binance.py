"""Binance USDⓈ-M futures as the simulator speaks it: routed websocket paths, streams, REST.

Routes (protocols.md A.1): ``/public`` carries ``@depth*`` and ``@bookTicker``; ``/market`` carries
``@aggTrade``, ``@trade``, ``@markPrice[@1s]``, ``@forceOrder``. Each route has ``/ws/<s1>/<s2>``
(raw payloads) and ``/stream?streams=s1/s2`` (``{"stream","data"}`` envelope). A stream subscribed on
the wrong route (or on the retired root ``/ws``, ``/stream``) is acknowledged but silent, as the
venue does. Diff depth ``U/u/pu`` chain per stream; the REST snapshot's ``lastUpdateId`` is the
model's last update id, so the A.4 sync rule holds for any client that subscribed first.

Stream speeds: ``@depth`` 250 ms, ``@depth@500ms``, ``@depth@100ms`` are coalesced over their window
(last size per price wins); ``@depth@0ms`` (undocumented, real-time) sends every model message.
With ``coalesce=False`` every diff-depth variant is real-time (benchmarks).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from feeds.simulator.conn import ClientConn
from feeds.simulator.fmt import Fmt
from feeds.simulator.market import (
    ASK,
    BID,
    BookChange,
    Liquidation,
    MarketModel,
    MarkUpdate,
    SymbolSpec,
    TradeBurst,
)

VENUE = "binance-usdm"
PUBLIC_KINDS = ("depth", "bookTicker")
DEPTH_INTERVALS_MS = {"depth": 250, "depth@100ms": 100, "depth@500ms": 500, "depth@0ms": 0}
PARTIAL_LEVELS = (5, 10, 20)
REST_LIMITS = (5, 10, 20, 50, 100, 500, 1000)

ERR_INVALID_SYMBOL = (400, '{"code":-1121,"msg":"Invalid symbol."}')
ERR_MANDATORY_SYMBOL = (400, '{"code":-1102,"msg":"Mandatory parameter \'symbol\' was not sent, '
                             'was empty/null, or malformed."}')
ERR_LIMIT = (400, '{"code":-1130,"msg":"Data sent for parameter \'limit\' is not valid."}')
ERR_NOT_FOUND = (404, '{"code":-1000,"msg":"Not found."}')


def stream_route(stream: str) -> str:
    """``public`` or ``market``: which 2026 route carries a stream name."""
    kind = stream.partition("@")[2]
    return "public" if kind.startswith(PUBLIC_KINDS) else "market"


def envelope(stream: str, data: str) -> str:
    """The combined-stream envelope around a payload."""
    return f'{{"stream":"{stream}","data":{data}}}'


class _Coalesce:
    """Pending changes of one coalesced diff-depth stream over its window."""

    __slots__ = ("bids", "asks", "first", "last", "last_u", "window_end_ns", "exch_ns")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.first = 0
        self.last = 0
        self.last_u = 0
        self.window_end_ns = 0
        self.exch_ns = 0


class BinanceVenue:
    """The Binance USDⓈ-M side of the simulator: routing, subscriptions, encoders, REST."""

    name = VENUE

    def __init__(self, model: MarketModel | None, specs: Iterable[SymbolSpec], coalesce: bool = True) -> None:
        self.model = model
        self.specs = {s.symbol: s for s in specs}
        self.fmt = {s.symbol: Fmt(s) for s in self.specs.values()}
        self.coalesce = coalesce
        self.subs: dict[str, set[ClientConn]] = {}
        self.misrouted = 0
        self._pending: dict[str, _Coalesce] = {}
        self._last_u: dict[str, int] = {}
        self._last_top: dict[str, tuple] = {}
        self._agg_id = {s: 5_000_000 for s in self.specs}
        self._mark_count = dict.fromkeys(self.specs, 0)
        self._last_mark: dict[str, MarkUpdate] = {}
        self._partial_last_u: dict[str, int] = {}
        self._names: dict[str, list[tuple[str, int]]] = {}

    # -- websocket control --------------------------------------------------------------------
    def open(self, conn: ClientConn, path: str, query: dict[str, str]) -> bool:
        """Attach a new connection from its URL path; False when the path is not a Binance route."""
        parts = path.strip("/").split("/")
        route = parts[0] if parts else ""
        if route not in ("public", "market", "ws", "stream"):
            return False
        if route in ("ws", "stream"):  # the retired legacy roots: handshake, then silence
            conn.route = "legacy"
            conn.combined = route == "stream"
            streams = parts[1:] if route == "ws" else query.get("streams", "").split("/")
        else:
            conn.route = route
            mode = parts[1] if len(parts) > 1 else "ws"
            conn.combined = mode == "stream"
            streams = parts[2:] if mode == "ws" else query.get("streams", "").split("/")
        self.subscribe(conn, [s for s in streams if s])
        return True

    def subscribe(self, conn: ClientConn, streams: list[str]) -> None:
        """Add streams to a connection (idempotent)."""
        for stream in streams:
            stream = stream.strip()
            if stream in conn.streams:
                continue
            conn.streams.append(stream)
            if conn.route != stream_route(stream):
                self.misrouted += 1
                continue
            self.subs.setdefault(stream, set()).add(conn)

    def unsubscribe(self, conn: ClientConn, streams: list[str]) -> None:
        """Remove streams from a connection."""
        for stream in streams:
            if stream in conn.streams:
                conn.streams.remove(stream)
            subs = self.subs.get(stream)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self.subs[stream]
                    self._pending.pop(stream, None)
                    self._last_u.pop(stream, None)  # an idle stream restarts its pu chain at U-1

    def close(self, conn: ClientConn) -> None:
        """Forget a connection."""
        self.unsubscribe(conn, list(conn.streams))

    def on_text(self, conn: ClientConn, text: str) -> None:
        """One client frame: SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS/SET_PROPERTY/GET_PROPERTY."""
        try:
            req = json.loads(text)
        except ValueError as exc:
            msg = getattr(exc, "msg", "expected value")
            conn.reply(json.dumps({"code": 3, "msg": f"Invalid JSON: {msg} at line {getattr(exc, 'lineno', 1)} "
                                   f"column {getattr(exc, 'colno', 1)}"}, separators=(",", ":")))
            return
        if not isinstance(req, dict) or "method" not in req:
            conn.reply('{"code":2,"msg":"Invalid request: missing field `method` at line 1 column '
                       f'{len(text)}"}}')
            return
        rid = req.get("id")
        if not (isinstance(rid, int) and not isinstance(rid, bool) and rid >= 0) and rid is not None:
            conn.reply('{"code":2,"msg":"Invalid request: request ID must be an unsigned integer"}')
            return
        method = req["method"]
        params = req.get("params", [])
        rid_text = json.dumps(rid)
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                conn.reply(f'{{"code":2,"msg":"Invalid request: invalid params","id":{rid_text}}}')
                return
            if method == "SUBSCRIBE":
                self.subscribe(conn, params)
            else:
                self.unsubscribe(conn, params)
            conn.reply(f'{{"result":null,"id":{rid_text}}}')
        elif method == "LIST_SUBSCRIPTIONS":
            conn.reply(json.dumps({"result": list(conn.streams), "id": rid}, separators=(",", ":")))
        elif method == "SET_PROPERTY":
            if params[:1] != ["combined"] or len(params) != 2:
                conn.reply(f'{{"code":0,"msg":"Unknown property","id":{rid_text}}}')
            elif not isinstance(params[1], bool):
                conn.reply('{"code":1,"msg":"Invalid value type: expected Boolean"}')
            else:
                conn.combined = params[1]
                conn.reply(f'{{"result":null,"id":{rid_text}}}')
        elif method == "GET_PROPERTY":
            if params != ["combined"]:
                conn.reply(f'{{"code":0,"msg":"Unknown property","id":{rid_text}}}')
            else:
                conn.reply(f'{{"result":{json.dumps(conn.combined)},"id":{rid_text}}}')
        else:
            conn.reply(json.dumps({"code": 2, "msg": f"Invalid request: unknown variant `{method}`, expected one "
                                   "of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, "
                                   "`GET_PROPERTY` at line 1 column 28"}, separators=(",", ":")))

    # -- publishing ---------------------------------------------------------------------------
    def publish(self, stream: str, data: str) -> None:
        """Push one stream payload to its subscribers (combined-stream ones get the envelope)."""
        subs = self.subs.get(stream)
        if not subs:
            return
        wrapped = None
        for conn in subs:
            if conn.combined:
                if wrapped is None:
                    wrapped = envelope(stream, data)
                conn.push(wrapped)
            else:
                conn.push(data)

    def on_events(self, events: list, now_ns: int) -> None:
        """Publish one model step's messages, then flush windows that ended by ``now_ns``."""
        if self.subs:
            for ev in events:
                kind = type(ev)
                if kind is BookChange:
                    self._on_book(ev)
                elif kind is TradeBurst:
                    self._on_trades(ev)
                elif kind is MarkUpdate:
                    self._on_mark(ev)
                elif kind is Liquidation:
                    self._on_liquidation(ev)
        for ev in events:
            if type(ev) is MarkUpdate:
                self._last_mark[ev.symbol] = ev
        if self._pending or self.subs:
            self._flush(now_ns)

    def _depth_data(self, symbol: str, exch_ns: int, first: int, last: int, pu: int,
                    bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]]) -> str:
        f = self.fmt[symbol]
        px, qty = f.px, f.qty
        b = ",".join([f'["{px(t)}","{qty(q)}"]' for t, q in bids])
        a = ",".join([f'["{px(t)}","{qty(q)}"]' for t, q in asks])
        ms = exch_ns // 1_000_000
        return (f'{{"e":"depthUpdate","E":{ms + 1},"T":{ms},"s":"{symbol}","U":{first},"u":{last},'
                f'"pu":{pu},"b":[{b}],"a":[{a}]}}')

    def _depth_names(self, sym: str) -> list[tuple[str, int]]:
        names = self._names.get(sym)
        if names is None:
            low = sym.lower()
            names = self._names[sym] = [(f"{low}@{suffix}", ms) for suffix, ms in DEPTH_INTERVALS_MS.items()]
            names.append((f"{low}@bookTicker", -1))
        return names

    def _on_book(self, ev: BookChange) -> None:
        sym = ev.symbol
        subs = self.subs
        names = self._depth_names(sym)
        for stream, interval in names[:-1]:
            if stream not in subs:
                continue
            if interval == 0 or not self.coalesce:
                pu = self._last_u.get(stream, ev.first_id - 1)
                self._last_u[stream] = ev.last_id
                self.publish(stream, self._depth_data(sym, ev.exch_ns, ev.first_id, ev.last_id, pu,
                                                    ev.bids, ev.asks))
                continue
            pend = self._pending.get(stream)
            if pend is None:
                pend = self._pending[stream] = _Coalesce()
                pend.last_u = self._last_u.get(stream, ev.first_id - 1)
            if not pend.first:
                pend.first = ev.first_id
                step = interval * 1_000_000
                pend.window_end_ns = (ev.exch_ns // step + 1) * step
            pend.last = ev.last_id
            pend.exch_ns = ev.exch_ns
            pend.bids.update(ev.bids)
            pend.asks.update(ev.asks)
        stream = names[-1][0]
        if stream in subs:
            top = ev.top
            if self._last_top.get(sym) != top:
                self._last_top[sym] = top
                f = self.fmt[sym]
                ms = ev.exch_ns // 1_000_000
                b = f.px(top.bid_tick) if top.bid_tick is not None else "0"
                a = f.px(top.ask_tick) if top.ask_tick is not None else "0"
                self.publish(stream, f'{{"e":"bookTicker","u":{ev.last_id},"s":"{sym}","b":"{b}",'
                                   f'"B":"{f.qty(top.bid_lots)}","a":"{a}","A":"{f.qty(top.ask_lots)}",'
                                   f'"T":{ms},"E":{ms + 1}}}')

    def flush_all(self, far_ns: int) -> None:
        """Send every pending coalesced window now."""
        for pend in self._pending.values():
            if pend.first:
                pend.window_end_ns = min(pend.window_end_ns, far_ns)
        self._flush(far_ns, partial=False)

    def _flush(self, now_ns: int, partial: bool = True) -> None:
        for stream, pend in list(self._pending.items()):
            if not pend.first or now_ns < pend.window_end_ns:
                continue
            sym = self._symbol_of(stream)
            bids = sorted(pend.bids.items(), reverse=True)
            asks = sorted(pend.asks.items())
            data = self._depth_data(sym, min(pend.window_end_ns - 1_000_000, pend.exch_ns), pend.first, pend.last, pend.last_u,
                                    bids, asks)
            pend.last_u = self._last_u[stream] = pend.last
            pend.first = 0
            pend.bids = {}
            pend.asks = {}
            self.publish(stream, data)
        if partial and self.model is not None:
            self._flush_partial(now_ns)

    def _flush_partial(self, now_ns: int) -> None:
        """Partial book depth ``<sym>@depth<N>[@speed]``: a top-N snapshot per window."""
        for stream in list(self.subs):
            sym_low, _, kind = stream.partition("@")
            if not kind.startswith("depth") or kind in DEPTH_INTERVALS_MS:
                continue
            head, _, speed = kind.partition("@")
            try:
                levels = int(head[5:])
            except ValueError:
                continue
            interval = {"": 250, "100ms": 100, "500ms": 500}.get(speed)
            if levels not in PARTIAL_LEVELS or interval is None:
                continue
            step = interval * 1_000_000
            key = stream
            last_window = self._partial_last_u.get(key + "#w", 0)
            window = now_ns // step
            if window == last_window:
                continue
            self._partial_last_u[key + "#w"] = window
            sym = sym_low.upper()
            if sym not in self.specs or self.model is None:
                continue
            u, (bt, bl), (at, al) = self.model.snapshot(sym, levels)
            pu = self._partial_last_u.get(key, u)
            self._partial_last_u[key] = u
            self.publish(stream, self._depth_data(sym, now_ns, pu + 1 if pu < u else u, u, pu,
                                                zip(bt.tolist(), bl.tolist(), strict=True),
                                                zip(at.tolist(), al.tolist(), strict=True)))

    def _symbol_of(self, stream: str) -> str:
        return stream.partition("@")[0].upper()

    def _on_trades(self, ev: TradeBurst) -> None:
        sym = ev.symbol
        low = sym.lower()
        f = self.fmt[sym]
        ms = ev.exch_ns // 1_000_000
        m = "true" if ev.aggressor == ASK else "false"  # buyer is maker when the taker sells
        stream = f"{low}@trade"
        if stream in self.subs:
            for k, (tick, lots) in enumerate(ev.fills):
                self.publish(stream, f'{{"e":"trade","E":{ms},"T":{ms},"s":"{sym}","t":{ev.first_trade_id + k},'
                                   f'"p":"{f.px(tick)}","q":"{f.qty(lots)}","X":"MARKET","m":{m}}}')
        stream = f"{low}@aggTrade"
        if stream in self.subs:
            for k, (tick, lots) in enumerate(ev.fills):
                self._agg_id[sym] += 1
                tid = ev.first_trade_id + k
                self.publish(stream, f'{{"e":"aggTrade","E":{ms + 1},"a":{self._agg_id[sym]},"s":"{sym}",'
                                   f'"p":"{f.px(tick)}","q":"{f.qty(lots)}","f":{tid},"l":{tid},"T":{ms},'
                                   f'"m":{m}}}')

    def mark_data(self, ev: MarkUpdate) -> str:
        """The ``markPriceUpdate`` payload."""
        return (f'{{"e":"markPriceUpdate","E":{ev.exch_ns // 1_000_000},"s":"{ev.symbol}",'
                f'"p":"{ev.mark_price:.8f}","i":"{ev.index_price:.8f}","P":"{ev.index_price:.8f}",'
                f'"r":"{ev.funding_rate:.8f}","T":{ev.next_funding_ms}}}')

    def _on_mark(self, ev: MarkUpdate) -> None:
        low = ev.symbol.lower()
        self._mark_count[ev.symbol] += 1
        s1 = f"{low}@markPrice@1s"
        s3 = f"{low}@markPrice"
        every3 = self._mark_count[ev.symbol] % 3 == 0
        if s1 in self.subs or (every3 and s3 in self.subs):
            data = self.mark_data(ev)
            self.publish(s1, data)
            if every3:
                self.publish(s3, data)

    def _on_liquidation(self, ev: Liquidation) -> None:
        stream = f"{ev.symbol.lower()}@forceOrder"
        if stream not in self.subs:
            return
        f = self.fmt[ev.symbol]
        ms = ev.exch_ns // 1_000_000
        side = "SELL" if ev.side == ASK else "BUY"
        px, q = f.px(ev.tick), f.qty(ev.lots)
        self.publish(stream, f'{{"e":"forceOrder","E":{ms},"o":{{"s":"{ev.symbol}","S":"{side}","o":"LIMIT",'
                           f'"f":"IOC","q":"{q}","p":"{px}","ap":"{px}","X":"FILLED","l":"{q}","z":"{q}",'
                           f'"T":{ms}}}}}')

    # -- REST ---------------------------------------------------------------------------------
    def rest(self, path: str, query: dict[str, str], now_ns: int) -> tuple[int, str]:
        """Answer a GET on ``/fapi/v1/...``: (HTTP status, JSON body)."""
        ms = now_ns // 1_000_000
        if path == "/fapi/v1/ping":
            return 200, "{}"
        if path == "/fapi/v1/time":
            return 200, f'{{"serverTime":{ms}}}'
        if path == "/fapi/v1/exchangeInfo":
            return 200, self.exchange_info(ms)
        if path not in ("/fapi/v1/depth", "/fapi/v1/openInterest", "/fapi/v1/premiumIndex"):
            return ERR_NOT_FOUND
        symbol = query.get("symbol", "")
        if not symbol:
            return ERR_MANDATORY_SYMBOL
        if symbol not in self.specs:
            return ERR_INVALID_SYMBOL
        if path == "/fapi/v1/depth":
            try:
                limit = int(query.get("limit", "500"))
            except ValueError:
                return ERR_LIMIT
            if limit not in REST_LIMITS:
                return ERR_LIMIT
            return 200, self.depth_snapshot(symbol, limit, ms)
        mark = self._last_mark.get(symbol) or (self.model.mark(symbol) if self.model else None)
        if mark is None:
            return ERR_INVALID_SYMBOL
        if path == "/fapi/v1/openInterest":
            oi = f"{mark.open_interest:.{self.specs[symbol].qty_decimals}f}"
            return 200, f'{{"openInterest":"{oi}","symbol":"{symbol}","time":{ms}}}'
        return 200, (f'{{"symbol":"{symbol}","markPrice":"{mark.mark_price:.8f}","indexPrice":'
                     f'"{mark.index_price:.8f}","estimatedSettlePrice":"{mark.index_price:.8f}",'
                     f'"lastFundingRate":"{mark.funding_rate:.8f}","interestRate":"0.00010000",'
                     f'"nextFundingTime":{mark.next_funding_ms},"time":{ms}}}')

    def depth_snapshot(self, symbol: str, limit: int, ms: int) -> str:
        """``GET /fapi/v1/depth`` body: the model's book now, ``lastUpdateId`` = its last update id."""
        assert self.model is not None
        u, (bt, bl), (at, al) = self.model.snapshot(symbol, limit)
        f = self.fmt[symbol]
        b = ",".join([f'["{f.px(t)}","{f.qty(q)}"]' for t, q in zip(bt.tolist(), bl.tolist(), strict=True)])
        a = ",".join([f'["{f.px(t)}","{f.qty(q)}"]' for t, q in zip(at.tolist(), al.tolist(), strict=True)])
        return f'{{"lastUpdateId":{u},"E":{ms},"T":{ms},"bids":[{b}],"asks":[{a}]}}'

    def exchange_info(self, ms: int) -> str:
        """``GET /fapi/v1/exchangeInfo`` body for the simulated symbols."""
        symbols: list[dict[str, Any]] = []
        for s in self.specs.values():
            tick = f"{s.tick_size:.{s.price_decimals}f}"
            step = f"{s.lot_size:.{s.qty_decimals}f}"
            symbols.append({
                "symbol": s.symbol, "pair": s.symbol, "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
                "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
                "baseAsset": s.base, "quoteAsset": "USDT", "marginAsset": "USDT",
                "pricePrecision": s.price_decimals, "quantityPrecision": s.qty_decimals,
                "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
                "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
                "liquidationFee": "0.012500", "marketTakeBound": "0.10",
                "filters": [
                    {"minPrice": tick, "maxPrice": "1000000", "filterType": "PRICE_FILTER", "tickSize": tick},
                    {"stepSize": step, "filterType": "LOT_SIZE", "maxQty": "10000000", "minQty": step},
                    {"stepSize": step, "filterType": "MARKET_LOT_SIZE", "maxQty": "1000000", "minQty": step},
                    {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
                    {"notional": "5", "filterType": "MIN_NOTIONAL"},
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                               "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
            })
        info = {"timezone": "UTC", "serverTime": ms, "futuresType": "U_MARGINED",
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": 2400}],
                "exchangeFilters": [], "assets": [{"asset": "USDT", "marginAvailable": True,
                                                   "autoAssetExchange": "-10000"}],
                "symbols": symbols}
        return json.dumps(info, separators=(",", ":"))


__all__ = ["BinanceVenue", "stream_route", "envelope", "BID", "ASK"]
