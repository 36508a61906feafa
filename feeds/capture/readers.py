"""Read every capture format we know into one stream of :class:`RawRecord` (local time, channel, raw).

Formats (detected from the first lines, never from the file name):

* ``native`` / ``hftbacktest``: hftbacktest's collector line format ``<local_ns> <raw>`` (gzip, zstd or
  plain). DepthDesk's own captures are this format; ``native`` is reported when a JSON sidecar written
  by :class:`~feeds.capture.writer.CaptureWriter` sits beside the file.
* ``cryptofeed-v1``: cryptofeed raw-data text (``*.ws.N.0``); the sibling ``*.http.0.0`` (REST snapshots)
  and ``*.0`` (exchangeInfo) files are merged in by time.
* ``cryptofeed-v3``: cryptofeed v3 JSONL (``{"t":"recv",...}``).
* ``bybit-archive``: Bybit's historical order-book archive, one v5 websocket message per line; the
  local time is the message's own ``ts`` (the archive has no receive time).
* ``tardis``: Tardis-style CSV, ``incremental_book_L2`` and/or ``trades``; the sibling file of the other
  kind is merged in by ``local_timestamp``.

Channels (the second field of a record) say where a raw message came from:

==========================  =========================================================================
``ws``                      a websocket frame, connection not recorded (hftbacktest/native/archive)
``ws:<url>``                a websocket frame received on connection ``<url>``
``rest:<url-or-path>``      a REST response body (``rest:/fapi/v1/depth`` when the host/query is
                            unknown, as for hftbacktest's bare snapshot lines; DepthDesk's own
                            ``{"rest":"<path>","data":<body>}`` lines are unwrapped to path + body)
``open:<url>``              a (re)connection to ``<url>`` opened; ``raw`` is empty
``tardis:book`` / ``:trade``  one Tardis CSV row as text (no venue parser needed)
==========================  =========================================================================

Robustness: blank lines are skipped; a line that does not have its format's shape is *garbage*, skipped
and counted in :class:`ReadStats`; an unterminated last line that does not parse (a write cut by
``kill -9``) is ignored and reported; a compressed stream without its end marker is read up to its
last complete line and reported. Anything that is not a capture raises :class:`CaptureError`.
"""

from __future__ import annotations

import codecs
import heapq
import itertools
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import msgspec

BINANCE_USDM = "binance-usdm"
BYBIT_LINEAR = "bybit-linear"
OKX = "okx"
VENUES = (BINANCE_USDM, BYBIT_LINEAR)

FORMAT_HFTBACKTEST = "hftbacktest"
FORMAT_NATIVE = "native"
FORMAT_CRYPTOFEED_V1 = "cryptofeed-v1"
FORMAT_CRYPTOFEED_V3 = "cryptofeed-v3"
FORMAT_BYBIT_ARCHIVE = "bybit-archive"
FORMAT_TARDIS = "tardis"

CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_TARDIS_BOOK_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
_TARDIS_TRADE_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
_CF1_LINK = re.compile(r"^(\S+://\S+) (<->|<-|->) (\d+(?:\.\d+)?)(?:: (.*))?$", re.S)
_CF1_RECV = re.compile(r"^(\d+(?:\.\d+)?): (.*)$", re.S)
_TS_FIELD = re.compile(r'"ts":\s*(\d+)')
_json_decode = msgspec.json.Decoder().decode


class CaptureError(Exception):
    """A file that cannot be read as a capture; the message is one line for the user."""


class RawRecord(NamedTuple):
    """One raw message as recorded: receive time (int ns), where it came from, and the text."""

    local_ns: int
    channel: str
    raw: str


@dataclass(slots=True)
class ReadStats:
    """What reading a capture found besides the records: garbage, truncation, counts."""

    lines: int = 0
    records: int = 0
    garbage: int = 0
    garbage_samples: list[tuple[int, str]] = field(default_factory=list)
    sent: int = 0  # frames the recorder sent (subscribes): read, not replayed
    truncated_last_line: bool = False
    truncated_stream: bool = False  # compressed stream without its end marker (writer killed)
    truncated_text: str = ""
    bytes_read: int = 0  # of the (compressed) file: progress while building a cache

    def note_garbage(self, lineno: int, text: str) -> None:
        """Count one skipped line and keep the first few for the report."""
        self.garbage += 1
        if len(self.garbage_samples) < 5:
            self.garbage_samples.append((lineno, text[:80]))


