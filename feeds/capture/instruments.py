"""Which symbols a capture holds and their instruments: recorded instrument info, else inferred.

Order of precedence per symbol: ``--tick-size`` override > the native sidecar's tick sizes > recorded
instrument info (Binance ``exchangeInfo``, Bybit ``instruments-info`` for category=linear) > inference
from the decimal strings in the file (the grid every seen price lies on: gcd of the prices scaled to
integers; the same for sizes gives the lot size). hftbacktest files carry no instrument info, and a
capture's symbol need not exist on any venue today, so inference is the normal path for them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from app.core.instrument import Instrument
from feeds.capture.readers import BINANCE_USDM, BYBIT_LINEAR, CaptureError, CaptureReader

_decode = msgspec.json.Decoder().decode
SCAN_RECORDS = 20_000  # enough book messages for hundreds of distinct prices per symbol
ENOUGH_PRICES = 1000  # distinct prices after which a symbol's messages are only looked at for its name
_BINANCE_SYMBOL = re.compile(r'"s":"([A-Z0-9]+)"')
_BYBIT_SYMBOL = re.compile(r'"topic":"[A-Za-z]+\.(?:[0-9]+\.)?([A-Z0-9]+)"')
MIN_PRICES = 30  # fewer distinct prices than this: the inferred grid may be too coarse (a warning)


@dataclass(slots=True)
class _Grid:
    """Decimal strings seen for one symbol: their widest decimals and the gcd of their scaled values."""

    decimals: int = 0
    values: set[str] = field(default_factory=set)

    def add(self, text: str) -> None:
        if len(self.values) < 50_000:
            self.values.add(text)

    def step(self) -> float:
        """The coarsest step every value is a multiple of (0.0 when none was seen)."""
        nonzero = [v for v in self.values if v.strip("0.") != ""]
        if not nonzero:
            return 0.0
        dec = max((len(v) - v.index(".") - 1) if "." in v else 0 for v in nonzero)
        g = 0
        for v in nonzero:
            whole, _, frac = v.partition(".")
            g = math.gcd(g, int(whole + (frac + "0" * dec)[:dec]))
            if g == 1:
                break
        return round(g / 10**dec, dec)


@dataclass(slots=True)
class CaptureContents:
    """Symbols found in a capture and one :class:`Instrument` per symbol, with where each came from."""

    venue: str
    instruments: dict[str, Instrument]
    source: dict[str, str]  # symbol -> "override" | "sidecar" | "exchangeInfo" | "instruments-info" | "inferred"
    warnings: list[str] = field(default_factory=list)


def _binance_symbols(obj: dict, prices: dict[str, _Grid], sizes: dict[str, _Grid]) -> None:
    data = obj.get("data", obj)
    if not isinstance(data, dict):
        return
    kind = data.get("e")
    sym = data.get("s")
    if not isinstance(sym, str):
        return
    pg = prices.setdefault(sym, _Grid())
    sg = sizes.setdefault(sym, _Grid())
    if kind == "depthUpdate":
        for p, q in data.get("b", []) + data.get("a", []):
            pg.add(p)
            sg.add(q)
    elif kind in ("trade", "aggTrade"):
        pg.add(data["p"])
        sg.add(data["q"])
    elif kind == "bookTicker":
        pg.add(data["b"])
        pg.add(data["a"])


def _bybit_symbols(obj: dict, prices: dict[str, _Grid], sizes: dict[str, _Grid]) -> None:
    topic = obj.get("topic")
    if not isinstance(topic, str):
        return
    data = obj.get("data")
    if topic.startswith("orderbook.") and isinstance(data, dict):
        sym = topic.split(".", 2)[2]
        pg = prices.setdefault(sym, _Grid())
        sg = sizes.setdefault(sym, _Grid())
        for p, q in data.get("b", []) + data.get("a", []):
            pg.add(p)
            sg.add(q)
    elif topic.startswith("publicTrade.") and isinstance(data, list):
        sym = topic.split(".", 1)[1]
        for t in data:
            prices.setdefault(sym, _Grid()).add(t["p"])
            sizes.setdefault(sym, _Grid()).add(t["v"])
    elif topic.startswith(("tickers.", "publicTrade.")):
        prices.setdefault(topic.split(".", 1)[1], _Grid())


def _bybit_instruments(body: str) -> dict[str, Instrument]:
    out: dict[str, Instrument] = {}
    try:
        info = _decode(body)
        if info["result"].get("category") != "linear":
            return out
        for entry in info["result"]["list"]:
            tick = float(entry["priceFilter"]["tickSize"])
            lot = float(entry.get("lotSizeFilter", {}).get("qtyStep", 0.0))
            out[entry["symbol"]] = Instrument(BYBIT_LINEAR, entry["symbol"], tick, lot, 1.0,
                                              entry.get("quoteCoin", "USDT"))
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        pass  # not usable: inference takes over
    return out


def _binance_instruments(body: str, symbols: Iterable[str]) -> dict[str, Instrument]:
    from feeds.binance_usdm import parse_exchange_info  # the adapter's own reading of exchangeInfo
    from feeds.common import FeedError

    out = {}
    for sym in symbols:
        try:
            out[sym] = parse_exchange_info(body, sym)
        except FeedError:
            continue
    return out


def _on_grid(grid: _Grid, tick: float) -> bool:
    """Every price seen for the symbol is a whole number of ``tick``."""
    step = grid.step()
    if step <= 0:
        return True
    ratio = step / tick
    return abs(ratio - round(ratio)) < 1e-6 and round(ratio) >= 1


def resolve_instruments(
    reader: CaptureReader,
    tick_size: float | None = None,
    symbols: Iterable[str] | None = None,
    scan_records: int = SCAN_RECORDS,
) -> CaptureContents:
    """Scan the head of the capture for symbols, instrument info and prices; build the instruments."""
    venue = reader.venue
    if venue not in (BINANCE_USDM, BYBIT_LINEAR):
        raise CaptureError(f"{reader.path.name}: venue {venue or 'unknown'} cannot be replayed "
                           f"(known: {BINANCE_USDM}, {BYBIT_LINEAR}; give --venue if the content does not say)")
    prices: dict[str, _Grid] = {}
    sizes: dict[str, _Grid] = {}
    info_bodies: list[tuple[str, str]] = []
    tardis_seen = reader.format == "tardis"
    n = 0
    for rec in reader:
        n += 1
        if n > scan_records and prices:
            break
        ch = rec.channel
        if tardis_seen:
            cols = rec.raw.split(",")
            prices.setdefault(cols[1], _Grid()).add(cols[6])
            if cols[7].strip("0.") != "":
                sizes.setdefault(cols[1], _Grid()).add(cols[7])
            continue
        if ch.startswith("rest:"):
            if "exchangeInfo" in ch or "instruments-info" in ch:
                info_bodies.append((ch, rec.raw))
            elif "lastUpdateId" in rec.raw[:20]:
                m = re.search(r"[?&]symbol=([A-Za-z0-9]+)", ch)
                owner = m.group(1).upper() if m else (next(iter(prices)) if len(prices) == 1 else None)
                if owner is None:
                    continue
                try:
                    snap = _decode(rec.raw)
                    pg = prices.setdefault(owner, _Grid())
                    sg = sizes.setdefault(owner, _Grid())
                    for side in ("bids", "asks"):
                        for p, q in snap[side]:
                            pg.add(p)
                            sg.add(q)
                except (msgspec.DecodeError, KeyError, TypeError, ValueError):
                    pass
            continue
        if not ch.startswith("ws") or "/spot" in ch:
            continue
        # a cheap look at the symbol first: once a symbol has enough prices its messages are not decoded
        m = (_BINANCE_SYMBOL if venue == BINANCE_USDM else _BYBIT_SYMBOL).search(rec.raw, 0, 240)
        if m is not None:
            grid = prices.get(m.group(1))
            if grid is not None and len(grid.values) >= ENOUGH_PRICES:
                continue
        try:
            obj = _decode(rec.raw)
        except msgspec.DecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        try:
            if venue == BINANCE_USDM:
                _binance_symbols(obj, prices, sizes)
            else:
                _bybit_symbols(obj, prices, sizes)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    side = reader.sidecar() or {}
    side_ticks = side.get("tick_sizes") or {}
    # a native capture names its symbols: one first heard of late in the file is still replayed
    found = sorted(set(prices) | set(side.get("symbols") or ()))
    wanted = found if symbols is None else [s.upper() for s in symbols]
    if not wanted:
        raise CaptureError(f"{reader.path.name}: no {venue} market data found in the first {n} records")
    recorded: dict[str, Instrument] = {}
    for ch, body in info_bodies:
        if venue == BYBIT_LINEAR and "instruments-info" in ch:
            recorded.update(_bybit_instruments(body))
        elif venue == BINANCE_USDM and "exchangeInfo" in ch:
            recorded.update(_binance_instruments(body, wanted))
    missing = [s for s in wanted if s not in found]
    if missing:
        raise CaptureError(f"{reader.path.name}: symbol(s) {', '.join(missing)} not in this capture "
                           f"(it has {', '.join(found) or 'none'})")
    contents = CaptureContents(venue, {}, {})
    for sym in wanted:
        lot = sizes.get(sym, _Grid()).step()
        if tick_size is not None:
            base = recorded.get(sym)
            contents.instruments[sym] = Instrument(venue, sym, tick_size, base.lot_size if base else lot)
            contents.source[sym] = "override"
        elif sym in side_ticks:
            base = recorded.get(sym)
            contents.instruments[sym] = Instrument(venue, sym, float(side_ticks[sym]), base.lot_size if base else lot)
            contents.source[sym] = "sidecar"
        elif sym in recorded and _on_grid(prices.get(sym, _Grid()), recorded[sym].tick_size):
            contents.instruments[sym] = recorded[sym]
            contents.source[sym] = "exchangeInfo" if venue == BINANCE_USDM else "instruments-info"
        else:
            grid = prices.get(sym, _Grid())
            tick = grid.step()
            if sym in recorded:  # the venue changed the tick since the info was fetched: trust the prices
                contents.warnings.append(f"{sym}: recorded tick size {recorded[sym].tick_size:g} does not fit "
                                         f"the recorded prices; using {tick:g} inferred from them")
            if tick <= 0:
                raise CaptureError(f"{reader.path.name}: no prices for {sym} to infer a tick size; give --tick-size")
            if len(grid.values) < MIN_PRICES:
                contents.warnings.append(f"{sym}: tick size {tick:g} inferred from only {len(grid.values)} "
                                         "distinct prices; give --tick-size if it is wrong")
            contents.instruments[sym] = Instrument(venue, sym, tick, lot)
            contents.source[sym] = "inferred"
    return contents
