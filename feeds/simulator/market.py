"""The simulator's synthetic market: a per-symbol L2 book around a moving fair price.

Deterministic given the seed and the sequence of ``step`` durations. Sizes are integer lots (exact,
no float drift); prices are integer ticks. ``step(dt_ns)`` returns venue-neutral messages, one
object per exchange message (never per level change): :class:`BookChange`, :class:`TradeBurst`,
:class:`MarkUpdate`, :class:`Liquidation`. The venue encoders turn them into wire text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

BID = 1
ASK = -1



@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One simulated contract: tick/lot, starting price, typical level size and its share of traffic."""

    symbol: str
    tick_size: float
    lot_size: float
    start_price: float
    median_lots: int  # typical resting level size, in lots
    levels_target: int = 120  # typical number of levels per side
    max_distance: int = 400  # levels farther than this (ticks from the touch) are cancelled
    volatility: float = 1.0  # fair-price random walk, ticks per sqrt(second)
    rate_share: float = 1.0  # share of the model's message rate
    open_interest: float = 1_000_000.0
    funding_rate: float = 0.0001
    base_asset: str = ""

    @property
    def price_decimals(self) -> int:
        """Digits after the point of the tick size."""
        return _decimals(self.tick_size)

    @property
    def qty_decimals(self) -> int:
        """Digits after the point of the lot size."""
        return _decimals(self.lot_size)

    @property
    def start_tick(self) -> int:
        """The starting price in ticks."""
        return round(self.start_price / self.tick_size)

    @property
    def base(self) -> str:
        """The base asset name (``ALT`` for ``ALTUSDT``)."""
        return self.base_asset or self.symbol.removesuffix("USDT")


def _decimals(step: float) -> int:
    text = f"{step:.12f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


# ALTUSDT is the lively thin small cap the demo opens on; the leaders give the tape context.
DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("ALTUSDT", 0.0001, 1.0, 0.4321, median_lots=1500, levels_target=110, volatility=1.2,
               rate_share=0.6, open_interest=48_000_000.0, funding_rate=0.00025),
    SymbolSpec("BTCUSDT", 0.1, 0.001, 65000.0, median_lots=400, levels_target=160, volatility=2.5,
               rate_share=0.25, open_interest=80_000.0, funding_rate=0.0001),
    SymbolSpec("ETHUSDT", 0.01, 0.001, 3200.0, median_lots=4000, levels_target=150, volatility=2.0,
               rate_share=0.15, open_interest=1_500_000.0, funding_rate=0.0001),
)


class Top(NamedTuple):
    """Best bid/ask after a message: ticks and lots (tick ``None`` when that side is empty)."""

    bid_tick: int | None
    bid_lots: int
    ask_tick: int | None
    ask_lots: int


class BookChange(NamedTuple):
    """One book message: absolute lots per changed level (0 deletes), update ids ``first_id..last_id``."""

    symbol: str
    exch_ns: int
    first_id: int
    last_id: int
    bids: list[tuple[int, int]]  # (tick, lots), last value per tick
    asks: list[tuple[int, int]]
    top: Top


class TradeBurst(NamedTuple):
    """The fills of one aggressor (same time, same side): ``aggressor`` +1 buy (lifts asks), -1 sell."""

    symbol: str
    exch_ns: int
    aggressor: int
    fills: list[tuple[int, int]]  # (tick, lots) in fill order
    first_trade_id: int


class MarkUpdate(NamedTuple):
    """Mark, index, funding and open interest of one symbol at one moment."""

    symbol: str
    exch_ns: int
    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_ms: int
    open_interest: float


class Liquidation(NamedTuple):
    """A forced order: ``side`` -1 = a long was liquidated (venue sells), +1 = a short was."""

    symbol: str
    exch_ns: int
    side: int
    tick: int
    lots: int


MarketEvent = BookChange | TradeBurst | MarkUpdate | Liquidation

FUNDING_INTERVAL_MS = 8 * 3600 * 1000


