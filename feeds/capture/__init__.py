"""Captures: write the raw truth (writer), read the ecosystem's formats (readers), replay, verify, export.

Every reader yields one uniform stream of :class:`~feeds.capture.readers.RawRecord` so replay, verify
and export never care which recorder wrote a file.
"""

from __future__ import annotations

from feeds.capture.readers import CaptureError, CaptureReader, RawRecord, ReadStats, open_capture

__all__ = ["CaptureError", "CaptureReader", "RawRecord", "ReadStats", "open_capture"]
