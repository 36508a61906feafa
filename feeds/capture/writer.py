"""Append-only native capture writer: hftbacktest collector lines ``<local_ns> <raw>``, crash-safe.

Compression is chosen by the file name: ``.gz`` (default; gzip), ``.zst`` (zstandard) or anything else
(plain text). Lines are buffered and pushed to the file in small blocks — every ``flush_lines`` lines or
``flush_interval_s`` seconds, whichever comes first — with a gzip ``Z_SYNC_FLUSH`` / zstd block flush, so
a ``kill -9`` loses at most the last block and the file reads back up to its last complete line.

A JSON sidecar ``<file>.json`` (venue, symbols, tick sizes, app version, start/stop, gaps, parts) is
written at start and rewritten at each rotation and at stop. Rotation (``rotate_bytes`` / ``rotate_hourly``)
starts ``<stem>.<n><suffix>`` files; the sidecar of the first file lists every part.

A write error (disk full, permission lost) never raises into the caller: recording stops, the error
is kept in :attr:`CaptureWriter.error` and handed to ``on_error`` once, and later writes are no-ops —
the live view that feeds the writer goes on.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from feeds.capture.readers import CaptureError, sidecar_path

SIDECAR_FORMAT = "depthdesk-capture"
SIDECAR_VERSION = 1


def _app_version() -> str:
    try:
        from app import __version__

        return str(__version__)
    except ImportError:  # feeds may be used without the app package
        return "unknown"


class _Plain:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush_block(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""


class _Gzip:
    def __init__(self, level: int) -> None:
        self._c = zlib.compressobj(level, zlib.DEFLATED, 31)

    def compress(self, data: bytes) -> bytes:
        return self._c.compress(data)

    def flush_block(self) -> bytes:
        return self._c.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._c.flush(zlib.Z_FINISH)


class _Zstd:
    def __init__(self, level: int) -> None:
        import zstandard

        self._z = zstandard
        self._c = zstandard.ZstdCompressor(level=level).compressobj()

    def compress(self, data: bytes) -> bytes:
        return self._c.compress(data)

    def flush_block(self) -> bytes:
        return self._c.flush(self._z.COMPRESSOBJ_FLUSH_BLOCK)

    def finish(self) -> bytes:
        return self._c.flush(self._z.COMPRESSOBJ_FLUSH_FINISH)


def _codec(path: Path, level: int | None) -> _Plain | _Gzip | _Zstd:
    if path.suffix == ".gz":
        return _Gzip(6 if level is None else level)
    if path.suffix == ".zst":
        return _Zstd(3 if level is None else level)
    return _Plain()


class CaptureWriter:
    """Record raw messages as hftbacktest collector lines, flushed in small blocks, with a sidecar."""

    def __init__(
        self,
        path: str | Path,
        venue: str = "",
        symbols: tuple[str, ...] | list[str] = (),
        tick_sizes: dict[str, float] | None = None,
        *,
        flush_lines: int = 256,
        flush_interval_s: float = 0.1,
        rotate_bytes: int | None = None,
        rotate_hourly: bool = False,
        level: int | None = None,
        sidecar: str | Path | None = None,
        on_error: Callable[[str], None] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = Path(path)
        self.error: str | None = None
        self.lines = 0
        self.last_ns = 0  # receive time of the last line written
        self._flush_lines = max(1, flush_lines)
        self._flush_interval_ns = int(flush_interval_s * 1e9)
        self._rotate_bytes = rotate_bytes
        self._rotate_hourly = rotate_hourly
        self._level = level
        self._on_error = on_error
        self._clock_ns = clock_ns
        self._pending: list[bytes] = []
        self._last_flush_ns = clock_ns()
        self._part_bytes = 0
        self._hour = self._last_flush_ns // 3_600_000_000_000
        self._parts: list[str] = [self.path.name]
        self._sidecar_path = Path(sidecar) if sidecar is not None else sidecar_path(self.path)
        self._meta: dict = {
            "format": SIDECAR_FORMAT,
            "version": SIDECAR_VERSION,
            "line_format": "<local_receive_ns> <raw message>",
            "venue": venue,
            "symbols": list(symbols),
            "tick_sizes": dict(tick_sizes or {}),
            "app_version": _app_version(),
            "started_ns": self._last_flush_ns,
            "stopped_ns": None,
            "lines": 0,
            "gaps": [],
            "parts": self._parts,
            "error": None,
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        except OSError as exc:
            raise CaptureError(f"cannot record to {self.path}: {exc.strerror or exc}") from None
        self._codec = _codec(self.path, level)
        self._write_sidecar()

    # -- public -----------------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        """True until :meth:`close` or a write error stopped the recording."""
        return self.error is None and self._file is not None

    def write(self, local_ns: int, raw: str) -> None:
        """Append one raw message (websocket frame or REST body) received at ``local_ns``."""
        if self._file is None or self.error is not None:
            return
        if "\n" in raw:  # a pretty-printed REST body: one line per record, always
            raw = raw.replace("\r\n", " ").replace("\n", " ")
        self._pending.append(f"{local_ns} {raw}\n".encode())
        self.lines += 1
        self.last_ns = local_ns
        if len(self._pending) >= self._flush_lines:
            self.flush()
        elif self._flush_interval_ns and self._clock_ns() - self._last_flush_ns >= self._flush_interval_ns:
            self.flush()

    on_raw = write  # so a writer can sit where a FeedSink.on_raw is expected

    def note_gap(self, symbol: str, local_ns: int, reason: str) -> None:
        """Record a continuity gap (reconnect/resync) in the sidecar."""
        self._meta["gaps"].append({"symbol": symbol, "local_ns": local_ns, "reason": reason})

    def set_source_venue(self, venue: str) -> None:
        """The venue name the sources were given as when it differs from the wire (``demo``)."""
        self._meta["source_venue"] = venue
        if self.recording:
            self._write_sidecar()

    def set_instruments(self, tick_sizes: dict[str, float]) -> None:
        """Tick sizes learned after start (instrument info arrived)."""
        self._meta["tick_sizes"].update(tick_sizes)
        if self.recording:
            self._write_sidecar()

    def flush(self) -> None:
        """Push buffered lines to the file as one compressed block (readable after a kill -9)."""
        self._last_flush_ns = self._clock_ns()
        if not self._pending or self._file is None or self.error is not None:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._maybe_rotate()  # before the block, so a rotation never leaves an empty last part
        if self._file is None:
            return
        try:
            out = self._codec.compress(data) + self._codec.flush_block()
            self._file.write(out)
            self._file.flush()
            self._part_bytes += len(out)
        except OSError as exc:
            self._fail(exc)

    def close(self) -> None:
        """Flush, finish the compressed stream, and write the final sidecar (idempotent)."""
        if self._file is None:
            return
        if self.error is None:
            self.flush()
        try:
            if self.error is None:
                self._file.write(self._codec.finish())
            self._file.close()
        except OSError as exc:
            self._fail(exc)
        self._file = None  # type: ignore[assignment]
        self._meta["stopped_ns"] = self._clock_ns()
        self._write_sidecar()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def parts(self) -> list[Path]:
        """Every file written so far (more than one after rotation)."""
        return [self.path.with_name(name) for name in self._parts]

    # -- internals --------------------------------------------------------------------------------

    def _fail(self, exc: OSError) -> None:
        self.error = f"recording stopped: cannot write {self.path.name}: {exc.strerror or exc}"
        self._meta["error"] = self.error
        try:
            if self._file is not None:
                self._file.close()
        except OSError:
            pass  # the file is already broken; what was flushed before stays readable
        self._file = None  # type: ignore[assignment]
        self._pending.clear()
        self._meta["stopped_ns"] = self._clock_ns()
        self._write_sidecar()
        if self._on_error is not None:
            self._on_error(self.error)

    def _maybe_rotate(self) -> None:
        hour = self._last_flush_ns // 3_600_000_000_000
        by_size = self._rotate_bytes is not None and self._part_bytes >= self._rotate_bytes
        by_hour = self._rotate_hourly and hour != self._hour
        if not (by_size or by_hour):
            return
        self._hour = hour
        try:
            self._file.write(self._codec.finish())
            self._file.close()
            suffix = "".join(self.path.suffixes[-1:])
            stem = self.path.name[: len(self.path.name) - len(suffix)] if suffix else self.path.name
            name = f"{stem}.{len(self._parts):03d}{suffix}"
            self._file = self.path.with_name(name).open("ab")
        except OSError as exc:
            self._fail(exc)
            return
        self._codec = _codec(self.path, self._level)
        self._part_bytes = 0
        self._parts.append(name)
        self._write_sidecar()

    def _write_sidecar(self) -> None:
        self._meta["lines"] = self.lines
        tmp = self._sidecar_path.with_name(self._sidecar_path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self._meta, indent=1))
            os.replace(tmp, self._sidecar_path)
        except OSError as exc:
            if self.error is None and self._file is not None:
                self._fail(exc)
            # after a failure the sidecar is best effort: the capture itself is what matters
