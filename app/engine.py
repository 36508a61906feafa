"""The engine: an asyncio loop that owns the feeds and every symbol's market state (no Qt here).

Two ways to run it (DESIGN.md §3):

- **thread mode** for the GUI: :meth:`Engine.start` runs the loop in its own thread; the GUI adds
  sources with :meth:`Engine.add_source` (thread-safe), *pulls* immutable frames with
  :meth:`Engine.frame` on its frame clock (skipping when :meth:`Engine.version` did not change), and
  receives rare events through listeners (plain callables, called on the engine thread; the Qt
  bridge forwards them as signals). :meth:`Engine.stop` cancels the feeds, joins the thread and
  calls the ``stopped`` listeners so writers flush.
- **current-loop mode** for headless commands: ``await engine.run_until(duration)`` runs the feeds in
  the caller's event loop until the duration elapses, :meth:`Engine.request_stop` is called, or every
  feed has ended (a replay reached its end).

Each feed gets its own sink object; one message's batch is applied to its symbol's
:class:`~app.market.MarketState` atomically (under that market's lock, so a frame never sees half a
message).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.analytics.alerts import AlertEngine, AlertRule, load_rules
from app.analytics.detectors import DetectorSet
from app.core.chartframe import ChartFrame
from app.core.footprint import FootprintBar
from app.core.frame import Frame
from app.core.instrument import Instrument
from app.market import Emit, MarketState
from feeds.base import CONNECTING, DISCONNECTED, FEED_STATES, STOPPED, Feed, FeedCounters

log = logging.getLogger(__name__)

RESOURCE_CLOSE_S = 8.0  # longest wait for an embedded resource (simulator) to stop at engine stop

# Listener kinds and the arguments each callback receives.
LISTENER_KINDS = {
    "instrument": "(instrument)",
    "status": "(venue, symbol, state, reason)",
    "top": "(instrument, exch_ts, local_ts, update_id, bid_tick, bid_qty, ask_tick, ask_qty)",
    "funding": "(instrument, funding_state, exch_ts, local_ts)",
    "detection": "(instrument, detection)",
    "alert": "(instrument, alert)  # app.analytics.alerts.Alert: rule, kind, detection (None: price rule)",
    "raw": "(venue, local_ns, raw_text)",
    "error": "(source_label, exception)",
    "stopped": "()",
}


@dataclass(frozen=True, slots=True)
class FeedFailure:
    """A feed that ended with an exception (bad symbol, unreachable venue …)."""

    source: str
    error: BaseException

    @property
    def root(self) -> BaseException:
        """The first leaf exception (feeds run task groups: unwrap their exception groups)."""
        err = self.error
        while isinstance(err, BaseExceptionGroup) and err.exceptions:
            err = err.exceptions[0]
        return err

    @property
    def message(self) -> str:
        """One line for the user."""
        err = self.root
        text = (str(err) or type(err).__name__).splitlines()[0]
        venue = self.source.split(":", 1)[0]
        return text if text.startswith(f"{venue}:") else f"{self.source}: {text}"  # no "venue: venue:"


@dataclass(frozen=True, slots=True)
class MarketStats:
    """What the status bar shows for one source symbol."""

    key: str
    state: str
    reason: str
    message_rate: float
    lag_ns: int
    messages: int
    ring_fill: float


class _FeedSink:
    """The :class:`feeds.base.FeedSink` one feed talks to: routes its symbols to their markets."""

    __slots__ = ("_engine", "venue", "label", "markets", "detached")

    def __init__(self, engine: Engine, venue: str, label: str) -> None:
        self._engine = engine
        self.venue = venue
        self.label = label
        self.markets: dict[str, MarketState] = {}
        self.detached = False  # set when the source was removed: the feed is being stopped

    def on_instrument(self, instrument: Instrument) -> None:
        """Create (or refresh) the market state of a symbol."""
        if not self.detached:
            self.markets[instrument.symbol] = self._engine._market_for(self.venue, instrument)

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        """Apply one message's batch atomically and emit what it produced."""
        market = self.markets.get(symbol)
        if market is None or self.detached:
            if not self.detached:
                self._engine._orphan_batches += 1
            return
        out = market.apply(batch, update_id)
        if out is not None:
            self._engine._emit(market, out)

    def on_batches(self, items: Sequence[tuple[str, np.ndarray, int | None]]) -> None:
        """Many messages in arrival order (a replay at full speed): each run of one symbol's messages is
        applied with :meth:`MarketState.apply_many` (same results as one by one), emits in order. An item
        ``(symbol, rows, ends)`` with ``ends`` an array is several messages without update ids."""
        if self.detached:
            return
        n = len(items)
        i = 0
        while i < n:
            symbol = items[i][0]
            j = i + 1
            while j < n and items[j][0] == symbol:
                j += 1
            market = self.markets.get(symbol)
            if market is None:
                self._engine._orphan_batches += sum(len(u) if isinstance(u, np.ndarray) else 1 for *_, u in items[i:j])
            else:
                emit = self._engine._emit
                for out in market.apply_many([(batch, uid) for _, batch, uid in items[i:j]]):
                    emit(market, out)
            i = j

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        """Forward a feed state change."""
        if not self.detached:
            self._engine._set_status(self.venue, symbol, state, reason)

    def on_raw(self, local_ns: int, raw: str) -> None:
        """Hand raw messages to capture listeners; nothing to do when nobody records."""
        if self._engine._listeners["raw"]:
            self._engine._call("raw", self.venue, local_ns, raw)  # a failing recorder never stops the feed


