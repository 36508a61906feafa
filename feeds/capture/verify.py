"""Check a capture: sequence continuity and every gap, book never crossed, top of book against the venue.

The checker is deliberately independent of the feed adapters: it decodes the raw JSON itself and keeps
plain price -> size books, so it cross-checks the adapters' parsers instead of trusting them.

* Binance USDⓈ-M: the A.4 sync per symbol (``u < lastUpdateId`` dropped, first ``U <= id <= u``, then
  ``pu == previous u``); each ``bookTicker`` whose ``u`` equals the ``u`` of an applied diff (or the
  snapshot) is compared, price and size, with the book at that id.
* Bybit v5: per connection and topic, reset on ``snapshot``, ``u == previous u + 1`` for deltas; an
  ``orderbook.1`` message is compared with a deeper book of the same symbol at the same ``seq``;
  ``tickers`` best bid/ask are compared with the book at the newest ``seq <= cs`` and reported as
  agreement only (the two streams are sampled at different instants, so a difference is not a defect).
* Tardis CSV: crossed-book check per timestamp group.

Defects (non-zero exit): garbage or undecodable lines, sequence breaks, a crossed book, a top-of-book
mismatch. Warnings: a truncated last line or compressed stream (a killed recorder), reconnects, books
that never synced.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec

from feeds.capture.readers import (
    BINANCE_USDM,
    BYBIT_LINEAR,
    CaptureReader,
    RawRecord,
    open_capture,
)

_decode = msgspec.json.Decoder().decode
_MAX_EXAMPLES = 5
_TOP_MEMORY = 4096  # applied update ids kept for a late bookTicker


class _Book:
    """Price -> size on each side with cached best prices (float keys: the venue's decimals are exact)."""

    __slots__ = ("bids", "asks", "best_bid", "best_ask")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.best_bid = -math.inf
        self.best_ask = math.inf

    def load(self, bids: list, asks: list) -> None:
        self.bids = {float(p): float(q) for p, q in bids if float(q) > 0}
        self.asks = {float(p): float(q) for p, q in asks if float(q) > 0}
        self.best_bid = max(self.bids, default=-math.inf)
        self.best_ask = min(self.asks, default=math.inf)

    def apply(self, bids: list, asks: list) -> None:
        side = self.bids
        best = self.best_bid
        for p, q in bids:
            px = float(p)
            qty = float(q)
            if qty > 0:
                side[px] = qty
                if px > best:
                    best = px
            elif side.pop(px, None) is not None and px == best:
                best = max(side, default=-math.inf)
        self.best_bid = best
        side = self.asks
        best = self.best_ask
        for p, q in asks:
            px = float(p)
            qty = float(q)
            if qty > 0:
                side[px] = qty
                if px < best:
                    best = px
            elif side.pop(px, None) is not None and px == best:
                best = min(side, default=math.inf)
        self.best_ask = best

    def top(self) -> tuple[float, float, float, float]:
        return (self.best_bid, self.bids.get(self.best_bid, 0.0), self.best_ask, self.asks.get(self.best_ask, 0.0))

    @property
    def crossed(self) -> bool:
        return self.best_bid >= self.best_ask


@dataclass(slots=True)
class BookCheck:
    """What verify found for one book (venue stream of one symbol on one connection)."""

    name: str
    messages: int = 0
    applied: int = 0
    synced: bool = False
    dropped_before_sync: int = 0
    stale: int = 0
    gaps: list[str] = field(default_factory=list)
    reconnects: int = 0
    crossed: int = 0
    crossed_examples: list[str] = field(default_factory=list)
    top_compared: int = 0
    top_mismatches: int = 0
    top_examples: list[str] = field(default_factory=list)
    ticker_compared: int = 0
    ticker_agree: int = 0

    def add_gap(self, text: str) -> None:
        self.gaps.append(text)

    def add_crossed(self, text: str) -> None:
        self.crossed += 1
        if len(self.crossed_examples) < _MAX_EXAMPLES:
            self.crossed_examples.append(text)

    def compare(self, what: str, book_top: tuple, venue_top: tuple) -> None:
        self.top_compared += 1
        if book_top != venue_top:
            self.top_mismatches += 1
            if len(self.top_examples) < _MAX_EXAMPLES:
                self.top_examples.append(f"{what}: book {_fmt_top(book_top)} vs venue {_fmt_top(venue_top)}")


def _fmt_top(top: tuple) -> str:
    bb, bq, ba, aq = top
    return f"{bq:g}@{bb:g} / {aq:g}@{ba:g}"


@dataclass(slots=True)
class VerifyReport:
    """The result of :func:`verify_capture`: reading stats, per-book checks, defects and warnings."""

    path: Path
    format: str
    venue: str | None
    lines: int = 0
    records: int = 0
    malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)
    garbage: int = 0
    garbage_examples: list[tuple[int, str]] = field(default_factory=list)
    truncated_last_line: bool = False
    truncated_stream: bool = False
    first_ns: int = 0
    last_ns: int = 0
    books: list[BookCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def defects(self) -> list[str]:
        """Real problems with the data (non-zero exit)."""
        out = []
        if self.garbage:
            out.append(f"{self.garbage} garbage line(s) skipped")
        if self.malformed:
            out.append(f"{self.malformed} undecodable message(s)")
        for b in self.books:
            if b.gaps:
                out.append(f"{b.name}: {len(b.gaps)} sequence gap(s)")
            if b.crossed:
                out.append(f"{b.name}: crossed book {b.crossed} time(s)")
            if b.top_mismatches:
                out.append(f"{b.name}: {b.top_mismatches} top-of-book mismatch(es) of {b.top_compared}")
        return out

    @property
    def warnings(self) -> list[str]:
        """Worth knowing, not a defect: truncation by a killed recorder, reconnects, unsynced books."""
        out = []
        if self.truncated_last_line:
            out.append("truncated last line ignored (recording was cut mid-line)")
        if self.truncated_stream:
            out.append("compressed stream has no end marker (recording was killed); read up to the cut")
        for b in self.books:
            if b.reconnects:
                out.append(f"{b.name}: {b.reconnects} reconnect(s)")
            if not b.synced and b.messages:
                out.append(f"{b.name}: never synced (no snapshot)")
        return out + self.notes

    @property
    def ok(self) -> bool:
        """No defects."""
        return not self.defects

    def text(self) -> str:
        """The human report ``depthdesk verify`` prints."""
        span = (self.last_ns - self.first_ns) / 1e9 if self.records else 0.0
        lines = [
            f"capture   {self.path}",
            f"format    {self.format}   venue {self.venue or 'unknown'}",
            f"records   {self.records} of {self.lines} lines, {span:.1f} s of local time",
            f"garbage   {self.garbage} line(s)" + "".join(f"\n  line {n}: {t!r}" for n, t in self.garbage_examples),
            f"malformed {self.malformed} message(s)" + "".join(f"\n  {t}" for t in self.malformed_examples),
            f"truncated {'last line cut' if self.truncated_last_line else 'no'}"
            f"{', stream not finished' if self.truncated_stream else ''}",
        ]
        for b in self.books:
            lines.append(f"book {b.name}: {b.messages} msgs, {b.applied} applied, synced={'yes' if b.synced else 'no'}, "
                         f"dropped before sync {b.dropped_before_sync}, stale {b.stale}")
            lines.append(f"  gaps {len(b.gaps)}" + "".join(f"\n    {g}" for g in b.gaps[:20]))
            lines.append(f"  crossed {b.crossed}" + "".join(f"\n    {c}" for c in b.crossed_examples))
            if b.top_compared or b.top_mismatches:
                lines.append(f"  top of book vs venue: {b.top_compared} compared, {b.top_mismatches} mismatched"
                             + "".join(f"\n    {t}" for t in b.top_examples))
            if b.ticker_compared:
                pct = 100.0 * b.ticker_agree / b.ticker_compared
                lines.append(f"  tickers best bid/ask agree {b.ticker_agree}/{b.ticker_compared} ({pct:.0f}%, info)")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        defects = self.defects
        lines.append("result: OK" if not defects else "result: DEFECTS\n" + "\n".join(f"  - {d}" for d in defects))
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Binance USDⓈ-M


class _BinanceSymbol:
    __slots__ = ("check", "book", "synced", "bridging", "last_u", "buffer", "tops", "top_order", "pending")

    def __init__(self, symbol: str) -> None:
        self.check = BookCheck(f"{BINANCE_USDM}:{symbol}")
        self.book = _Book()
        self.synced = False
        self.bridging = False  # the next diff must satisfy U <= lastUpdateId <= u
        self.last_u = 0
        self.buffer: deque[dict] = deque(maxlen=100_000)
        self.tops: dict[int, tuple] = {}
        self.top_order: deque[int] = deque()
        self.pending: dict[int, tuple] = {}


class _BinanceChecker:
    def __init__(self, report: VerifyReport) -> None:
        self.report = report
        self.symbols: dict[str, _BinanceSymbol] = {}

    def sym(self, symbol: str) -> _BinanceSymbol:
        s = self.symbols.get(symbol)
        if s is None:
            s = self.symbols[symbol] = _BinanceSymbol(symbol)
            self.report.books.append(s.check)
        return s

    def on_record(self, rec: RawRecord, obj: dict) -> None:
        if rec.channel.startswith("rest:"):
            if "lastUpdateId" in obj:
                query = parse_qs(urlsplit(rec.channel[5:]).query)
                symbol = query.get("symbol", [""])[0] or self._owner_of(obj["lastUpdateId"])
                if symbol:
                    self.snapshot(self.sym(symbol), obj, rec.local_ns)
                else:
                    self.report.notes.append(f"depth snapshot id {obj['lastUpdateId']} matches no symbol's stream")
            return
        data = obj.get("data", obj)
        if not isinstance(data, dict):
            return
        kind = data.get("e")
        if kind == "depthUpdate":
            self.diff(self.sym(data["s"]), data)
        elif kind == "bookTicker":
            self.ticker(self.sym(data["s"]), data)

    def on_open(self) -> None:
        for s in self.symbols.values():
            if s.synced:
                s.check.reconnects += 1
            s.synced = False
            s.buffer.clear()

    def _owner_of(self, last_id: int) -> str:
        """A bare snapshot (hftbacktest lines carry no symbol): the unsynced stream it bridges."""
        waiting = [name for name, s in self.symbols.items() if not s.synced]
        if len(waiting) == 1:
            return waiting[0]
        for name in waiting:
            if any(d["U"] <= last_id <= d["u"] for d in self.symbols[name].buffer):
                return name
        return ""

    def snapshot(self, s: _BinanceSymbol, snap: dict, local_ns: int) -> None:
        check = s.check
        if s.synced:
            return  # an unsolicited late answer: the book is already live
        last_id = snap["lastUpdateId"]
        buf = s.buffer
        while buf and buf[0]["u"] < last_id:
            buf.popleft()
            check.dropped_before_sync += 1
        if buf and buf[0]["U"] > last_id:
            check.add_gap(f"snapshot lastUpdateId={last_id} older than the first buffered U={buf[0]['U']}")
            return
        s.book.load(snap["bids"], snap["asks"])
        s.synced = True
        check.synced = True
        s.last_u = last_id
        self._after_apply(s, last_id, f"snapshot {last_id}")
        s.bridging = True
        pending = list(buf)
        buf.clear()
        for d in pending:
            self.diff(s, d, counted=True)

    def diff(self, s: _BinanceSymbol, d: dict, counted: bool = False) -> None:
        check = s.check
        if not counted:
            check.messages += 1
        if not s.synced:
            s.buffer.append(d)
            return
        if s.bridging:
            if d["u"] < s.last_u:
                check.dropped_before_sync += 1
            elif d["U"] <= s.last_u <= d["u"]:
                s.bridging = False
                self._apply(s, d)
            else:
                check.add_gap(f"first diff after snapshot U={d['U']} u={d['u']} does not bridge {s.last_u}")
                s.synced = False
                s.bridging = False
                s.buffer.append(d)
            return
        if d["pu"] == s.last_u:
            self._apply(s, d)
        elif d["u"] <= s.last_u:
            check.stale += 1
        else:
            check.add_gap(f"pu={d['pu']} but previous u={s.last_u} (U={d['U']} u={d['u']})")
            s.synced = False
            s.buffer.clear()
            s.buffer.append(d)

    def _apply(self, s: _BinanceSymbol, d: dict) -> None:
        s.book.apply(d["b"], d["a"])
        s.check.applied += 1
        s.last_u = d["u"]
        self._after_apply(s, d["u"], f"u={d['u']}")

    def _after_apply(self, s: _BinanceSymbol, u: int, label: str) -> None:
        book = s.book
        if book.crossed:
            s.check.add_crossed(f"{label}: bid {book.best_bid:g} >= ask {book.best_ask:g}")
        top = book.top()
        s.tops[u] = top
        s.top_order.append(u)
        if len(s.top_order) > _TOP_MEMORY:
            s.tops.pop(s.top_order.popleft(), None)
        venue = s.pending.pop(u, None)
        if venue is not None:
            s.check.compare(f"bookTicker u={u}", top, venue)
        if len(s.pending) > _TOP_MEMORY:  # tickers whose id never came as a diff's final id
            for old in [k for k in s.pending if k < u]:
                del s.pending[old]

    def ticker(self, s: _BinanceSymbol, t: dict) -> None:
        venue = (float(t["b"]), float(t["B"]), float(t["a"]), float(t["A"]))
        u = t["u"]
        top = s.tops.get(u)
        if top is not None:
            s.check.compare(f"bookTicker u={u}", top, venue)
        elif not s.synced or u > s.last_u:
            s.pending[u] = venue


# ---------------------------------------------------------------------------------------------
# Bybit v5


class _BybitBook:
    __slots__ = ("check", "book", "last_u", "synced", "by_seq", "seq_order", "snapshot_only")

    def __init__(self, name: str, snapshot_only: bool) -> None:
        self.check = BookCheck(name)
        self.book = _Book()
        self.last_u = 0
        self.synced = False
        self.by_seq: dict[int, tuple] = {}
        self.seq_order: deque[int] = deque()
        self.snapshot_only = snapshot_only


class _BybitChecker:
    def __init__(self, report: VerifyReport) -> None:
        self.report = report
        self.books: dict[tuple[str, str, str], _BybitBook] = {}  # (connection, depth, symbol)
        self.pending_l1: dict[tuple[str, str, int], tuple] = {}

    def _book(self, conn: str, depth: str, symbol: str) -> _BybitBook:
        key = (conn, depth, symbol)
        b = self.books.get(key)
        if b is None:
            where = "" if conn in ("ws", "") or "/linear" in conn else f" [{conn.rsplit('/', 1)[-1]}]"
            b = self.books[key] = _BybitBook(f"{BYBIT_LINEAR}:{symbol} orderbook.{depth}{where}", depth == "1")
            self.report.books.append(b.check)
        return b

    def on_open(self, conn: str) -> None:
        for (c, _d, _s), b in self.books.items():
            if c == conn and b.synced:
                b.check.reconnects += 1
                b.synced = False

    def on_record(self, rec: RawRecord, obj: dict) -> None:
        topic = obj.get("topic")
        if not isinstance(topic, str):
            return
        conn = rec.channel[3:] if rec.channel.startswith("ws:") else rec.channel
        if topic.startswith("orderbook."):
            _, depth, symbol = topic.split(".", 2)
            self.orderbook(self._book(conn, depth, symbol), obj, conn, depth, symbol)
        elif topic.startswith("tickers."):
            self.tickers(conn, topic[8:], obj)

    def orderbook(self, b: _BybitBook, msg: dict, conn: str, depth: str, symbol: str) -> None:
        check = b.check
        check.messages += 1
        data = msg["data"]
        u = data["u"]
        if msg.get("type") == "snapshot" or u == 1:
            b.book.load(data["b"], data["a"])
            b.synced = True
            check.synced = True
        elif not b.synced:
            check.dropped_before_sync += 1
            return
        elif u == b.last_u + 1:
            b.book.apply(data["b"], data["a"])
        elif u <= b.last_u:
            check.stale += 1
            return
        else:
            check.add_gap(f"u jumped {b.last_u} -> {u} (seq {data.get('seq')})")
            b.synced = False
            return
        b.last_u = u
        check.applied += 1
        if b.book.crossed:
            check.add_crossed(f"u={u}: bid {b.book.best_bid:g} >= ask {b.book.best_ask:g}")
        seq = data.get("seq")
        if seq is None:
            return
        top = b.book.top()
        if b.snapshot_only:
            deeper = self._deeper(conn, symbol)
            if deeper is not None:
                ref = deeper.by_seq.get(seq)
                if ref is not None:
                    check.compare(f"orderbook.1 seq={seq}", ref, top)
                else:
                    self.pending_l1[(conn, symbol, seq)] = top
            return
        b.by_seq[seq] = top
        b.seq_order.append(seq)
        if len(b.seq_order) > _TOP_MEMORY:
            b.by_seq.pop(b.seq_order.popleft(), None)
        l1 = self.pending_l1.pop((conn, symbol, seq), None)
        if l1 is not None:
            level1 = self.books.get((conn, "1", symbol))
            if level1 is not None:
                level1.check.compare(f"orderbook.1 seq={seq}", top, l1)

    def _deeper(self, conn: str, symbol: str) -> _BybitBook | None:
        for (c, depth, s), b in self.books.items():
            if c == conn and s == symbol and depth != "1":
                return b
        return None

    def tickers(self, conn: str, symbol: str, msg: dict) -> None:
        data = msg.get("data") or {}
        cs = msg.get("cs")
        if "bid1Price" not in data or "ask1Price" not in data or cs is None:
            return
        b = self._deeper(conn, symbol)
        if b is None or not b.synced or not b.seq_order:
            return
        before = [s for s in b.seq_order if s <= cs]
        if not before:
            return
        top = b.by_seq.get(before[-1])
        if top is None:
            return
        b.check.ticker_compared += 1
        if (top[0], top[2]) == (float(data["bid1Price"]), float(data["ask1Price"])):
            b.check.ticker_agree += 1


# ---------------------------------------------------------------------------------------------
# Tardis CSV


class _TardisChecker:
    def __init__(self, report: VerifyReport) -> None:
        self.report = report
        self.books: dict[str, tuple[BookCheck, _Book]] = {}
        self.in_snapshot: dict[str, bool] = {}
        self.group_ts = -1

    def on_record(self, rec: RawRecord) -> None:
        if rec.channel != "tardis:book":
            return
        _exch, symbol, _ts, local_ts, is_snap, side, price, amount = rec.raw.split(",")
        entry = self.books.get(symbol)
        if entry is None:
            entry = self.books[symbol] = (BookCheck(f"tardis:{symbol}"), _Book())
            self.report.books.append(entry[0])
        check, book = entry
        if int(local_ts) != self.group_ts:
            self._close_groups()
            self.group_ts = int(local_ts)
        snap = is_snap == "true"
        if snap and not self.in_snapshot.get(symbol, False):
            book.load([], [])
            check.synced = True
        self.in_snapshot[symbol] = snap
        check.messages += 1
        check.applied += 1
        level = [(price, amount)]
        book.apply(level if side == "bid" else [], level if side != "bid" else [])

    def _close_groups(self) -> None:
        for check, book in self.books.values():
            if book.bids and book.asks and book.crossed:
                check.add_crossed(f"local_ts={self.group_ts}: bid {book.best_bid:g} >= ask {book.best_ask:g}")

    def finish(self) -> None:
        self._close_groups()


# ---------------------------------------------------------------------------------------------


def verify_capture(
    path: str | Path,
    venue: str | None = None,
    progress: Callable[[int], None] | None = None,
    reader: CaptureReader | None = None,
) -> VerifyReport:
    """Read the whole capture and check it; raises :class:`CaptureError` only when it is not a capture."""
    reader = reader or open_capture(path, venue)
    report = VerifyReport(Path(path), reader.format, reader.venue)
    binance = _BinanceChecker(report) if reader.venue == BINANCE_USDM else None
    bybit = _BybitChecker(report) if reader.venue == BYBIT_LINEAR else None
    tardis = _TardisChecker(report) if reader.format == "tardis" else None
    if binance is None and bybit is None and tardis is None:
        report.notes.append(f"venue {reader.venue or 'unknown'}: only the file structure was checked")
    opened: set[str] = set()
    n = 0
    for rec in reader:
        n += 1
        if not report.first_ns:
            report.first_ns = rec.local_ns
        report.last_ns = rec.local_ns
        if progress is not None and n % 20_000 == 0:
            progress(n)
        if tardis is not None:
            tardis.on_record(rec)
            continue
        if rec.channel.startswith("open:"):
            url = rec.channel[5:]
            if url in opened:
                if binance is not None:
                    binance.on_open()
                if bybit is not None:
                    bybit.on_open(url)
            opened.add(url)
            continue
        if binance is None and bybit is None:
            continue
        try:
            obj = _decode(rec.raw)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            if binance is not None:
                binance.on_record(rec, obj)
            else:
                bybit.on_record(rec, obj)  # type: ignore[union-attr]
        except (msgspec.DecodeError, ValueError, KeyError, TypeError, IndexError) as exc:
            report.malformed += 1
            if len(report.malformed_examples) < _MAX_EXAMPLES:
                report.malformed_examples.append(f"{type(exc).__name__}: {str(exc)[:60]} in {rec.raw[:60]!r}")
    if tardis is not None:
        tardis.finish()
    stats = reader.stats
    report.lines = stats.lines
    report.records = stats.records
    report.garbage = stats.garbage
    report.garbage_examples = list(stats.garbage_samples)
    report.truncated_last_line = stats.truncated_last_line
    report.truncated_stream = stats.truncated_stream
    return report
