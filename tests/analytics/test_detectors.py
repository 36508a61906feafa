"""Each detector on hand-built event sequences, including the hard negatives."""

from __future__ import annotations

import pytest
from conftest import Market, flat_book, quiet_config

from app.analytics.detectors import DetectorSet
from app.core.detection import Detection
from app.core.events import ASK, BID

MID = 10_000  # best bid 9999, best ask 10000


def start(inst, **over) -> Market:
    m = Market(inst, quiet_config(**over))
    bids, asks = flat_book(MID)
    m.snapshot(bids, asks, 0)
    m.idle(0, 1000)
    return m


def assert_lifecycles_close(found: list[Detection]) -> None:
    """Every open has exactly one later close with the same id, kind and side."""
    opens = {d.id: d for d in found if d.state == "open"}
    closes = {d.id: d for d in found if d.state == "close"}
    assert set(opens) == set(closes)
    for i, o in opens.items():
        c = closes[i]
        assert (c.kind, c.side, c.exch_ts >= o.exch_ts) == (o.kind, o.side, True)


# -- iceberg ---------------------------------------------------------------------------------------
def test_iceberg_opens_on_a_level_that_refills_and_closes_when_traded_through(inst):
    m = start(inst)
    t = 1000.0
    for k in range(6):  # buyers lift 10 at the best ask, which shows 10 again each time
        m.trade(t, BID, MID, 10.0)
        if k % 2:
            m.depth(t + 5, asks={MID: 10.0})  # a venue may also send the unchanged size
        m.quote(t + 100)
        t += 200
    ice = m.opened("iceberg")
    assert len(ice) == 1
    d = ice[0]
    assert (d.side, d.price_tick) == (ASK, MID)
    assert d.evidence["refills"] >= 2 and d.evidence["executed"] >= 30.0
    assert d.evidence["executed"] >= 3 * d.evidence["max_visible"]
    assert d.evidence["hidden"] >= 20.0
    m.depth(t, asks={MID: 0.0})
    m.trade(t + 10, BID, MID + 1, 5.0)  # price trades through the level
    m.idle(t + 20, t + 400)
    closes = [x for x in m.of("iceberg") if x.state == "close"]
    assert len(closes) == 1 and closes[0].evidence["reason"] == "traded_through"
    assert_lifecycles_close(m.found + m.close())


def test_iceberg_needs_refills_a_level_simply_eaten_is_not_one(inst):
    m = start(inst, large_order={"enabled": False})
    m.depth(1000, asks={MID: 40.0})
    m.idle(1000, 1500)
    t = 1500.0
    left = 40.0
    for _ in range(4):  # the visible 40 is eaten in 4 bites, the level shrinks each time
        m.trade(t, BID, MID, 10.0)
        left -= 10.0
        m.depth(t + 5, asks={MID: left})
        m.quote(t + 100)
        t += 200
    m.idle(t, t + 2000)
    assert m.opened("iceberg") == []
    assert m.opened("absorption") == []


def test_a_large_order_pulled_without_trades_is_a_pull_not_an_iceberg(inst):
    m = start(inst)
    m.depth(1000, asks={MID + 3: 200.0})
    m.idle(1000, 3000)
    assert [d.price_tick for d in m.opened("large_order")] == [MID + 3]
    assert [d.price_tick for d in m.opened("stack")] == [MID + 3]
    m.depth(3000, asks={MID + 3: 10.0})
    m.idle(3000, 4000)
    pulls = m.opened("pull")
    assert len(pulls) == 1
    p = pulls[0]
    assert (p.side, p.price_tick, p.evidence["cancelled"], p.evidence["traded"]) == (ASK, MID + 3, 190.0, 0.0)
    lo_close = [d for d in m.of("large_order") if d.state == "close"]
    assert lo_close[0].evidence["reason"] == "pulled"
    assert m.of("iceberg") == []
    assert_lifecycles_close(m.found + m.close())


