"""``MarketState.apply_many`` (quote/trade stretches in one step, detectors' ``on_run``) leaves exactly what
``apply`` message by message leaves: every emit (tops, detections with their evidence, alerts) in order,
and the book, ring, heatmap, size snapshots, profile, footprint, detector and alert state, on the real
BTCUSDT and ETHUSDT captures and on simulator scenarios with planted events."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.analytics.alerts import AlertEngine, AlertRule, load_rules
from app.analytics.detectors import DetectorSet
from app.commands.watch import load_user_config
from app.core.events import (
    ASK,
    BID,
    DEPTH_BBO_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_DTYPE,
    TRADE_EVENT,
    clear_row,
    depth_rows,
    trade_row,
)
from app.core.instrument import Instrument
from app.market import MarketState
from feeds.capture.replay import ReplayFeed

Step = tuple[str, Any, Any, Any]  # ("batch", symbol, rows, update_id) or ("status", symbol, state, reason)


class _Record:
    """A feed sink that keeps every call, in order (no ``on_batches``: one message per call)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.instruments: dict[str, Instrument] = {}

    def on_instrument(self, instrument: Instrument) -> None:
        self.instruments[instrument.symbol] = instrument

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        self.steps.append(("batch", symbol, batch.copy(), update_id))

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        self.steps.append(("status", symbol, state, reason))

    def on_raw(self, local_ns: int, raw: str) -> None:
        return None


def record(path: Path) -> _Record:
    """Every message and status of a capture, as the replay delivers them."""
    sink = _Record()
    asyncio.run(ReplayFeed(path).run(sink))
    assert sink.instruments and sink.steps
    return sink


def make_market(inst: Instrument, price_ticks: list[int]) -> MarketState:
    """A market with the default detectors and alert rules, plus price alerts that fire again and again."""
    config = load_user_config(None)
    alerts = AlertEngine(inst, load_rules(config.get("alerts")))
    for i, tick in enumerate(price_ticks):  # up and down through the traded range, 1 s cooldown, not once
        alerts.price_rules.append(AlertRule(name=f"p{i}", kind="price", price_tick=tick, once=False,
                                            cooldown_s=1.0, direction="up" if i % 2 else "down"))
    return MarketState(inst, config, detectors=DetectorSet(inst, config), alerts=alerts)


def run_one_by_one(steps: list[Step], symbol: str, market: MarketState) -> list[Any]:
    out: list[Any] = []
    for kind, sym, a, b in steps:
        if sym != symbol:
            continue
        if kind == "status":
            market.set_state(a)
            out.append(("status", a))
            continue
        emit = market.apply(a, b)
        if emit is not None:
            out.append(emit)
    out.append(market.finish())
    return out


def run_in_runs(steps: list[Step], symbol: str, market: MarketState, seed: int) -> list[Any]:
    """Stretches of random length (1 .. 700 messages), cut at every status as the replay does."""
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    run: list[tuple[np.ndarray, int | None]] = []
    want = int(rng.integers(1, 700))
    for kind, sym, a, b in steps:
        if sym != symbol:
            continue
        if kind == "status" or len(run) >= want:
            out.extend(market.apply_many(run))
            run = []
            want = int(rng.integers(1, 700))
        if kind == "status":
            market.set_state(a)
            out.append(("status", a))
        else:
            run.append((a, b))
    out.extend(market.apply_many(run))
    out.append(market.finish())
    return out


def state_of(m: MarketState) -> dict[str, Any]:
    """Everything a market keeps that a message can change (arrays as bytes, objects as plain values)."""
    hm = m.heatmap
    m.footprint_bars()  # flushes the trades into profile, footprint and heatmap trade sums
    p = m.profile
    buy, sell = p.volume_at(np.arange(p.lo_tick, p.hi_tick + 1, dtype=np.int64))
    bars = [tuple(v.tolist() if isinstance(v, np.ndarray) else v
                  for v in (getattr(bar, f.name) for f in dataclasses.fields(bar))) for bar in m.footprint.bars()]
    det = m.detectors
    return {
        "book": [(m.book.levels(s)[0].tobytes(), m.book.levels(s)[1].tobytes()) for s in (BID, ASK)],
        "update_id": m.book.update_id,
        "ring": (m.ring.total_written, m.ring.latest().tobytes()),
        "liquidations": m.liquidations.latest().tobytes(),
        "counters": (m.messages, m.events, m.tops, m.gaps, m.rejected, m.crossed, m.repeated_ids,
                     m.analytics_errors, m.version, m.synced, m.state, m._rate_count, m.detection_events),
        "clocks": (m.last_exch_ts, m.last_local_ts, m._next_snapshot_ts),
        "last_trade": (m.last_trade_tick, m.last_trade_side, m.last_trade_qty),
        "snapshots": [(ts, lo, q.tobytes()) for ts, lo, q in m._snapshots],
        "heatmap": (hm.version, hm.open_col, hm.group, hm._base, hm._carry, hm.tex.tobytes(), hm.base.tobytes(),
                    hm.col.tobytes(), hm.live.tobytes(), hm.bid.tobytes(), hm.ask.tobytes(), hm.buy.tobytes(),
                    hm.sell.tobytes(), hm.buy_tq.tobytes(), hm.sell_tq.tobytes()),
        "profile": (p.lo_tick, p.hi_tick, p.trade_count, p.buy_volume, p.sell_volume, buy.tobytes(), sell.tobytes()),
        "footprint": bars,
        "detections": (list(m.detection_log), m.open_detections),
        "detector_clock": (det._now, det._next_drain, det._next_eval, det._ticks, det._tn, len(det._pending)),
        "alerts": (sorted(m.alerts._fired), sorted(m.alerts._last.items())),
        "funding": m.funding.version,
    }


