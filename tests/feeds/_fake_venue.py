"""A minimal scripted venue on 127.0.0.1 for the feed I/O tests: one websockets server answering REST
GETs through ``process_request`` and websocket paths through a handler the test supplies."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


class FakeVenue:
    """REST routes (path -> body or callable(query) -> body) and one websocket handler."""

    def __init__(self, rest: dict[str, Callable[[str], tuple[int, str]]],
                 ws: Callable[[ServerConnection, str], Awaitable[None]]) -> None:  # fmt: skip
        self.rest = rest
        self.ws = ws
        self.rest_log: list[str] = []
        self.ws_paths: list[str] = []
        self.port = 0

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        parts = urlsplit(request.path)
        self.rest_log.append(request.path)
        route = self.rest.get(parts.path)
        if route is None:
            status, body = 404, '{"code":-1,"msg":"no route"}'
        else:
            status, body = route(parts.query)
        data = body.encode()
        headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                           ("Connection", "close")])  # fmt: skip
        return Response(status, "OK" if status == 200 else "ERR", headers, data)

    async def _handler(self, connection: ServerConnection) -> None:
        path = connection.request.path if connection.request else ""
        self.ws_paths.append(path)
        await self.ws(connection, path)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeVenue]:
        async with serve(self._handler, "127.0.0.1", 0, process_request=self._process_request,
                         compression=None, ping_interval=None) as server:  # fmt: skip
            self.port = server.sockets[0].getsockname()[1]
            yield self

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def wsurl(self) -> str:
        return f"ws://127.0.0.1:{self.port}"