def test_a_large_order_filled_is_not_a_pull(inst):
    m = start(inst)
    m.depth(1000, asks={MID: 200.0})
    m.idle(1000, 2500)
    assert len(m.opened("large_order")) == 1
    for k in range(19):  # buyers take 190 of it
        m.trade(2500 + k, BID, MID, 10.0)
    m.depth(2520, asks={MID: 10.0})
    m.idle(2600, 3500)
    assert m.opened("pull") == []
    close = [d for d in m.of("large_order") if d.state == "close"][0]
    assert close.evidence["reason"] == "filled" and close.evidence["traded"] == 190.0
    assert m.opened("iceberg") == []


# -- sweep / big trade ---------------------------------------------------------------------------
def test_a_sweep_is_one_aggressor_over_several_levels_and_not_an_iceberg(inst):
    m = start(inst)
    for k, (tick, q) in enumerate(((MID, 10.0), (MID + 1, 10.0), (MID + 2, 10.0), (MID + 3, 5.0))):
        m.trade(1100 + 0 * k, BID, tick, q)  # same exchange time: one aggressor
    m.depth(1101, asks={MID: 0.0, MID + 1: 0.0, MID + 2: 0.0, MID + 3: 5.0})
    m.idle(1200, 3000)
    sw = m.opened("sweep")
    assert len(sw) == 1
    s = sw[0]
    assert (s.side, s.price_tick, s.price_far_tick) == (ASK, MID, MID + 3)  # a buy sweeps the asks
    assert (s.evidence["levels"], s.evidence["executed"], s.evidence["aggressor"]) == (4, 35.0, "buy")
    assert m.opened("big_trade") == []  # 35 < 100
    assert m.of("iceberg") == []
    assert m.of("absorption") == []


def test_fills_at_different_times_are_different_aggressors(inst):
    m = start(inst)
    for k, tick in enumerate((MID, MID + 1, MID + 2)):
        m.trade(1100 + k, BID, tick, 10.0)
    m.idle(1200, 1600)
    assert m.opened("sweep") == []


def test_big_trade_on_the_bid_side_for_an_aggressive_sell(inst):
    m = start(inst)
    m.trade(1100, ASK, MID - 1, 60.0)
    m.trade(1100, ASK, MID - 2, 50.0)
    m.idle(1200, 1500)
    big = m.opened("big_trade")
    assert len(big) == 1 and big[0].side == BID and big[0].evidence["executed"] == 110.0
    assert big[0].evidence["aggressor"] == "sell"


# -- absorption ----------------------------------------------------------------------------------
def test_absorption_heavy_selling_into_a_bid_that_holds(inst):
    m = start(inst, iceberg={"enabled": False}, large_order={"enabled": False}, stack={"enabled": False})
    m.depth(900, bids={MID - 1: 100.0, MID - 2: 100.0})  # a visible wall: 10x the usual level each
    m.idle(900, 1000)
    t = 1000.0
    while t < 3500:
        m.trade(t, ASK, MID - 1, 8.0)  # sellers hit the best bid, which keeps showing 100
        m.quote(t + 50)
        t += 100
    ab = m.opened("absorption")
    assert len(ab) == 1
    a = ab[0]
    assert (a.side, a.price_tick) == (BID, MID - 1)
    assert a.evidence["executed"] >= 50 and a.evidence["band"] == [MID - 2, MID - 1]
    assert a.price_far_tick == MID - 2  # the band reaches away from mid
    # it opened within a second of the volume passing the threshold (50 after ~0.7 s, + 0.5 s to confirm)
    assert a.exch_ts - m.at(1000) <= 1_500_000_000
    m.trade(t, ASK, MID - 3, 5.0)  # finally breaks: a fill beyond the band
    m.depth(t + 1, bids={MID - 1: 0.0, MID - 2: 0.0})
    m.idle(t + 50, t + 500)
    close = [d for d in m.of("absorption") if d.state == "close"]
    assert len(close) == 1 and close[0].evidence["reason"] in ("traded_through", "not_quoted")


