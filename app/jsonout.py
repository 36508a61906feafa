"""The JSON-lines writer of the headless modes (`watch --json`, `replay --json`): one object per line.

Line types (DESIGN.md §7, issues 3 and 5):

- ``top``: ``{"type":"top","venue","symbol","exch_ts","local_ts","update_id","bid_px","bid_qty",
  "ask_px","ask_qty"}`` after every applied book message of an in-sync book (empty side: ``null``);
- ``status``: ``{"type":"status","venue","symbol","state","reason"}``;
- ``funding``: ``{"type":"funding","venue","symbol","exch_ts","local_ts","rate","next_funding_ts",
  "mark_px","index_px","open_interest"}``;
- ``detection``: ``{"type":"detection","kind","venue","symbol","id","side":"bid"|"ask","price",
  "exch_ts","state", ...evidence}`` (``price_far`` for a gap's far edge);
- ``alert``: ``{"type":"alert","rule","kind","exch_ts","sound","detection":{...}}``; a price rule's
  alert (``kind":"price"``) has ``venue``, ``symbol`` and ``price`` instead of a detection;
- ``summary``: totals and per-source ``messages``, ``resyncs``, ``reconnects``, ``malformed``.

Prices are JSON numbers printed with the instrument's decimals (``64250.1``, never ``64250.100000001``).
``top`` lines are the hot path: they are formatted by hand from a per-instrument cached prefix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from app.core.detection import Detection
from app.core.events import NO_PRICE
from app.core.frame import FundingState
from app.core.instrument import Instrument

SIDE_NAMES = {1: "bid", -1: "ask"}


def format_qty(qty: float) -> str:
    """A size as the shortest JSON number that round-trips (integers without ``.0``)."""
    q = float(qty)
    if q.is_integer() and abs(q) < 1e15:
        return str(int(q))
    return repr(q)


def _num(value: float) -> str:
    """A finite float as a JSON number; non-finite values become ``null`` (JSON has no NaN)."""
    v = float(value)
    return repr(v) if math.isfinite(v) else "null"


class JsonLinesWriter:
    """Writes DepthDesk's JSON lines to a text stream; flushes every line so pipes see them at once."""

    def __init__(self, stream: TextIO, flush: bool = True) -> None:
        self._stream = stream
        self._flush = flush
        self._top_prefix: dict[tuple[str, str], str] = {}
        self.lines = 0

    def _write(self, line: str) -> None:
        self._stream.write(line)
        self._stream.write("\n")
        self.lines += 1
        if self._flush:
            self._stream.flush()

    def write_obj(self, obj: Mapping[str, Any]) -> None:
        """Write one arbitrary JSON object as a line (compact separators)."""
        self._write(json.dumps(obj, separators=(",", ":"), allow_nan=False))

    def flush(self) -> None:
        """Flush the underlying stream."""
        self._stream.flush()

    # -- prices ---------------------------------------------------------------------------------

    @staticmethod
    def price(instrument: Instrument, tick: int) -> str:
        """A tick as a JSON number with the instrument's decimals, or ``null`` for ``NO_PRICE``."""
        if tick == NO_PRICE:
            return "null"
        return instrument.format_price(int(tick))

    # -- line types -----------------------------------------------------------------------------

    def top(
        self,
        instrument: Instrument,
        exch_ts: int,
        local_ts: int,
        update_id: int,
        bid_tick: int,
        bid_qty: float,
        ask_tick: int,
        ask_qty: float,
    ) -> None:
        """One ``top`` line: the book's best bid/ask after the message with ``update_id``."""
        key = (instrument.venue, instrument.symbol)
        prefix = self._top_prefix.get(key)
        if prefix is None:
            prefix = (
                '{"type":"top","venue":' + json.dumps(instrument.venue) + ',"symbol":' + json.dumps(instrument.symbol)
            )
            self._top_prefix[key] = prefix
        if bid_tick == NO_PRICE:
            bid_px, bid_q = "null", "null"
        else:
            bid_px, bid_q = instrument.format_price(int(bid_tick)), format_qty(bid_qty)
        if ask_tick == NO_PRICE:
            ask_px, ask_q = "null", "null"
        else:
            ask_px, ask_q = instrument.format_price(int(ask_tick)), format_qty(ask_qty)
        self._write(
            f'{prefix},"exch_ts":{int(exch_ts)},"local_ts":{int(local_ts)},"update_id":{int(update_id)},'
            f'"bid_px":{bid_px},"bid_qty":{bid_q},"ask_px":{ask_px},"ask_qty":{ask_q}}}'
        )

    def status(self, venue: str, symbol: str, state: str, reason: str = "") -> None:
        """One ``status`` line (feed state change)."""
        self.write_obj({"type": "status", "venue": venue, "symbol": symbol, "state": state, "reason": reason})

    def funding(self, instrument: Instrument, funding: FundingState, exch_ts: int, local_ts: int) -> None:
        """One ``funding`` line (mark price / funding rate / open interest update)."""
        # Mark/index are not on the tick grid (the venue gives more digits): shortest exact float, not tick decimals.
        self._write(
            '{"type":"funding","venue":' + json.dumps(instrument.venue) + ',"symbol":' + json.dumps(instrument.symbol)
            + f',"exch_ts":{int(exch_ts)},"local_ts":{int(local_ts)},"rate":{_num(funding.rate)},'
            f'"next_funding_ts":{int(funding.next_funding_ts)},'
            f'"mark_px":{_num(funding.mark_px)},"index_px":{_num(funding.index_px)},'
            f'"open_interest":{_num(funding.open_interest)}}}'
        )

    def detection_obj(self, instrument: Instrument, detection: Detection) -> dict[str, Any]:
        """The JSON object of a detection (also nested in ``alert`` lines)."""
        obj: dict[str, Any] = {
            "type": "detection",
            "kind": detection.kind,
            "venue": detection.venue,
            "symbol": detection.symbol,
            "id": detection.id,
            "side": SIDE_NAMES[detection.side],
            "price": _RawNumber(instrument.format_price(detection.price_tick)),
            "exch_ts": int(detection.exch_ts),
            "state": detection.state,
        }
        if detection.price_far_tick is not None:
            obj["price_far"] = _RawNumber(instrument.format_price(detection.price_far_tick))
        for name, value in detection.evidence.items():
            if name not in obj:
                obj[name] = _plain(value)
        return obj

    def detection(self, instrument: Instrument, detection: Detection) -> None:
        """One ``detection`` line."""
        self._write(_dumps(self.detection_obj(instrument, detection)))

    def alert(self, instrument: Instrument, alert: Any) -> None:
        """One ``alert`` line: ``{"type":"alert","rule","kind","exch_ts","sound","detection":{...}}``; a
        price alert (no detection) carries ``venue``, ``symbol`` and ``price`` instead."""
        obj: dict[str, Any] = {"type": "alert", "rule": alert.rule, "kind": alert.kind,
                               "exch_ts": int(alert.exch_ts), "sound": bool(alert.sound)}
        if alert.detection is not None:
            obj["detection"] = self.detection_obj(instrument, alert.detection)
        else:
            obj["venue"] = instrument.venue
            obj["symbol"] = instrument.symbol
            obj["price"] = _RawNumber(instrument.format_price(int(alert.price_tick)))
        self._write(_dumps(obj))

    def summary(self, sources: Sequence[Mapping[str, Any]], **extra: Any) -> None:
        """The final ``summary`` line: per-source counts plus their totals."""
        totals = {name: sum(int(s.get(name, 0)) for s in sources)
                  for name in ("messages", "resyncs", "reconnects", "malformed")}
        obj: dict[str, Any] = {"type": "summary", **totals}
        obj.update({k: _plain(v) for k, v in extra.items()})
        obj["sources"] = [{k: _plain(v) for k, v in s.items()} for s in sources]
        self.write_obj(obj)


class _RawNumber(str):
    """A pre-formatted JSON number (keeps the instrument's decimals through ``_dumps``)."""


def _plain(value: Any) -> Any:
    """numpy scalars/arrays and tuples to plain JSON-able Python values; non-finite floats to None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _dumps(obj: Mapping[str, Any]) -> str:
    """Compact JSON where :class:`_RawNumber` values are written verbatim as numbers."""
    parts = []
    for key, value in obj.items():
        if isinstance(value, _RawNumber):
            text = str.__str__(value)
        elif isinstance(value, Mapping):
            text = _dumps(value)
        else:
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        parts.append(json.dumps(key) + ":" + text)
    return "{" + ",".join(parts) + "}"
