"""The simplest possible depth book (two dicts), the oracle DepthBook is tested against."""

from __future__ import annotations

from app.core.events import (
    ASK,
    BID,
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    NO_PRICE,
    SELL_EVENT,
)


class ReferenceBook:
    """Two plain dicts tick -> size; every query is a loop or a sort. Slow and obviously right."""

    def __init__(self) -> None:
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}

    def _book(self, side: int) -> dict[int, float]:
        return self.bids if side == BID else self.asks

    def set(self, side: int, tick: int, qty: float) -> None:
        """One level: absolute size, 0 deletes."""
        book = self._book(side)
        if qty == 0:
            book.pop(tick, None)
        else:
            book[tick] = qty

    def apply_side(self, side: int, ticks: list[int], qty: list[float]) -> None:
        """Rows in order (the last of a repeated tick wins)."""
        for t, q in zip(ticks, qty, strict=True):
            self.set(side, int(t), float(q))

    def clear(self, side: int = 0) -> None:
        """One side, or both with 0."""
        if side in (0, BID):
            self.bids.clear()
        if side in (0, ASK):
            self.asks.clear()

    def apply_rows(self, rows: list[tuple[int, int, int, float]]) -> None:
        """(kind, side_flag, tick, qty) rows in order; other kinds ignored."""
        for kind, flag, tick, qty in rows:
            if kind in (DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT):
                self.set(BID if flag == BUY_EVENT else ASK, tick, qty)
            elif kind == DEPTH_CLEAR_EVENT:
                self.clear(BID if flag == BUY_EVENT else ASK if flag == SELL_EVENT else 0)

    @property
    def best_bid_tick(self) -> int:
        return max(self.bids) if self.bids else NO_PRICE

    @property
    def best_ask_tick(self) -> int:
        return min(self.asks) if self.asks else NO_PRICE

    def qty_at(self, side: int, tick: int) -> float:
        return self._book(side).get(tick, 0.0)

    def levels(self, side: int, n: int | None = None) -> list[tuple[int, float]]:
        """Best-first (tick, size) pairs."""
        book = self._book(side)
        ticks = sorted(book, reverse=(side == BID))
        if n is not None:
            ticks = ticks[:n]
        return [(t, book[t]) for t in ticks]

    def ladder(self, top_tick: int, rows: int, group: int = 1) -> list[tuple[int, float, float]]:
        """(row tick, bid size, ask size) per row, rows descending from top_tick."""
        out = []
        for r in range(rows):
            row_top = top_tick - r * group
            bid = sum(self.bids.get(row_top - k, 0.0) for k in range(group))
            ask = sum(self.asks.get(row_top - k, 0.0) for k in range(group))
            out.append((row_top, bid, ask))
        return out

    def cumulative_depth(self, side: int, n_levels: int) -> list[tuple[int, float]]:
        total = 0.0
        out = []
        for t, q in self.levels(side, n_levels):
            total += q
            out.append((t, total))
        return out

    def depth_within(self, side: int, n_ticks: int) -> float:
        book = self._book(side)
        if not book:
            return 0.0
        best = self.best_bid_tick if side == BID else self.best_ask_tick
        return sum(q for t, q in book.items() if abs(t - best) <= n_ticks)

    def walk(self, side: int, qty: float) -> tuple[float, float, int, float]:
        """(filled, avg_tick, worst_tick, slippage_ticks) of a market order eating ``side``."""
        levels = self.levels(side)
        if not levels:
            return 0.0, float("nan"), NO_PRICE, float("nan")
        best = levels[0][0]
        left = qty
        filled = 0.0
        notional = 0.0
        worst = best
        for t, q in levels:
            if left <= 0:
                break
            take = min(q, left)
            filled += take
            notional += take * t
            left -= take
            worst = t
        avg = notional / filled
        slip = avg - best if side == ASK else best - avg
        return filled, avg, worst, slip

    def is_crossed(self) -> bool:
        return bool(self.bids) and bool(self.asks) and self.best_bid_tick >= self.best_ask_tick