def test_flow_before_a_wall_joined_does_not_count_for_it(inst):
    # eaten_through-s303: sellers hit an ordinary best bid, then a large order joins that band. The
    # volume traded before the wall was there must not make the wall look like it absorbed it.
    m = start(inst, iceberg={"enabled": False}, large_order={"enabled": False}, stack={"enabled": False},
              pull={"enabled": False})
    t = 1000.0
    while t < 2500:  # 15 x 8 = 120 into a 10-lot level that is topped up: no wall, no absorption
        m.trade(t, ASK, MID - 1, 8.0)
        m.depth(t + 2, bids={MID - 1: 10.0})
        m.quote(t + 50)
        t += 100
    m.depth(t, bids={MID - 1: 100.0, MID - 2: 100.0})  # the wall joins (20x the usual level)
    m.idle(t, t + 300)
    for dt in (400, 700):  # a little more flow: 16, far below a quarter of the wall
        m.trade(t + dt, ASK, MID - 1, 8.0)
        m.quote(t + dt + 50)
    m.idle(t + 800, t + 2000)
    assert m.opened("absorption") == []
    t += 2000
    for _ in range(12):  # now the wall takes heavy flow itself (96) and holds: absorption
        m.trade(t, ASK, MID - 1, 8.0)
        m.quote(t + 50)
        t += 100
    m.idle(t, t + 800)
    ab = m.opened("absorption")
    assert len(ab) == 1 and ab[0].price_tick == MID - 1 and ab[0].evidence["executed"] < 120


def test_a_level_eaten_through_is_not_absorption(inst):
    m = start(inst, iceberg={"enabled": False}, large_order={"enabled": False})
    bids = {MID - 1 - i: 40.0 for i in range(8)}
    m.depth(900, bids=bids)
    m.idle(900, 1000)
    t = 1000.0
    for lvl in range(6):  # sellers eat 40 per level in 8-lot bites, then the next level down
        tick = MID - 1 - lvl
        left = 40.0
        for _ in range(5):
            m.trade(t, ASK, tick, 8.0)
            left -= 8.0
            m.depth(t + 2, bids={tick: left})
            m.quote(t + 50)
            t += 100
    m.idle(t, t + 1000)
    assert m.opened("absorption") == []
    assert m.opened("iceberg") == []


# -- gaps ----------------------------------------------------------------------------------------
def test_liquidity_gap_in_front_of_price_persisting(inst):
    m = start(inst)
    m.depth(1000, asks={MID + i: 0.0 for i in range(1, 7)})  # asks 10001..10006 vanish
    m.idle(1000, 1500)
    assert m.opened("liquidity_gap") == []  # not yet persisted 0.8 s
    m.idle(1600, 2500)
    gaps = m.opened("liquidity_gap")
    assert len(gaps) == 1
    g = gaps[0]
    assert (g.side, g.price_tick, g.price_far_tick, g.evidence["ticks"]) == (ASK, MID + 1, MID + 6, 6)
    assert g.exch_ts - m.at(1000) <= 1_100_000_000
    m.depth(2500, asks={MID + i: 10.0 for i in range(1, 7)})
    m.idle(2500, 3500)
    assert [d.evidence["reason"] for d in m.of("liquidity_gap") if d.state == "close"] == ["filled"]


def test_a_short_flicker_is_not_a_gap_and_a_thin_run_counts(inst):
    m = start(inst)
    m.depth(1000, bids={MID - 2 - i: 0.5 for i in range(4)})  # 4 ticks at 5 % of the median: near empty
    m.idle(1000, 1250)
    m.depth(1250, bids={MID - 2 - i: 10.0 for i in range(4)})  # back before 0.8 s
    m.idle(1250, 2500)
    assert m.opened("liquidity_gap") == []
    m.depth(2500, bids={MID - 2 - i: 0.5 for i in range(4)})
    m.idle(2500, 3500)
    g = m.opened("liquidity_gap")
    assert len(g) == 1 and (g[0].side, g[0].price_tick, g[0].price_far_tick) == (BID, MID - 2, MID - 5)


