"""``depthdesk simulate``: run the local exchange on 127.0.0.1 until Ctrl-C or ``--duration``."""

from __future__ import annotations

import argparse
import json
import sys

from app.cli import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``depthdesk simulate``."""
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 = pick a free one; default)")
    parser.add_argument("--rate", type=float, default=400.0,
                        help="book messages per second over all symbols (e.g. 50..60000; default 400)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same market)")
    parser.add_argument("--faults", default="",
                        help="fault spec, e.g. drop=0.001,duplicate=0.001,reorder=0.001,malformed=0.001,"
                             "disconnect=0.0001,stall=0.001,stall_ms=200,seed=7")
    parser.add_argument("--scenario", default=None,
                        help="plant a labelled scenario (see --list-scenarios), or 'showcase' for a stream of "
                             "planted events on ALTUSDT; labels print as JSON lines at the end")
    parser.add_argument("--list-scenarios", action="store_true", help="list scenario names and exit")
    parser.add_argument("--symbols", default=None, help="comma-separated symbols (default ALTUSDT,BTCUSDT,ETHUSDT)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="exchange time per wall time (default 1; with --capture, 0 = as fast as clients read)")
    parser.add_argument("--capture", default=None,
                        help="replay a recording instead of the synthetic market (hftbacktest collector format, "
                             "'<local_ns> <raw json>' per line, .gz or plain)")
    parser.add_argument("--realtime-depth", action="store_true",
                        help="send every diff-depth variant per model message instead of per 100/250/500 ms "
                             "window (throughput benchmarks)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--json", action="store_true", help="print endpoints (and labels) as JSON lines")


def run(args: argparse.Namespace) -> int:
    """Start the simulator, print its endpoints, serve until interrupted."""
    from feeds.simulator.faults import FaultPlan
    from feeds.simulator.scenarios import SCENARIO_KINDS, ScenarioSuite
    from feeds.simulator.server import SimulatorServer, parse_symbols, serve_forever_blocking

    if args.list_scenarios:
        for scenario in ScenarioSuite().scenarios():
            print(scenario.name)
        print("showcase")
        return 0
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0..65535, got {args.port}")
    if args.rate <= 0 or args.rate > 1_000_000:
        raise UserError(f"--rate must be within (0, 1000000] messages/s, got {args.rate}")
    if args.speed < 0 or (args.speed == 0 and not args.capture):
        raise UserError(f"--speed must be > 0 (0 only with --capture), got {args.speed}")
    if args.duration is not None and args.duration <= 0:
        raise UserError(f"--duration must be > 0, got {args.duration}")
    try:
        faults = FaultPlan.parse(args.faults)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    scenario = None
    if args.scenario == "showcase":  # the demo: planted events one after another on ALTUSDT
        from feeds.simulator.scenarios import Showcase

        scenario = Showcase()
    elif args.scenario:
        by_name = {s.name: s for s in ScenarioSuite().scenarios()}
        by_kind = {s.kind: s for s in ScenarioSuite().scenarios()}
        scenario = by_name.get(args.scenario) or by_kind.get(args.scenario)
        if scenario is None:
            raise UserError(f"unknown scenario {args.scenario!r}; kinds: {', '.join(SCENARIO_KINDS)} "
                            "(--list-scenarios for names)")
    symbols = parse_symbols(args.symbols.split(",")) if args.symbols else None
    kwargs: dict = {"symbols": symbols} if symbols else {}
    if args.capture:
        from pathlib import Path

        from feeds.simulator.capture import CaptureSource, read_hftbacktest

        if scenario is not None:
            raise UserError("--capture and --scenario cannot be combined")
        if not Path(args.capture).is_file():
            raise UserError(f"capture file not found: {args.capture}")
        try:
            kwargs["capture"] = CaptureSource(read_hftbacktest(args.capture), speed=args.speed)
        except (ValueError, OSError) as exc:
            raise UserError(f"cannot replay {args.capture}: {exc}") from None
    server = SimulatorServer(seed=args.seed, rate=args.rate, faults=faults, coalesce=not args.realtime_depth,
                             speed=args.speed or 1.0, scenario=scenario, port=args.port, **kwargs)

    def ready(srv: SimulatorServer) -> None:
        endpoints = srv.endpoints()
        if args.json:
            print(json.dumps({"type": "endpoints", "port": srv.port, "venues": endpoints}), flush=True)
        else:
            print(f"depthdesk simulator on 127.0.0.1:{srv.port} — symbols {', '.join(srv.symbols)}")
            for venue, urls in endpoints.items():
                print(f"[venues.{venue}]")
                for key, url in urls.items():
                    print(f'{key} = "{url}"')
            print("Ctrl-C to stop.", flush=True)

    try:
        serve_forever_blocking(server, args.duration, ready)
    except OSError as exc:
        raise UserError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass
    if scenario is not None:
        for label in server.labels():
            print(json.dumps({"type": "label", **label}) if args.json else json.dumps(label))
    counts = server.fault_counts()
    if args.json:
        print(json.dumps({"type": "stats", **server.stats(), "faults": counts}), flush=True)
    elif any(counts.values()):
        print(json.dumps({"type": "faults", **counts}), file=sys.stderr)
    return 0
