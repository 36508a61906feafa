"""Labelled scenarios: planted order-flow events on a background small-cap book, for scoring detectors.

A :class:`Scenario` is a seed, a symbol, a duration and one planted event (:class:`Plant`). Installed
on a :class:`MarketModel` (``Scenario.install``), the plant drives the book at its time and records
labels — what a correct detector should report (or, for hard negatives, must *not* report). A
:class:`ScenarioSuite` is a fixed list of scenarios (fixed seeds); ``Scenario.render(venue)`` runs one
offline and returns the raw wire records a capture would hold plus the labels.

Label format (JSON-serialisable dict, one per planted phenomenon)::

    {"scenario": "iceberg-s1", "kind": "iceberg", "negative": false, "venue": null,
     "symbol": "ALTUSDT", "side": "ask", "price": 0.4323, "price_tick": 4323,
     "price_far": null, "price_far_tick": null,
     "start_ns": ..., "end_ns": ..., "evidence_ns": ..., "evidence": {"executed": .., "visible": ..}}

``side`` is the book side involved (a sweep lifting offers is ``ask``), ``price`` the level (a gap's
edge nearest mid, ``price_far`` its other edge; a sweep's first level, ``price_far`` its last),
``evidence_ns`` the exchange time at which the evidence is complete (detection delay is measured from
it), ``negative`` true for a hard negative ("a detector of this kind must not fire here").
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from feeds.simulator.market import (
    ASK,
    BID,
    DEFAULT_SYMBOLS,
    MarketModel,
    SymbolBook,
    SymbolSpec,
    TradeBurst,
)

SCENARIO_KINDS = ("iceberg", "absorption", "liquidity_gap", "large_order", "pull", "stack", "sweep",
                  "big_trade", "pull_not_iceberg", "eaten_through")
LABEL_KINDS = ("iceberg", "absorption", "liquidity_gap", "large_order", "pull", "stack", "sweep", "big_trade")

MS = 1_000_000
S = 1_000_000_000


def side_name(side: int) -> str:
    """``bid`` for +1, ``ask`` for -1."""
    return "bid" if side == BID else "ask"


@dataclass(slots=True)
class Label:
    """One planted phenomenon (or hard negative) with its time span and evidence."""

    scenario: str
    kind: str
    symbol: str
    side: int
    price_tick: int
    tick_size: float
    start_ns: int
    end_ns: int | None = None
    evidence_ns: int | None = None
    price_far_tick: int | None = None
    negative: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, venue: str | None = None) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        decimals = max(0, -int(math.floor(math.log10(self.tick_size) + 1e-9)))
        far = self.price_far_tick
        return {
            "scenario": self.scenario, "kind": self.kind, "negative": self.negative, "venue": venue,
            "symbol": self.symbol, "side": side_name(self.side),
            "price": round(self.price_tick * self.tick_size, decimals), "price_tick": self.price_tick,
            "price_far": round(far * self.tick_size, decimals) if far is not None else None,
            "price_far_tick": far, "start_ns": self.start_ns, "end_ns": self.end_ns,
            "evidence_ns": self.evidence_ns, "evidence": dict(self.evidence),
        }


class Plant:
    """A planted event: a small state machine run once per model step on its symbol."""

    def __init__(self, scenario: Scenario, book: SymbolBook, start_ns: int) -> None:
        self.scenario = scenario
        self.book = book
        self.start_ns = start_ns
        self.phase = "wait"
        self.labels: list[Label] = []
        self.rng = book.rng
        self.median = book.spec.median_lots
        # In a scenario a large resting order stays (protected, label open) until the scenario ends,
        # so nothing unlabelled happens to it; the showcase releases it to make room for the next event.
        self.hold = getattr(scenario, "hold_to_end", True)

    def label(self, kind: str, side: int, tick: int, start_ns: int, **kw: Any) -> Label:
        """Record a new label."""
        lab = Label(self.scenario.name, kind, self.book.spec.symbol, side, tick, self.book.spec.tick_size,
                    start_ns, **kw)
        self.labels.append(lab)
        return lab

    def __call__(self, model: MarketModel, book: SymbolBook, t0: int, dt_ns: int, out: list) -> None:
        if book is not self.book or self.phase == "done":
            return
        now = t0 + dt_ns
        if self.phase == "wait" and now < self.start_ns:
            return
        self.step(model, now, out)

    def step(self, model: MarketModel, now: int, out: list) -> None:
        """One step of the plant at exchange time ``now``."""
        raise NotImplementedError

    # helpers: one message per call, appended to the model's output
    def set_levels(self, now: int, out: list, changes: list[tuple[int, int, int]]) -> None:
        """One book message setting absolute sizes (side, tick, lots)."""
        self.book.begin()
        for side, tick, lots in changes:
            self.book.set_level(side, tick, lots)
        change = self.book.end(now)
        if change is not None:
            out.append(change)

    def aggress(self, now: int, out: list, aggressor: int, lots: int, limit_tick: int | None,
                max_levels: int = 25) -> list[tuple[int, int]]:
        """One aggressive order (a book message + a trade message)."""
        book = self.book
        book.begin()
        fills = book.market(aggressor, lots, limit_tick=limit_tick, max_levels=max_levels)
        change = book.end(now)
        if change is not None:
            out.append(change)
        if fills:
            first = book.trade_id + 1
            book.trade_id += len(fills)
            out.append(TradeBurst(book.spec.symbol, now, aggressor, fills, first))
        return fills

    def best(self, side: int) -> int | None:
        """Best price of a side now."""
        return self.book.best_bid if side == BID else self.book.best_ask


class IcebergPlant(Plant):
    """A small visible level at the touch refilled after each hit while planted flow trades into it."""

    def __init__(self, scenario: Scenario, book: SymbolBook, start_ns: int, side: int) -> None:
        super().__init__(scenario, book, start_ns)
        self.side = side
        self.visible = int(self.median * 1.0)
        self.hidden = int(self.median * 10)
        self.executed = 0
        self.refills = 0
        self.next_hit = 0
        self.tick = 0
        self.lab: Label | None = None

    def step(self, model: MarketModel, now: int, out: list) -> None:
        side, book = self.side, self.book
        if self.phase == "wait":
            best = self.best(side)
            if best is None:
                return
            self.tick = best
            book.protect[side] = (best, best)
            # No background quotes may improve on it: the iceberg stays the touch.
            book.blocked.append((side, best - 200, best) if side == ASK else (side, best, best + 200))
            # The touch's own size is the iceberg's display size: never shrink a level without a trade.
            self.visible = max(self.visible, book.lots_at(side, best))
            self.hidden = max(self.hidden, 8 * self.visible)
            self.set_levels(now, out, [(side, best, self.visible)])
            self.phase = "run"
            self.next_hit = now + 100 * MS
            self.lab = self.label("iceberg", side, best, now, evidence={"visible": self.visible})
            return
        if now < self.next_hit:
            return
        assert self.lab is not None
        have = book.lots_at(side, self.tick)
        if have == 0 or self.hidden <= 0:
            self._finish(now)
            return
        lots = min(have, max(1, int(self.visible * (0.35 + 0.5 * self.rng.random()))))
        fills = self.aggress(now, out, -side, lots, limit_tick=self.tick)
        self.executed += sum(q for _, q in fills)
        left = book.lots_at(side, self.tick)
        if left < self.visible * 0.3 and self.hidden > 0:
            refill = min(self.visible - left, self.hidden)
            self.hidden -= refill
            self.refills += 1
            self.set_levels(now + MS, out, [(side, self.tick, left + refill)])
        if self.lab.evidence_ns is None and self.executed >= 3 * self.visible and self.refills >= 2:
            self.lab.evidence_ns = now + MS
        self.next_hit = now + int((120 + 200 * self.rng.random()) * MS)

    def _finish(self, now: int) -> None:
        assert self.lab is not None
        self.lab.end_ns = now
        self.lab.evidence.update(executed=self.executed * self.book.spec.lot_size,
                                 visible=self.visible * self.book.spec.lot_size, refills=self.refills)
        self.book.protect.pop(self.side, None)
        self.book.blocked.clear()
        self.phase = "done"


class AbsorptionPlant(Plant):
    """A thick two-tick band at the touch that takes heavy aggressive flow without giving way."""

    def __init__(self, scenario: Scenario, book: SymbolBook, start_ns: int, side: int) -> None:
        super().__init__(scenario, book, start_ns)
        self.side = side
        self.band_lots = int(self.median * 14)
        self.executed = 0
        self.target = 0
        self.ticks: tuple[int, int] = (0, 0)
        self.next_hit = 0
        self.lab: Label | None = None
        self.large: list[Label] = []

    def step(self, model: MarketModel, now: int, out: list) -> None:
        side, book = self.side, self.book
        if self.phase == "wait":
            best = self.best(side)
            if best is None:
                return
            inner, outer = best, best - side  # outer is one tick away from mid
            self.ticks = (inner, outer)
            book.protect[side] = (min(inner, outer), max(inner, outer))
            book.blocked.append((side, best - 200, best) if side == ASK else (side, best, best + 200))
            self.set_levels(now, out, [(side, inner, self.band_lots), (side, outer, self.band_lots)])
            # The band's levels are large resting orders in their own right: label them so a
            # large_order/stack detector firing here is counted right, not as a false positive.
            ev = {"size": self.band_lots * book.spec.lot_size, "multiple_of_median": self.band_lots / self.median}
            self.large = [self.label("large_order", side, t, now, evidence_ns=now + 500 * MS, evidence=dict(ev))
                          for t in (inner, outer)]
            for t in (inner, outer):
                self.label("stack", side, t, now, end_ns=now, evidence_ns=now, evidence=dict(ev))
            self.target = int(self.band_lots * 2 * 0.6)
            self.phase = "settle"
            self.next_hit = now + 800 * MS  # the band rests visibly before flow arrives
            return
        if now < self.next_hit:
            return
        if self.phase == "settle":
            self.phase = "run"
            self.lab = self.label("absorption", side, self.ticks[0], now, price_far_tick=self.ticks[1])
        assert self.lab is not None
        if self.executed >= self.target:
            self.lab.end_ns = now
            self.lab.evidence.update(executed=self.executed * book.spec.lot_size,
                                     band_ticks=2, visible=self.band_lots * 2 * book.spec.lot_size)
            if not self.hold:  # else the band's remains rest, protected, their labels open to the end
                for lab in self.large:
                    lab.end_ns = now
                book.protect.pop(side, None)
                book.blocked.clear()
            self.phase = "done"
            return
        lots = max(1, int(self.median * (0.4 + 1.2 * self.rng.random())))
        lots = min(lots, self.target - self.executed)
        fills = self.aggress(now, out, -side, lots, limit_tick=self.ticks[1])
        self.executed += sum(q for _, q in fills)
        if self.lab.evidence_ns is None and self.executed >= 4 * self.median and now - self.lab.start_ns >= S:
            self.lab.evidence_ns = now
        self.next_hit = now + int((60 + 120 * self.rng.random()) * MS)


class GapPlant(Plant):
    """A run of empty ticks just behind the touch, held open for a few seconds."""

    def __init__(self, scenario: Scenario, book: SymbolBook, start_ns: int, side: int, width: int = 10,
                 hold_s: float = 4.0) -> None:
        super().__init__(scenario, book, start_ns)
        self.side = side
        self.width = width
        self.hold_ns = int(hold_s * S)
        self.lab: Label | None = None

    def step(self, model: MarketModel, now: int, out: list) -> None:
        side, book = self.side, self.book
        if self.phase == "wait":
            best = self.best(side)
            if best is None:
                return
            away = -side  # ticks away from mid: down for bids, up for asks
            near, far = best + away, best + away * self.width
            lo, hi = min(near, far), max(near, far)
            book.protect[side] = (best, best)  # the touch holds, so the gap stays outside the spread
            book.blocked.append((side, lo, hi))
            book.blocked.append((side, best - 200, best - 1) if side == ASK else (side, best + 1, best + 200))
            removed = [(t, book.lots_at(side, t)) for t in range(lo, hi + 1) if book.lots_at(side, t)]
            self.set_levels(now, out, [(side, t, 0) for t, _ in removed])
            ev = {"ticks": self.width, "removed": sum(q for _, q in removed) * book.spec.lot_size,
                  "levels_removed": len(removed)}
            self.lab = self.label("liquidity_gap", side, near, now, price_far_tick=far,
                                  evidence_ns=now + 500 * MS, evidence=ev)
            self.phase = "run"
            return
        assert self.lab is not None
        if now - self.lab.start_ns >= self.hold_ns:
            self.lab.end_ns = now
            book.protect.pop(side, None)
            book.blocked.clear()
            self.phase = "done"


class LargeOrderPlant(Plant):
    """A resting order far above the sizes around it, a few ticks from the touch.

    ``ending``: ``stay`` (rests until the end), ``pull`` (cancelled whole, no trades: a pull and a
    hard negative for iceberg), ``eaten`` (traded through by heavy flow: a hard negative for
    absorption and iceberg).
    """

    def __init__(self, scenario: Scenario, book: SymbolBook, start_ns: int, side: int, ending: str,
                 rest_s: float = 5.0, distance: int = 3, multiple: float = 25.0) -> None:
        super().__init__(scenario, book, start_ns)
        self.side = side
        self.ending = ending
        self.rest_ns = int(rest_s * S)
        self.distance = distance
        self.lots = int(self.median * multiple)
        self.tick = 0
        self.placed_ns = 0
        self.executed = 0
        self.next_hit = 0
        self.large: Label | None = None

    def step(self, model: MarketModel, now: int, out: list) -> None:
        side, book = self.side, self.book
        if self.phase == "wait":
            best = self.best(side)
            if best is None:
                return
            self.tick = best - side * self.distance
            if self.ending == "eaten":
                self.tick = best
                book.blocked.append((side, best - 200, best) if side == ASK else (side, best, best + 200))
            book.protect[side] = (self.tick, self.tick)
            had = book.lots_at(side, self.tick)
            self.set_levels(now, out, [(side, self.tick, had + self.lots)])
            self.placed_ns = now
            ev = {"size": self.lots * book.spec.lot_size, "multiple_of_median": self.lots / self.median}
            self.large = self.label("large_order", side, self.tick, now, evidence_ns=now + 500 * MS, evidence=ev)
            self.label("stack", side, self.tick, now, end_ns=now, evidence_ns=now, evidence=dict(ev))
            self.phase = "rest"
            return
        assert self.large is not None
        if self.phase == "rest":
            if now - self.placed_ns < self.rest_ns:
                return
            if self.ending == "stay":
                if self.hold:
                    self.phase = "done"  # rests, protected, until the scenario ends (finish closes it)
                    return
                self.large.end_ns = now
                self._release()
            elif self.ending == "pull":
                left = book.lots_at(side, self.tick)
                self.set_levels(now, out, [(side, self.tick, max(0, left - self.lots))])
                self.large.end_ns = now
                ev = {"removed": self.lots * book.spec.lot_size, "traded": 0.0}
                self.label("pull", side, self.tick, now, end_ns=now, evidence_ns=now, evidence=ev)
                self.label("iceberg", side, self.tick, self.placed_ns, end_ns=now, negative=True)
                self._release()
            else:
                self.phase = "eat"
                self.label("absorption", side, self.tick, now, negative=True)
                self.label("iceberg", side, self.tick, now, negative=True)
            return
        # eat: heavy flow takes the level whole, then one more level: price trades through.
        if now < self.next_hit:
            return
        left = book.lots_at(side, self.tick)
        if left == 0:
            book.protect.pop(side, None)
            fills = self.aggress(now, out, -side, max(1, self.median // 2), limit_tick=None, max_levels=2)
            self.large.end_ns = now
            for lab in self.labels:
                if lab.negative:
                    lab.end_ns = now
                    lab.evidence["traded_through"] = bool(fills)
            self._release()
            return
        lots = min(left, max(1, int(self.lots * (0.15 + 0.2 * self.rng.random()))))
        fills = self.aggress(now, out, -side, lots, limit_tick=self.tick)
        self.executed += sum(q for _, q in fills)
        self.next_hit = now + int((80 + 120 * self.rng.random()) * MS)

    def _release(self) -> None:
        self.book.protect.pop(self.side, None)
        self.book.blocked.clear()
        self.phase = "done"


class SweepPlant(Plant):
    """One aggressor eating six levels at once (a sweep); with ``big`` it also takes ``big`` times the
    size of those six levels, walking as deep as it must (a big trade, and a sweep too)."""

    def __init__(self, scenario: Scenario, book: SymbolBook, start_ns: int, side: int, levels: int = 6,
                 big: float = 0.0) -> None:
        super().__init__(scenario, book, start_ns)
        self.side = side
        self.levels = levels
        self.big = big

    def step(self, model: MarketModel, now: int, out: list) -> None:
        side, book = self.side, self.book
        ticks, lots = book.levels(side, self.levels)
        if len(ticks) < self.levels:
            return
        total = int(lots.sum() * max(1.0, self.big))
        fills = self.aggress(now, out, -side, total, limit_tick=None,
                             max_levels=self.levels if not self.big else 25)
        ev = {"levels": len(fills), "volume": sum(q for _, q in fills) * book.spec.lot_size}
        first, last = fills[0][0], fills[-1][0]
        self.label("sweep", side, first, now, end_ns=now, evidence_ns=now, price_far_tick=last, evidence=ev)
        if self.big:
            self.label("big_trade", side, first, now, end_ns=now, evidence_ns=now, price_far_tick=last,
                       evidence=dict(ev))
        self.phase = "done"


def make_plant(kind: str, owner: Any, book: SymbolBook, start_ns: int, side: int) -> Plant:
    """The plant that stages one scenario kind (``owner.name`` names its labels)."""
    if kind == "iceberg":
        return IcebergPlant(owner, book, start_ns, side)
    if kind == "absorption":
        return AbsorptionPlant(owner, book, start_ns, side)
    if kind == "liquidity_gap":
        return GapPlant(owner, book, start_ns, side)
    if kind in ("large_order", "stack"):
        return LargeOrderPlant(owner, book, start_ns, side, "stay", rest_s=6.0,
                               distance=3 if kind == "large_order" else 5)
    if kind in ("pull", "pull_not_iceberg"):
        return LargeOrderPlant(owner, book, start_ns, side, "pull", rest_s=3.0 if kind == "pull" else 5.0)
    if kind == "eaten_through":
        return LargeOrderPlant(owner, book, start_ns, side, "eaten", rest_s=1.0, multiple=12.0)
    if kind == "sweep":
        return SweepPlant(owner, book, start_ns, side)
    if kind == "big_trade":
        # six levels' size is a sweep, not yet a big print on a heavy-tailed tape: four times that is
        return SweepPlant(owner, book, start_ns, side, big=4.0)
    raise ValueError(f"unknown scenario kind {kind!r}; one of {', '.join(SCENARIO_KINDS)}")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One labelled scenario: a planted event of ``kind`` on ``symbol`` after ``warmup_s`` of noise."""

    name: str
    kind: str
    seed: int
    side: int = ASK
    warmup_s: float = 8.0
    duration_s: float = 20.0
    rate: float = 300.0
    symbol_spec: SymbolSpec = DEFAULT_SYMBOLS[0]
    _plants: list[Plant] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in SCENARIO_KINDS:
            raise ValueError(f"unknown scenario kind {self.kind!r}; one of {', '.join(SCENARIO_KINDS)}")
        if self.side not in (BID, ASK):
            raise ValueError("scenario side must be BID (+1) or ASK (-1)")

    @property
    def symbols(self) -> tuple[SymbolSpec, ...]:
        """The one symbol the scenario trades (background noise included)."""
        return (self.symbol_spec,)

    @property
    def symbol(self) -> str:
        """The scenario's symbol name."""
        return self.symbol_spec.symbol

    def model(self, start_ns: int = 1_767_225_600_000_000_000) -> MarketModel:
        """A fresh model with this scenario installed."""
        model = MarketModel(self.symbols, seed=self.seed, rate=self.rate, start_ns=start_ns)
        self.install(model)
        return model

    def install(self, model: MarketModel) -> None:
        """Plant this scenario's event on ``model`` (fresh state; labels restart)."""
        book = model.books[self.symbol]
        start = model.now_ns + int(self.warmup_s * S)
        side = self.side
        plant = make_plant(self.kind, self, book, start, side)
        self._plants.clear()
        self._plants.append(plant)
        model.planters.append(plant)

    def labels(self, venue: str | None = None) -> list[dict[str, Any]]:
        """Labels recorded so far by the installed plant (JSON dicts)."""
        return [lab.as_dict(venue) for plant in self._plants for lab in plant.labels]

    def run(self, step_ms: float = 10.0, start_ns: int = 1_767_225_600_000_000_000
            ) -> Iterator[tuple[MarketModel, int, list]]:
        """Run offline: yields (model, exch time, events of that step) until ``duration_s``."""
        model = self.model(start_ns)
        step = int(step_ms * MS)
        end = start_ns + int(self.duration_s * S)
        while model.now_ns < end:
            events = model.step(step)
            yield model, model.now_ns, events
        self.finish(model.now_ns)

    def finish(self, now_ns: int) -> None:
        """Close labels still open (a plant running when the scenario ends closes with it)."""
        for plant in self._plants:
            for lab in plant.labels:
                if lab.end_ns is None:
                    lab.end_ns = now_ns

    def render(self, venue: str = "binance-usdm", latency_ms: float = 2.0,
               start_ns: int = 1_767_225_600_000_000_000) -> tuple[list[tuple[int, str]], list[dict[str, Any]]]:
        """Run offline and return the raw wire records a capture would hold and the labels.

        Binance: hftbacktest collector records (``@depth@0ms``, ``@trade``, ``@bookTicker``,
        ``@markPrice@1s`` envelopes and one REST depth snapshot after the first depth event).
        Bybit: ``orderbook.200`` snapshot + deltas, ``publicTrade``, ``tickers``.
        """
        from feeds.simulator.recorder import render_records

        records = render_records(self, venue, latency_ms=latency_ms, start_ns=start_ns)
        return records, self.labels(venue)