def test_two_empty_ticks_are_below_the_gap_size(inst):
    m = start(inst)
    m.depth(1000, asks={MID + 1: 0.0, MID + 2: 0.0})
    m.idle(1000, 3000)
    assert m.opened("liquidity_gap") == []


def test_thin_book_against_its_own_normal(inst):
    m = Market(inst, quiet_config(thin_book={"enabled": True, "warmup_s": 5, "persist_ms": 1000,
                                             "bps": 20.0, "factor": 0.5}))
    bids, asks = flat_book(MID)
    m.snapshot(bids, asks, 0)
    m.idle(0, 10_000)
    assert m.opened("thin_book") == []
    m.depth(10_000, bids={MID - 1 - i: 2.0 for i in range(25)})  # bid depth near mid falls to a fifth
    m.idle(10_000, 12_000)
    thin = m.opened("thin_book")
    assert [d.side for d in thin] == [BID]
    assert thin[0].evidence["depth"] < 0.5 * thin[0].evidence["reference"]
    m.depth(12_000, bids={MID - 1 - i: 10.0 for i in range(25)})
    m.idle(12_000, 12_500)
    assert [d.evidence["reason"] for d in m.of("thin_book") if d.state == "close"] == ["recovered"]


# -- pull / stack thresholds ---------------------------------------------------------------------
def test_pull_net_of_traded_volume(inst):
    m = start(inst, large_order={"enabled": False})
    m.depth(1000, bids={MID - 3: 100.0})
    m.idle(1000, 2000)
    m.trade(2000, ASK, MID - 1, 10.0)  # unrelated fill elsewhere
    m.depth(2001, bids={MID - 3: 60.0, MID - 1: 0.0})  # 40 cancelled: under the 50 threshold
    m.idle(2100, 2500)
    assert m.opened("pull") == []
    m.depth(2600, bids={MID - 3: 0.0})  # another 60 within 5 s: 100 in all
    m.idle(2600, 3000)
    p = m.opened("pull")
    assert len(p) == 1 and p[0].evidence["cancelled"] == 100.0 and p[0].side == BID


def test_pull_far_from_mid_is_ignored(inst):
    m = start(inst, large_order={"enabled": False}, pull={"band_ticks": 10}, stack={"band_ticks": 10})
    m.depth(1000, asks={MID + 40: 500.0})
    m.idle(1000, 2000)
    m.depth(2000, asks={MID + 40: 0.0})
    m.idle(2000, 2500)
    assert m.opened("pull") == [] and m.opened("stack") == []


# -- lifecycle and configuration -----------------------------------------------------------------
def test_close_all_closes_everything_open(inst):
    m = start(inst, iceberg={"enabled": False})
    m.depth(1000, asks={MID + i: 0.0 for i in range(1, 7)}, bids={MID - 4: 300.0})
    m.idle(1000, 2500)
    assert {d.kind for d in m.dets.open()} == {"liquidity_gap", "large_order"}
    closes = m.close()
    assert {d.kind for d in closes} == {"liquidity_gap", "large_order"}
    assert all(d.evidence["reason"] == "end" for d in closes)
    assert m.dets.open() == ()
    assert_lifecycles_close(m.found)


def test_resync_closes_open_detections(inst):
    m = start(inst, iceberg={"enabled": False})
    m.depth(1000, bids={MID - 4: 300.0})
    m.idle(1000, 2000)
    assert len(m.dets.open()) == 1
    bids, asks = flat_book(MID)
    m.snapshot(bids, asks, 2100)
    assert m.dets.open() == ()
    assert [d.evidence["reason"] for d in m.of("large_order") if d.state == "close"] == ["resync"]


