"""One client websocket of the simulator: an outbound queue, a writer task and its fault injector."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from feeds.simulator.faults import (
    DISCONNECT,
    DROP,
    DUPLICATE,
    MALFORMED,
    REORDER,
    SEND,
    STALL,
    FaultInjector,
    FaultPlan,
    malformed_frame,
)

BATCH = 256
MAX_QUEUE = 500_000  # a client this far behind is cut off, as a venue cuts slow consumers


def _text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame (RFC 6455 5.2) around ``payload``."""
    n = len(payload)
    if n < 126:
        return b"\x81" + bytes((n,)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


class Control(str):
    """A reply (ack, pong, error): never hit by faults."""

    __slots__ = ()


class ClientConn:
    """A connected client: what it subscribed to, its send queue and counters."""

    def __init__(self, ws: ServerConnection, venue: str, route: str, number: int, plan: FaultPlan) -> None:
        self.ws = ws
        self.venue = venue
        self.route = route
        self.number = number
        self.conn_id = f"sim{number:06d}-{venue}"
        self.combined = False
        self.streams: list[str] = []  # in subscription order (LIST_SUBSCRIPTIONS)
        self.faults = FaultInjector(plan, number)
        self.stall_s = plan.stall_ms / 1000.0
        self.out: deque[str] = deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.data_sent = 0
        self.cut_slow = False

    def push(self, message: str) -> None:
        """Queue a data message (faults may hit it)."""
        if self.closed:
            return
        self.out.append(message)
        if len(self.out) > MAX_QUEUE:
            self.cut_slow = True
            self.abort()
        self.wake.set()

    def reply(self, message: str) -> None:
        """Queue a control reply (never faulted), in order with the data."""
        if not self.closed:
            self.out.append(Control(message))
            self.wake.set()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.closed = True
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def writer(self) -> None:
        """Send queued messages in order, applying faults; ends when the connection closes.

        Frames are built in batches and written with one ``transport.write`` (one syscall for up to
        ``BATCH`` messages): per-message ``send()`` costs a syscall each and caps loopback throughput.
        """
        out, decide = self.out, self.faults.decide
        held: str | None = None
        frames: list[str] = []
        try:
            while not self.closed:
                if not out:
                    if frames:
                        await self._write(frames)
                        frames = []
                        continue
                    if held is not None:  # nothing came after a held message: send it late anyway
                        frames.append(held)
                        held = None
                        continue
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                message = out.popleft()
                if type(message) is Control:
                    frames.append(message)
                elif held is not None:  # the message after a reordered one goes first, then the held one
                    self.faults.sent += 1
                    frames.append(message)
                    frames.append(held)
                    held = None
                    self.data_sent += 1
                else:
                    action = decide()
                    if action == SEND:
                        frames.append(message)
                    elif action == DROP:
                        pass
                    elif action == DUPLICATE:
                        frames.append(message)
                        frames.append(message)
                    elif action == REORDER:
                        held = message
                        continue
                    elif action == MALFORMED:
                        frames.append(malformed_frame(message))
                        frames.append(message)
                    elif action == DISCONNECT:
                        if frames:
                            await self._write(frames)
                        self.abort()
                        return
                    elif action == STALL:
                        if frames:
                            await self._write(frames)
                            frames = []
                        await asyncio.sleep(self.stall_s)
                        frames.append(message)
                    self.data_sent += 1
                if len(frames) >= BATCH:
                    await self._write(frames)
                    frames = []
        except ConnectionClosed:
            pass
        finally:
            self.closed = True

    async def _write(self, frames: list[str]) -> None:
        """Frame and write a batch of text messages in one go, then respect flow control.

        Server frames are unmasked, so framing is a 2-10 byte header: built here directly, it costs a
        fraction of ``protocol.send_text`` per message. All writes happen on the loop thread between
        awaits, so these frames never interleave with the library's own control frames.
        """
        ws = self.ws
        if ws.protocol.state is not State.OPEN or ws.transport is None or ws.transport.is_closing():
            raise ConnectionClosed(None, None)
        ws.transport.write(b"".join([_text_frame(f.encode()) for f in frames]))
        await ws.drain()

    async def close(self) -> None:
        """Close politely (server shutdown)."""
        self.closed = True
        self.wake.set()
        with contextlib.suppress(Exception):
            await self.ws.close()
