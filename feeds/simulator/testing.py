"""Small reference clients for testing against the simulator (not the venue adapters).

``http_get`` is a dependency-free asyncio HTTP GET; :class:`BinanceSyncBook` and :class:`BybitBook`
apply the venues' documented book rules (protocols.md A.4, B.2) to raw messages, in the plainest
way, so a test can compare what a client would hold with ``SimulatorServer.levels()``.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from urllib.parse import urlsplit


async def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET ``url`` (http only); returns (status, body text)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 80), timeout)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode()


class BinanceSyncBook:
    """A client book following Binance's futures rule: buffer, snapshot, drop ``u < L``, ``pu`` chain."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.buffer: list[dict] = []
        self.last_u: int | None = None
        self.synced = False
        self.gaps = 0
        self.applied = 0
        self._first_pending = False  # synced from a snapshot, no event applied on top of it yet

    def on_event(self, data: dict) -> None:
        """Feed one ``depthUpdate`` payload (already unwrapped)."""
        if not self.synced:
            self.buffer.append(data)
            return
        if self._first_pending:
            last = self.last_u
            assert last is not None
            if data["u"] < last:
                return  # older than the snapshot: dropped (rule 4)
            if data["U"] <= last <= data["u"]:
                self._first_pending = False
                self._apply(data)
                return
            self.gaps += 1  # the snapshot is older than the stream: fetch again
            self.synced = False
            self.buffer = [data]
            return
        if data["pu"] != self.last_u:
            self.gaps += 1
            self.synced = False
            self.buffer = [data]
            return
        self._apply(data)

    def on_snapshot(self, snap: dict) -> bool:
        """Apply the REST snapshot and the buffered events; False when it must be re-fetched."""
        last = snap["lastUpdateId"]
        events = [e for e in self.buffer if e["u"] >= last]
        if events and events[0]["U"] > last:
            return False  # the snapshot is older than the buffer: fetch again
        self.bids = {Decimal(p): Decimal(q) for p, q in snap["bids"]}
        self.asks = {Decimal(p): Decimal(q) for p, q in snap["asks"]}
        self.last_u = last
        self.synced = True
        self.buffer = []
        self._first_pending = not events
        for i, e in enumerate(events):
            if i == 0:
                assert e["U"] <= last <= e["u"], "first event must straddle lastUpdateId"
            elif e["pu"] != self.last_u:
                self.gaps += 1
                self.synced = False
                self.buffer = events[i:]
                return False
            self._apply(e)
        return True

    def _apply(self, data: dict) -> None:
        for side, book in (("b", self.bids), ("a", self.asks)):
            for p, q in data[side]:
                price, qty = Decimal(p), Decimal(q)
                if qty == 0:
                    book.pop(price, None)
                else:
                    book[price] = qty
        self.last_u = data["u"]
        self.applied += 1

    def sides(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """(bids best-first, asks best-first)."""
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


class BybitBook:
    """A client book following Bybit v5: reset on snapshot, absolute deltas, ``u`` must go up by 1."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.u: int | None = None
        self.gaps = 0
        self.snapshots = 0

    def on_message(self, msg: dict) -> None:
        """Feed one ``orderbook.N.SYM`` message."""
        data = msg["data"]
        if msg["type"] == "snapshot":
            self.bids, self.asks = {}, {}
            self.snapshots += 1
        elif self.u is not None and data["u"] != self.u + 1:
            self.gaps += 1
        self.u = data["u"]
        for side, book in (("b", self.bids), ("a", self.asks)):
            for p, q in data[side]:
                price, qty = Decimal(p), Decimal(q)
                if qty == 0:
                    book.pop(price, None)
                else:
                    book[price] = qty

    def sides(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """(bids best-first, asks best-first)."""
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


def model_sides(server: object, symbol: str, depth: int | None = None) -> tuple[list, list]:
    """The simulator's own book as Decimal (price, qty) lists best-first, like the clients above."""
    spec = server.binance.specs[symbol]  # type: ignore[attr-defined]
    (bt, bq), (at, aq) = server.levels(symbol)  # type: ignore[attr-defined]

    def conv(ticks, qty) -> list:  # noqa: ANN001
        out = [(Decimal(t) * Decimal(repr(spec.tick_size)), Decimal(repr(float(q)))) for t, q in zip(
            ticks.tolist(), qty.tolist(), strict=True)]
        out = [(p.normalize(), Decimal(f"{q:.{spec.qty_decimals}f}").normalize()) for p, q in out]
        return out[:depth] if depth is not None else out

    return conv(bt, bq), conv(at, aq)


def normalize(levels: list[tuple[Decimal, Decimal]]) -> list[tuple[Decimal, Decimal]]:
    """Strip trailing zeros so venue text and model numbers compare equal."""
    return [(p.normalize(), q.normalize()) for p, q in levels]


def loads(text: str) -> dict:
    """json.loads that unwraps a Binance combined envelope."""
    obj = json.loads(text)
    return obj["data"] if isinstance(obj, dict) and "stream" in obj and "data" in obj else obj
