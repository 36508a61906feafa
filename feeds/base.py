"""What every feed (venue adapter, replay) promises the engine: the one seam between I/O and state.

A feed turns wire messages into event batches (``app.core.events.EVENT_DTYPE`` rows) and hands them
to a :class:`FeedSink`, one exchange message = one batch, in arrival order. The feed owns sequence
checking and sync; the engine owns the books and applies each batch atomically. A feed never
touches a book directly: when it loses continuity it sends a batch that starts with a ``GAP_EVENT``
and a ``DEPTH_CLEAR_EVENT`` and reports ``resyncing``; when synced again it sends the snapshot as a
``DEPTH_CLEAR_EVENT`` + ``DEPTH_SNAPSHOT_EVENT`` rows batch and reports ``live``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.core.instrument import Instrument

# Feed states, as shown in the status bar and written in `status` JSON lines.
CONNECTING = "connecting"
SYNCING = "syncing"
LIVE = "live"
RESYNCING = "resyncing"
DISCONNECTED = "disconnected"
STOPPED = "stopped"
FEED_STATES = (CONNECTING, SYNCING, LIVE, RESYNCING, DISCONNECTED, STOPPED)


@dataclass(frozen=True, slots=True)
class FeedCounters:
    """Totals a feed reports in the final ``summary``."""

    messages: int = 0
    resyncs: int = 0
    reconnects: int = 0
    malformed: int = 0


class FeedSink(Protocol):
    """Receives what a feed produces; implemented by the engine (and by tests)."""

    def on_instrument(self, instrument: Instrument) -> None:
        """Metadata for a symbol, before any of its batches."""

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        """One message's events; ``update_id`` is the venue's book id (Binance/Bybit ``u``) for book
        messages, ``None`` otherwise."""

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        """A feed state change for ``symbol`` (one of :data:`FEED_STATES`)."""

    def on_raw(self, local_ns: int, raw: str) -> None:
        """Every raw message and REST body as received (for capture); cheap no-op when not recording."""


class Feed(Protocol):
    """A source of event batches: a live venue adapter or a capture replay."""

    venue: str
    symbols: tuple[str, ...]

    async def run(self, sink: FeedSink) -> None:
        """Connect, sync and deliver until cancelled; reconnects itself; returns when the source ends."""

    def counters(self) -> FeedCounters:
        """Message, resync, reconnect and malformed counts so far."""


class NullSink:
    """A FeedSink that ignores everything: subclass it and override only what you keep."""

    def on_instrument(self, instrument: Instrument) -> None:
        """Ignored."""

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        """Ignored."""

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        """Ignored."""

    def on_raw(self, local_ns: int, raw: str) -> None:
        """Ignored."""


class BatchCollector(NullSink):
    """A FeedSink that keeps every non-empty batch, in order (offline runs, tests, benchmarks)."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        """Keep one message's rows."""
        if len(batch):
            self.batches.append(batch)
