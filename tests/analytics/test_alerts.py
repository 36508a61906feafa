"""Alert rules: TOML loading and validation, matching, bands, sizes, cooldowns, price alerts."""

from __future__ import annotations

import pytest

from app.analytics.alerts import (
    AlertEngine,
    AlertRule,
    AlertRuleError,
    default_rules,
    detection_json,
    rules_from_toml,
)
from app.core import events as E
from app.core.detection import Detection
from app.core.instrument import Instrument

INST = Instrument("binance-usdm", "BTCUSDT", tick_size=0.1, lot_size=0.001)
SEC = 1_000_000_000


def det(kind: str = "large_order", side: int = 1, tick: int = 600_000, ts: int = 10 * SEC, state: str = "open",
        **evidence) -> Detection:
    return Detection(id=1, kind=kind, venue="binance-usdm", symbol="BTCUSDT", side=side, price_tick=tick,
                     exch_ts=ts, state=state, evidence=evidence)


def test_defaults_cover_large_orders_icebergs_and_vacuums():
    rules = default_rules()
    kinds = {r.kind for r in rules}
    assert {"large_order", "iceberg", "liquidity_gap"} <= kinds
    assert all(r.band_ticks is not None or r.band_pct is not None for r in rules)  # all near price


def test_rules_load_from_toml():
    rules = rules_from_toml('''
[[alerts]]
name = "Big bids"
kind = "large_order"
side = "bid"
min_size = 25
band_ticks = 50
cooldown_s = 10
sound = false

[[alerts]]
name = "Through 61800"
kind = "price"
price = 61800.0
direction = "up"
''', INST)
    assert rules[0] == AlertRule(name="Big bids", kind="large_order", side=1, min_size=25.0, band_ticks=50,
                                 cooldown_s=10.0, sound=False)
    assert (rules[1].kind, rules[1].price_tick, rules[1].direction) == ("price", 618_000, "up")


@pytest.mark.parametrize("body, msg", [
    ('name = "a"\nkind = "icebreg"', "alerts\\[0\\] \\('a'\\): unknown kind 'icebreg'"),
    ('kind = "iceberg"', "alerts\\[0\\]: needs a name"),
    ('name = "a"\nkind = "iceberg"\nside = "long"', "side must be one of"),
    ('name = "a"\nkind = "iceberg"\nmin_size = "big"', "min_size must be a number"),
    ('name = "a"\nkind = "iceberg"\nmin_size = -3', "min_size must be a number >= 0"),
    ('name = "a"\nkind = "iceberg"\nband_ticks = 5\nband_pct = 1.0', "band_ticks or band_pct"),
    ('name = "a"\nkind = "iceberg"\nstates = ["opened"]', "states must be"),
    ('name = "a"\nkind = "iceberg"\ncolour = "red"', "unknown key\\(s\\) \\['colour'\\]"),
    ('name = "a"\nkind = "price"', "needs price"),
    ('name = "a"\nkind = "price"\nprice = 61800.05', "not on tick grid"),
    ('name = "a"\nkind = "price"\nprice = 5\ndirection = "sideways"', "direction"),
    ('name = "a"\nkind = "liquidity_gap"\nmin_size = 3', "has no size"),
    ('name = "a"\nkind = "iceberg"\nsound = "yes"', "sound must be true or false"),
])
def test_invalid_rules_are_refused_with_a_clear_message(body, msg):
    with pytest.raises(AlertRuleError, match=msg):
        rules_from_toml("[[alerts]]\n" + body, INST)


def test_duplicate_names_and_bad_toml_are_refused():
    with pytest.raises(AlertRuleError, match="two rules are named"):
        rules_from_toml('[[alerts]]\nname="a"\nkind="iceberg"\n[[alerts]]\nname="a"\nkind="pull"')
    with pytest.raises(AlertRuleError, match="not valid TOML"):
        rules_from_toml("[[alerts]\nname=")


def test_match_by_kind_side_state_band_and_size():
    eng = AlertEngine(INST, [AlertRule("bids", "large_order", side=1, min_size=20.0, band_ticks=100)])
    mid = 600_050
    assert eng.match([det(peak=25.0)], mid)[0].rule == "bids"
    assert eng.match([det(side=-1, tick=600_100, peak=25.0)], mid) == []  # wrong side
    assert eng.match([det(tick=599_900, peak=25.0, ts=100 * SEC)], mid) == []  # 150 ticks away
    assert eng.match([det(tick=599_990, peak=5.0, ts=200 * SEC)], mid) == []  # too small
    assert eng.match([det(kind="iceberg", executed=99.0)], mid) == []  # other kind
    assert eng.match([det(state="update", peak=25.0, ts=300 * SEC)], mid) == []  # only opens by default
    assert eng.match([det(peak=25.0, ts=400 * SEC)], None) == []  # no mid: a band cannot be checked