# ---------------------------------------------------------------------------------------------
# Bytes -> lines (gzip / zstd / plain), tolerant of a cut-off end.


def _compression(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "plain"


def _plain_chunks(path: Path, stats: ReadStats, size: int = CHUNK) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            stats.bytes_read += len(chunk)
            yield chunk


def _gzip_chunks(path: Path, stats: ReadStats, size: int = CHUNK) -> Iterator[bytes]:
    # zlib by hand, not gzip.open: a stream cut by kill -9 has no end marker and gzip.open raises at
    # the end; here we keep everything that decodes and flag the cut.
    yield from _decompress_chunks(path, stats, lambda: zlib.decompressobj(31), zlib.error, size)


def _zstd_chunks(path: Path, stats: ReadStats, size: int = CHUNK) -> Iterator[bytes]:
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    yield from _decompress_chunks(path, stats, dctx.decompressobj, zstandard.ZstdError, size)


def _decompress_chunks(path: Path, stats: ReadStats, new, error: type[Exception],  # noqa: ANN001
                       size: int = CHUNK) -> Iterator[bytes]:
    d = new()
    fed = False  # the current member/frame has seen bytes (so a missing end marker means a cut)
    with path.open("rb") as f:
        while chunk := f.read(size):
            stats.bytes_read += len(chunk)
            while chunk:
                try:
                    out = d.decompress(chunk)
                except error:
                    stats.truncated_stream = True
                    return
                fed = True
                if out:
                    yield out
                if d.eof:  # member ended: another may follow (concatenated gzip / zstd frames)
                    chunk = d.unused_data
                    d = new()
                    fed = False
                else:
                    chunk = b""
    if fed:
        stats.truncated_stream = True


def iter_lines(path: Path, stats: ReadStats, size: int = CHUNK) -> Iterator[tuple[str, bool]]:
    """Yield ``(line, complete)`` for each text line of ``path`` (decompressed); the last may be partial.

    Bytes that are not UTF-8 survive as surrogate escapes, so such a line fails later as garbage.
    """
    kind = _compression(path)
    chunks = {"gzip": _gzip_chunks, "zstd": _zstd_chunks, "plain": _plain_chunks}[kind](path, stats, size)
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    tail = ""
    for chunk in chunks:
        text = decoder.decode(chunk)
        if tail:
            text = tail + text
        parts = text.split("\n")
        tail = parts.pop()
        for line in parts:
            yield line, True
    tail += decoder.decode(b"", final=True)
    if tail:
        yield tail, False


# ---------------------------------------------------------------------------------------------
# Format detection.


def _head_lines(path: Path, n: int = 12) -> list[str]:
    stats = ReadStats()
    out: list[str] = []
    try:
        # small reads: a 1 MiB compressed block is ~8 MB of text, and only the first lines are wanted
        for line, _complete in iter_lines(path, stats, 1 << 14):
            text = line.strip()
            if text:
                out.append(text)
            if len(out) >= n:
                break
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return out


def _line_format(text: str) -> str | None:
    if text.startswith(_TARDIS_BOOK_HEADER) or text.startswith(_TARDIS_TRADE_HEADER):
        return FORMAT_TARDIS
    sp = text.find(" ")
    if sp >= 1 and text[:sp].isdigit() and text[sp + 1 : sp + 2] in ("{", "["):
        return FORMAT_HFTBACKTEST
    if _CF1_LINK.match(text) or (_CF1_RECV.match(text) and text.split(": ", 1)[1][:1] in "{["):
        return FORMAT_CRYPTOFEED_V1
    if text.startswith("configuration: "):
        return FORMAT_CRYPTOFEED_V1
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        if isinstance(obj, dict) and obj.get("t") in ("header", "http", "connect", "send", "recv"):
            return FORMAT_CRYPTOFEED_V3
        if isinstance(obj, dict) and "topic" in obj and "data" in obj:
            return FORMAT_BYBIT_ARCHIVE
    return None


def detect_format(path: Path) -> str:
    """The capture format of ``path`` from its first lines; :class:`CaptureError` when none fits."""
    if not path.exists():
        raise CaptureError(f"{path}: no such file")
    if path.is_dir():
        raise CaptureError(f"{path}: is a directory, not a capture file")
    if path.stat().st_size == 0:
        raise CaptureError(f"{path}: empty file, not a capture")
    head = _head_lines(path)
    if not head:
        raise CaptureError(f"{path}: no lines, not a capture")
    votes: dict[str, int] = {}
    for text in head:
        fmt = _line_format(text)
        if fmt is not None:
            votes[fmt] = votes.get(fmt, 0) + 1
    if not votes:
        first = head[0][:60].encode("unicode_escape").decode()
        raise CaptureError(f"{path}: not a capture in any known format (first line: {first!r})")
    fmt = max(votes, key=votes.__getitem__)
    if fmt == FORMAT_HFTBACKTEST and sidecar_path(path).exists():
        return FORMAT_NATIVE
    return fmt


def sidecar_path(path: Path) -> Path:
    """The JSON sidecar of a native capture: ``<capture>.json``."""
    return path.with_name(path.name + ".json")


def detect_venue(texts: list[str]) -> str | None:
    """The venue these raw lines come from, or None when they do not say."""
    blob = "\n".join(texts)
    binance = ('"stream":' in blob or "depthUpdate" in blob or "lastUpdateId" in blob
               or "binance" in blob.lower())
    bybit = '"topic":' in blob or "bybit" in blob.lower() or '"retCode"' in blob
    okx = "okx.com" in blob or '"instId"' in blob
    found = [v for v, hit in ((BINANCE_USDM, binance), (BYBIT_LINEAR, bybit), (OKX, okx)) if hit]
    return found[0] if len(found) == 1 else None


# ---------------------------------------------------------------------------------------------
# Per-format record parsers.


def _sec_to_ns(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def _rest_channel_for_body(raw: str) -> str | None:
    head = raw[:24]
    if head.startswith('{"lastUpdateId"'):
        return "rest:/fapi/v1/depth"
    if head.startswith('{"retCode"'):
        return "rest:/v5/market"
    if head.startswith('{"timezone"'):
        return "rest:/fapi/v1/exchangeInfo"
    return None


def _looks_json(raw: str) -> bool:
    return (raw[:1] == "{" and raw[-1:] == "}") or (raw[:1] == "[" and raw[-1:] == "]")


class CaptureReader:
    """One capture file (plus its siblings), read as a stream of :class:`RawRecord`.

    ``venue`` is the detected venue, or ``venue_override`` (which must not contradict the content).
    Iterate it once per pass; each pass refreshes :attr:`stats`.
    """

    def __init__(self, path: str | Path, venue_override: str | None = None) -> None:
        self.path = Path(path)
        self.format = detect_format(self.path)
        self.stats = ReadStats()
        self.files: list[Path] = [self.path, *self._siblings()]
        self.header: dict | None = None
        self.venue = self._venue(venue_override)

    # -- identity -------------------------------------------------------------------------------

    def _siblings(self) -> list[Path]:
        name = self.path.name
        if self.format == FORMAT_NATIVE:  # a rotated recording: the sidecar of the first part lists them all
            parts = (self.sidecar() or {}).get("parts") or []
            if len(parts) > 1 and parts[0] == name:
                return [p for p in (self.path.with_name(n) for n in parts[1:]) if p.exists()]
        if self.format == FORMAT_CRYPTOFEED_V1:
            m = re.match(r"^(.*)\.ws\.\d+\.0$", name)
            if m:
                prefix = m.group(1)
                cands = [self.path.with_name(prefix + ".http.0.0"), self.path.with_name(prefix + ".0")]
                return [c for c in cands if c.exists()]
        if self.format == FORMAT_TARDIS:
            for a, b in (("incremental_book_L2", "trades"), ("trades", "incremental_book_L2")):
                if a in name:
                    other = self.path.with_name(name.replace(a, b))
                    return [other] if other.exists() else []
        return []

    def _venue(self, override: str | None) -> str | None:
        texts = _head_lines(self.path, 40)
        if self.format == FORMAT_TARDIS:
            rows = [t.split(",", 1)[0] for t in texts[1:6]]
            texts = ["binance" if r.startswith("binance") else "bybit" if r.startswith("bybit") else r
                     for r in rows]
        detected = detect_venue(texts)
        if override is not None:
            if override not in VENUES:
                raise CaptureError(f"unknown venue {override!r} (known: {', '.join(VENUES)})")
            if detected is not None and detected != override:
                raise CaptureError(f"{self.path.name}: content is {detected}, not {override} (wrong --venue)")
            return override
        return detected

    @property
    def is_native(self) -> bool:
        """True when a DepthDesk sidecar describes this capture."""
        return self.format == FORMAT_NATIVE

    def sidecar(self) -> dict | None:
        """The native capture's sidecar (venue, symbols, tick sizes ...) or None."""
        p = sidecar_path(self.path)
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    # -- records --------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[RawRecord]:
        self.stats = ReadStats()
        parse = {
            FORMAT_HFTBACKTEST: self._read_collector,
            FORMAT_NATIVE: self._read_collector,
            FORMAT_CRYPTOFEED_V1: self._read_cf1,
            FORMAT_CRYPTOFEED_V3: self._read_cf3,
            FORMAT_BYBIT_ARCHIVE: self._read_archive,
            FORMAT_TARDIS: self._read_tardis,
        }[self.format]
        if len(self.files) == 1:
            yield from self._counted(parse(self.path))
        elif self.format == FORMAT_NATIVE:  # rotated parts follow each other in time
            yield from self._counted(itertools.chain.from_iterable(parse(p) for p in self.files))
        else:
            yield from self._counted(heapq.merge(*(parse(p) for p in self.files), key=lambda r: r.local_ns))

    def _counted(self, records: Iterator[RawRecord]) -> Iterator[RawRecord]:
        n = 0
        for rec in records:
            n += 1
            yield rec
        self.stats.records = n

    def _lines(self, path: Path) -> Iterator[tuple[int, str, bool]]:
        stats = self.stats
        lineno = 0
        try:
            for text, complete in iter_lines(path, stats):
                lineno += 1
                if text.endswith("\r"):
                    text = text[:-1]
                if not text or text.isspace():
                    continue
                stats.lines += 1
                yield lineno, text, complete
        except OSError as exc:
            raise CaptureError(f"{path}: read failed ({exc.strerror or exc})") from None

    def _truncated(self, text: str) -> None:
        self.stats.truncated_last_line = True
        self.stats.truncated_text = text[:80]

    def _last_ok(self, raw: str) -> bool:
        """An unterminated last line counts only when its JSON is whole."""
        try:
            _json_decode(raw)
            return True
        except msgspec.DecodeError:
            return False

    def _read_collector(self, path: Path) -> Iterator[RawRecord]:
        # The hot path of every replay (hftbacktest/native): one flat loop over decoded text chunks,
        # without the per-line generator layers the other formats use.
        stats = self.stats
        kind = _compression(path)
        chunks = {"gzip": _gzip_chunks, "zstd": _zstd_chunks, "plain": _plain_chunks}[kind](path, stats)
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        record = RawRecord
        rest_channel = _rest_channel_for_body
        tail = ""
        lineno = 0
        n_lines = 0
        try:
            for chunk in chunks:
                text = decoder.decode(chunk)
                parts = (tail + text if tail else text).split("\n")
                tail = parts.pop()
                for line in parts:
                    lineno += 1
                    sp = line.find(" ")
                    if sp > 0:
                        if line[-1] == "\r":
                            line = line[:-1]
                        first = line[sp + 1 : sp + 2]
                        if (first == "{" and line[-1] == "}") or (first == "[" and line[-1] == "]"):
                            try:
                                stamp = int(line[:sp])
                            except ValueError:
                                stamp = -1
                            if stamp >= 0:
                                n_lines += 1
                                if first == "{" and line[sp + 3 : sp + 4] in ("l", "r", "t"):
                                    rec = self._collector_rest(stamp, line[sp + 1 :], rest_channel)
                                    if rec is not None:
                                        yield rec
                                        continue
                                yield record(stamp, "ws", line[sp + 1 :])
                                continue
                    if line and not line.isspace():
                        n_lines += 1
                        stats.note_garbage(lineno, line)
            tail += decoder.decode(b"", final=True)
        except OSError as exc:
            raise CaptureError(f"{path}: read failed ({exc.strerror or exc})") from None
        finally:
            stats.lines += n_lines
        if tail and not tail.isspace():
            stats.lines += 1
            sp = tail.find(" ")
            raw = tail[sp + 1 :].rstrip("\r")
            if sp > 0 and tail[:sp].isdigit() and _looks_json(raw) and self._last_ok(raw):
                rec = self._collector_rest(int(tail[:sp]), raw, rest_channel)
                yield rec if rec is not None else record(int(tail[:sp]), "ws", raw)
            else:
                self._truncated(tail)

    @staticmethod
    def _collector_rest(stamp: int, raw: str, rest_channel: Callable[[str], str | None]) -> RawRecord | None:
        if raw.startswith('{"rest":"'):  # DepthDesk's recorded REST line: unwrap path and body
            cut = raw.find('","data":')
            if cut > 0:
                return RawRecord(stamp, "rest:" + raw[9:cut], raw[cut + 9 : -1])
        channel = rest_channel(raw)
        return RawRecord(stamp, channel, raw) if channel is not None else None

    def _read_cf1(self, path: Path) -> Iterator[RawRecord]:
        stats = self.stats
        conn = "ws"
        for lineno, text, complete in self._lines(path):
            if text[:1].isdigit():
                m = _CF1_RECV.match(text)
                if m and _looks_json(m.group(2)) and (complete or self._last_ok(m.group(2))):
                    yield RawRecord(_sec_to_ns(m.group(1)), conn, m.group(2))
                    continue
            elif text.startswith("configuration: "):
                continue
            else:
                m = _CF1_LINK.match(text)
                if m:
                    url, op, ts, body = m.groups()
                    if op == "<->":
                        conn = "ws:" + url
                        yield RawRecord(_sec_to_ns(ts), "open:" + url, "")
                        continue
                    if op == "<-":
                        stats.sent += 1
                        continue
                    if body is not None and (complete or self._last_ok(body)):
                        yield RawRecord(_sec_to_ns(ts), "rest:" + url, body)
                        continue
            if complete:
                stats.note_garbage(lineno, text)
            else:
                self._truncated(text)

    def _read_cf3(self, path: Path) -> Iterator[RawRecord]:
        stats = self.stats
        addr: dict[str, str] = {}
        for lineno, text, complete in self._lines(path):
            try:
                obj = _json_decode(text)
                kind = obj["t"]
                if kind == "recv":
                    yield RawRecord(int(round(obj["ts"] * 1e9)), "ws:" + addr.get(obj["conn"], obj["conn"]),
                                    obj["data"])
                elif kind == "http":
                    yield RawRecord(int(round(obj["ts"] * 1e9)), "rest:" + obj["url"], obj["data"])
                elif kind == "connect":
                    addr[obj["conn"]] = obj["addr"]
                    yield RawRecord(int(round(obj["ts"] * 1e9)), "open:" + obj["addr"], "")
                elif kind == "send":
                    stats.sent += 1
                elif kind == "header":
                    self.header = obj
                else:
                    raise KeyError(kind)
            except (msgspec.DecodeError, KeyError, TypeError):
                if complete:
                    stats.note_garbage(lineno, text)
                else:
                    self._truncated(text)

    def _read_archive(self, path: Path) -> Iterator[RawRecord]:
        stats = self.stats
        for lineno, text, complete in self._lines(path):
            m = _TS_FIELD.search(text)
            if m is None or not _looks_json(text) or (not complete and not self._last_ok(text)):
                if complete:
                    stats.note_garbage(lineno, text)
                else:
                    self._truncated(text)
                continue
            yield RawRecord(int(m.group(1)) * 1_000_000, "ws", text)

    def _read_tardis(self, path: Path) -> Iterator[RawRecord]:
        stats = self.stats
        channel = ""
        for lineno, text, complete in self._lines(path):
            if text.startswith("exchange,"):
                channel = "tardis:book" if text.startswith(_TARDIS_BOOK_HEADER) else "tardis:trade"
                continue
            cols = text.split(",")
            if not channel or len(cols) != 8 or not cols[3].isdigit() or not complete:
                if complete:
                    stats.note_garbage(lineno, text)
                else:
                    self._truncated(text)
                continue
            yield RawRecord(int(cols[3]) * 1000, channel, text)


def open_capture(path: str | Path, venue: str | None = None) -> CaptureReader:
    """Open a capture of any known format; raises :class:`CaptureError` with a one-line reason."""
    return CaptureReader(path, venue_override=venue)