def test_disabled_kinds_never_fire(inst):
    m = start(inst, sweep={"enabled": False})
    for tick in (MID, MID + 1, MID + 2, MID + 3):
        m.trade(1100, BID, tick, 10.0)
    m.idle(1200, 1500)
    assert m.opened("sweep") == [] and "sweep" not in m.dets.enabled


@pytest.mark.parametrize("cfg, msg", [
    ({"icebreg": {}}, "unknown key"),
    ({"iceberg": {"ratoi": 3}}, "detectors.iceberg"),
    ({"iceberg": {"ratio": "three"}}, "detectors.iceberg.ratio"),
    ({"iceberg": {"enabled": "yes"}}, "detectors.iceberg.enabled"),
    ({"pull": {"size": -1}}, "detectors.pull.size"),
    ({"pull": {"size": {"mode": "sometimes"}}}, "mode"),
    ({"absorption": {"band_ticks": 5}}, "detectors.absorption.band_ticks"),
    ({"large_order": {"size": 0, "median_multiple": 0}}, "large_order"),
    ({"iceberg": []}, "must be a table"),
])
def test_bad_configuration_is_refused_with_the_key_named(inst, cfg, msg):
    with pytest.raises(ValueError, match=msg):
        DetectorSet(inst, cfg)


def test_whole_app_config_is_accepted(inst):
    d = DetectorSet(inst, {"detectors": {"iceberg": {"enabled": False}}, "ui": {}})
    assert "iceberg" not in d.enabled


def test_a_flickering_quote_is_neither_stack_nor_pull(inst):
    m = start(inst, large_order={"enabled": False})
    m.depth(1000, asks={MID + 2: 200.0})
    m.idle(1000, 1400)
    m.depth(1400, asks={MID + 2: 10.0})  # gone again after 0.4 s
    m.idle(1400, 3000)
    assert m.opened("stack") == [] and m.opened("pull") == []
    m.depth(3000, asks={MID + 2: 200.0})
    m.idle(3000, 4000)
    st = m.opened("stack")
    assert len(st) == 1 and st[0].evidence["added"] == 190.0 and st[0].evidence["rested_ms"] >= 500


def test_default_toml_states_the_code_defaults(inst):
    import tomllib

    from app.paths import REPO_ROOT

    with open(REPO_ROOT / "resources" / "default.toml", "rb") as fh:
        table = tomllib.load(fh)["detectors"]
    a, b = DetectorSet(inst, {}), DetectorSet(inst, table)

    def settings(o):
        return {k: (v.spec if hasattr(v, "spec") else v) for k, v in vars(o).items() if not k.startswith("_")
                and (isinstance(v, int | float | bool) or hasattr(v, "spec"))} if hasattr(o, "__dict__") else {
            k: (getattr(o, k).spec if hasattr(getattr(o, k), "spec") else getattr(o, k))
            for k in dir(o) if not k.startswith("_") and (isinstance(getattr(o, k), int | float | bool)
                                                          or hasattr(getattr(o, k), "spec"))}

    for name in ("iceberg", "absorption", "gaps", "thin", "sweeps", "large"):
        assert settings(getattr(a, name)) == settings(getattr(b, name)), name
    assert [(r.kind, r.size.spec, r.age_ns, r.band_ticks) for r in a.pulls.rules] == [
        (r.kind, r.size.spec, r.age_ns, r.band_ticks) for r in b.pulls.rules]
    assert (a.eval_ns, a.align_ns, a.drain_ns) == (b.eval_ns, b.align_ns, b.drain_ns)


def test_flow_into_an_ordinary_level_is_not_absorption(inst):
    m = start(inst, iceberg={"enabled": False})  # the best bid shows the usual 10: no wall
    t = 1000.0
    while t < 3500:
        m.trade(t, ASK, MID - 1, 8.0)
        m.quote(t + 50)
        t += 100
    assert m.opened("absorption") == []