def check_same(steps: list[Step], inst: Instrument, seed: int = 1) -> list[Any]:
    """Both ways on the same messages; returns the emits (asserted equal)."""
    trades = np.concatenate([a[(a["ev"] & 0xFF) == TRADE_EVENT]["ival"] for k, s, a, _ in steps
                             if k == "batch" and s == inst.symbol] + [np.zeros(0, np.int64)])
    ticks = np.quantile(trades, [0.2, 0.4, 0.6, 0.8]).astype(np.int64).tolist() if len(trades) else []
    one, many = make_market(inst, ticks), make_market(inst, ticks)
    a = run_one_by_one(steps, inst.symbol, one)
    b = run_in_runs(steps, inst.symbol, many, seed)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x == y
    sa, sb = state_of(one), state_of(many)
    for key in sa:
        assert sa[key] == sb[key], key
    return a


def kinds_of(emits: list[Any]) -> dict[str, int]:
    """How many detections of each kind, alerts and tops the emits hold."""
    out: dict[str, int] = {}
    for e in emits:
        if e is None or isinstance(e, tuple) and e[0] == "status":
            continue
        out["top"] = out.get("top", 0) + (e.top is not None)
        out["alert"] = out.get("alert", 0) + len(e.alerts)
        for d in e.detections:
            out[d.kind] = out.get(d.kind, 0) + 1
    return out


@pytest.mark.parametrize("name", ["btc_capture", "eth_capture"])
def test_real_capture_same_emits_and_state(name: str, request: pytest.FixtureRequest) -> None:
    rec = record(request.getfixturevalue(name))
    inst = next(iter(rec.instruments.values()))
    counts = kinds_of(check_same(rec.steps, inst, seed=len(name)))
    assert counts["top"] > 6000 and counts["alert"] > 20  # the price alerts fire again and again
    assert sum(v for k, v in counts.items() if k not in ("top", "alert")) > 100


def test_scenarios_same_emits_and_state(tmp_path: Path) -> None:
    from app.commands.scenarios import scenario_instrument, suite
    from feeds.simulator.recorder import write_scenario

    seen: dict[str, int] = {}
    for sc in suite((101,), ("iceberg", "pull", "sweep", "liquidity_gap", "absorption", "large_order")):
        capture, _ = write_scenario(sc, tmp_path)
        rec = record(capture)
        inst = scenario_instrument(sc)
        emits = check_same(rec.steps, rec.instruments.get(inst.symbol, inst), seed=sc.seed)
        for k, v in kinds_of(emits).items():
            seen[k] = seen.get(k, 0) + v
    for kind in ("iceberg", "pull", "sweep", "liquidity_gap", "absorption", "large_order"):
        assert seen.get(kind, 0) >= 2, (kind, seen)  # the planted events were found (open and close)


def _quote(tick: int, ts: int, local: int) -> np.ndarray:
    rows = np.zeros(2, dtype=EVENT_DTYPE)
    rows["ev"] = DEPTH_BBO_EVENT
    rows["ev"][0] |= 1 << 8  # the bid row (flag value irrelevant to the market)
    rows["exch_ts"], rows["local_ts"], rows["ival"], rows["px"], rows["qty"] = ts, local, (tick, tick + 1), \
        (tick, tick + 1), 1.0
    return rows


