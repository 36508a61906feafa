"""Planted scenarios do what their labels say, labels are JSON, and runs are deterministic."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from feeds.simulator.market import ASK, BID, TradeBurst
from feeds.simulator.scenarios import LABEL_KINDS, SCENARIO_KINDS, Scenario, ScenarioSuite
from feeds.simulator.server import SimulatorServer


def _play(scenario: Scenario) -> tuple[list, list[dict], dict]:
    """Run a scenario offline; returns (events with their step time, labels, per-step book states)."""
    events = []
    levels_at: dict[int, tuple[dict, dict]] = {}
    for model, now, step_events in scenario.run():
        events.extend(step_events)
        book = model.books[scenario.symbol]
        levels_at[now] = (dict(book.bid), dict(book.ask))
    return events, scenario.labels(), levels_at


def _trades(events: list, t0: int, t1: int) -> list[tuple[int, int, int, int]]:
    """(exch_ns, aggressor, tick, lots) of every fill within [t0, t1]."""
    return [(e.exch_ns, e.aggressor, tick, lots) for e in events if type(e) is TradeBurst and t0 <= e.exch_ns <= t1
            for tick, lots in e.fills]


def _one(labels: list[dict], kind: str, negative: bool = False) -> dict:
    (lab,) = [x for x in labels if x["kind"] == kind and x["negative"] == negative]
    return lab


def test_suite_covers_every_kind_with_json_labels() -> None:
    suite = ScenarioSuite(seeds=(1, 2))
    scenarios = suite.scenarios()
    assert {s.kind for s in scenarios} == set(SCENARIO_KINDS)
    assert {s.side for s in scenarios} == {BID, ASK}
    assert len({s.name for s in scenarios}) == len(scenarios)
    _, labels, _ = _play(scenarios[0])
    assert labels and json.loads(json.dumps(labels)) == labels
    assert all(lab["kind"] in LABEL_KINDS for lab in labels)
    assert all(lab["end_ns"] >= lab["start_ns"] for lab in labels)


@pytest.mark.parametrize("side", [ASK, BID])
def test_iceberg_executes_far_more_than_visible_without_trading_through(side: int) -> None:
    sc = Scenario("ice", "iceberg", seed=5, side=side)
    events, labels, _ = _play(sc)
    lab = _one(labels, "iceberg")
    assert lab["side"] == ("ask" if side == ASK else "bid")
    tick = lab["price_tick"]
    fills = _trades(events, lab["start_ns"], lab["end_ns"])
    into = sum(lots for _, agg, t, lots in fills if t == tick and agg == -side)
    visible = lab["evidence"]["visible"]
    assert into == lab["evidence"]["executed"] >= 5 * visible and lab["evidence"]["refills"] >= 2
    beyond = [t for _, agg, t, _ in fills if (t > tick if side == ASK else t < tick) and agg == -side]
    assert beyond == []  # price did not trade through the iceberg
    assert lab["start_ns"] < lab["evidence_ns"] < lab["end_ns"]


def test_absorption_band_holds_under_heavy_flow() -> None:
    sc = Scenario("abs", "absorption", seed=6, side=BID)
    events, labels, levels_at = _play(sc)
    lab = _one(labels, "absorption")
    inner, outer = lab["price_tick"], lab["price_far_tick"]
    assert outer == inner - 1
    fills = _trades(events, lab["start_ns"], lab["end_ns"])
    sells = [(t, lots) for _, agg, t, lots in fills if agg == ASK]
    assert sum(lots for _, lots in sells) >= 10 * sc.symbol_spec.median_lots
    assert all(t >= outer for t, _ in sells)  # nothing below the band traded
    end_bids = levels_at[max(t for t in levels_at if t <= lab["end_ns"])][0]
    assert end_bids.get(inner, 0) + end_bids.get(outer, 0) > 0  # the band is still quoted


def test_gap_ticks_stay_empty_while_labelled() -> None:
    sc = Scenario("gap", "liquidity_gap", seed=7, side=ASK)
    _, labels, levels_at = _play(sc)
    lab = _one(labels, "liquidity_gap")
    lo, hi = lab["price_tick"], lab["price_far_tick"]
    assert hi - lo + 1 == 10
    held = [t for t in levels_at if lab["start_ns"] <= t < lab["end_ns"]]
    assert len(held) >= 390
    for t in held:
        asks = levels_at[t][1]
        assert not any(lo <= k <= hi for k in asks)
        assert min(asks) == lo - 1  # the touch is right in front of the gap: it is near mid


def test_pull_removes_a_large_resting_order_without_trades_and_is_an_iceberg_negative() -> None:
    sc = Scenario("pull", "pull_not_iceberg", seed=8, side=BID)
    events, labels, levels_at = _play(sc)
    pull, large = _one(labels, "pull"), _one(labels, "large_order")
    neg = _one(labels, "iceberg", negative=True)
    tick = pull["price_tick"]
    assert large["price_tick"] == tick == neg["price_tick"]
    assert [f for f in _trades(events, large["start_ns"], pull["end_ns"]) if f[2] == tick] == []
    before = levels_at[max(t for t in levels_at if t < pull["start_ns"])][0].get(tick, 0)
    after = levels_at[min(t for t in levels_at if t >= pull["start_ns"])][0].get(tick, 0)
    assert before - after == 25 * sc.symbol_spec.median_lots
    # "Large": far above the sizes around it, near mid, for the whole rest.
    for t, (bids, _) in levels_at.items():
        if large["start_ns"] <= t < large["end_ns"]:
            around = [q for k, q in bids.items() if abs(k - tick) <= 10 and k != tick]
            assert bids[tick] >= 20 * sc.symbol_spec.median_lots and bids[tick] >= 3 * max(around, default=0)
            assert max(bids) - tick <= 8


def test_sweep_is_one_aggressor_over_six_levels() -> None:
    sc = Scenario("sweep", "sweep", seed=9, side=ASK)
    events, labels, _ = _play(sc)
    lab = _one(labels, "sweep")
    (burst,) = [e for e in events if type(e) is TradeBurst and e.exch_ns == lab["start_ns"] and len(e.fills) >= 6]
    assert burst.aggressor == BID and burst.fills[0][0] == lab["price_tick"] and burst.fills[-1][0] == lab["price_far_tick"]
    assert not [x for x in labels if x["kind"] == "big_trade"]  # six levels' size is not yet a big print


def test_big_trade_is_one_aggressor_several_times_a_six_level_sweep() -> None:
    sc = Scenario("big", "big_trade", seed=9, side=ASK)
    events, labels, _ = _play(sc)
    big, sweep = _one(labels, "big_trade"), _one(labels, "sweep")
    assert big["evidence"] == sweep["evidence"] and big["start_ns"] == sweep["start_ns"]
    (burst,) = [e for e in events if type(e) is TradeBurst and e.exch_ns == big["start_ns"] and len(e.fills) >= 6]
    assert burst.aggressor == BID and burst.fills[0][0] == big["price_tick"] and burst.fills[-1][0] == big["price_far_tick"]
    plain, _, _ = _play(Scenario("sweep", "sweep", seed=9, side=ASK))
    (small,) = [e for e in plain if type(e) is TradeBurst and len(e.fills) >= 6 and e.exch_ns == big["start_ns"]]
    # asked for 4x its own book's six levels (capped at 25 levels deep): well beyond the plain sweep's print
    assert sum(q for _, q in burst.fills) >= 2 * sum(q for _, q in small.fills)
    assert big["evidence"]["levels"] == len(burst.fills) > 6


def test_eaten_through_is_labelled_negative_for_absorption_and_iceberg() -> None:
    sc = Scenario("eat", "eaten_through", seed=10, side=ASK)
    events, labels, levels_at = _play(sc)
    neg = _one(labels, "absorption", negative=True)
    _one(labels, "iceberg", negative=True)
    tick = neg["price_tick"]
    assert neg["evidence"]["traded_through"] is True
    fills = _trades(events, neg["start_ns"], neg["end_ns"])
    assert any(t > tick for _, agg, t, _ in fills if agg == BID)
    assert levels_at[max(t for t in levels_at if t <= neg["end_ns"])][1].get(tick, 0) == 0


def test_render_is_deterministic_and_starts_like_a_capture() -> None:
    a, la = Scenario("r", "large_order", seed=11).render("binance-usdm")
    b, lb = Scenario("r", "large_order", seed=11).render("binance-usdm")
    assert a == b and la == lb and la[0]["venue"] == "binance-usdm"
    assert json.loads(a[0][1])["stream"] == "altusdt@depth@0ms"
    snap_at = next(i for i, (_, raw) in enumerate(a) if raw.startswith('{"lastUpdateId"'))
    snap = json.loads(a[snap_at][1])
    first_depth = json.loads(a[0][1])["data"]
    assert first_depth["U"] <= snap["lastUpdateId"] <= first_depth["u"] or snap_at > 0
    assert all(x[0] < y[0] for x, y in zip(a, a[1:], strict=False))
    y, ly = Scenario("r", "large_order", seed=11).render("bybit-linear")
    first = json.loads(y[0][1])
    assert first["topic"] == "orderbook.200.ALTUSDT" and first["type"] == "snapshot"
    assert [lab["kind"] for lab in ly] == [lab["kind"] for lab in la]


def test_server_scenario_mode_serves_the_planted_book_and_labels() -> None:
    async def main() -> None:
        sc = Scenario("srv", "large_order", seed=12, side=BID, warmup_s=0.5)
        async with SimulatorServer(scenario=sc, manual=True) as srv:
            assert srv.symbols == ["ALTUSDT"]
            url = f"{srv.endpoints()['binance-usdm']['ws_public']}/ws/altusdt@depth@0ms"
            async with connect(url, max_queue=None) as ws:
                srv.advance(120)
                labels = srv.labels()
                lab = _one(labels, "large_order")
                tick = lab["price_tick"]
                seen = []
                last_u = srv.model.books["ALTUSDT"].update_id
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 3))
                    seen += [q for p, q in msg["b"] if p == f"{tick * 0.0001:.4f}"]
                    if msg["u"] >= last_u:
                        break
                assert float(seen[-1]) >= 25 * sc.symbol_spec.median_lots

    asyncio.run(main())


def test_write_scenario_files_replay_through_the_capture_reader(tmp_path) -> None:  # noqa: ANN001
    from feeds.simulator.capture import read_hftbacktest
    from feeds.simulator.recorder import write_scenario

    sc = Scenario("w", "pull", seed=13, duration_s=12.0)
    capture, label_file = write_scenario(sc, tmp_path)
    meta = json.loads(label_file.read_text())
    assert meta["capture"] == capture.name and meta["tick_size"] == 0.0001
    assert {lab["kind"] for lab in meta["labels"]} == {"large_order", "stack", "pull", "iceberg"}
    records = list(read_hftbacktest(capture))
    assert records == sc.render("binance-usdm")[0]


def test_showcase_stages_events_one_after_another_on_a_live_model() -> None:
    from feeds.simulator.market import MarketModel
    from feeds.simulator.scenarios import Showcase

    show = Showcase(every_s=1.0, first_after_s=0.5)
    model = MarketModel(seed=14, rate=600.0)
    show.install(model)
    for _ in range(6000):  # 60 s: every kind once
        model.step(10_000_000)
    kinds = {lab["kind"] for lab in show.labels() if not lab["negative"]}
    assert {"large_order", "iceberg", "liquidity_gap", "absorption", "pull", "sweep", "stack"} <= kinds
    assert {lab["kind"] for lab in show.labels() if lab["negative"]} == {"iceberg", "absorption"}  # eaten_through
    assert all(lab["symbol"] == "ALTUSDT" and lab["scenario"] == "showcase" for lab in show.labels())
    starts = [lab["start_ns"] for lab in show.labels() if lab["kind"] in ("iceberg", "liquidity_gap", "sweep")]
    assert len(starts) >= 3


def _wire_book_and_trades(records: list[tuple[int, str]]) -> tuple[list, list]:
    """Rebuild (exch_ms, bids, asks) after each depth message and the trade prints from rendered records."""
    states, trades = [], []
    bids: dict[str, float] = {}
    asks: dict[str, float] = {}
    synced = False
    for _, raw in records:
        msg = json.loads(raw)
        if "lastUpdateId" in msg:
            bids = {p: float(q) for p, q in msg["bids"]}
            asks = {p: float(q) for p, q in msg["asks"]}
            synced = True
            continue
        data = msg["data"]
        if data["e"] == "depthUpdate" and synced:
            for side, book in (("b", bids), ("a", asks)):
                for p, q in data[side]:
                    if float(q) == 0:
                        book.pop(p, None)
                    else:
                        book[p] = float(q)
            states.append((data["T"], dict(bids), dict(asks)))
        elif data["e"] == "trade":
            trades.append((data["T"], data["p"], float(data["q"]), data["m"]))
    return states, trades


def test_iceberg_evidence_is_visible_on_the_wire() -> None:
    sc = Scenario("wire", "iceberg", seed=15, side=ASK)
    records, labels = sc.render("binance-usdm")
    lab = _one(labels, "iceberg")
    price = f"{lab['price']:.4f}"
    states, trades = _wire_book_and_trades(records)
    t0, t1 = lab["start_ns"] // 1_000_000, lab["end_ns"] // 1_000_000
    executed = sum(q for t, p, q, m in trades if t0 <= t <= t1 and p == price and m is False)
    visible = max(a.get(price, 0.0) for t, _, a in states if t0 <= t <= t1)
    refills = sum(1 for (ta, _, a0), (_, _, a1) in zip(states, states[1:], strict=False)
                  if t0 <= ta <= t1 and a1.get(price, 0.0) > a0.get(price, 0.0))
    assert executed == lab["evidence"]["executed"] and executed >= 5 * visible and refills >= 2
    assert not [p for t, p, q, m in trades if t0 <= t <= t1 and float(p) > lab["price"]]


def test_pull_on_the_wire_removes_size_with_no_trade_at_the_price() -> None:
    sc = Scenario("wire", "pull", seed=16, side=BID)
    records, labels = sc.render("binance-usdm")
    pull = _one(labels, "pull")
    price = f"{pull['price']:.4f}"
    states, trades = _wire_book_and_trades(records)
    t_pull = pull["start_ns"] // 1_000_000
    drops = [(t1, b0.get(price, 0.0) - b1.get(price, 0.0)) for (_, b0, _), (t1, b1, _) in
             zip(states, states[1:], strict=False) if b1.get(price, 0.0) < b0.get(price, 0.0)]
    assert (t_pull, pull["evidence"]["removed"]) in drops
    t_placed = _one(labels, "large_order")["start_ns"] // 1_000_000
    assert not [p for t, p, _, _ in trades if p == price and t_placed <= t <= t_pull]


PRIMARY = {"iceberg": "iceberg", "absorption": "absorption", "liquidity_gap": "liquidity_gap",
           "large_order": "large_order", "pull": "pull", "stack": "stack", "sweep": "sweep",
           "big_trade": "big_trade", "pull_not_iceberg": "pull", "eaten_through": "large_order"}
NEGATIVES = {"pull_not_iceberg": {"iceberg"}, "pull": {"iceberg"}, "eaten_through": {"absorption", "iceberg"}}


@pytest.mark.parametrize("scenario", ScenarioSuite().scenarios(), ids=lambda s: s.name)
def test_every_suite_scenario_plants_its_event(scenario: Scenario) -> None:
    for _ in scenario.run():
        pass
    labels = scenario.labels()
    positives = [lab for lab in labels if not lab["negative"]]
    assert PRIMARY[scenario.kind] in {lab["kind"] for lab in positives}
    assert {lab["kind"] for lab in labels if lab["negative"]} == NEGATIVES.get(scenario.kind, set())
    warmup_end = 1_767_225_600_000_000_000 + int(scenario.warmup_s * 1e9)
    for lab in labels:
        assert lab["side"] == ("ask" if scenario.side == ASK else "bid")
        assert warmup_end <= lab["start_ns"] <= lab["end_ns"]
        if lab["evidence_ns"] is not None:
            assert lab["start_ns"] <= lab["evidence_ns"] <= lab["end_ns"] + 1_000_000
    assert json.loads(json.dumps(labels)) == labels
