"""User alert rules: which detections (and which trade prints) deserve the trader's attention.

A rule names a detection ``kind`` (or ``"price"``), a ``side``, a minimum size (contracts, notional
or a multiple of the median level size), a price band around mid (ticks or %), a cooldown and whether
to play a sound. Rules come from the settings TOML as ``[[alerts]]`` tables and are validated with
errors that name the table and the key. :class:`AlertEngine` matches detections against the rules
(``match``) and checks price alerts against trade rows (``check_trades``) for the ladder's
click-to-alert.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.core.detection import KINDS, STATES, Detection
from app.core.events import KIND_MASK, TRADE_EVENT
from app.core.instrument import Instrument

PRICE = "price"
RULE_KINDS = (*KINDS, PRICE)

# The evidence field that is a detection's "size" (what min_size / min_notional compare with).
SIZE_FIELD = {
    "iceberg": "executed",
    "absorption": "executed",
    "pull": "cancelled",
    "stack": "added",
    "sweep": "executed",
    "big_trade": "executed",
    "large_order": "peak",
    "thin_book": "depth",
}

_SIDES = {"both": 0, "any": 0, "bid": 1, "ask": -1, "buy": 1, "sell": -1}
_KEYS = {"name", "kind", "side", "min_size", "min_notional", "size_multiple", "band_ticks", "band_pct",
         "cooldown_s", "sound", "states", "price", "price_tick", "direction", "once", "enabled"}


class AlertRuleError(ValueError):
    """An alert rule in the settings is invalid (the message names the rule and the key)."""


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One user rule. ``side`` 0 = both; for ``kind="price"``: ``price_tick`` and ``direction``."""

    name: str
    kind: str
    side: int = 0
    min_size: float = 0.0
    min_notional: float = 0.0
    size_multiple: float = 0.0
    band_ticks: int | None = None
    band_pct: float | None = None
    cooldown_s: float = 30.0
    sound: bool = True
    states: tuple[str, ...] = ("open",)
    price_tick: int | None = None
    price: float | None = None
    direction: str = "up"
    once: bool = True
    enabled: bool = True

    def __post_init__(self) -> None:
        where = f"alert {self.name!r}"
        if not self.name:
            raise AlertRuleError("alert rule: name must not be empty")
        if self.kind not in RULE_KINDS:
            raise AlertRuleError(f"{where}: unknown kind {self.kind!r} (one of {', '.join(RULE_KINDS)})")
        if self.side not in (0, 1, -1):
            raise AlertRuleError(f"{where}: side must be bid, ask or both")
        for key in ("min_size", "min_notional", "size_multiple", "cooldown_s"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v >= 0):
                raise AlertRuleError(f"{where}: {key} must be a number >= 0, got {v!r}")
        if self.band_ticks is not None and self.band_ticks < 0:
            raise AlertRuleError(f"{where}: band_ticks must be >= 0")
        if self.band_pct is not None and not (math.isfinite(self.band_pct) and self.band_pct >= 0):
            raise AlertRuleError(f"{where}: band_pct must be a number >= 0")
        if self.band_ticks is not None and self.band_pct is not None:
            raise AlertRuleError(f"{where}: give band_ticks or band_pct, not both")
        bad = [s for s in self.states if s not in STATES]
        if bad or not self.states:
            raise AlertRuleError(f"{where}: states must be a non-empty list of {', '.join(STATES)}, got {bad}")
        sized = self.min_size or self.min_notional or self.size_multiple
        if sized and self.kind in ("liquidity_gap", PRICE):
            raise AlertRuleError(f"{where}: a {self.kind} alert has no size; remove min_size/min_notional/"
                                 "size_multiple")
        if self.kind == PRICE:
            if self.price_tick is None and self.price is None:
                raise AlertRuleError(f"{where}: a price alert needs price (or price_tick)")
            if self.direction not in ("up", "down"):
                raise AlertRuleError(f"{where}: direction must be \"up\" (at or above) or \"down\" (at or below)")


@dataclass(frozen=True, slots=True)
class Alert:
    """A rule that fired: on a detection, or (price alerts) on a trade print at ``price_tick``."""

    rule: str
    detection: Detection | None
    exch_ts: int
    price_tick: int
    sound: bool
    kind: str = field(default="")

    def as_json(self, instrument: Instrument | None = None) -> dict[str, Any]:
        """``{"type":"alert","rule":..,"detection":{..}}`` (price alerts carry ``price`` instead)."""
        out: dict[str, Any] = {"type": "alert", "rule": self.rule, "kind": self.kind, "exch_ts": self.exch_ts,
                               "sound": self.sound}
        if self.detection is not None:
            out["detection"] = detection_json(self.detection, instrument)
        else:
            out["price"] = float(instrument.to_price(self.price_tick)) if instrument else None
            out["price_tick"] = self.price_tick
        return out


