"""A daemon thread that pulls from the engine when woken, so the GUI thread never waits on a market lock."""

from __future__ import annotations

import threading


class PullThread:
    """Start/stop/wake plumbing shared by the frame prefetcher and the chart puller; subclasses write ``_run``.

    ``_run`` loops until ``_stopping`` is set, waiting on ``_wake`` between pulls.
    """

    thread_name = "depthdesk-pull"

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread."""
        if self.running:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        raise NotImplementedError
