"""Bybit v5 public linear as the simulator speaks it: ``/v5/public/linear`` topics and ``/v5/market`` REST.

``orderbook.{1,50,200,1000}.SYM``: a snapshot on subscribe, then deltas of the top-N view with ``u``
+1 per message (per topic), ``seq`` = the model's update id, ``cts``/``ts`` in ms; level 1 sends
snapshots only (re-sent unchanged after 3 s with the same ``u``). ``orderbook.500`` is rejected
(``success:false``) as on the real venue since 2025. ``publicTrade``, ``tickers`` (snapshot, then
field deltas every 100 ms) and ``allLiquidation`` follow protocols.md B.3–B.5.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable

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

VENUE = "bybit-linear"
PATH = "/v5/public/linear"
BOOK_DEPTHS = {1: 10, 50: 20, 200: 100, 1000: 200}  # depth -> push interval (ms)
TICKER_INTERVAL_MS = 100
LEVEL1_RESEND_MS = 3000


def _rest_ok(result: str, ms: int) -> str:
    return f'{{"retCode":0,"retMsg":"OK","result":{result},"retExtInfo":{{}},"time":{ms}}}'


class _BookTopic:
    """What one ``orderbook.N.SYM`` topic has told its subscribers: the top-N view as last sent."""

    __slots__ = ("symbol", "depth", "topic", "u", "sent", "pend", "all_visible", "next_flush_ns",
                 "last_sent_ns", "subs", "dirty")

    def __init__(self, symbol: str, depth: int) -> None:
        self.symbol = symbol
        self.depth = depth
        self.topic = f"orderbook.{depth}.{symbol}"
        self.u = 20_000_000  # real topics start far from u=1 (which means "service restarted")
        self.sent: dict[int, dict[int, int]] = {BID: {}, ASK: {}}
        self.pend: dict[int, set[int]] = {BID: set(), ASK: set()}
        self.all_visible = False
        self.next_flush_ns = 0
        self.last_sent_ns = 0
        self.subs: set[ClientConn] = set()
        self.dirty = False


class BybitVenue:
    """The Bybit v5 linear side of the simulator: topics, encoders, REST."""

    name = VENUE

    def __init__(self, model: MarketModel | None, specs: Iterable[SymbolSpec], coalesce: bool = True) -> None:
        self.model = model
        self.specs = {s.symbol: s for s in specs}
        self.fmt = {s.symbol: Fmt(s) for s in self.specs.values()}
        self.coalesce = coalesce
        self.books: dict[str, _BookTopic] = {}
        self.subs: dict[str, set[ClientConn]] = {}  # non-book topics
        self._tickers: dict[str, dict[str, str]] = {}
        self._ticker_changed: dict[str, dict[str, str]] = {}
        self._next_ticker_ns = 0
        self._last_price: dict[str, int] = {}
        self._cs = 1_000_000_000
        self._last_mark: dict[str, MarkUpdate] = {}
        # Capture mode (no model): subscriptions are only registered; the replay calls this hook so
        # it can send a late subscriber a snapshot rebuilt from the recording.
        self.attach_hook: Callable[[ClientConn, str, int], None] | None = None

    # -- websocket control --------------------------------------------------------------------
    def open(self, conn: ClientConn, path: str, query: dict[str, str]) -> bool:
        """Attach a connection on ``/v5/public/linear``; False for other paths."""
        if path.rstrip("/") != PATH:
            return False
        conn.route = "linear"
        return True

    def _valid(self, topic: str) -> bool:
        parts = topic.split(".")
        if len(parts) == 3 and parts[0] == "orderbook":
            return parts[1].isdigit() and int(parts[1]) in BOOK_DEPTHS and parts[2] in self.specs
        return len(parts) == 2 and parts[0] in ("publicTrade", "tickers", "allLiquidation") \
            and parts[1] in self.specs

    def on_text(self, conn: ClientConn, text: str, now_ns: int) -> None:
        """One client frame: subscribe / unsubscribe / ping."""
        try:
            req = json.loads(text)
        except ValueError:
            conn.reply(self._ack(conn, "", False, f"error:unmarshal error,data:{text[:64]}", ""))
            return
        if not isinstance(req, dict):
            conn.reply(self._ack(conn, "", False, "error:invalid request", ""))
            return
        op = req.get("op")
        req_id = str(req.get("req_id", ""))
        if op == "ping":
            conn.reply(self._ack(conn, "ping", True, "pong", req_id))
            return
        if op not in ("subscribe", "unsubscribe"):
            conn.reply(self._ack(conn, str(op), False, f"error:unsupported op:{op}", req_id))
            return
        args = req.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            conn.reply(self._ack(conn, op, False, "error:args must be a list of topics", req_id))
            return
        if op == "unsubscribe":
            for topic in args:
                self._drop(conn, topic)
            conn.reply(self._ack(conn, op, True, "", req_id))
            return
        bad = [t for t in args if not self._valid(t)]
        dup = [t for t in args if t in conn.streams]
        good = [t for t in args if t not in bad and t not in dup]
        if bad:
            conn.reply(self._ack(conn, op, False, "error:handler not found,topic:" + ",".join(bad), req_id))
        elif dup:
            conn.reply(self._ack(conn, op, False, "error:already subscribed,topic:" + ",".join(dup), req_id))
        else:
            conn.reply(self._ack(conn, op, True, "", req_id))
        for topic in good:
            conn.streams.append(topic)
            self._attach(conn, topic, now_ns)

    def _ack(self, conn: ClientConn, op: str, ok: bool, msg: str, req_id: str) -> str:
        return json.dumps({"success": ok, "ret_msg": msg, "conn_id": conn.conn_id, "req_id": req_id, "op": op},
                          separators=(",", ":"))

    def _attach(self, conn: ClientConn, topic: str, now_ns: int) -> None:
        parts = topic.split(".")
        if self.model is None:
            self.subs.setdefault(topic, set()).add(conn)
            if self.attach_hook is not None:
                self.attach_hook(conn, topic, now_ns)
            return
        if parts[0] == "orderbook":
            depth, symbol = int(parts[1]), parts[2]
            book = self.books.get(topic)
            if book is None:
                book = self.books[topic] = _BookTopic(symbol, depth)
            if not book.subs:
                self._reset_view(book)
            else:
                self._flush_book(book, now_ns)  # bring the view up to date before snapshotting it
            book.subs.add(conn)
            conn.push(self._book_message(book, "snapshot", self._view(book), now_ns, now_ns))
            return
        self.subs.setdefault(topic, set()).add(conn)
        if parts[0] == "tickers":
            conn.push(self._ticker_message(parts[1], "snapshot", self._ticker_state(parts[1]), now_ns))

    def _drop(self, conn: ClientConn, topic: str) -> None:
        if topic in conn.streams:
            conn.streams.remove(topic)
        book = self.books.get(topic)
        if book is not None:
            book.subs.discard(conn)
        subs = self.subs.get(topic)
        if subs is not None:
            subs.discard(conn)

    def close(self, conn: ClientConn) -> None:
        """Forget a connection."""
        for topic in list(conn.streams):
            self._drop(conn, topic)

    # -- order book ---------------------------------------------------------------------------
    def _reset_view(self, book: _BookTopic) -> None:
        assert self.model is not None
        sb = self.model.books[book.symbol]
        for side in (BID, ASK):
            t, q = sb.levels(side, book.depth)
            book.sent[side] = dict(zip(t.tolist(), q.tolist(), strict=True))
            book.pend[side] = set()
        book.all_visible = sb.level_count[BID] <= book.depth and sb.level_count[ASK] <= book.depth
        book.u += 1
        book.dirty = False

    def _view(self, book: _BookTopic) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return (sorted(book.sent[BID].items(), reverse=True), sorted(book.sent[ASK].items()))

    def _book_message(self, book: _BookTopic, kind: str, levels: tuple, exch_ns: int, now_ns: int,
                      seq: int | None = None) -> str:
        f = self.fmt[book.symbol]
        px, qty = f.px, f.qty
        # Bybit deletes a level with a bare "0" (protocols.md B.2 real delta), whatever the lot decimals.
        b = ",".join([f'["{px(t)}","{qty(q) if q else "0"}"]' for t, q in levels[0]])
        a = ",".join([f'["{px(t)}","{qty(q) if q else "0"}"]' for t, q in levels[1]])
        if seq is None:
            seq = self.model.books[book.symbol].update_id if self.model is not None else book.u
        ts = now_ns // 1_000_000
        if book.depth == 1:  # level 1: ts before type (docs "reminder")
            return (f'{{"topic":"{book.topic}","ts":{ts},"type":"{kind}","data":{{"s":"{book.symbol}",'
                    f'"b":[{b}],"a":[{a}],"u":{book.u},"seq":{seq}}},"cts":{exch_ns // 1_000_000}}}')
        return (f'{{"topic":"{book.topic}","type":"{kind}","ts":{ts},"data":{{"s":"{book.symbol}",'
                f'"b":[{b}],"a":[{a}],"u":{book.u},"seq":{seq}}},"cts":{exch_ns // 1_000_000}}}')

    def _flush_book(self, book: _BookTopic, now_ns: int) -> None:
        """Send what changed in the top-N view since the last message (nothing when nothing did)."""
        assert self.model is not None
        sb = self.model.books[book.symbol]
        n = book.depth
        all_visible = sb.level_count[BID] <= n and sb.level_count[ASK] <= n
        changes: dict[int, list[tuple[int, int]]] = {BID: [], ASK: []}
        for side in (BID, ASK):
            sent = book.sent[side]
            if all_visible and book.all_visible:
                for tick in book.pend[side]:
                    q = sb.lots_at(side, tick)
                    if sent.get(tick, 0) != q:
                        changes[side].append((tick, q))
                        if q:
                            sent[tick] = q
                        else:
                            sent.pop(tick, None)
            else:
                t, q = sb.levels(side, n)
                new = dict(zip(t.tolist(), q.tolist(), strict=True))
                changes[side] = [(k, v) for k, v in new.items() if sent.get(k) != v]
                changes[side] += [(k, 0) for k in sent if k not in new]
                book.sent[side] = new
            book.pend[side] = set()
        book.all_visible = all_visible
        book.dirty = False
        book.next_flush_ns = now_ns + BOOK_DEPTHS[n] * 1_000_000
        if n == 1:
            if changes[BID] or changes[ASK] or now_ns - book.last_sent_ns >= LEVEL1_RESEND_MS * 1_000_000:
                if changes[BID] or changes[ASK]:
                    book.u += 1
                book.last_sent_ns = now_ns
                self._push_book(book, self._book_message(book, "snapshot", self._view(book), now_ns, now_ns))
            return
        if not changes[BID] and not changes[ASK]:
            return
        book.u += 1
        book.last_sent_ns = now_ns
        bids = sorted(changes[BID], reverse=True)
        asks = sorted(changes[ASK])
        self._push_book(book, self._book_message(book, "delta", (bids, asks), now_ns, now_ns))

    def flush_all(self, far_ns: int) -> None:
        """Send every dirty book view now."""
        for book in self.books.values():
            if book.subs and book.dirty:
                self._flush_book(book, self.model.now_ns if self.model is not None else far_ns)

    def _push_event(self, book: _BookTopic, ev: BookChange) -> None:
        """One delta carrying exactly one model message's changes (whole-book views only)."""
        for side, changes in ((BID, ev.bids), (ASK, ev.asks)):
            sent = book.sent[side]
            for tick, lots in changes:
                if lots:
                    sent[tick] = lots
                else:
                    sent.pop(tick, None)
        book.u += 1
        book.last_sent_ns = ev.exch_ns
        levels = (sorted(ev.bids, reverse=True), sorted(ev.asks))
        self._push_book(book, self._book_message(book, "delta", levels, ev.exch_ns, ev.exch_ns, ev.last_id))

    def _push_book(self, book: _BookTopic, text: str) -> None:
        for conn in book.subs:
            conn.push(text)

    # -- publishing ---------------------------------------------------------------------------
    def on_events(self, events: list, now_ns: int) -> None:
        """Publish one model step's messages and the timed pushes due by ``now_ns``."""
        active_books = [b for b in self.books.values() if b.subs]
        for ev in events:
            kind = type(ev)
            if kind is BookChange:
                for book in active_books:
                    if book.symbol != ev.symbol:
                        continue
                    if not self.coalesce and book.depth == 1000 and book.all_visible:
                        # The model never holds 1000 levels a side (max_distance bounds it), so this
                        # view is the whole book: each model message goes out as it happened.
                        self._push_event(book, ev)
                        continue
                    pb, pa = book.pend[BID], book.pend[ASK]
                    for t, _ in ev.bids:
                        pb.add(t)
                    for t, _ in ev.asks:
                        pa.add(t)
                    book.dirty = True
                self._touch_top(ev)
            elif kind is TradeBurst:
                self._on_trades(ev)
            elif kind is MarkUpdate:
                self._last_mark[ev.symbol] = ev
                self._on_mark(ev)
            elif kind is Liquidation:
                self._on_liquidation(ev)
        for book in active_books:
            due = not self.coalesce or now_ns >= book.next_flush_ns  # real-time: every step
            if (book.dirty and due) or (
                    book.depth == 1 and now_ns - book.last_sent_ns >= LEVEL1_RESEND_MS * 1_000_000):
                self._flush_book(book, now_ns)
        if now_ns >= self._next_ticker_ns:
            self._next_ticker_ns = now_ns + TICKER_INTERVAL_MS * 1_000_000
            self._flush_tickers(now_ns)

    def publish(self, topic: str, text: str) -> None:
        """Push one topic message to its subscribers."""
        for conn in self.subs.get(topic, ()):
            conn.push(text)

    def _on_trades(self, ev: TradeBurst) -> None:
        sym = ev.symbol
        f = self.fmt[sym]
        self._ticker_update(sym, {"lastPrice": f.px(ev.fills[-1][0])})
        topic = f"publicTrade.{sym}"
        if not self.subs.get(topic):
            self._last_price[sym] = ev.fills[-1][0]
            return
        ms = ev.exch_ns // 1_000_000
        side = "Buy" if ev.aggressor == BID else "Sell"
        items = []
        last = self._last_price.get(sym)
        for k, (tick, lots) in enumerate(ev.fills):
            if last is None or tick == last:
                direction = "ZeroPlusTick" if ev.aggressor == BID else "ZeroMinusTick"
            else:
                direction = "PlusTick" if tick > last else "MinusTick"
            last = tick
            tid = ev.first_trade_id + k
            uid = f"{tid & 0xFFFFFFFF:08x}-{(tid >> 32) & 0xFFFF:04x}-5{zlib.crc32(sym.encode()) & 0xFFF:03x}-8000-{tid:012x}"
            items.append(f'{{"T":{ms},"s":"{sym}","S":"{side}","v":"{f.qty(lots)}","p":"{f.px(tick)}",'
                         f'"L":"{direction}","i":"{uid}","BT":false,"RPI":false,"seq":{ev.first_trade_id + k}}}')
        self._last_price[sym] = last if last is not None else ev.fills[-1][0]
        self.publish(topic, f'{{"topic":"{topic}","type":"snapshot","ts":{ms},"data":[{",".join(items)}]}}')

    def _on_liquidation(self, ev: Liquidation) -> None:
        topic = f"allLiquidation.{ev.symbol}"
        if not self.subs.get(topic):
            return
        f = self.fmt[ev.symbol]
        ms = ev.exch_ns // 1_000_000
        side = "Buy" if ev.side == ASK else "Sell"  # Buy = a long was liquidated
        self.publish(topic, f'{{"topic":"{topic}","type":"snapshot","ts":{ms},"data":[{{"T":{ms},'
                          f'"s":"{ev.symbol}","S":"{side}","v":"{f.qty(ev.lots)}","p":"{f.px(ev.tick)}"}}]}}')

    # -- tickers ------------------------------------------------------------------------------
    def _ticker_state(self, sym: str) -> dict[str, str]:
        state = self._tickers.get(sym)
        if state is None:
            spec = self.specs[sym]
            mark = self._last_mark.get(sym) or (self.model.mark(sym) if self.model else None)
            f = self.fmt[sym]
            mp = f"{mark.mark_price:.{spec.price_decimals}f}" if mark else "0"
            ip = f"{mark.index_price:.{spec.price_decimals}f}" if mark else "0"
            oi = mark.open_interest if mark else spec.open_interest
            top = self.model.books[sym].top() if self.model else None
            state = {
                "symbol": sym, "tickDirection": "ZeroPlusTick", "price24hPcnt": "0.012345", "lastPrice": mp,
                "prevPrice24h": mp, "highPrice24h": mp, "lowPrice24h": mp, "prevPrice1h": mp,
                "markPrice": mp, "indexPrice": ip, "openInterest": f"{oi:.{spec.qty_decimals}f}",
                "openInterestValue": f"{oi * (mark.mark_price if mark else 0):.2f}",
                "turnover24h": "12345678.9000", "volume24h": "23456.7000", "fundingIntervalHour": "8",
                "fundingCap": "0.005", "nextFundingTime": str(mark.next_funding_ms if mark else 0),
                "fundingRate": f"{mark.funding_rate:.6f}" if mark else "0",
                "bid1Price": f.px(top.bid_tick) if top and top.bid_tick is not None else "",
                "bid1Size": f.qty(top.bid_lots) if top else "",
                "ask1Price": f.px(top.ask_tick) if top and top.ask_tick is not None else "",
                "ask1Size": f.qty(top.ask_lots) if top else "",
                "preOpenPrice": "", "preQty": "", "curPreListingPhase": "",
            }
            self._tickers[sym] = state
        return state

    def _ticker_update(self, sym: str, fields: dict[str, str]) -> None:
        state = self._ticker_state(sym)
        changed = self._ticker_changed.setdefault(sym, {})
        for key, value in fields.items():
            if state.get(key) != value:
                state[key] = value
                changed[key] = value

    def _touch_top(self, ev: BookChange) -> None:
        if not self.subs.get(f"tickers.{ev.symbol}"):
            return
        f = self.fmt[ev.symbol]
        top = ev.top
        self._ticker_update(ev.symbol, {
            "bid1Price": f.px(top.bid_tick) if top.bid_tick is not None else "",
            "bid1Size": f.qty(top.bid_lots),
            "ask1Price": f.px(top.ask_tick) if top.ask_tick is not None else "",
            "ask1Size": f.qty(top.ask_lots)})

    def _on_mark(self, ev: MarkUpdate) -> None:
        spec = self.specs[ev.symbol]
        self._ticker_update(ev.symbol, {
            "markPrice": f"{ev.mark_price:.{spec.price_decimals}f}",
            "indexPrice": f"{ev.index_price:.{spec.price_decimals}f}",
            "fundingRate": f"{ev.funding_rate:.6f}", "nextFundingTime": str(ev.next_funding_ms),
            "openInterest": f"{ev.open_interest:.{spec.qty_decimals}f}",
            "openInterestValue": f"{ev.open_interest * ev.mark_price:.2f}"})

    def _ticker_message(self, sym: str, kind: str, data: dict[str, str], now_ns: int) -> str:
        self._cs += 1
        body = json.dumps(data if kind == "snapshot" else {"symbol": sym, **data}, separators=(",", ":"))
        return f'{{"topic":"tickers.{sym}","type":"{kind}","data":{body},"cs":{self._cs},"ts":{now_ns // 1_000_000}}}'

    def _flush_tickers(self, now_ns: int) -> None:
        for sym, changed in self._ticker_changed.items():
            if changed and self.subs.get(f"tickers.{sym}"):
                self.publish(f"tickers.{sym}", self._ticker_message(sym, "delta", changed, now_ns))
        self._ticker_changed = {}

    # -- REST ---------------------------------------------------------------------------------
    def rest(self, path: str, query: dict[str, str], now_ns: int) -> tuple[int, str]:
        """Answer a GET on ``/v5/market/...``: (HTTP status, JSON body); errors in ``retCode``."""
        ms = now_ns // 1_000_000
        if path == "/v5/market/time":
            return 200, _rest_ok(f'{{"timeSecond":"{ms // 1000}","timeNano":"{now_ns}"}}', ms)
        if path not in ("/v5/market/instruments-info", "/v5/market/orderbook", "/v5/market/tickers"):
            return 404, '{"retCode":10404,"retMsg":"Not found","result":{},"retExtInfo":{},"time":' + f"{ms}}}"
        category = query.get("category", "")
        if category != "linear":
            return 200, (f'{{"retCode":10001,"retMsg":"params error: category invalid","result":{{}},'
                         f'"retExtInfo":{{}},"time":{ms}}}')
        symbol = query.get("symbol", "")
        if path == "/v5/market/instruments-info":
            chosen = [s for s in self.specs.values() if not symbol or s.symbol == symbol]
            items = ",".join(self._instrument(s) for s in chosen)
            return 200, _rest_ok(f'{{"category":"linear","list":[{items}],"nextPageCursor":""}}', ms)
        if symbol not in self.specs:
            return 200, (f'{{"retCode":10001,"retMsg":"params error: symbol invalid","result":{{}},'
                         f'"retExtInfo":{{}},"time":{ms}}}')
        if path == "/v5/market/tickers":
            state = self._ticker_state(symbol)
            return 200, _rest_ok(f'{{"category":"linear","list":[{json.dumps(state, separators=(",", ":"))}]}}', ms)
        try:
            limit = int(query.get("limit", "1"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 500:
            return 200, (f'{{"retCode":10001,"retMsg":"params error: limit invalid","result":{{}},'
                         f'"retExtInfo":{{}},"time":{ms}}}')
        assert self.model is not None
        u, (bt, bl), (at, al) = self.model.snapshot(symbol, limit)
        f = self.fmt[symbol]
        b = ",".join([f'["{f.px(t)}","{f.qty(q)}"]' for t, q in zip(bt.tolist(), bl.tolist(), strict=True)])
        a = ",".join([f'["{f.px(t)}","{f.qty(q)}"]' for t, q in zip(at.tolist(), al.tolist(), strict=True)])
        return 200, _rest_ok(f'{{"s":"{symbol}","b":[{b}],"a":[{a}],"ts":{ms},"u":{u},"seq":{u},"cts":{ms}}}', ms)

    def _instrument(self, s: SymbolSpec) -> str:
        tick = f"{s.tick_size:.{s.price_decimals}f}"
        step = f"{s.lot_size:.{s.qty_decimals}f}"
        return json.dumps({
            "symbol": s.symbol, "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": s.base,
            "quoteCoin": "USDT", "launchTime": "1700000000000", "deliveryTime": "0", "deliveryFeeRate": "",
            "priceScale": str(s.price_decimals),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "25.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": tick, "maxPrice": "1999999.8", "tickSize": tick},
            "lotSizeFilter": {"maxOrderQty": "10000000", "minOrderQty": step, "qtyStep": step,
                              "postOnlyMaxOrderQty": "10000000", "maxMktOrderQty": "1000000",
                              "minNotionalValue": "5"},
            "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": "USDT", "copyTrading": "both",
            "upperFundingRate": "0.005", "lowerFundingRate": "-0.005", "isPreListing": False,
            "preListingInfo": None, "displayName": "", "symbolType": "", "forbidUplWithdrawal": False,
        }, separators=(",", ":"))
