"""Frames built from plain arrays: the test helper and the look-at-it book for screenshots."""

from __future__ import annotations

import numpy as np

from app.core.detection import Detection
from app.core.events import BOTH_CLOCKS, BUY_EVENT, NO_PRICE, SELL_EVENT, TRADE_EVENT, empty
from app.core.frame import Frame, FundingState
from app.core.instrument import Instrument

ALT = Instrument("demo", "ALTUSDT", tick_size=0.0001, lot_size=1.0)


def make_frame(
    bids: dict[int, float],
    asks: dict[int, float],
    *,
    version: int = 1,
    instrument: Instrument = ALT,
    state: str = "live",
    rows_around: int = 60,
    traded_buy: dict[int, float] | None = None,
    traded_sell: dict[int, float] | None = None,
    size_change: dict[int, float] | None = None,
    trades: np.ndarray | None = None,
    detections: tuple[Detection, ...] = (),
    last_trade: tuple[int, int] | None = None,
    funding: FundingState | None = None,
    exch_ts: int = 1_764_072_000_000_000_000,
) -> Frame:
    """A Frame whose ladder spans every given level plus ``rows_around`` ticks either side."""
    bb = max(bids) if bids else NO_PRICE
    ba = min(asks) if asks else NO_PRICE
    levels = list(bids) + list(asks) + list(traded_buy or {}) + list(traded_sell or {})
    if not levels:
        raise ValueError("make_frame needs at least one level")
    hi, lo = max(levels) + rows_around, min(levels) - rows_around
    ticks = np.arange(hi, lo - 1, -1, dtype=np.int64)

    def column(values: dict[int, float] | None) -> np.ndarray:
        col = np.zeros(len(ticks))
        for tick, v in (values or {}).items():
            col[hi - tick] = v
        return col

    last_tick, last_side = last_trade if last_trade else (NO_PRICE, 0)
    return Frame(
        version=version,
        instrument=instrument,
        state=state,
        exch_ts=exch_ts,
        local_ts=exch_ts + 2_000_000,
        best_bid_tick=bb,
        best_bid_qty=bids.get(bb, 0.0) if bids else 0.0,
        best_ask_tick=ba,
        best_ask_qty=asks.get(ba, 0.0) if asks else 0.0,
        last_trade_tick=last_tick,
        last_trade_side=last_side,
        ladder_ticks=ticks,
        ladder_bid=column(bids),
        ladder_ask=column(asks),
        ladder_traded_buy=column(traded_buy),
        ladder_traded_sell=column(traded_sell),
        ladder_size_change=column(size_change),
        trades=trades if trades is not None else empty(0),
        detections=detections,
        funding=funding,
    )


def make_trades(rows: list[tuple[int, int, float, int]], tick_size: float = ALT.tick_size) -> np.ndarray:
    """Trade rows from (exch_ts ns, aggressor side +1/-1, qty, price tick) tuples."""
    out = empty(len(rows))
    for i, (ts, side, qty, tick) in enumerate(rows):
        out[i]["ev"] = BOTH_CLOCKS | TRADE_EVENT | (BUY_EVENT if side > 0 else SELL_EVENT)
        out[i]["exch_ts"] = ts
        out[i]["local_ts"] = ts + 1_000_000
        out[i]["px"] = tick * tick_size
        out[i]["qty"] = qty
        out[i]["order_id"] = i + 1
        out[i]["ival"] = tick
    return out


def demo_book(version: int = 1, seed: int = 7, mid_tick: int = 4321, state: str = "live") -> Frame:
    """A believable thin small-cap book with a large bid, an iceberg, a gap and session volume."""
    rng = np.random.default_rng(seed)
    bb, ba = mid_tick - 1, mid_tick + 1
    bids = {bb - i: float(np.round(rng.gamma(1.4, 900) + 60, 0)) for i in range(0, 80)}
    asks = {ba + i: float(np.round(rng.gamma(1.4, 900) + 60, 0)) for i in range(0, 80)}
    for t in range(ba + 6, ba + 11):  # a vacuum above the market
        asks[t] = float(np.round(rng.uniform(5, 30)))
    bids[bb - 7] = 26_500.0  # a wall
    asks[ba + 14] = 19_800.0
    traded_buy = {t: float(np.round(rng.gamma(1.2, 700))) for t in range(bb - 12, ba + 12) if rng.random() < 0.7}
    traded_sell = {t: float(np.round(rng.gamma(1.2, 700))) for t in range(bb - 12, ba + 12) if rng.random() < 0.7}
    change = {t: float(np.round(rng.normal(0, 900))) for t in range(bb - 20, ba + 20) if rng.random() < 0.25}
    ts0 = 1_764_072_000_000_000_000
    trade_rows = []
    for i in range(160):
        side = 1 if rng.random() < 0.52 else -1
        tick = ba if side > 0 else bb
        qty = float(np.round(rng.gamma(0.8, 250) + 1))
        if i % 37 == 5:
            qty *= 25
        ts = ts0 + i * 180_000_000
        trade_rows.append((ts, side, qty, tick))
        if i % 11 == 0:  # a multi-level sweep: same timestamp, same side
            trade_rows.append((ts, side, qty * 0.6, tick + side))
    trades = make_trades(trade_rows)
    dets = (
        Detection(1, "iceberg", "demo", "ALTUSDT", 1, bb - 3, ts0, "update",
                  evidence={"executed": 18_400.0, "visible": 2_100.0, "hidden": 16_300.0, "refills": 6}),
        Detection(2, "absorption", "demo", "ALTUSDT", -1, ba, ts0, "open", evidence={"absorbed": 9_750.0}),
        Detection(3, "liquidity_gap", "demo", "ALTUSDT", -1, ba + 6, ts0, "open", price_far_tick=ba + 10),
        Detection(4, "large_order", "demo", "ALTUSDT", 1, bb - 7, ts0, "open", evidence={"size": 26_500.0}),
    )
    return make_frame(
        bids, asks, version=version, state=state, traded_buy=traded_buy, traded_sell=traded_sell,
        size_change=change, trades=trades, detections=dets, last_trade=(ba, 1),
        funding=FundingState(rate=0.000125, next_funding_ts=ts0 + 3_600_000_000_000, mark_px=mid_tick * 1e-4,
                             index_px=mid_tick * 1e-4 * 0.9998, open_interest=48_200_000.0),
        exch_ts=ts0 + 160 * 180_000_000,
    )