def test_band_in_percent_and_notional_and_median_multiple():
    eng = AlertEngine(INST, [AlertRule("n", "iceberg", band_pct=0.1, min_notional=1_000_000.0),
                             AlertRule("m", "pull", size_multiple=10.0)])
    mid = 600_000  # 60 000.0; 0.1 % = 600 ticks
    assert [a.rule for a in eng.match([det("iceberg", tick=600_500, executed=20.0)], mid)] == ["n"]
    assert eng.match([det("iceberg", tick=600_700, executed=20.0, ts=99 * SEC)], mid) == []  # outside band
    assert eng.match([det("iceberg", tick=600_100, executed=10.0, ts=199 * SEC)], mid) == []  # 600k notional
    assert [a.rule for a in eng.match([det("pull", cancelled=30.0)], mid, median_level=2.0)] == ["m"]
    assert eng.match([det("pull", cancelled=30.0, ts=500 * SEC)], mid, median_level=4.0) == []


def test_cooldown_per_rule_and_level_but_not_across_states():
    eng = AlertEngine(INST, [AlertRule("lo", "large_order", cooldown_s=30.0, states=("open", "close"))])
    mid = 600_000
    assert len(eng.match([det(ts=10 * SEC)], mid)) == 1
    assert eng.match([det(ts=20 * SEC)], mid) == []  # same level within 30 s
    assert len(eng.match([det(tick=600_001, ts=20 * SEC)], mid)) == 1  # another level
    assert len(eng.match([det(ts=21 * SEC, state="close", reason="pulled")], mid)) == 1  # its pull is news
    assert len(eng.match([det(ts=41 * SEC)], mid)) == 1  # cooldown over


def test_price_alert_from_click_fires_once_on_a_print_through_the_price():
    eng = AlertEngine(INST, [])
    eng.add_price_alert("click 61800.0", 618_000, "up")
    below = E.trade_row(E.BID, 617_990, 1.0, 0.1, 1 * SEC, 1 * SEC)
    assert eng.check_trades(below) == []
    through = E.trade_row(E.BID, 618_010, 1.0, 0.1, 2 * SEC, 2 * SEC)
    a = eng.check_trades(through)
    assert len(a) == 1 and (a[0].rule, a[0].price_tick, a[0].detection, a[0].kind) == (
        "click 61800.0", 618_010, None, "price")
    assert a[0].as_json(INST)["price"] == 61801.0
    assert eng.check_trades(E.trade_row(E.ASK, 618_020, 1.0, 0.1, 3 * SEC, 3 * SEC)) == []  # once
    eng.add_price_alert("down", 617_000, "down")
    assert eng.check_trades(through) == []
    assert len(eng.check_trades(E.trade_row(E.ASK, 617_000, 1.0, 0.1, 4 * SEC, 4 * SEC))) == 1


def test_price_rule_from_settings_resolves_its_price_with_the_instrument():
    rules = rules_from_toml('[[alerts]]\nname = "p"\nkind = "price"\nprice = 61800.5\ndirection = "down"')
    eng = AlertEngine(INST, rules)
    assert eng.price_rules[0].price_tick == 618_005
    assert eng.rules == []


def test_json_lines_have_the_issue_fields():
    d = Detection(id=7, kind="liquidity_gap", venue="binance-usdm", symbol="BTCUSDT", side=-1,
                  price_tick=618_001, exch_ts=5, state="open", price_far_tick=618_006, evidence={"ticks": 6})
    j = detection_json(d, INST)
    assert j == {"type": "detection", "kind": "liquidity_gap", "venue": "binance-usdm", "symbol": "BTCUSDT",
                 "side": "ask", "id": 7, "price": 61800.1, "price_far": 61800.6, "price_tick": 618_001,
                 "price_far_tick": 618_006, "exch_ts": 5, "state": "open", "ticks": 6}
    eng = AlertEngine(INST, [AlertRule("v", "liquidity_gap", band_ticks=10)])
    a = eng.match([d], 618_000)[0].as_json(INST)
    assert a["type"] == "alert" and a["rule"] == "v" and a["detection"]["price_far"] == 61800.6
