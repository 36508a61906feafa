"""Every fault kind has an effect a client can observe, and the simulator's counts match it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from feeds.simulator.faults import FaultInjector, FaultPlan
from feeds.simulator.server import SimulatorServer

pytestmark = pytest.mark.timeout(20)


async def _run(plan: FaultPlan, steps: int = 40, seed: int = 31) -> tuple[list[str], SimulatorServer, bool]:
    """Subscribe to real-time BTC depth, run ``steps`` model steps, return raw frames received."""
    srv = SimulatorServer(seed=seed, rate=4000, faults=plan, manual=True)
    await srv.start()
    frames: list[str] = []
    closed_by_server = False
    try:
        url = f"{srv.endpoints()['binance-usdm']['ws_public']}/ws/btcusdt@depth@0ms"
        async with connect(url, max_queue=None) as ws:
            srv.advance(steps)
            try:
                while True:
                    frames.append(await asyncio.wait_for(ws.recv(), 0.4))
            except TimeoutError:
                pass
            except ConnectionClosed:
                closed_by_server = True
    finally:
        await srv.stop()
    return frames, srv, closed_by_server


def _us(frames: list[str]) -> list[int]:
    return [json.loads(f)["u"] for f in frames]


def test_drop_makes_pu_gaps_and_counts_match() -> None:
    frames, srv, _ = asyncio.run(_run(FaultPlan(drop=0.05, start_after=0, seed=1)))
    conn = srv.connections[0]
    drops = conn.faults.counts["drop"]
    assert drops > 0 and srv.fault_counts()["drop"] == drops
    assert len(frames) == conn.faults.sent - drops
    msgs = [json.loads(f) for f in frames]
    breaks = sum(b["pu"] != a["u"] for a, b in zip(msgs, msgs[1:], strict=False))
    assert 0 < breaks <= drops


def test_duplicate_repeats_frames() -> None:
    frames, srv, _ = asyncio.run(_run(FaultPlan(duplicate=0.05, start_after=0, seed=2)))
    dups = srv.fault_counts()["duplicate"]
    assert dups > 0
    assert len(frames) == srv.connections[0].faults.sent + dups
    assert sum(a == b for a, b in zip(frames, frames[1:], strict=False)) == dups


def test_reorder_swaps_neighbours() -> None:
    frames, srv, _ = asyncio.run(_run(FaultPlan(reorder=0.05, start_after=0, seed=3)))
    n = srv.fault_counts()["reorder"]
    us = _us(frames)
    assert n > 0 and len(frames) == srv.connections[0].faults.sent
    assert sum(b < a for a, b in zip(us, us[1:], strict=False)) == n
    assert sorted(us) == sorted(set(us))  # nothing lost, nothing doubled


def test_malformed_frames_are_not_json_and_counted() -> None:
    frames, srv, _ = asyncio.run(_run(FaultPlan(malformed=0.05, start_after=0, seed=4)))
    bad = 0
    for f in frames:
        try:
            json.loads(f)
        except ValueError:
            bad += 1
    assert bad == srv.fault_counts()["malformed"] > 0
    assert len(frames) - bad == srv.connections[0].faults.sent


def test_disconnect_aborts_the_connection_once() -> None:
    frames, srv, closed = asyncio.run(_run(FaultPlan(disconnect=0.05, start_after=10, max_disconnects=1, seed=5)))
    assert closed
    assert srv.fault_counts()["disconnect"] == 1
    assert len(frames) >= 10 and len(frames) < srv.model.books["BTCUSDT"].update_id


def test_stall_slows_sends() -> None:
    t0 = time.perf_counter()
    frames, srv, _ = asyncio.run(_run(FaultPlan(stall=0.5, stall_ms=40, start_after=0, seed=6), steps=3))
    elapsed = time.perf_counter() - t0
    stalls = srv.fault_counts()["stall"]
    assert stalls >= 3 and len(frames) == srv.connections[0].faults.sent
    assert elapsed >= stalls * 0.04


def test_same_seed_same_faults() -> None:
    plan = FaultPlan(drop=0.02, duplicate=0.02, reorder=0.02, malformed=0.02, start_after=5, seed=9)
    def decisions(connection: int) -> list[int]:
        injector = FaultInjector(plan, connection)
        return [injector.decide() for _ in range(2000)]

    a, b, c = decisions(3), decisions(3), decisions(4)
    assert a == b and a != c and set(a[:5]) == {0}


def test_fault_spec_parsing() -> None:
    plan = FaultPlan.parse("drop=0.01,dup=0.02,stall=0.001,stall_ms=300,seed=7")
    assert (plan.drop, plan.duplicate, plan.stall, plan.stall_ms, plan.seed) == (0.01, 0.02, 0.001, 300.0, 7)
    with pytest.raises(ValueError, match="bad fault spec"):
        FaultPlan.parse("explode=1")
    with pytest.raises(ValueError, match="within 0..1"):
        FaultPlan.parse("drop=2")


def test_bybit_drop_breaks_u_continuity() -> None:
    async def main() -> tuple[int, int]:
        plan = FaultPlan(drop=0.1, start_after=3, seed=12)
        async with SimulatorServer(seed=32, rate=4000, faults=plan, manual=True, coalesce=False) as srv:
            async with connect(srv.endpoints()["bybit-linear"]["ws"], max_queue=None) as ws:
                await ws.send(json.dumps({"op": "subscribe", "args": ["orderbook.1000.ALTUSDT"]}))
                assert json.loads(await ws.recv())["success"]
                srv.advance(20)
                us = []
                try:
                    while True:
                        msg = json.loads(await asyncio.wait_for(ws.recv(), 0.4))
                        if "topic" in msg:
                            us.append(msg["data"]["u"])
                except TimeoutError:
                    pass
            breaks = sum(b != a + 1 for a, b in zip(us, us[1:], strict=False))
            return breaks, srv.fault_counts()["drop"]

    breaks, drops = asyncio.run(main())
    assert 0 < breaks <= drops
