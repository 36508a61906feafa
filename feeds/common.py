"""Pieces both venue adapters share: the feed error, fast row packing, tick rounding, REST lines.

Row packing: a one-message batch of 1–3 rows is built with ``struct`` into a bytearray and viewed as
``EVENT_DTYPE`` (about 0.6 µs for two rows) instead of field-by-field numpy assignment (about 2.5 µs
per row); this is the hot path for bookTicker and trades, which are most messages.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from app.core.events import (
    BOTH_CLOCKS,
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_DTYPE,
    GAP_EVENT,
    SELL_EVENT,
)
from app.core.instrument import Instrument, OffGridPrice

MS = 1_000_000  # ms -> ns

_ROW = "QqqddQqd"  # ev, exch_ts, local_ts, px, qty, order_id, ival, fval: EVENT_DTYPE's layout
_PACK = [struct.Struct("<" + _ROW * n).pack for n in range(9)]

BID_DEPTH = BOTH_CLOCKS | BUY_EVENT
ASK_DEPTH = BOTH_CLOCKS | SELL_EVENT


class SyncBatch(NamedTuple):
    """A batch to deliver and the book update id it leaves the book at (``None``: not a book change)."""

    batch: np.ndarray
    update_id: int | None


class FeedError(Exception):
    """A problem the user must fix (unknown symbol, unreachable endpoint at start): one-line message."""


def rows(*fields: float) -> np.ndarray:
    """A batch of ``len(fields) // 8`` (at most 8) rows from flat field values in ``EVENT_DTYPE`` order."""
    return np.frombuffer(bytearray(_PACK[len(fields) >> 3](*fields)), dtype=EVENT_DTYPE)


def tick_of(inst: Instrument, price: float) -> int:
    """One price -> ticks, raising :class:`OffGridPrice` off the grid (venue decimals are exact)."""
    raw = price / inst.tick_size
    tick = round(raw)
    if abs(raw - tick) > 1e-6:
        raise OffGridPrice(f"{inst.key}: price {price!r} not on tick grid {inst.tick_size}")
    return tick


def levels_to_rows(
    bids: list, asks: list, inst: Instrument, exch_ts: int, local_ts: int, update_id: int, kind: int
) -> np.ndarray:
    """Bid then ask levels ``[(price, qty), ...]`` -> depth rows of ``kind`` (absolute size; 0 deletes)."""
    nb = len(bids)
    n = nb + len(asks)
    out = np.empty(n, dtype=EVENT_DTYPE)
    if n == 0:
        return out
    lv = np.array(bids + asks if nb and asks else (bids or asks), dtype=np.float64).reshape(n, 2)
    px = lv[:, 0]
    qty = lv[:, 1]
    if not (np.isfinite(qty).all() and (qty >= 0).all()):
        raise ValueError(f"{inst.key}: bad size in depth levels")
    ticks = inst.to_ticks(px)
    ev = out["ev"]
    ev[:nb] = BID_DEPTH | kind
    ev[nb:] = ASK_DEPTH | kind
    out["exch_ts"] = exch_ts
    out["local_ts"] = local_ts
    out["px"] = ticks * inst.tick_size
    out["qty"] = qty
    out["order_id"] = update_id
    out["ival"] = ticks
    out["fval"] = 0.0
    return out


def snapshot_batch(
    bids: list, asks: list, inst: Instrument, exch_ts: int, local_ts: int, update_id: int
) -> np.ndarray:
    """A full book: one ``DEPTH_CLEAR_EVENT`` (both sides) then ``DEPTH_SNAPSHOT_EVENT`` rows."""
    levels = levels_to_rows(bids, asks, inst, exch_ts, local_ts, update_id, DEPTH_SNAPSHOT_EVENT)
    clear = rows(BOTH_CLOCKS | DEPTH_CLEAR_EVENT, exch_ts, local_ts, 0.0, 0.0, update_id, 0, 0.0)
    return np.concatenate((clear, levels))


def gap_batch(exch_ts: int, local_ts: int) -> np.ndarray:
    """Lost continuity: a ``GAP_EVENT`` marker then a ``DEPTH_CLEAR_EVENT`` of both sides."""
    return rows(
        BOTH_CLOCKS | GAP_EVENT, exch_ts, local_ts, 0.0, 0.0, 0, 0, 0.0,
        BOTH_CLOCKS | DEPTH_CLEAR_EVENT, exch_ts, local_ts, 0.0, 0.0, 0, 0, 0.0,
    )  # fmt: skip


def gap_marker(exch_ts: int, local_ts: int) -> np.ndarray:
    """A lone ``GAP_EVENT`` (a trades/mark connection dropped; the book is untouched)."""
    return rows(BOTH_CLOCKS | GAP_EVENT, exch_ts, local_ts, 0.0, 0.0, 0, 0, 0.0)


def rest_line(path: str, body: str) -> str:
    """How a REST response is recorded through ``FeedSink.on_raw``: ``{"rest":"<path?query>","data":<body>}``.

    The body is embedded byte-exact (it is JSON already), so a capture reader can hand the line back
    to the venue processor's ``on_line`` and get the same batches as live.
    """
    return '{"rest":"' + path.replace('"', "%22") + '","data":' + body + "}"
