"""The book rebuilt from a real Binance USDⓈ-M capture agrees with the exchange's own bookTicker.

Binance futures sync rule (protocols.md A.4): buffer diffs, load the REST snapshot, drop diffs with
``u < lastUpdateId``, the first kept diff has ``U <= lastUpdateId <= u``, then every ``pu`` equals the
previous ``u``. bookTicker carries the same update id ``u``: wherever both streams have an id, the
book's top must equal the ticker's (629 such ids in the BTCUSDT file).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from app.core.book import DepthBook
from app.core.events import ASK, BID, BUY_EVENT, DEPTH_SNAPSHOT_EVENT, clear_row, depth_rows
from app.core.instrument import Instrument
from tests.core.reference_book import ReferenceBook

BTC = Instrument("binance-usdm", "BTCUSDT", 0.1, 0.001)


def _rows(inst: Instrument, bids: list, asks: list, ts: int, uid: int, kind: int = 1) -> np.ndarray:
    """Depth rows for one message, px = the venue's decimal parsed as a float (as feeds do)."""
    parts = []
    for side, levels in ((BID, bids), (ASK, asks)):
        px = np.array([float(p) for p, _ in levels], dtype=np.float64)
        qty = np.array([float(q) for _, q in levels], dtype=np.float64)
        rows = depth_rows(side, inst.to_ticks(px), qty, inst.tick_size, ts, ts, uid, kind=kind)
        rows["px"] = px
        parts.append(rows)
    return np.concatenate(parts)


def parse(path: Path, inst: Instrument) -> tuple[list[tuple], dict[int, tuple]]:
    """The capture as ('snapshot'|'diff', message) in arrival order, and bookTicker tops by id."""
    events: list[tuple] = []
    raw_tickers: list[tuple] = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            raw = line.split(" ", 1)[1]
            if "@depth@0ms" in raw[:40]:
                events.append(("diff", json.loads(raw)["data"]))
            elif "@bookTicker" in raw[:40]:
                d = json.loads(raw)["data"]
                raw_tickers.append((d["u"], float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"])))
            elif "lastUpdateId" in raw[:40]:
                events.append(("snapshot", json.loads(raw)))
    cols = list(zip(*raw_tickers, strict=True))
    bid_ticks = inst.to_ticks(np.array(cols[1])).tolist()  # one vectorised, grid-checked conversion
    ask_ticks = inst.to_ticks(np.array(cols[3])).tolist()
    tickers = {
        u: ((bt, bq), (at, aq))
        for u, bt, bq, at, aq in zip(cols[0], bid_ticks, cols[2], ask_ticks, cols[4], strict=True)
    }
    return events, tickers


def replay(events: list[tuple], inst: Instrument, roi: int = 8192) -> tuple[DepthBook, ReferenceBook, dict]:
    """Sync and apply the capture; the book's top after each applied diff, by update id."""
    book = DepthBook(inst, roi_ticks=roi)
    ref = ReferenceBook()
    buffered: list[dict] = []
    last_id = None
    prev_u = None
    tops: dict[int, tuple] = {}

    def to_ref(batch: np.ndarray) -> None:
        sides = np.where(batch["ev"] & BUY_EVENT, BID, ASK).tolist()
        for side, t, q in zip(sides, batch["ival"].tolist(), batch["qty"].tolist(), strict=True):
            ref.set(side, t, q)

    def apply_diff(d: dict) -> None:
        nonlocal prev_u
        if d["u"] < last_id:
            return
        if prev_u is None:
            assert d["U"] <= last_id <= d["u"], "first diff must straddle the snapshot id"
        else:
            assert d["pu"] == prev_u, f"gap: pu {d['pu']} != previous u {prev_u}"
        prev_u = d["u"]
        batch = _rows(inst, d["b"], d["a"], d["E"] * 1_000_000, d["u"])
        book.apply(batch)
        to_ref(batch)
        assert book.update_id == d["u"]
        tops[d["u"]] = (book.best_bid(), book.best_ask())

    for what, msg in events:
        if what == "snapshot":
            last_id = msg["lastUpdateId"]
            snap = _rows(inst, msg["bids"], msg["asks"], msg["E"] * 1_000_000, last_id, DEPTH_SNAPSHOT_EVENT)
            book.apply(np.concatenate([clear_row(int(snap["exch_ts"][0]), 0), snap]))
            ref.clear()
            to_ref(snap)
            for d in buffered:
                apply_diff(d)
        elif last_id is None:
            buffered.append(msg)
        else:
            apply_diff(msg)
    assert last_id is not None, "no REST snapshot in the capture"
    return book, ref, tops


@pytest.fixture(scope="module")
def btc_events(btc_capture: Path) -> tuple[list[tuple], dict]:
    return parse(btc_capture, BTC)


@pytest.fixture(scope="module")
def btc_replay(btc_events: tuple) -> tuple[DepthBook, ReferenceBook, dict, dict]:
    events, tickers = btc_events
    return (*replay(events, BTC), tickers)


def test_top_equals_bookticker_at_every_shared_update_id(btc_replay: tuple) -> None:
    book, _, tops, tickers = btc_replay
    shared = sorted(tops.keys() & tickers.keys())
    assert len(shared) == 629
    mismatched = [u for u in shared if tops[u] != tickers[u]]
    assert mismatched == [], f"{len(mismatched)} ids differ, first {mismatched[:3]}"
    assert not book.is_crossed()


def test_final_book_equals_reference_including_far_levels(btc_replay: tuple) -> None:
    book, ref, _, _ = btc_replay
    for side in (BID, ASK):
        t, q = book.levels(side)
        assert list(zip(t.tolist(), q.tolist(), strict=True)) == ref.levels(side)
    far_bids = [t for t in ref.bids if t < book.best_bid_tick - 8192]
    assert far_bids, "the capture has bids far outside the window (e.g. 5,000.00 on a 61,800 market)"
    ws = book.walk(ASK, 50.0)
    filled, avg, worst, slip = ref.walk(ASK, 50.0)
    assert (ws.filled, ws.worst_tick) == (pytest.approx(filled), worst)
    assert ws.avg_tick == pytest.approx(avg, rel=1e-12) and ws.slippage_ticks == pytest.approx(slip, rel=1e-6)


def test_small_window_gives_the_same_tops(btc_events: tuple, btc_replay: tuple) -> None:
    """A 256-tick window forces far levels and recentring all the time: same answers."""
    _, _, tops, _ = btc_replay
    small, _, small_tops = replay(btc_events[0], BTC, roi=256)
    assert small_tops == tops
    assert small.recentres > 0


def test_ethusdt_capture_agrees_with_bookticker_too(eth_capture: Path) -> None:
    """The second real capture (tick 0.01): every shared update id, and the final book."""
    eth = Instrument("binance-usdm", "ETHUSDT", 0.01, 0.001)
    events, tickers = parse(eth_capture, eth)
    book, ref, tops = replay(events, eth)
    shared = sorted(tops.keys() & tickers.keys())
    assert len(shared) > 100
    assert [u for u in shared if tops[u] != tickers[u]] == []
    for side in (BID, ASK):
        t, q = book.levels(side)
        assert list(zip(t.tolist(), q.tolist(), strict=True)) == ref.levels(side)
