"""Test helpers for the feed tests: a recording sink and a small dict book (stand-in until the real
``app.core.book.DepthBook`` is merged; same ``apply`` rules for depth kinds)."""

from __future__ import annotations

import numpy as np

from app.core.events import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    KIND_MASK,
    SELL_EVENT,
)

try:  # the real book when merged
    from app.core.book import DepthBook as _RealBook  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - until core-book is merged
    _RealBook = None


class DictBook:
    """Price-tick -> qty per side; best via max/min (tests only, not fast)."""

    def __init__(self) -> None:
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self.update_id = 0

    def apply(self, batch: np.ndarray) -> None:
        for row in batch:
            ev = int(row["ev"])
            kind = ev & KIND_MASK
            if kind == DEPTH_CLEAR_EVENT:
                if not ev & SELL_EVENT:
                    self.bids.clear()
                if not ev & BUY_EVENT:
                    self.asks.clear()
                continue
            if kind not in (DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT):
                continue
            side = self.bids if ev & BUY_EVENT else self.asks
            tick = int(row["ival"])
            qty = float(row["qty"])
            if qty == 0.0:
                side.pop(tick, None)
            else:
                side[tick] = qty
            self.update_id = int(row["order_id"])

    def best_bid(self) -> tuple[int, float] | None:
        if not self.bids:
            return None
        t = max(self.bids)
        return t, self.bids[t]

    def best_ask(self) -> tuple[int, float] | None:
        if not self.asks:
            return None
        t = min(self.asks)
        return t, self.asks[t]


def make_book(instrument):  # noqa: ANN001, ANN201 - test helper
    """The real DepthBook when available, else the dict stand-in."""
    if _RealBook is not None:
        return _RealBook(instrument)
    return DictBook()


class RecordingSink:
    """Collects everything a feed hands over."""

    def __init__(self) -> None:
        self.instruments: list = []
        self.batches: list[tuple[str, np.ndarray, int | None]] = []
        self.statuses: list[tuple[str, str, str]] = []
        self.raw: list[tuple[int, str]] = []

    def on_instrument(self, instrument) -> None:  # noqa: ANN001
        self.instruments.append(instrument)

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        self.batches.append((symbol, batch, update_id))

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        self.statuses.append((symbol, state, reason))

    def on_raw(self, local_ns: int, raw: str) -> None:
        self.raw.append((local_ns, raw))

    def kinds(self) -> list[int]:
        return [int(r["ev"]) & KIND_MASK for _, b, _ in self.batches for r in b]


class TopCheckSink(RecordingSink):
    """Applies book batches to one book per symbol and records the top after every book message
    (keyed by update id) and every venue BBO row pair (keyed by its ``order_id``)."""

    def __init__(self, instruments) -> None:  # noqa: ANN001
        super().__init__()
        self.books = {inst.symbol: make_book(inst) for inst in instruments}
        self.book_top: dict[tuple[str, int], tuple] = {}
        self.venue_top: dict[tuple[str, int], tuple] = {}
        self.venue_top_seq: list[tuple[str, int, tuple]] = []  # (symbol, exch_ts, top) for BBO without ids

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        from app.core.events import DEPTH_BBO_EVENT

        if len(batch) == 0:
            return
        kinds = batch["ev"] & KIND_MASK
        bbo = batch[kinds == DEPTH_BBO_EVENT]
        if len(bbo) == 2:
            top = (int(bbo[0]["ival"]), float(bbo[0]["qty"]), int(bbo[1]["ival"]), float(bbo[1]["qty"]))
            self.venue_top[(symbol, int(bbo[0]["order_id"]))] = top
            self.venue_top_seq.append((symbol, int(bbo[0]["exch_ts"]), top))
        book = self.books[symbol]
        book.apply(batch)
        if update_id is not None:
            bid, ask = book.best_bid(), book.best_ask()
            if bid is not None and ask is not None:
                self.book_top[(symbol, update_id)] = (int(bid[0]), float(bid[1]), int(ask[0]), float(ask[1]))
        self.batches.append((symbol, batch, update_id))

    def on_instrument(self, instrument) -> None:  # noqa: ANN001
        self.instruments.append(instrument)
        self.books.setdefault(instrument.symbol, make_book(instrument))

    def matches(self) -> tuple[int, int]:
        """(ids present in both, ids where the tops are equal)."""
        common = self.book_top.keys() & self.venue_top.keys()
        return len(common), sum(self.book_top[k] == self.venue_top[k] for k in common)