def detection_json(d: Detection, instrument: Instrument | None = None) -> dict[str, Any]:
    """One ``{"type":"detection",...}`` line of the headless JSON output."""
    out: dict[str, Any] = {"type": "detection", "kind": d.kind, "venue": d.venue, "symbol": d.symbol,
                           "side": "bid" if d.side > 0 else "ask", "id": d.id}
    if instrument is not None:
        out["price"] = float(instrument.to_price(d.price_tick))
        if d.price_far_tick is not None:
            out["price_far"] = float(instrument.to_price(d.price_far_tick))
    out["price_tick"] = d.price_tick
    if d.price_far_tick is not None:
        out["price_far_tick"] = d.price_far_tick
    out["exch_ts"] = d.exch_ts
    out["state"] = d.state
    for k, v in d.evidence.items():
        out.setdefault(k, v)
    return out


def detection_size(d: Detection) -> float:
    """The size a rule compares with (executed, cancelled, added, peak …); 0 when it has none."""
    key = SIZE_FIELD.get(d.kind)
    v = d.evidence.get(key) if key else None
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def rule_from_table(table: Any, index: int, instrument: Instrument | None = None) -> AlertRule:
    """One ``[[alerts]]`` table → rule; raises :class:`AlertRuleError` naming ``alerts[index]``."""
    where = f"alerts[{index}]"
    if not isinstance(table, dict):
        raise AlertRuleError(f"{where}: must be a table, got {type(table).__name__}")
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AlertRuleError(f"{where}: needs a name (text)")
    where = f"{where} ({name!r})"
    unknown = set(table) - _KEYS
    if unknown:
        raise AlertRuleError(f"{where}: unknown key(s) {sorted(unknown)}")

    def num(key: str, default: float | None, integer: bool = False) -> Any:
        v = table.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not isinstance(v, int)):
            raise AlertRuleError(f"{where}: {key} must be {'an integer' if integer else 'a number'}, got {v!r}")
        return v

    def flag(key: str, default: bool) -> bool:
        v = table.get(key, default)
        if not isinstance(v, bool):
            raise AlertRuleError(f"{where}: {key} must be true or false, got {v!r}")
        return v

    kind = table.get("kind")
    if not isinstance(kind, str):
        raise AlertRuleError(f"{where}: needs a kind (one of {', '.join(RULE_KINDS)})")
    side_raw = table.get("side", "both")
    if side_raw not in _SIDES:
        raise AlertRuleError(f"{where}: side must be one of bid, ask, both; got {side_raw!r}")
    states = table.get("states", ["open"])
    if isinstance(states, str):
        states = [states]
    if not isinstance(states, list) or not all(isinstance(s, str) for s in states):
        raise AlertRuleError(f"{where}: states must be a list of texts")
    price = num("price", None)
    price_tick = num("price_tick", None, integer=True)
    if price is not None and instrument is not None:
        try:
            price_tick = instrument.to_tick(price)
        except ValueError as exc:
            raise AlertRuleError(f"{where}: price {price!r}: {exc}") from None
    direction = table.get("direction", "up")
    try:
        return AlertRule(
            name=name.strip(), kind=kind, side=_SIDES[side_raw], min_size=float(num("min_size", 0.0)),
            min_notional=float(num("min_notional", 0.0)), size_multiple=float(num("size_multiple", 0.0)),
            band_ticks=num("band_ticks", None, integer=True), band_pct=num("band_pct", None),
            cooldown_s=float(num("cooldown_s", 30.0)), sound=flag("sound", True), states=tuple(states),
            price_tick=price_tick, price=None if price is None else float(price), direction=direction,
            once=flag("once", True), enabled=flag("enabled", True))
    except AlertRuleError as exc:
        raise AlertRuleError(f"{where}: {str(exc).split(': ', 1)[-1]}") from None


def load_rules(tables: Any, instrument: Instrument | None = None) -> list[AlertRule]:
    """The ``[[alerts]]`` array of a settings file → rules (names must be unique)."""
    if tables is None:
        return []
    if not isinstance(tables, list):
        raise AlertRuleError("alerts: must be an array of tables ([[alerts]])")
    rules = [rule_from_table(t, i, instrument) for i, t in enumerate(tables)]
    seen: set[str] = set()
    for r in rules:
        if r.name in seen:
            raise AlertRuleError(f"alerts: two rules are named {r.name!r}")
        seen.add(r.name)
    return rules