class SymbolBook:
    """The mutable state of one simulated symbol: resting lots per tick, one dict per side."""

    def __init__(self, spec: SymbolSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        # Sparse {tick: lots} per side: scalar reads/writes are the hot path (numpy scalars are 3x slower);
        # levels() hands out numpy arrays.
        self.bid: dict[int, int] = {}
        self.ask: dict[int, int] = {}
        self.best_bid: int | None = None  # absolute ticks
        self.best_ask: int | None = None
        self.level_count = {BID: 0, ASK: 0}
        self.depth_lots = {BID: 0, ASK: 0}
        self.fair = float(spec.start_tick)
        self.update_id = 1_000_000 + int(rng.integers(0, 1_000_000)) * 1000
        self.trade_id = 10_000_000 + int(rng.integers(0, 1_000_000))
        self.basis = 0.0
        self.funding_rate = spec.funding_rate
        self.open_interest = spec.open_interest
        self.last_mark_ns = 0
        # Planted scenarios restrict the background noise: blocked add ranges and protected levels.
        self.blocked: list[tuple[int, int, int]] = []  # (side, lo_tick, hi_tick) no noise adds or cancels
        self.protect: dict[int, tuple[int, int]] = {}  # side -> (lo, hi) ticks noise never trades nor cancels
        self.noise_market = True
        # Message being built.
        self._msg_bids: list[tuple[int, int]] = []
        self._msg_asks: list[tuple[int, int]] = []
        self._msg_first = 0

    # -- level access -----------------------------------------------------------------------
    def lots_at(self, side: int, tick: int) -> int:
        """Resting lots at ``tick`` on ``side``."""
        return (self.bid if side == BID else self.ask).get(tick, 0)

    def set_level(self, side: int, tick: int, lots: int) -> None:
        """Set an absolute level size inside the current message (0 deletes)."""
        levels = self.bid if side == BID else self.ask
        old = levels.get(tick, 0)
        if old == lots:
            return
        if lots < 0:
            raise ValueError(f"negative level size {lots} at tick {tick}")
        if lots:
            levels[tick] = lots
            if not old:
                self.level_count[side] += 1
        else:
            del levels[tick]
            self.level_count[side] -= 1
        self.depth_lots[side] += lots - old
        self.update_id += 1
        (self._msg_bids if side == BID else self._msg_asks).append((tick, lots))
        # Keep the best prices exact incrementally; a search only when the best empties.
        if side == BID:
            if lots and (self.best_bid is None or tick > self.best_bid):
                self.best_bid = tick
            elif not lots and tick == self.best_bid:
                self.best_bid = self._search(BID, tick)
        else:
            if lots and (self.best_ask is None or tick < self.best_ask):
                self.best_ask = tick
            elif not lots and tick == self.best_ask:
                self.best_ask = self._search(ASK, tick)

    def _search(self, side: int, from_tick: int) -> int | None:
        """Next non-empty level beyond ``from_tick`` away from the touch (None when the side is empty)."""
        levels = self.bid if side == BID else self.ask
        if not levels:
            return None
        step = -1 if side == BID else 1
        tick = from_tick + step
        for _ in range(64):
            if tick in levels:
                return tick
            tick += step
        return max(levels) if side == BID else min(levels)

    def nearest_level(self, side: int, tick: int, span: int = 64) -> int | None:
        """The first non-empty level at ``tick`` or farther from the touch within ``span`` ticks."""
        levels = self.bid if side == BID else self.ask
        step = -1 if side == BID else 1
        for _ in range(span + 1):
            if tick in levels:
                return tick
            tick += step
        return None

    def levels(self, side: int, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ticks best-first, lots) of one side as int64 arrays, optionally only the best ``n``."""
        levels = self.bid if side == BID else self.ask
        ticks = sorted(levels, reverse=side == BID)
        if n is not None:
            ticks = ticks[:n]
        return (np.fromiter(ticks, dtype=np.int64, count=len(ticks)),
                np.fromiter((levels[t] for t in ticks), dtype=np.int64, count=len(ticks)))

    def top(self) -> Top:
        """Best bid/ask ticks and lots now."""
        bb, ba = self.best_bid, self.best_ask
        return Top(bb, self.lots_at(BID, bb) if bb is not None else 0,
                   ba, self.lots_at(ASK, ba) if ba is not None else 0)

    def mid_tick(self) -> float:
        """Mid price in ticks (the fair price when a side is empty)."""
        if self.best_bid is None or self.best_ask is None:
            return self.fair
        return (self.best_bid + self.best_ask) / 2.0

    # -- messages ---------------------------------------------------------------------------
    def begin(self) -> None:
        """Start collecting level changes for one message."""
        self._msg_bids = []
        self._msg_asks = []
        self._msg_first = self.update_id + 1

    def end(self, exch_ns: int) -> BookChange | None:
        """Close the message; None when it changed nothing."""
        bids, asks = self._msg_bids, self._msg_asks
        if not bids and not asks:
            return None
        if len(bids) > 1:
            bids = list(dict(bids).items())
        if len(asks) > 1:
            asks = list(dict(asks).items())
        bb, ba = self.best_bid, self.best_ask
        top = Top(bb, self.bid[bb] if bb is not None else 0, ba, self.ask[ba] if ba is not None else 0)
        return BookChange(self.spec.symbol, exch_ns, self._msg_first, self.update_id, bids, asks, top)

    # -- actions ----------------------------------------------------------------------------
    def add(self, side: int, tick: int, lots: int) -> None:
        """Add lots to a level (a new limit order)."""
        self.set_level(side, tick, (self.bid if side == BID else self.ask).get(tick, 0) + lots)

    def cancel(self, side: int, tick: int, lots: int) -> int:
        """Remove up to ``lots`` from a level; returns what was removed."""
        have = (self.bid if side == BID else self.ask).get(tick, 0)
        take = have if have < lots else lots
        if take:
            self.set_level(side, tick, have - take)
        return take

    def market(self, aggressor: int, lots: int, limit_tick: int | None = None,
               max_levels: int = 25) -> list[tuple[int, int]]:
        """An aggressive order walking the opposite side; returns fills (tick, lots).

        ``limit_tick`` stops it at that price (inclusive): planted flow uses it to hit one level only.
        """
        side = ASK if aggressor == BID else BID
        fills: list[tuple[int, int]] = []
        remaining = lots
        while remaining > 0 and len(fills) < max_levels:
            best = self.best_ask if side == ASK else self.best_bid
            if best is None:
                break
            if limit_tick is not None and (best > limit_tick if side == ASK else best < limit_tick):
                break
            have = self.lots_at(side, best)
            take = min(have, remaining)
            self.set_level(side, best, have - take)
            fills.append((best, take))
            remaining -= take
        return fills


Planter = Callable[["MarketModel", SymbolBook, int, int, list], None]


class MarketModel:
    """Synthetic order flow for several symbols; ``step(dt_ns)`` returns the messages of that interval."""

    def __init__(self, symbols: Sequence[SymbolSpec] = DEFAULT_SYMBOLS, seed: int = 1,
                 rate: float = 400.0, start_ns: int = 1_767_225_600_000_000_000,
                 mark_interval_ns: int = 1_000_000_000) -> None:
        if not symbols:
            raise ValueError("the market model needs at least one symbol")
        if rate <= 0:
            raise ValueError(f"message rate must be > 0, got {rate!r}")
        self.seed = seed
        self.rate = float(rate)
        self.now_ns = int(start_ns)
        self.mark_interval_ns = mark_interval_ns
        seeds = np.random.SeedSequence(seed).spawn(len(symbols))
        self.books: dict[str, SymbolBook] = {}
        for spec, ss in zip(symbols, seeds, strict=True):
            book = SymbolBook(spec, np.random.default_rng(ss))
            self.books[spec.symbol] = book
            self._seed_book(book)
        total_share = sum(s.rate_share for s in symbols)
        self._share = {s.symbol: s.rate_share / total_share for s in symbols}
        self.planters: list[Planter] = []

    @property
    def symbols(self) -> list[str]:
        """Symbols in the model, in the order given."""
        return list(self.books)

    def spec(self, symbol: str) -> SymbolSpec:
        """The spec of a symbol; KeyError for an unknown one."""
        return self.books[symbol].spec

    def levels(self, symbol: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """((bid ticks desc, bid qty), (ask ticks asc, ask qty)) of the model's own book; qty in base units."""
        book = self.books[symbol]
        lot = book.spec.lot_size
        bt, bl = book.levels(BID)
        at, al = book.levels(ASK)
        return (bt, bl * lot), (at, al * lot)

    def snapshot(self, symbol: str, limit: int | None = None) -> tuple[int, tuple, tuple]:
        """(last update id, (bid ticks, lots), (ask ticks, lots)) best-first, ``limit`` levels per side."""
        book = self.books[symbol]
        return book.update_id, book.levels(BID, limit), book.levels(ASK, limit)

    def mark(self, symbol: str) -> MarkUpdate:
        """The current mark/index/funding/open interest of a symbol."""
        return self._mark(self.books[symbol], self.now_ns)

    # -- stepping ---------------------------------------------------------------------------
    def step(self, dt_ns: int) -> list[MarketEvent]:
        """Advance ``dt_ns`` of exchange time; the messages produced, in time order per symbol."""
        if dt_ns <= 0:
            raise ValueError(f"step must advance time, got dt_ns={dt_ns}")
        t0 = self.now_ns
        out: list[MarketEvent] = []
        dt_s = dt_ns / 1e9
        for symbol, book in self.books.items():
            self._walk_fair(book, dt_s)
            n = int(book.rng.poisson(self.rate * self._share[symbol] * dt_s))
            self._noise(book, t0, dt_ns, n, out)
            for planter in self.planters:
                planter(self, book, t0, dt_ns, out)
            self._trim_far(book, t0 + dt_ns, out)
            if t0 + dt_ns - book.last_mark_ns >= self.mark_interval_ns:
                book.last_mark_ns = t0 + dt_ns
                self._drift_funding(book)
                out.append(self._mark(book, t0 + dt_ns))
                if book.rng.random() < 0.08:
                    out.append(self._liquidation(book, t0 + dt_ns))
        self.now_ns = t0 + dt_ns
        return out

    def _seed_book(self, book: SymbolBook) -> None:
        """An initial book: place many background orders without emitting messages."""
        spec = book.spec
        book.begin()
        c = spec.start_tick
        book.set_level(BID, c - 1, spec.median_lots)
        book.set_level(ASK, c + 1, spec.median_lots)
        for _ in range(spec.levels_target * 3):
            for side in (BID, ASK):
                d = self._distance(book)
                self._noise_add(book, side, d, self._size(book, d))
        book.begin()

    def _distance(self, book: SymbolBook) -> int:
        rng = book.rng
        if rng.random() < 0.55:
            return int(rng.geometric(0.22)) - 1
        return int(rng.exponential(book.spec.levels_target * 0.9))

    def _size(self, book: SymbolBook, distance: int) -> int:
        spec = book.spec
        base = book.rng.lognormal(math.log(spec.median_lots * 0.7), 0.85)
        return max(1, int(base * (1.0 + distance / 40.0)))

    def _walk_fair(self, book: SymbolBook, dt_s: float) -> None:
        spec = book.spec
        reversion = (spec.start_tick - book.fair) * 0.002 * dt_s
        book.fair += reversion + book.rng.normal(0.0, spec.volatility * math.sqrt(dt_s))

    def _noise(self, book: SymbolBook, t0: int, dt_ns: int, n: int, out: list) -> None:
        """``n`` background book messages spread evenly over the interval (random draws in bulk).

        An attempt can change nothing (a cancel finding no level, an add over the size cap): draws
        are made with head-room and the loop stops after ``n`` messages, so the rate is what was asked.
        """
        if n <= 0:
            return
        rng = book.rng
        spec = book.spec
        m = n + n // 2 + 4
        kinds = rng.random(m).tolist()
        sides = rng.random(m).tolist()
        fracs = rng.random(m).tolist()
        dists = self._distances(book, m).tolist()
        # Cancels land anywhere in the book (most resting orders are far from the touch), adds
        # mostly near it: the near book stays dense, the far book sparse, like a real thin book.
        cancel_dists = rng.exponential(spec.levels_target * 0.8, m).astype(np.int64).tolist()
        sizes = rng.lognormal(math.log(spec.median_lots * 0.7), 0.85, m).tolist()
        target = float(spec.levels_target)
        market_p = 0.075 if book.noise_market else 0.0
        made = 0
        for k in range(m):
            ts = t0 + (made + 1) * dt_ns // n
            book.begin()
            side = BID if sides[k] < 0.5 else ASK
            u = kinds[k]
            if u < market_p:
                trade = self._noise_market(book, ts, fracs[k], sizes[k])
                if trade is not None:
                    change = book.end(ts)
                    if change is not None:
                        out.append(change)
                    out.append(trade)
                    made += 1
            else:
                p_add = 0.5 + 0.35 * max(-1.0, min(1.0, (target - book.level_count[side]) / target))
                d = dists[k]
                if u < market_p + (1.0 - market_p) * p_add:
                    self._noise_add(book, side, d, max(1, int(sizes[k] * (1.0 + d / 40.0))))
                else:
                    self._noise_cancel(book, side, cancel_dists[k], fracs[k])
                change = book.end(ts)
                if change is not None:
                    out.append(change)
                    made += 1
            if made == n:
                return

    def _distances(self, book: SymbolBook, n: int) -> np.ndarray:
        """Distances from the touch: mostly a few ticks, with a long tail (a thin small-cap book)."""
        rng = book.rng
        near = rng.geometric(0.22, n) - 1
        far = rng.exponential(book.spec.levels_target * 0.9, n).astype(np.int64)
        return np.where(rng.random(n) < 0.55, near, far)

    def _noise_add(self, book: SymbolBook, side: int, d: int, lots: int) -> None:
        if side == BID:
            tick = math.floor(book.fair) - 1 - d
            if book.best_ask is not None and tick >= book.best_ask:
                tick = book.best_ask - 1
        else:
            tick = math.ceil(book.fair) + 1 + d
            if book.best_bid is not None and tick <= book.best_bid:
                tick = book.best_bid + 1
        if book.blocked:
            for b_side, lo, hi in book.blocked:
                if b_side == side and lo <= tick <= hi:
                    return
        # Background levels stay within a few typical sizes: a level far above its neighbours is
        # what scenarios plant (large_order), so noise must not grow one by stacking adds.
        have = (book.bid if side == BID else book.ask).get(tick, 0)
        if have + lots > book.spec.median_lots * 2.5 * (1.0 + d / 20.0):
            return
        book.add(side, tick, lots)

    def _noise_cancel(self, book: SymbolBook, side: int, d: int, frac: float) -> None:
        best = book.best_bid if side == BID else book.best_ask
        if best is None:
            return
        found = book.nearest_level(side, best - d if side == BID else best + d, span=16)
        if found is None:
            return
        if book.protect or book.blocked:
            band = book.protect.get(side)
            if (band is not None and band[0] <= found <= band[1]) or any(
                    s == side and lo <= found <= hi for s, lo, hi in book.blocked):
                return
        have = book.lots_at(side, found)
        book.cancel(side, found, have if frac < 0.45 else max(1, int(have * (frac - 0.3))))

    def _noise_market(self, book: SymbolBook, ts: int, u: float, size: float) -> TradeBurst | None:
        spec = book.spec
        mid = book.mid_tick()
        p_buy = 0.5 + 0.3 * math.tanh((book.fair - mid) / 2.0)
        aggressor = BID if u < p_buy else ASK
        # Heavy tail: lognormal size times a Pareto draw (most orders small, a few walk many levels).
        lots = max(1, int(size * 0.35 * (book.rng.pareto(1.4) + 0.2)))
        limit = None
        book_side = ASK if aggressor == BID else BID
        band = book.protect.get(book_side)
        if band is not None:
            # Background flow never trades a planted level: the scenario drives it alone.
            limit = band[0] - 1 if book_side == ASK else band[1] + 1
        # At most 4 levels: sweeps of 5+ levels are planted (and labelled), never background.
        fills = book.market(aggressor, lots, limit_tick=limit, max_levels=4)
        if not fills:
            return None
        self._after_trade(book, fills)
        first = book.trade_id + 1
        book.trade_id += len(fills)
        return TradeBurst(spec.symbol, ts, aggressor, fills, first)

    def _after_trade(self, book: SymbolBook, fills: list[tuple[int, int]]) -> None:
        traded = sum(lots for _, lots in fills) * book.spec.lot_size
        book.open_interest = max(book.spec.open_interest * 0.5,
                                 book.open_interest + traded * (book.rng.random() - 0.48) * 0.5)

    def _trim_far(self, book: SymbolBook, ts: int, out: list) -> None:
        """Cancel levels that drifted beyond ``max_distance`` from the touch (keeps books bounded)."""
        spec = book.spec
        book.begin()
        if book.best_bid is not None:
            floor = book.best_bid - spec.max_distance
            for tick in [t for t in book.bid if t < floor]:
                book.set_level(BID, tick, 0)
        if book.best_ask is not None:
            cap = book.best_ask + spec.max_distance
            for tick in [t for t in book.ask if t > cap]:
                book.set_level(ASK, tick, 0)
        change = book.end(ts)
        if change is not None:
            out.append(change)

    def _drift_funding(self, book: SymbolBook) -> None:
        rng = book.rng
        book.basis = book.basis * 0.98 + rng.normal(0.0, 0.2)
        rate = book.funding_rate + rng.normal(0.0, 0.000004)
        book.funding_rate = max(-0.0075, min(0.0075, rate))

    def _mark(self, book: SymbolBook, ts: int) -> MarkUpdate:
        spec = book.spec
        mid = book.mid_tick()
        ms = ts // 1_000_000
        next_funding = (ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS
        mark = round(mid * spec.tick_size, spec.price_decimals + 2)
        index = round((mid - book.basis) * spec.tick_size, spec.price_decimals + 2)
        return MarkUpdate(spec.symbol, ts, mark, index, round(book.funding_rate, 8), next_funding,
                          round(book.open_interest, spec.qty_decimals))

    def _liquidation(self, book: SymbolBook, ts: int) -> Liquidation:
        rng = book.rng
        side = ASK if rng.random() < 0.5 else BID
        tick = int(round(book.mid_tick())) + (-2 if side == ASK else 2)
        lots = max(1, int(book.spec.median_lots * rng.pareto(1.5)))
        return Liquidation(book.spec.symbol, ts, side, tick, lots)