@dataclass(slots=True)
class _FeedRun:
    feed: Feed
    label: str
    sink: _FeedSink
    task: asyncio.Task[None] | None = None
    error: BaseException | None = None


DetectorFactory = Callable[[Instrument], Any]


def _config_detectors(config: Mapping[str, Any]) -> DetectorFactory:
    """A factory of :class:`DetectorSet` from ``[detectors]``, checked once now on a probe instrument."""
    section = dict(config.get("detectors") or {})
    DetectorSet(Instrument("check", "CHECK", 1.0), section)  # raises ValueError for bad settings

    def make(instrument: Instrument) -> DetectorSet:
        return DetectorSet(instrument, section)

    return make


class Engine:
    """Owns feeds and per-symbol market state; see the module docstring for the two run modes."""

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        detect: bool = True,
        detector_factory: DetectorFactory | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        """``detect``: run the detectors of ``[detectors]`` and the ``[[alerts]]`` rules on every symbol
        (both validated here, so a bad setting fails at once); ``detector_factory`` replaces them."""
        self.config: Mapping[str, Any] = config or {}
        if detector_factory is None and detect:
            detector_factory = _config_detectors(self.config)
        self._detector_factory = detector_factory
        self._alert_rules = load_rules(self.config.get("alerts")) if detect else []
        self._clock_ns = clock_ns
        self._listeners: dict[str, list[Callable[..., Any]]] = {k: [] for k in LISTENER_KINDS}
        self._markets: dict[str, MarketState] = {}  # "venue:SYMBOL" -> state
        self._status: dict[str, tuple[str, str]] = {}  # "venue:SYMBOL" -> (state, reason)
        self._reported: set[str] = set()  # keys whose feed has reported a state (listeners told)
        self._runs: list[_FeedRun] = []
        self._pending: list[_FeedRun] = []
        self._resources: list[Any] = []  # objects with close()/stop() to end with the engine
        self._source_factory: Any = None
        self._registry_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._stop_requested = False
        self._stopped = False
        self._listener_errors = 0
        self._orphan_batches = 0
        self.errors: list[FeedFailure] = []

    # -- listeners ------------------------------------------------------------------------------

    def listen(self, kind: str, callback: Callable[..., Any]) -> None:
        """Call ``callback`` on the engine thread for each event of ``kind`` (see LISTENER_KINDS)."""
        if kind not in LISTENER_KINDS:
            raise ValueError(f"unknown listener kind {kind!r}; one of {sorted(LISTENER_KINDS)}")
        self._listeners[kind].append(callback)

    def _call(self, kind: str, *args: Any) -> None:
        for cb in self._listeners[kind]:
            try:
                cb(*args)
            except Exception:  # a broken listener must not stop the market data
                self._listener_errors += 1
                log.exception("engine %s listener failed", kind)

    # -- sources --------------------------------------------------------------------------------

    def add_source(self, source: str) -> None:
        """Add one ``venue:SYMBOL`` source (thread-safe); raises ValueError/UserError for bad input."""
        self.add_sources([source])

    def add_sources(self, sources: Sequence[str]) -> None:
        """Add sources, one connection per venue for several symbols of the same venue (thread-safe)."""
        from app.sources import SourceFactory

        with self._registry_lock:
            if self._source_factory is None:
                self._source_factory = SourceFactory(self.config)
                self._resources.append(self._source_factory)
            factory = self._source_factory
        for label, feed in factory.build(sources):
            self.add_feed(feed, label=label)

    def add_feed(self, feed: Feed, label: str | None = None) -> None:
        """Run ``feed`` (thread-safe); before the engine runs it is started with the others."""
        label = label or f"{feed.venue}:{','.join(feed.symbols)}"
        run = _FeedRun(feed=feed, label=label, sink=_FeedSink(self, feed.venue, label))
        for symbol in feed.symbols:
            self._status.setdefault(f"{feed.venue}:{symbol}", (CONNECTING, ""))
        with self._registry_lock:  # _serve takes the pending list under the same lock: none is lost
            loop = self._loop
            if loop is None:
                self._pending.append(run)
                return
        if threading.get_ident() == self._loop_thread_id:
            self._start_run(run)
        else:
            asyncio.run_coroutine_threadsafe(self._start_run_async(run), loop).result(timeout=10)

    def remove_source(self, source: str) -> bool:
        """Stop the feed serving ``venue:SYMBOL`` and forget its market (thread-safe); False if unknown.

        A feed serving several symbols is stopped whole and the other symbols are added back.
        """
        venue, _, symbol = source.partition(":")
        venue, symbol = venue.lower(), symbol.upper()
        run = next((r for r in self._runs + self._pending
                    if r.feed.venue == venue and symbol in r.feed.symbols), None)
        if run is None:
            return False
        run.sink.detached = True  # what the feed still says while it stops is not news any more
        loop = self._loop
        if loop is not None and loop.is_running() and run.task is not None:
            if threading.get_ident() == self._loop_thread_id:
                run.task.cancel()
            else:
                asyncio.run_coroutine_threadsafe(self._cancel_run(run), loop).result(timeout=10)
        with self._registry_lock:
            if run in self._pending:
                self._pending.remove(run)
            if run in self._runs:
                self._runs.remove(run)
            self._markets.pop(f"{venue}:{symbol}", None)
            self._status.pop(f"{venue}:{symbol}", None)
            self._reported.discard(f"{venue}:{symbol}")
        others = [f"{venue}:{s}" for s in run.feed.symbols if s != symbol]
        if others:
            self.add_sources(others)
        return True

    async def _cancel_run(self, run: _FeedRun) -> None:
        if run.task is not None and not run.task.done():
            run.task.cancel()
            await asyncio.wait([run.task], timeout=5)

    def reset_market(self, source: str) -> None:
        """Forget a symbol's session state (book, rings, profile, detections): a replay seek does this."""
        market = self.market(source)
        if market is not None:
            fresh = self._detector_factory(market.instrument) if self._detector_factory else None
            market.reset(detectors=fresh)

    def add_price_alert(self, symbol: str, name: str, price_tick: int, direction: str = "up",
                        sound: bool = True, once: bool = True) -> AlertRule:
        """Click-to-alert (thread-safe): alert when ``symbol`` trades at/through ``price_tick``."""
        market = self.market(symbol)
        if market is None:
            raise ValueError(f"no market {symbol!r} yet")
        with market._lock:
            if market.alerts is None:
                market.alerts = AlertEngine(market.instrument, [])
            return market.alerts.add_price_alert(name, price_tick, direction, sound=sound, once=once)

    def remove_alert(self, symbol: str, name: str) -> None:
        """Drop the alert rule ``name`` of ``symbol`` (thread-safe)."""
        market = self.market(symbol)
        if market is not None and market.alerts is not None:
            with market._lock:
                market.alerts.remove(name)

    def add_resource(self, resource: Any) -> None:
        """Close/stop ``resource`` (e.g. an embedded simulator) when the engine stops."""
        self._resources.append(resource)

    def discard(self) -> None:
        """Release what a never-run engine holds (an embedded simulator started by a source)."""
        if self.running:
            raise RuntimeError("discard() is for an engine that is not running; use stop()")
        with self._registry_lock:
            self._pending.clear()
            resources, self._resources = self._resources, []
            self._source_factory = None
        for resource in reversed(resources):
            closer = getattr(resource, "close", None) or getattr(resource, "stop", None)
            if closer is not None:
                try:
                    closer()
                except Exception:  # noqa: BLE001 - best effort on an error path
                    log.exception("closing %r failed", resource)

    async def _start_run_async(self, run: _FeedRun) -> None:
        self._start_run(run)

    def _start_run(self, run: _FeedRun) -> None:
        self._runs.append(run)
        run.task = asyncio.get_running_loop().create_task(self._run_feed(run), name=f"feed {run.label}")

    async def _run_feed(self, run: _FeedRun) -> None:
        try:
            await run.feed.run(run.sink)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a feed error is reported, never a crash of the engine
            run.error = exc
            err = FeedFailure(run.label, exc)
            self.errors.append(err)
            log.info("feed %s failed: %s", run.label, err.message)  # status, error listeners and summary carry it
            log.debug("feed %s failure", run.label, exc_info=err.root)
            for symbol in run.feed.symbols:
                self._set_status(run.feed.venue, symbol, STOPPED, err.message)
            self._call("error", run.label, exc)
            return
        for symbol in run.feed.symbols:
            if self._status.get(f"{run.feed.venue}:{symbol}", ("",))[0] != STOPPED:
                self._set_status(run.feed.venue, symbol, STOPPED, "source ended")

    # -- market state ---------------------------------------------------------------------------

    def _market_for(self, venue: str, instrument: Instrument) -> MarketState:
        key = f"{venue}:{instrument.symbol}"
        market = self._markets.get(key)
        if market is not None and market.instrument == instrument:
            return market
        detectors = self._detector_factory(instrument) if self._detector_factory else None
        alerts = AlertEngine(instrument, list(self._alert_rules)) if self._alert_rules or detectors else None
        market = MarketState(instrument, self.config, detectors=detectors, alerts=alerts)
        state, _reason = self._status.get(key, (CONNECTING, ""))
        market.set_state(state)
        with self._registry_lock:
            self._markets[key] = market
        self._call("instrument", instrument)
        return market

    def _set_status(self, venue: str, symbol: str, state: str, reason: str = "") -> None:
        if state not in FEED_STATES:
            log.warning("feed %s:%s reported unknown state %r", venue, symbol, state)
            return
        key = f"{venue}:{symbol}"
        previous = self._status.get(key)
        self._status[key] = (state, reason)
        market = self._markets.get(key)
        if market is not None:
            if state == STOPPED:  # the stream is over: close its open detections before saying so
                out = market.finish()
                if out is not None:
                    self._emit(market, out)
            market.set_state(state)
        # The placeholder "connecting" put by add_feed is not a report: the feed's own first one is news.
        if key not in self._reported or previous is None or previous != (state, reason):
            self._reported.add(key)
            self._call("status", venue, symbol, state, reason)

    def _emit(self, market: MarketState, out: Emit) -> None:
        inst = market.instrument
        if out.top is not None and self._listeners["top"]:
            self._call("top", inst, *out.top)
        if out.funding is not None and self._listeners["funding"]:
            self._call("funding", inst, out.funding, out.exch_ts, out.local_ts)
        for det in out.detections:
            self._call("detection", inst, det)
        for alert in out.alerts:
            self._call("alert", inst, alert)

    # -- pulls (thread-safe) --------------------------------------------------------------------

    def keys(self) -> list[str]:
        """``venue:SYMBOL`` of every market with an instrument, in arrival order."""
        with self._registry_lock:
            return list(self._markets)

    def market(self, symbol: str) -> MarketState | None:
        """The market of ``venue:SYMBOL`` (or a bare symbol when only one venue has it)."""
        market = self._markets.get(symbol)
        if market is not None or ":" in symbol:
            return market
        with self._registry_lock:
            found = [m for k, m in self._markets.items() if k.split(":", 1)[1] == symbol]
        return found[0] if len(found) == 1 else None

    def frame(self, symbol: str, ladder_rows: int = 40, group: int = 1, centre_tick: int | None = None,
              trades: int = 200) -> Frame | None:
        """An immutable frame of ``symbol`` (private array copies), or None before its instrument.

        The ladder is centred on the mid, or on ``centre_tick`` when the view is scrolled.
        """
        market = self.market(symbol)
        if market is None:
            return None
        return market.frame(ladder_rows=ladder_rows, group=group, centre_tick=centre_tick, trades=trades)

    def footprint(self, symbol: str, last: int | None = 100) -> list[FootprintBar]:
        """The newest ``last`` footprint bars of ``symbol`` (immutable, thread-safe); [] when unknown."""
        market = self.market(symbol)
        return [] if market is None else market.footprint_bars(last)

    def chart_frame(self, symbol: str, bars: int = 200) -> ChartFrame | None:
        """What the chart docks draw of ``symbol`` (thread-safe, copies made only when a part changed)."""
        market = self.market(symbol)
        return None if market is None else market.chart_frame(bars)

    def mid_series(self, symbol: str, seconds: float = 3600.0) -> tuple[np.ndarray, np.ndarray] | None:
        """(times ns, mid price) of ``symbol`` per heatmap column over the last ``seconds``; None when unknown."""
        market = self.market(symbol)
        return None if market is None else market.mid_series(seconds)

    def stats(self, now_ns: int | None = None) -> list[MarketStats]:
        """One status-bar row per source symbol (cheap; for the 1 Hz clock)."""
        now = self._clock_ns() if now_ns is None else now_ns
        out = []
        for key, (state, reason) in list(self._status.items()):
            market = self._markets.get(key)
            if market is None:
                out.append(MarketStats(key, state, reason, 0.0, 0, 0, 0.0))
                continue
            lag = now - market.last_local_ts if market.last_local_ts else 0
            out.append(MarketStats(key, state, reason, market.message_rate, lag, market.messages, market.ring.fill))
        return out

    def version(self, symbol: str) -> int:
        """Changes with every applied batch of ``symbol``: skip repaints when it did not (-1 unknown)."""
        market = self.market(symbol)
        return -1 if market is None else market.version

    def status(self, symbol: str) -> tuple[str, str]:
        """(feed state, reason) of ``venue:SYMBOL``."""
        if symbol in self._status:
            return self._status[symbol]
        market = self.market(symbol)
        return self._status.get(market.instrument.key if market else "", (DISCONNECTED, "unknown source"))

    def statuses(self) -> dict[str, tuple[str, str]]:
        """(state, reason) of every source symbol."""
        return dict(self._status)

    def lag_ns(self, symbol: str | None = None, now_ns: int | None = None) -> int:
        """Engine lag = now − last local receive time (of ``symbol``, or the worst market); 0 if none."""
        now = self._clock_ns() if now_ns is None else now_ns
        if symbol is not None:
            market = self.market(symbol)
            markets: Iterable[MarketState] = [market] if market is not None else []
        else:
            with self._registry_lock:
                markets = list(self._markets.values())
        lags = [now - m.last_local_ts for m in markets if m.last_local_ts > 0]
        return max(lags) if lags else 0

    def counters(self) -> list[tuple[str, FeedCounters]]:
        """(source label, feed counters) of every feed started so far."""
        return [(run.label, run.feed.counters()) for run in self._runs]

    def summary_sources(self) -> list[dict[str, Any]]:
        """Per-source counts for the ``summary`` line (feed counters + what the engine applied)."""
        rows = []
        for run in self._runs:
            c = run.feed.counters()
            markets = [self._markets.get(f"{run.feed.venue}:{s}") for s in run.feed.symbols]
            rows.append({
                "source": run.label,
                "venue": run.feed.venue,
                "symbols": list(run.feed.symbols),
                "messages": c.messages,
                "resyncs": c.resyncs,
                "reconnects": c.reconnects,
                "malformed": c.malformed,
                "applied": sum(m.messages for m in markets if m is not None),
                "tops": sum(m.tops for m in markets if m is not None),
                "error": FeedFailure(run.label, run.error).message if run.error is not None else None,
            })
        return rows

    # -- running --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the engine's loop runs (either mode)."""
        return self._loop is not None and self._loop.is_running() and not self._stopped

    async def run_until(self, duration: float | None = None) -> None:
        """Run the feeds in the current loop until ``duration`` s, a stop request, or all feeds end."""
        await self._serve(duration=duration, until_feeds_end=True)

    def request_stop(self) -> None:
        """Ask a running engine to stop (thread-safe, also from a signal handler)."""
        self._stop_requested = True
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            if threading.get_ident() == self._loop_thread_id:
                event.set()
            else:
                loop.call_soon_threadsafe(event.set)

    def start(self) -> None:
        """Start the engine loop in its own thread and return once it runs."""
        if self._thread is not None:
            raise RuntimeError("engine already started")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, args=(ready,), name="depthdesk-engine",
                                        daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("engine thread did not start")

    def stop(self, timeout: float = 20.0) -> None:
        """Cancel the feeds, join the engine thread, stop embedded resources and flush listeners."""
        thread = self._thread
        if thread is None:
            return
        if thread is threading.current_thread():  # from a listener: cannot join ourselves
            self.request_stop()
            return
        self.request_stop()
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("engine thread did not stop in time")
        self._thread = None

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(duration=None, until_feeds_end=False, ready=ready))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def _serve(self, duration: float | None, until_feeds_end: bool,
                     ready: threading.Event | None = None) -> None:
        if self._loop is not None:
            raise RuntimeError("engine is already running")
        self._stop_event = asyncio.Event()
        self._stopped = False
        if self._stop_requested:
            self._stop_event.set()
        with self._registry_lock:
            self._loop = asyncio.get_running_loop()
            self._loop_thread_id = threading.get_ident()
            pending, self._pending = self._pending, []
        for run in pending:
            self._start_run(run)
        if ready is not None:
            ready.set()
        stop_wait = asyncio.ensure_future(self._stop_event.wait())
        try:
            deadline = None if duration is None else self._loop.time() + duration
            while not self._stop_event.is_set():
                tasks = [r.task for r in self._runs if r.task is not None and not r.task.done()]
                if until_feeds_end and not tasks:
                    break
                timeout = None if deadline is None else deadline - self._loop.time()
                if timeout is not None and timeout <= 0:
                    break
                # Wake on: stop request, a feed ending (re-check), the deadline, or new feeds (poll 0.5 s).
                waiters: set[asyncio.Future[Any]] = {stop_wait, *tasks} if until_feeds_end else {stop_wait}
                poll = 0.5 if timeout is None else min(timeout, 0.5)
                await asyncio.wait(waiters, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            await self._shutdown()

    async def _shutdown(self) -> None:
        tasks = [r.task for r in self._runs if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for market in list(self._markets.values()):  # close what is still open: no open without a close
            out = market.finish()
            if out is not None:
                self._emit(market, out)
        for run in self._runs:
            for symbol in run.feed.symbols:
                if self._status.get(f"{run.feed.venue}:{symbol}", ("",))[0] != STOPPED:
                    self._set_status(run.feed.venue, symbol, STOPPED, "engine stopped")
        for resource in reversed(self._resources):
            closer = getattr(resource, "close", None) or getattr(resource, "stop", None)
            if closer is None:
                continue
            try:
                if asyncio.iscoroutinefunction(closer):
                    await asyncio.wait_for(closer(), RESOURCE_CLOSE_S)
                else:  # blocking (a simulator thread's join): off the loop, bounded
                    await asyncio.wait_for(asyncio.to_thread(closer), RESOURCE_CLOSE_S)
            except TimeoutError:
                log.warning("closing %r took more than %.0f s; going on", resource, RESOURCE_CLOSE_S)
            except Exception:  # noqa: BLE001 - stopping must go on for the other resources
                log.exception("closing %r failed", resource)
        self._resources.clear()
        self._source_factory = None
        self._stopped = True
        self._call("stopped")
        with self._registry_lock:
            self._loop = None
            self._loop_thread_id = None
        self._stop_event = None
        self._stop_requested = False
