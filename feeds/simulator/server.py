"""The local exchange: one websocket + REST port on 127.0.0.1 speaking Binance USDⓈ-M and Bybit v5.

REST is answered through the websockets server's ``process_request`` hook (plain HTTP GETs get a
JSON response and the connection closes), websocket paths are routed to the venue that owns them::

    ws://127.0.0.1:P/public/stream?streams=altusdt@depth@100ms     Binance /public (depth, bookTicker)
    ws://127.0.0.1:P/market/ws/altusdt@aggTrade                    Binance /market (trades, mark, liqs)
    ws://127.0.0.1:P/v5/public/linear                              Bybit v5 linear
    http://127.0.0.1:P/fapi/v1/depth?symbol=ALTUSDT&limit=1000      Binance REST
    http://127.0.0.1:P/v5/market/instruments-info?category=linear   Bybit REST

Driven by a :class:`MarketModel` (synthetic, optionally with a planted :class:`Scenario`) or by a
recorded capture (:class:`feeds.simulator.capture.CaptureSource`). :class:`SimulatorThread` runs it on
its own loop in a background thread for in-process embedding (``depthdesk --demo``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from feeds.simulator.binance import BinanceVenue
from feeds.simulator.bybit import BybitVenue
from feeds.simulator.conn import ClientConn
from feeds.simulator.faults import FAULT_KINDS, NO_FAULTS, FaultPlan
from feeds.simulator.market import DEFAULT_SYMBOLS, MarketModel, SymbolSpec
from feeds.simulator.scenarios import Scenario

log = logging.getLogger("depthdesk.simulator")
T = TypeVar("T")

BINANCE = "binance-usdm"
BYBIT = "bybit-linear"


class SimulatorServer:
    """A real exchange on loopback: ``await start()`` -> port, ``endpoints()``, ``await stop()``."""

    def __init__(
        self,
        symbols: Sequence[SymbolSpec] = DEFAULT_SYMBOLS,
        *,
        seed: int = 1,
        rate: float = 400.0,
        faults: FaultPlan = NO_FAULTS,
        coalesce: bool = True,
        speed: float = 1.0,
        step_ms: float = 10.0,
        scenario: Any = None,
        capture: Any = None,
        host: str = "127.0.0.1",
        port: int = 0,
        start_ns: int | None = None,
        manual: bool = False,
    ) -> None:
        if step_ms <= 0:
            raise ValueError(f"step_ms must be > 0, got {step_ms!r}")
        if speed < 0:
            raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {speed!r}")
        self.host = host
        self.port = port
        self.faults = faults
        self.speed = speed
        self.manual = manual  # no clock: the caller drives time with advance() (tests)
        self.step_ns = int(step_ms * 1_000_000)
        self.scenario = scenario
        self.capture = capture
        self.model: MarketModel | None = None
        if capture is None:
            specs = symbols
            if isinstance(scenario, Scenario):  # a scenario fixes its symbol, seed and background rate
                specs, seed, rate = scenario.symbols, scenario.seed, scenario.rate
            self.model = MarketModel(specs, seed=seed, rate=rate,
                                     start_ns=start_ns if start_ns is not None else time.time_ns())
            if scenario is not None:
                scenario.install(self.model)
            venue_specs: Sequence[SymbolSpec] = specs
        else:
            venue_specs = capture.specs
        self.binance = BinanceVenue(self.model, venue_specs, coalesce=coalesce)
        self.bybit = BybitVenue(self.model, venue_specs, coalesce=coalesce)
        if capture is not None:
            capture.attach(self)
        self.connections: list[ClientConn] = []  # every connection ever made (counters)
        self.rest_requests = 0
        self.steps = 0
        self._server: Server | None = None
        self._clock: asyncio.Task[None] | None = None
        self._writers: set[asyncio.Task[None]] = set()
        self._conn_no = 0
        self._cpu0 = 0.0

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> int:
        """Bind and start serving; returns the port (an ephemeral one when ``port`` was 0)."""
        self._cpu0 = time.process_time()
        self._server = await serve(
            self._handle, self.host, self.port, process_request=self._process_request,
            compression=None, ping_interval=180, ping_timeout=600, max_queue=64, close_timeout=2,
            logger=logging.getLogger("depthdesk.simulator.ws"),
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        if self.manual:
            pass
        elif self.capture is None:
            self._clock = asyncio.create_task(self._run_model(), name="simulator-clock")
        else:
            self._clock = asyncio.create_task(self.capture.run(), name="simulator-replay")
        log.info("simulator listening on %s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop the clock, close every connection and the listening socket."""
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._clock
            self._clock = None
        for conn in self.connections:
            conn.closed = True
            conn.wake.set()
        if self._server is not None:
            self._server.close()  # close frames (1001 going away) to every client
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 3)
            for conn in self.connections:  # a client that never read its backlog: cut it
                if conn.ws.transport is not None and not conn.ws.transport.is_closing():
                    conn.ws.transport.abort()
            self._server = None
        for task in list(self._writers):
            task.cancel()

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def endpoints(self) -> dict[str, dict[str, str]]:
        """Config-shaped venue endpoints (``[venues.<venue>]`` keys) pointing at this server."""
        base = f"{self.host}:{self.port}"
        return {
            BINANCE: {"rest": f"http://{base}", "ws_public": f"ws://{base}/public",
                      "ws_market": f"ws://{base}/market"},
            BYBIT: {"rest": f"http://{base}", "ws": f"ws://{base}/v5/public/linear"},
        }

    # -- what tests and the engine read -----------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        """The symbols this exchange lists."""
        return list(self.binance.specs)

    @property
    def now_ns(self) -> int:
        """Exchange time now (the model clock, or the replay position)."""
        if self.model is not None:
            return self.model.now_ns
        return self.capture.now_ns

    def levels(self, symbol: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The exchange's own book: ((bid ticks desc, qty), (ask ticks asc, qty)), qty in base units."""
        if self.model is None:
            return self.capture.levels(symbol)
        return self.model.levels(symbol)

    def labels(self) -> list[dict[str, Any]]:
        """Labels of the planted scenario events so far (empty without a scenario)."""
        return self.scenario.labels() if self.scenario is not None else []

    def fault_counts(self) -> dict[str, int]:
        """Faults injected so far, per kind, over every connection."""
        totals = dict.fromkeys(FAULT_KINDS, 0)
        for conn in self.connections:
            for kind, n in conn.faults.counts.items():
                totals[kind] += n
        return totals

    def stats(self) -> dict[str, int]:
        """Connection and message counters."""
        return {
            "connections": len(self.connections),
            "open_connections": sum(not c.closed for c in self.connections),
            "data_messages_sent": sum(c.data_sent for c in self.connections),
            "rest_requests": self.rest_requests,
            "misrouted_streams": self.binance.misrouted,
            "slow_consumers_cut": sum(c.cut_slow for c in self.connections),
            "steps": self.steps,
            "cpu_ms": round((time.process_time() - self._cpu0) * 1000),  # process CPU since start()
        }

    def disconnect_all(self) -> int:
        """Abort every open client connection (a venue-side outage); returns how many."""
        n = 0
        for conn in self.connections:
            if not conn.closed:
                conn.abort()
                n += 1
        return n

    # -- model clock ----------------------------------------------------------------------------
    def advance(self, steps: int = 1) -> None:
        """Run ``steps`` model steps now and publish them (tests drive time with this when speed is 0)."""
        assert self.model is not None
        for _ in range(steps):
            events = self.model.step(self.step_ns)
            self.steps += 1
            now = self.model.now_ns
            self.binance.on_events(events, now)
            self.bybit.on_events(events, now)

    async def pause(self) -> None:
        """Stop the model clock (time then moves only by ``advance``): freeze the market to compare books."""
        self.manual = True
        if self._clock is not None and self.capture is None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
            self._clock = None

    def flush(self) -> None:
        """Push every coalesced window now, as if its time had come (tests: compare books at rest)."""
        far = self.now_ns + 3_600_000_000_000
        self.binance.flush_all(far)
        self.bybit.flush_all(far)

    async def _run_model(self) -> None:
        assert self.model is not None
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        m0 = self.model.now_ns
        step_s = self.step_ns / 1e9
        while True:
            if self.speed == 0:
                self.advance(1)
                await asyncio.sleep(0)
                continue
            target = m0 + int((loop.time() - t0) * self.speed * 1e9)
            behind = (target - self.model.now_ns) // self.step_ns
            if behind > 200:  # we fell far behind (a stall): skip ahead rather than burst
                m0 += (behind - 200) * self.step_ns
                behind = 200
            for _ in range(int(behind)):
                self.advance(1)
                await asyncio.sleep(0)
            await asyncio.sleep(step_s / self.speed)

    # -- HTTP + websocket plumbing --------------------------------------------------------------
    def _venue_for_rest(self, path: str) -> BinanceVenue | BybitVenue | None:
        if path.startswith("/fapi/"):
            return self.binance
        if path.startswith("/v5/market/"):
            return self.bybit
        return None

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if upgrade:
            if url.path.startswith(("/public", "/market", "/ws", "/stream", "/v5/public/linear")):
                return None
            return _json_response(404, '{"code":-1000,"msg":"Not found."}')
        self.rest_requests += 1
        query = dict(parse_qsl(url.query))
        venue = self._venue_for_rest(url.path)
        if venue is None:
            return _json_response(404, '{"code":-1000,"msg":"Not found."}')
        if self.capture is not None:
            status, body = await self.capture.rest(venue.name, url.path, query)
        else:
            status, body = venue.rest(url.path, query, self.now_ns)
        return _json_response(status, body)

    async def _handle(self, ws: ServerConnection) -> None:
        url = urlsplit(ws.request.path if ws.request is not None else "/")
        query = dict(parse_qsl(url.query))
        self._conn_no += 1
        is_bybit = url.path.startswith("/v5/")
        venue: BinanceVenue | BybitVenue = self.bybit if is_bybit else self.binance
        conn = ClientConn(ws, venue.name, "", self._conn_no, self.faults)
        if not venue.open(conn, url.path, query):
            await ws.close(1008, "unknown path")
            return
        self.connections.append(conn)
        writer = asyncio.create_task(conn.writer(), name=f"sim-writer-{conn.number}")
        self._writers.add(writer)
        writer.add_done_callback(self._writers.discard)
        if self.capture is not None:
            self.capture.on_open(conn)
        try:
            async for message in ws:
                if conn.closed:
                    break
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                if is_bybit:
                    self.bybit.on_text(conn, text, self.now_ns)
                else:
                    self.binance.on_text(conn, text)
                if self.capture is not None:
                    self.capture.on_subscribe(conn)
        except Exception:  # noqa: BLE001 - a client's broken socket never takes the exchange down
            log.debug("client %d ended", conn.number, exc_info=True)
        finally:
            conn.closed = True
            conn.wake.set()
            venue.close(conn)
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer, 1.0)