@pytest.mark.parametrize("with_book", [True, False])
def test_heatmap_sampled_once_per_new_column_gives_the_same_history(with_book: bool) -> None:
    """Quotes and trades (late ones too) across many 100 ms columns, the book unchanged: one sample where a
    message passes every column seen so far is what sampling before every message gives (and without a
    book the size snapshots centre on the last trade as it was after each message)."""
    inst = Instrument("x", "X", 1.0, 1.0)
    rng = np.random.default_rng(3)
    ts = np.cumsum(rng.integers(0, 40_000_000, 3000)) + 10**12
    ts[rng.integers(0, 3000, 200)] -= 300_000_000  # late messages: behind the newest column
    msgs: list[tuple[np.ndarray, int | None]] = []
    if with_book:
        t0 = int(ts[0]) - 1
        snap = np.concatenate([clear_row(t0, t0),
                               depth_rows(BID, np.arange(90, 100), np.ones(10), 1.0, t0, t0, 1, DEPTH_SNAPSHOT_EVENT),
                               depth_rows(ASK, np.arange(101, 111), np.ones(10), 1.0, t0, t0, 1, DEPTH_SNAPSHOT_EVENT)])
        msgs.append((snap, 1))
    for i, t in enumerate(ts.tolist()):
        if i % 3:
            msgs.append((_quote(100 + i % 5, t, t + 5), None))
        else:
            msgs.append((trade_row(BID if i % 2 else ASK, 100 + i % 7 + i // 300, 1.0, 1.0, t, t + 5), None))
    one, many = MarketState(inst), MarketState(inst)
    for batch, uid in msgs:
        one.apply(batch, uid)
    for i in range(0, len(msgs), 257):
        many.apply_many(msgs[i:i + 257])
    sa, sb = one.heatmap, many.heatmap
    assert sa.version > 500  # columns were closed hundreds of times
    assert (sa.version, sa.open_col) == (sb.version, sb.open_col)
    for name in ("tex", "base", "col", "live", "bid", "ask"):
        assert np.array_equal(getattr(sa, name), getattr(sb, name), equal_nan=True), name
    assert sa.live.any() == with_book  # columns with the book drawn in them (else gaps)
    snaps = [(t, lo, q.tobytes()) for t, lo, q in one._snapshots]
    assert (len({lo for _, lo, _ in snaps}) == 1) == with_book  # no book: the centre follows the trades
    assert snaps == [(t, lo, q.tobytes()) for t, lo, q in many._snapshots]
    assert (one.messages, one.events, one.version, one.last_trade_tick, one.last_exch_ts, one._next_snapshot_ts) == (
        many.messages, many.events, many.version, many.last_trade_tick, many.last_exch_ts, many._next_snapshot_ts)


class _Calls:
    """A sink with ``on_batches`` (as the engine's): every message it gets, run items cut at their ends."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.run_items = 0

    def on_batches(self, items: list[tuple[str, np.ndarray, Any]]) -> None:
        for sym, rows, uid in items:
            if isinstance(uid, np.ndarray):
                self.run_items += 1
                start = 0
                for end in uid.tolist():
                    self.on_batch(sym, rows[start:end], None)
                    start = end
            else:
                self.on_batch(sym, rows, uid)

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        self.calls.append(("batch", symbol, batch.dtype.str, batch.tobytes(), update_id))

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        self.calls.append(("status", symbol, state, reason))

    def on_instrument(self, instrument: Instrument) -> None:
        self.calls.append(("instrument", instrument))

    def on_raw(self, local_ns: int, raw: str) -> None:
        return None


def test_processor_message_runs_are_the_messages_one_by_one(btc_capture: Path) -> None:
    """``on_lines`` into a sink with ``on_batches`` hands quote/trade stretches as ``(symbol, rows, ends)``:
    cut at their ends they are exactly the batches ``on_line`` delivers, with everything else in order;
    garbage and off-grid frames inside a stretch are reported where they stand."""
    import gzip

    from feeds.binance_usdm import BinanceUsdmProcessor

    inst = Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001)
    with gzip.open(btc_capture, "rb") as f:
        lines = [(int(ts), raw) for ts, raw in (line.rstrip(b"\n").split(b" ", 1) for line in f)][:20_000]
    quote = next(i for i, (_, r) in enumerate(lines) if b"bookTicker" in r[:40])
    off_grid = lines[quote][1].replace(b'"b":"', b'"b":"0.03', 1)
    for k, raw in enumerate((off_grid, b"not json", lines[quote + 5][1].replace(b"BTCUSDT", b"XYZUSDT"))):
        lines.insert(quote + 3 + 4 * k, (lines[quote][0], raw))
    one = _Calls()
    proc = BinanceUsdmProcessor([inst], one)
    for ts, raw in lines:
        proc.on_line(raw, ts)
    many = _Calls()
    bulk = BinanceUsdmProcessor([inst], many)
    for i in range(0, len(lines), 512):
        bulk.on_lines([raw for _, raw in lines[i:i + 512]], [ts for ts, _ in lines[i:i + 512]])
    assert many.run_items > 1000 and len(one.calls) > 19_000
    assert many.calls == one.calls
    assert (bulk.messages, bulk.malformed) == (proc.messages, proc.malformed) and proc.malformed >= 2
