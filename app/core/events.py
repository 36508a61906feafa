"""The one tagged event record of DepthDesk: hftbacktest's 64-byte ``event_dtype`` layout.

Every market event becomes one row of :data:`EVENT_DTYPE`, in arrival order; one exchange message
becomes one batch (a 1-D array of rows) applied atomically.

Field use (hftbacktest-compatible where hftbacktest defines the meaning):

===========  =========================================================================================
``ev``       kind in the low byte (``DEPTH_EVENT`` …) ORed with ``EXCH_EVENT | LOCAL_EVENT`` and a side
             flag (``BUY_EVENT`` = bid side / aggressive buy, ``SELL_EVENT`` = ask side / aggressive sell)
``exch_ts``  exchange time, int ns
``local_ts`` local receive time, int ns
``px``       price as a float (exactly ``px_tick * tick_size`` rounded): kept for hftbacktest export
``qty``      size; Binance USDⓈ-M and Bybit linear both quote size in base units (e.g. BTC)
``order_id`` depth rows: the venue's book update id (Binance ``u``, Bybit ``u``); trades: trade id
``ival``     price in integer ticks for depth/trade/liquidation rows (the value the app computes with);
             funding rows: next funding time in ns
``fval``     funding rows: funding rate; mark rows: index price; otherwise 0
===========  =========================================================================================
"""

from __future__ import annotations

import numpy as np

EVENT_DTYPE = np.dtype(
    [
        ("ev", "<u8"),
        ("exch_ts", "<i8"),
        ("local_ts", "<i8"),
        ("px", "<f8"),
        ("qty", "<f8"),
        ("order_id", "<u8"),
        ("ival", "<i8"),
        ("fval", "<f8"),
    ],
    align=True,
)
assert EVENT_DTYPE.itemsize == 64

# Flags, with hftbacktest's values so a session exports without translation.
EXCH_EVENT = 1 << 31
LOCAL_EVENT = 1 << 30
BUY_EVENT = 1 << 29
SELL_EVENT = 1 << 28

# Kinds (low byte). 1..5 are hftbacktest's; 100+ are DepthDesk's own (hftbacktest's user range).
DEPTH_EVENT = 1
TRADE_EVENT = 2
DEPTH_CLEAR_EVENT = 3
DEPTH_SNAPSHOT_EVENT = 4
DEPTH_BBO_EVENT = 5
MARK_PRICE_EVENT = 100
FUNDING_EVENT = 101
LIQUIDATION_EVENT = 102
OPEN_INTEREST_EVENT = 103
GAP_EVENT = 104  # the feed lost continuity here (reconnect/resync): charts draw a gap

KIND_MASK = 0xFF
SIDE_MASK = BUY_EVENT | SELL_EVENT
BOTH_CLOCKS = EXCH_EVENT | LOCAL_EVENT

BID = 1
ASK = -1
NO_PRICE = -(2**62)  # tick sentinel: no best bid/ask, no last trade


def kind_of(ev: np.ndarray | int) -> np.ndarray | int:
    """The kind (``DEPTH_EVENT`` …) of one ``ev`` value or an array of them."""
    return ev & KIND_MASK


def side_flag(side: int) -> int:
    """``BUY_EVENT`` for ``BID`` (+1), ``SELL_EVENT`` for ``ASK`` (-1)."""
    if side == BID:
        return BUY_EVENT
    if side == ASK:
        return SELL_EVENT
    raise ValueError(f"side must be BID (+1) or ASK (-1), got {side!r}")


def empty(n: int) -> np.ndarray:
    """A zeroed batch of ``n`` event rows."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def depth_rows(
    side: int,
    px_tick: np.ndarray,
    qty: np.ndarray,
    tick_size: float,
    exch_ts: int,
    local_ts: int,
    update_id: int = 0,
    kind: int = DEPTH_EVENT,
) -> np.ndarray:
    """Depth rows (absolute size at a price; 0 deletes) for one side of one message."""
    px_tick = np.asarray(px_tick, dtype=np.int64)
    out = empty(len(px_tick))
    out["ev"] = BOTH_CLOCKS | side_flag(side) | kind
    out["exch_ts"] = exch_ts
    out["local_ts"] = local_ts
    out["px"] = px_tick * tick_size
    out["qty"] = qty
    out["order_id"] = update_id
    out["ival"] = px_tick
    return out


def clear_row(exch_ts: int, local_ts: int, side: int = 0) -> np.ndarray:
    """One ``DEPTH_CLEAR_EVENT`` row; ``side`` 0 clears both sides."""
    out = empty(1)
    flags = 0 if side == 0 else side_flag(side)
    out["ev"] = BOTH_CLOCKS | flags | DEPTH_CLEAR_EVENT
    out["exch_ts"] = exch_ts
    out["local_ts"] = local_ts
    return out


def trade_row(
    aggressor: int,
    px_tick: int,
    qty: float,
    tick_size: float,
    exch_ts: int,
    local_ts: int,
    trade_id: int = 0,
) -> np.ndarray:
    """One trade row; ``aggressor`` is ``BID`` (+1) for an aggressive buy, ``ASK`` (-1) for a sell."""
    out = empty(1)
    out["ev"] = BOTH_CLOCKS | side_flag(aggressor) | TRADE_EVENT
    out["exch_ts"] = exch_ts
    out["local_ts"] = local_ts
    out["px"] = px_tick * tick_size
    out["qty"] = qty
    out["order_id"] = trade_id
    out["ival"] = px_tick
    return out


def marker_row(kind: int, exch_ts: int, local_ts: int, px: float = 0.0, qty: float = 0.0,
               ival: int = 0, fval: float = 0.0, side: int = 0) -> np.ndarray:
    """One row of a non-book kind (mark price, funding, liquidation, open interest, gap)."""
    out = empty(1)
    flags = 0 if side == 0 else side_flag(side)
    out["ev"] = BOTH_CLOCKS | flags | kind
    out["exch_ts"] = exch_ts
    out["local_ts"] = local_ts
    out["px"] = px
    out["qty"] = qty
    out["ival"] = ival
    out["fval"] = fval
    return out