def _json_response(status: int, body: str) -> Response:
    headers = Headers()
    headers["Content-Type"] = "application/json"
    headers["Content-Length"] = str(len(body.encode()))
    headers["Connection"] = "close"
    return Response(status, http.HTTPStatus(status).phrase, headers, body.encode())


class SimulatorThread:
    """Runs a :class:`SimulatorServer` on its own asyncio loop in a background thread."""

    def __init__(self, factory: Callable[[], SimulatorServer] | None = None, **kwargs: Any) -> None:
        self._factory = factory or (lambda: SimulatorServer(**kwargs))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.server: SimulatorServer | None = None

    def start(self, timeout: float = 10.0) -> dict[str, dict[str, str]]:
        """Start the thread and the server; returns ``endpoints()`` once the port is bound."""
        ready: Future[int] = Future()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.server = self._factory()
                ready.set_result(loop.run_until_complete(self.server.start()))
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                ready.set_exception(exc)
                loop.close()
                return
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.server.stop())
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=main, name="depthdesk-simulator", daemon=True)
        self._thread.start()
        ready.result(timeout)
        assert self.server is not None
        return self.server.endpoints()

    def call(self, fn: Callable[[SimulatorServer], T], timeout: float = 10.0) -> T:
        """Run ``fn(server)`` on the server's loop (consistent reads such as ``levels``) and return it."""
        assert self._loop is not None and self.server is not None
        server = self.server

        async def run() -> T:
            return fn(server)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and join the thread."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever_blocking(server: SimulatorServer, duration: float | None,
                           on_ready: Callable[[SimulatorServer], None] | None = None) -> None:
    """Run a server in this thread until Ctrl-C or ``duration`` seconds (the ``simulate`` command)."""

    async def main() -> None:
        await server.start()
        if on_ready is not None:
            on_ready(server)
        try:
            if duration is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(duration)
        finally:
            await server.stop()

    asyncio.run(main())


def demo_server(port: int = 0, seed: int = 7, rate: float = 600.0) -> SimulatorServer:
    """The embedded demo exchange (``depthdesk --demo``, ``watch demo:ALTUSDT``): the default symbols
    with planted events staged one after another on ALTUSDT."""
    from feeds.simulator.scenarios import Showcase

    return SimulatorServer(seed=seed, rate=rate, scenario=Showcase(), port=port)


def parse_symbols(names: Iterable[str]) -> list[SymbolSpec]:
    """Default specs for the named symbols (unknown names get a small-cap spec)."""
    known = {s.symbol: s for s in DEFAULT_SYMBOLS}
    out = []
    for name in names:
        name = name.upper()
        out.append(known.get(name) or SymbolSpec(name, 0.0001, 1.0, 1.2345, median_lots=800))
    return out
