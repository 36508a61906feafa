"""Pulls chart frames and price series off the GUI thread (no Qt here; the bridge hands them to the window).

``Engine.chart_frame`` takes the market's lock like ``Engine.frame``; under a burst the GUI thread must not
wait for it, so a small thread pulls the newest chart frame whenever the symbol's version moved, and the
leaders' mid series once a second. The frame clock only picks up what is ready.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from app.core.chartframe import ChartFrame
from app.pull_thread import PullThread

Series = tuple[np.ndarray, np.ndarray]


class ChartEngine(Protocol):
    """What the puller needs of :class:`app.engine.Engine`."""

    def chart_frame(self, symbol: str, bars: int = 200) -> ChartFrame | None: ...
    def mid_series(self, symbol: str, seconds: float = 3600.0) -> Series | None: ...
    def version(self, symbol: str) -> int: ...


class ChartPuller(PullThread):
    """One thread: newest chart frame of the wanted symbol, and mid series of it and its leaders at 1 Hz."""

    thread_name = "depthdesk-charts"

    def __init__(self, engine: ChartEngine, series_s: float = 3600.0, series_every_s: float = 1.0,
                 min_interval_s: float = 0.05) -> None:
        super().__init__()
        self._engine = engine
        # charts redraw at most 10 times a second; pulling faster only takes the GIL and the market's lock
        # from the engine and the GUI (a burst of messages changes the version every millisecond)
        self.min_interval_s = min_interval_s
        self._pulled_at = 0.0
        self.series_s = series_s
        self.series_every_s = series_every_s
        self._want: tuple[str, tuple[str, ...]] | None = None
        self._frame: ChartFrame | None = None
        self._series: dict[str, Series] = {}
        self._series_at = 0.0
        self.pulls = 0

    def request(self, key: str, leaders: tuple[str, ...] = ()) -> None:
        """Pull for ``venue:SYMBOL`` (and these leader symbols of the same venue); wakes the thread."""
        want = (key, tuple(leaders))
        if self._want is not None and self._want[0] != key:
            self._frame = None
            self._series = {}
            self._series_at = 0.0
        self._want = want
        self._wake.set()

    def latest(self, key: str) -> ChartFrame | None:
        """The newest chart frame pulled for ``key`` (None before the first)."""
        frame = self._frame
        return frame if frame is not None and frame.instrument.key == key else None

    def series(self) -> dict[str, Series]:
        """Mid series by ``venue:SYMBOL`` (the symbol's and its leaders'), as last pulled."""
        return dict(self._series)

    def pull_once(self) -> None:
        """One round of the thread's work (tests call it directly)."""
        want = self._want
        if want is None:
            return
        key, leaders = want
        version = self._engine.version(key)
        frame = self._frame
        now = time.monotonic()
        if version >= 0 and (frame is None or frame.version != version) and \
                now - self._pulled_at >= self.min_interval_s:
            self._pulled_at = now
            got = self._engine.chart_frame(key)
            if got is not None and self._want == want:
                self._frame = got
                self.pulls += 1
        if now - self._series_at >= self.series_every_s:
            self._series_at = now
            venue = key.split(":", 1)[0]
            out: dict[str, Series] = {}
            for sym in (key, *(f"{venue}:{lead}" for lead in leaders)):
                s = self._engine.mid_series(sym, self.series_s)
                if s is not None:
                    out[sym] = s
            if self._want == want:
                self._series = out

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.25)
            self._wake.clear()
            if self._stopping.is_set():
                break
            rest = self.min_interval_s - (time.monotonic() - self._pulled_at)
            if rest > 0 and self._stopping.wait(rest):
                break
            try:
                self.pull_once()
            except Exception:  # noqa: BLE001 - a chart pull must never kill the thread; the next one retries
                time.sleep(0.05)


def leader_series(series: dict[str, Series], key: str, leaders: tuple[str, ...]) -> dict[str, Series | None]:
    """The leaders' series by bare symbol (None when not pulled) from :meth:`ChartPuller.series`."""
    venue = key.split(":", 1)[0]
    return {lead: series.get(f"{venue}:{lead}") for lead in leaders}


def own_series(series: dict[str, Series], key: str) -> Series | None:
    """The symbol's own series."""
    return series.get(key)
