"""A scripted websocket for the feeds' receive pumps: frames arrive in chunks (one socket read each)."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

from app.core.instrument import Instrument
from app.engine import Engine, _FeedSink


class FakeWS:
    """A connection whose frames arrive in chunks: the frames of a chunk are queued at once (as after one
    socket read); between chunks the receive waits (``on_wait`` is called first). ``fail_at``: the
    receive raises there, mid-chunk (a connection lost with frames still queued behind)."""

    def __init__(self, chunks: list[list[str]], on_wait=None, fail_at: int | None = None) -> None:  # noqa: ANN001
        self.chunks = chunks
        self.on_wait = on_wait
        self.fail_at = fail_at
        self.taken = 0
        self._left_in_chunk = 0
        self.recv_messages = SimpleNamespace(frames=SimpleNamespace(queue=self))

    def __iter__(self):  # noqa: ANN204 - the receive queue message_queued looks at: the chunk's rest
        return iter([SimpleNamespace(fin=True)] * self._left_in_chunk)

    def __len__(self) -> int:
        return self._left_in_chunk

    def __getitem__(self, i: int) -> SimpleNamespace:
        return list(self)[i]

    async def __aiter__(self):  # noqa: ANN204
        for chunk in self.chunks:
            if self.on_wait is not None:
                self.on_wait(self.taken)
            await asyncio.sleep(0)  # waiting for the socket: the loop runs other things
            for k, raw in enumerate(chunk):
                if self.taken == self.fail_at:
                    raise OSError("connection reset")
                self._left_in_chunk = len(chunk) - k - 1
                self.taken += 1
                yield raw


def chunked(raws: list[str], sizes: list[int]) -> list[list[str]]:
    out, i = [], 0
    for n in itertools.cycle(sizes):
        if i >= len(raws):
            return out
        out.append(raws[i:i + n])
        i += n
    return out


def engine_sink(inst: Instrument, sink_class: type[_FeedSink] = _FeedSink) -> tuple[Engine, _FeedSink, list]:
    """A real engine (detectors on) whose tops and detections are noted in order, and its feed sink."""
    engine = Engine()
    events: list = []
    engine.listen("top", lambda inst, *top: events.append(("top", top)))
    engine.listen("detection", lambda inst, det: events.append(("det", det.kind, det.state, det.price_tick)))
    sink = sink_class(engine, inst.venue, "test")
    sink.on_instrument(inst)
    return engine, sink, events
