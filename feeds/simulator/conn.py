"""One client websocket of the simulator: an outbound queue, a writer task and its fault injector."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

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

MAX_QUEUE = 500_000  # a client this far behind is cut off, as a venue cuts slow consumers


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
        self.state: dict[str, Any] = {}
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
        """Send queued messages in order, applying faults; ends when the connection closes."""
        ws, out, decide = self.ws, self.out, self.faults.decide
        held: str | None = None
        try:
            while not self.closed:
                if not out:
                    if held is not None:  # nothing came after a held message: send it late anyway
                        await ws.send(held)
                        held = None
                        continue
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                message = out.popleft()
                if type(message) is Control:
                    await ws.send(message)
                    continue
                if held is not None:  # the message after a reordered one goes first, then the held one
                    self.faults.sent += 1
                    await ws.send(message)
                    await ws.send(held)
                    held = None
                    self.data_sent += 1
                    continue
                action = decide()
                if action == SEND:
                    await ws.send(message)
                elif action == DROP:
                    pass
                elif action == DUPLICATE:
                    await ws.send(message)
                    await ws.send(message)
                elif action == REORDER:
                    held = message
                    continue
                elif action == MALFORMED:
                    await ws.send(malformed_frame(message))
                    await ws.send(message)
                elif action == DISCONNECT:
                    self.abort()
                    return
                elif action == STALL:
                    await asyncio.sleep(self.stall_s)
                    await ws.send(message)
                self.data_sent += 1
        except ConnectionClosed:
            self.closed = True
        finally:
            self.closed = True

    async def close(self) -> None:
        """Close politely (server shutdown)."""
        self.closed = True
        self.wake.set()
        with contextlib.suppress(Exception):
            await self.ws.close()