class ScenarioSuite:
    """The fixed scenario list the detectors are scored on: every kind, both sides, fixed seeds."""

    def __init__(self, seeds: tuple[int, ...] = (101, 202, 303), kinds: tuple[str, ...] = SCENARIO_KINDS) -> None:
        self.seeds = seeds
        self.kinds = kinds

    def scenarios(self) -> list[Scenario]:
        """One scenario per (kind, seed); the side alternates with the seed."""
        out = []
        for kind in self.kinds:
            for i, seed in enumerate(self.seeds):
                side = ASK if i % 2 == 0 else BID
                out.append(Scenario(f"{kind}-s{seed}", kind, seed, side=side))
        return out


class Showcase:
    """The demo's planted events: one kind after another on a live symbol, sides alternating.

    Installed like a scenario (``SimulatorServer(scenario=Showcase())``) but keeps the server's own
    symbols, seed and rate; labels accumulate for the whole session.
    """

    def __init__(self, symbol: str = "ALTUSDT", every_s: float = 20.0, first_after_s: float = 10.0,
                 kinds: tuple[str, ...] = ("large_order", "iceberg", "liquidity_gap", "absorption", "pull",
                                           "sweep", "stack", "eaten_through")) -> None:
        self.name = "showcase"
        self.hold_to_end = False
        self.symbol = symbol
        self.every_ns = int(every_s * S)
        self.first_after_ns = int(first_after_s * S)
        self.kinds = kinds
        self._plants: list[Plant] = []
        self._next_ns = 0
        self._count = 0

    def install(self, model: MarketModel) -> None:
        """Start staging events on ``model``'s ``symbol``."""
        if self.symbol not in model.books:
            raise ValueError(f"showcase symbol {self.symbol} is not simulated")
        self._plants.clear()
        self._next_ns = model.now_ns + self.first_after_ns
        model.planters.append(self._step)

    def _step(self, model: MarketModel, book: SymbolBook, t0: int, dt_ns: int, out: list) -> None:
        if book.spec.symbol != self.symbol:
            return
        now = t0 + dt_ns
        current = self._plants[-1] if self._plants else None
        if current is not None and current.phase != "done":
            current(model, book, t0, dt_ns, out)
            if current.phase == "done":
                self._next_ns = now + self.every_ns
            return
        if now >= self._next_ns:
            kind = self.kinds[self._count % len(self.kinds)]
            side = ASK if self._count % 2 == 0 else BID
            self._count += 1
            plant = make_plant(kind, self, book, now, side)
            self._plants.append(plant)
            plant(model, book, t0, dt_ns, out)
            # A one-shot event (a sweep) is done already: the next one is due after the usual pause.
            self._next_ns = now + self.every_ns if plant.phase == "done" else now + 3600 * S

    def labels(self, venue: str | None = None) -> list[dict[str, Any]]:
        """Labels of every event staged so far."""
        return [lab.as_dict(venue) for plant in self._plants for lab in plant.labels]