def rules_from_toml(text: str, instrument: Instrument | None = None) -> list[AlertRule]:
    """Parse a TOML document and load its ``[[alerts]]``; TOML syntax errors become AlertRuleError."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AlertRuleError(f"alerts: not valid TOML: {exc}") from None
    return load_rules(doc.get("alerts"), instrument)


def default_rules() -> list[AlertRule]:
    """The ``[[alerts]]`` shipped in ``resources/default.toml``: what a trader wants on first start."""
    from importlib import resources

    text = resources.files("resources").joinpath("default.toml").read_text(encoding="utf-8")
    return rules_from_toml(text)


class AlertEngine:
    """Matches detections and trade prints against the user's rules, with per-rule cooldowns."""

    def __init__(self, instrument: Instrument, rules: list[AlertRule]) -> None:
        self.instrument = instrument
        resolved = []
        for r in rules:
            if r.kind == PRICE and r.price_tick is None and r.price is not None:
                try:
                    tick = instrument.to_tick(r.price)
                except ValueError as exc:
                    raise AlertRuleError(f"alert {r.name!r}: price {r.price!r}: {exc}") from None
                r = dataclasses.replace(r, price_tick=tick)
            resolved.append(r)
        self.rules = [r for r in resolved if r.enabled and r.kind != PRICE]
        self.price_rules = [r for r in resolved if r.enabled and r.kind == PRICE]
        self._last: dict[tuple[str, int, int, str], int] = {}  # (rule, side, tick, state) -> exch_ts of last alert
        self._fired: set[str] = set()

    def add_price_alert(self, name: str, price_tick: int, direction: str, sound: bool = True,
                        once: bool = True) -> AlertRule:
        """The ladder's click-to-alert: alert when a trade prints at/through ``price_tick``."""
        rule = AlertRule(name=name, kind=PRICE, price_tick=int(price_tick), direction=direction, sound=sound,
                         once=once)
        self.price_rules = [r for r in self.price_rules if r.name != name] + [rule]
        self._fired.discard(name)
        return rule

    def remove(self, name: str) -> None:
        """Drop a rule by name."""
        self.rules = [r for r in self.rules if r.name != name]
        self.price_rules = [r for r in self.price_rules if r.name != name]

    def match(self, detections: list[Detection] | tuple[Detection, ...], mid_tick: int | None,
              median_level: float | None = None) -> list[Alert]:
        """Alerts for these detections, ``mid_tick`` being the mid now (needed for price bands)."""
        out: list[Alert] = []
        if not self.rules:
            return out
        for d in detections:
            for r in self.rules:
                if r.kind != d.kind or d.state not in r.states or (r.side and r.side != d.side):
                    continue
                if not self._in_band(r, d.price_tick, mid_tick):
                    continue
                if not self._big_enough(r, d, median_level):
                    continue
                key = (r.name, d.side, d.price_tick, d.state)  # a fill/pull is news even just after the open
                last = self._last.get(key)
                if last is not None and d.exch_ts - last < r.cooldown_s * 1e9:
                    continue
                self._last[key] = d.exch_ts
                out.append(Alert(r.name, d, d.exch_ts, d.price_tick, r.sound, d.kind))
        return out

    def check_trades(self, batch: np.ndarray) -> list[Alert]:
        """Price alerts hit by the trade rows of one batch (``up``: a print at or above the price)."""
        if not self.price_rules:
            return []
        trades = batch[(batch["ev"] & KIND_MASK) == TRADE_EVENT]
        if not len(trades):
            return []
        ticks = trades["ival"]
        out: list[Alert] = []
        for r in self.price_rules:
            if r.once and r.name in self._fired:
                continue
            hit = np.flatnonzero(ticks >= r.price_tick if r.direction == "up" else ticks <= r.price_tick)
            if not len(hit):
                continue
            ts = int(trades["exch_ts"][hit[0]])
            last = self._last.get((r.name, 0, r.price_tick, PRICE))
            if last is not None and ts - last < r.cooldown_s * 1e9:
                continue
            self._last[(r.name, 0, r.price_tick, PRICE)] = ts
            self._fired.add(r.name)
            out.append(Alert(r.name, None, ts, int(ticks[hit[0]]), r.sound, PRICE))
        return out

    def _in_band(self, r: AlertRule, tick: int, mid_tick: int | None) -> bool:
        if r.band_ticks is None and r.band_pct is None:
            return True
        if mid_tick is None:
            return False  # no mid, no band: better silent than an alert far from price
        dist = abs(tick - mid_tick)
        if r.band_ticks is not None:
            return dist <= r.band_ticks
        return dist <= abs(mid_tick) * r.band_pct / 100.0

    def _big_enough(self, r: AlertRule, d: Detection, median_level: float | None) -> bool:
        if not (r.min_size or r.min_notional or r.size_multiple):
            return True
        size = detection_size(d)
        if size < r.min_size:
            return False
        if r.min_notional and size * d.price_tick * self.instrument.tick_size * self.instrument.multiplier \
                < r.min_notional:
            return False
        if r.size_multiple:
            if median_level is None:
                median_level = d.evidence.get("median_level")
            if not isinstance(median_level, int | float) or size < r.size_multiple * median_level:
                return False
        return True
