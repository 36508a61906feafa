"""The server as others embed it: live clock, background thread, reconnects, the simulate command."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.paths import REPO_ROOT
from feeds.simulator import FaultPlan, SimulatorServer, SimulatorThread
from feeds.simulator.testing import BybitBook, http_get

pytestmark = pytest.mark.timeout(30)


def test_live_clock_streams_both_venues_at_about_the_configured_rate() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=41, rate=2000) as srv:
            ep = srv.endpoints()
            assert ep["binance-usdm"]["ws_public"] == f"ws://127.0.0.1:{srv.port}/public"
            assert ep["bybit-linear"]["ws"] == f"ws://127.0.0.1:{srv.port}/v5/public/linear"
            async with connect(f"{ep['binance-usdm']['ws_public']}/ws/altusdt@depth@0ms", max_queue=None) as bn, \
                    connect(ep["bybit-linear"]["ws"], max_queue=None) as bb:
                await bb.send(json.dumps({"op": "subscribe", "args": ["orderbook.50.ALTUSDT"]}))
                t0 = time.perf_counter()
                n = 0
                while time.perf_counter() - t0 < 1.0:
                    await asyncio.wait_for(bn.recv(), 2)
                    n += 1
                assert 500 <= n <= 2500  # ALTUSDT gets 60 % of 2000/s
                bybit = BybitBook()
                assert json.loads(await bb.recv())["success"]
                for _ in range(20):
                    bybit.on_message(json.loads(await asyncio.wait_for(bb.recv(), 2)))
                assert bybit.gaps == 0 and bybit.snapshots == 1

    asyncio.run(main())


def test_background_thread_runner_serves_and_stops() -> None:
    runner = SimulatorThread(seed=42, rate=500)
    endpoints = runner.start()
    try:
        async def fetch() -> tuple[int, str]:
            return await http_get(f"{endpoints['binance-usdm']['rest']}/fapi/v1/depth?symbol=ETHUSDT&limit=5")

        status, body = asyncio.run(fetch())
        assert status == 200 and len(json.loads(body)["bids"]) == 5
        (bids, _), (asks, _) = runner.call(lambda s: s.levels("ETHUSDT"))
        assert bids[0] < asks[0]
    finally:
        runner.stop()
    assert runner._thread is None


def test_client_reconnects_after_a_disconnect_and_gets_a_fresh_snapshot() -> None:
    async def main() -> None:
        plan = FaultPlan(disconnect=0.2, start_after=5, max_disconnects=1, seed=3)
        async with SimulatorServer(seed=43, rate=3000, faults=plan) as srv:
            url = srv.endpoints()["bybit-linear"]["ws"]
            sub = json.dumps({"op": "subscribe", "args": ["orderbook.200.BTCUSDT"]})
            async with connect(url, max_queue=None) as ws:
                await ws.send(sub)
                with pytest.raises(ConnectionClosed):
                    for _ in range(500):
                        await asyncio.wait_for(ws.recv(), 2)
            async with connect(url, max_queue=None) as ws:  # a new connection: new injector, plan restarts
                await ws.send(sub)
                assert json.loads(await ws.recv())["success"]
                snap = json.loads(await asyncio.wait_for(ws.recv(), 2))
                assert snap["type"] == "snapshot" and len(snap["data"]["b"]) > 50
            assert srv.fault_counts()["disconnect"] >= 1
            assert srv.stats()["connections"] == 2

    asyncio.run(main())


def test_unknown_websocket_path_is_refused() -> None:
    async def main() -> None:
        async with SimulatorServer(seed=44, manual=True) as srv:
            with pytest.raises(Exception, match="404"):
                async with connect(f"ws://127.0.0.1:{srv.port}/nowhere"):
                    pass

    asyncio.run(main())


CLI = [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())"]


def test_simulate_command_prints_endpoints_and_stops_after_duration() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([*CLI, "simulate", "--json", "--duration", "0.5",
                           "--rate", "200", "--scenario", "sweep"], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=25)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["type"] == "endpoints" and lines[0]["venues"]["bybit-linear"]["ws"].endswith("/v5/public/linear")
    assert lines[-1]["type"] == "stats"
    bad = subprocess.run([*CLI, "simulate", "--faults", "explode=1"],
                         capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=25)
    assert bad.returncode == 2 and bad.stderr.startswith("depthdesk: bad fault spec") and "Traceback" not in bad.stderr


def test_demo_server_in_a_thread_stages_events() -> None:
    from feeds.simulator import demo_server

    with SimulatorThread(lambda: demo_server(rate=300)) as runner:
        assert set(runner.call(lambda s: s.symbols)) == {"ALTUSDT", "BTCUSDT", "ETHUSDT"}
        assert runner.call(lambda s: s.scenario.name) == "showcase"
        assert runner.call(lambda s: s.labels()) == []  # the first event comes after 10 s
