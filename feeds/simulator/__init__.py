"""The local exchange simulator: a real websocket + REST server on 127.0.0.1 speaking Binance USDⓈ-M
and Bybit v5 linear, driven by a synthetic market (optionally with labelled scenarios) or a capture,
with fault injection. See ``server.py`` for routes and ``scenarios.py`` for the label format.

Typical use::

    async with SimulatorServer(seed=7) as sim:
        config_endpoints = sim.endpoints()      # {"binance-usdm": {...}, "bybit-linear": {...}}

    with SimulatorThread(demo_server) as runner:    # in-process, background thread (depthdesk --demo)
        endpoints = runner.server.endpoints()
"""

from __future__ import annotations

from feeds.simulator.capture import CaptureSource, read_hftbacktest
from feeds.simulator.faults import FAULT_KINDS, FaultPlan
from feeds.simulator.market import DEFAULT_SYMBOLS, MarketModel, SymbolSpec
from feeds.simulator.scenarios import SCENARIO_KINDS, Scenario, ScenarioSuite
from feeds.simulator.server import SimulatorServer, SimulatorThread, demo_server

__all__ = [
    "CaptureSource",
    "DEFAULT_SYMBOLS",
    "FAULT_KINDS",
    "FaultPlan",
    "MarketModel",
    "SCENARIO_KINDS",
    "Scenario",
    "ScenarioSuite",
    "SimulatorServer",
    "SimulatorThread",
    "demo_server",
    "SymbolSpec",
    "read_hftbacktest",
]
