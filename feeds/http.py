"""A small async HTTP/1.1 GET over asyncio streams (http and https), enough for venue REST calls.

No third-party HTTP client: the feeds need a handful of GETs (snapshot, instruments, open interest)
and must talk both to the real venues (TLS) and to the loopback simulator (plain HTTP).
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit


class HttpError(Exception):
    """A GET that failed: network error, timeout, bad response, or a non-2xx status."""

    def __init__(self, message: str, status: int = 0, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


_SSL_CONTEXT: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = ssl.create_default_context()
    return _SSL_CONTEXT


async def http_get(url: str, timeout_s: float = 10.0, max_bytes: int = 64 << 20) -> str:
    """GET ``url`` and return the body as text; raises :class:`HttpError` on any failure or non-2xx."""
    try:
        async with asyncio.timeout(timeout_s):
            status, body = await _get(url, max_bytes)
    except TimeoutError:
        raise HttpError(f"GET {url}: no answer within {timeout_s:g} s") from None
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError) as exc:
        raise HttpError(f"GET {url}: {exc.__class__.__name__}: {exc}") from None
    text = body.decode("utf-8", errors="replace")
    if not 200 <= status < 300:
        raise HttpError(f"GET {url}: HTTP {status} {text[:200]!r}", status, text)
    return text


async def _get(url: str, max_bytes: int) -> tuple[int, bytes]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}")
    tls = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    reader, writer = await asyncio.open_connection(
        host, port, ssl=_ssl_context() if tls else None, server_hostname=host if tls else None
    )
    try:
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: depthdesk\r\n"
            "Accept: application/json\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await reader.readline()
        fields = status_line.split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
            raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
        status = int(fields[1])
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader, max_bytes)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length > max_bytes:
                raise ValueError(f"body of {length} bytes is over the {max_bytes} limit")
            body = await reader.readexactly(length)
        else:
            body = await reader.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise ValueError(f"body over the {max_bytes} byte limit")
        return status, body
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass  # the peer may already be gone; the body is what mattered


async def _read_chunked(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readline()
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        total += size
        if total > max_bytes:
            raise ValueError(f"body over the {max_bytes} byte limit")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)  # CRLF after each chunk
