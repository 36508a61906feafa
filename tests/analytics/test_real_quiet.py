"""Quiet on real markets: with the default settings no kind opens more than 20 detections a minute.

Runs the real Binance captures (hftbacktest, 2024-08-08, ≈345 s) through the Binance parsers, the
book and the DetectorSet, and prints what fired (counts per kind and the evidence of a few).
"""

from __future__ import annotations

from collections import Counter

import pytest

from app.core.detection import KINDS
from benchmarks.bench_detectors import (
    BTC,
    ETH,
    default_detectors_config,
    load_hftbacktest_capture,
    market_minutes,
    opens_per_minute,
    replay,
)

LIMIT_PER_MIN = 20.0


@pytest.mark.parametrize("which", ["btc", "eth"])
def test_defaults_are_quiet_on_the_real_captures(which, btc_capture, eth_capture, capsys):
    inst, path = (BTC, btc_capture) if which == "btc" else (ETH, eth_capture)
    batches = load_hftbacktest_capture(path, inst)
    minutes = market_minutes(batches)
    assert 5.0 < minutes < 6.5  # the whole capture went through
    _, found = replay(batches, inst, default_detectors_config())
    rates = opens_per_minute(found, minutes)
    opens = Counter(d.kind for d in found if d.state == "open")
    with capsys.disabled():
        print(f"\n{inst.symbol}: {minutes:.2f} min, opens {dict(opens)}")
        print(f"{inst.symbol}: per minute {{{', '.join(f'{k}: {v:.2f}' for k, v in rates.items())}}}")
        shown = set()
        for d in found:
            if d.state == "open" and d.kind not in shown:
                shown.add(d.kind)
                print(f"  {d.kind} {'bid' if d.side > 0 else 'ask'} {inst.format_price(d.price_tick)} {d.evidence}")
    assert all(rate <= LIMIT_PER_MIN for rate in rates.values()), rates
    assert set(rates) <= set(KINDS)
    # Every open is closed by the end of the replay.
    open_ids = {d.id for d in found if d.state == "open"}
    close_ids = {d.id for d in found if d.state == "close"}
    assert open_ids == close_ids
    # Sanity: the detectors did look at this market (sweeps and big trades happen in any 5 minutes).
    assert opens["sweep"] + opens["big_trade"] > 0
