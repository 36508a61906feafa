"""A fixed-capacity ring of event rows: preallocated once, batched append, zero-copy latest rows.

Layout choice: a *mirrored* buffer of ``2 * capacity`` rows where row ``i`` is always stored at both
``i`` and ``i + capacity``. Every run of up to ``capacity`` consecutive rows is therefore contiguous,
so :meth:`EventRing.latest` and :meth:`EventRing.since` always return a view (never a copy), at the
price of writing each row twice and holding twice the rows. Memory is fixed by ``capacity`` alone
(``nbytes == 2 * capacity * dtype.itemsize``), never by how many rows were written.

Views are live: they stay valid until the next :meth:`EventRing.extend`, after which their rows may
be overwritten. Call ``.copy()`` on a view you keep across appends (a ``Frame`` does).

Rows are stored as given: the ring is an arrival-order log and judges no content (NaN, order), only
the dtype and shape of what is appended.
"""

from __future__ import annotations

import numpy as np

from app.core.events import EVENT_DTYPE


class RingOverrun(LookupError):
    """The rows asked for were already overwritten (the consumer fell more than ``capacity`` behind)."""


class EventRing:
    """Fixed-capacity ring buffer of structured rows with batched append and zero-copy reads."""

    __slots__ = ("_buf", "_raw", "_isz", "_cap", "_dtype", "_pos", "_len", "_total")

    def __init__(self, capacity: int, dtype: np.dtype = EVENT_DTYPE) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity <= 0:
            raise ValueError(f"ring capacity must be a positive int, got {capacity!r}")
        self._cap = int(capacity)
        self._dtype = np.dtype(dtype)
        self._buf = np.zeros(2 * self._cap, dtype=self._dtype)  # the one allocation, ever
        # Writes go to a byte memoryview from the rows' bytes: numpy copies structured rows field by field,
        # and a uint8 view of a structured array costs ~1 us of Python checks; tobytes + memoryview is ~5x less.
        self._raw = memoryview(self._buf.view(np.uint8))
        self._isz = self._dtype.itemsize
        self._pos = 0  # index in [0, capacity) where the next row goes
        self._len = 0
        self._total = 0  # rows ever appended; the sequence number of the next row

    @property
    def capacity(self) -> int:
        """How many rows the ring retains."""
        return self._cap

    @property
    def dtype(self) -> np.dtype:
        """The row dtype."""
        return self._dtype

    @property
    def nbytes(self) -> int:
        """Bytes held by the ring: ``2 * capacity * itemsize`` (mirrored), whatever was written."""
        return self._buf.nbytes

    @property
    def total_written(self) -> int:
        """Rows appended since creation (monotonic, survives :meth:`clear`): the next row's sequence."""
        return self._total

    @property
    def oldest_seq(self) -> int:
        """Sequence number of the oldest retained row (== ``total_written`` when empty)."""
        return self._total - self._len

    @property
    def fill(self) -> float:
        """Fraction of the capacity in use, 0..1."""
        return self._len / self._cap

    def __len__(self) -> int:
        return self._len

    def extend(self, batch: np.ndarray) -> None:
        """Append rows in order; a batch longer than the capacity keeps only its last ``capacity`` rows."""
        dtype = batch.dtype
        if dtype is not self._dtype and dtype != self._dtype:
            raise TypeError(f"ring holds {self._dtype}, got rows of {dtype}")
        if batch.ndim != 1:
            if batch.ndim != 0:
                raise ValueError(f"ring rows must be a 1-D array, got shape {batch.shape}")
            batch = batch.reshape(1)
        m = batch.shape[0]
        if m == 0:
            return
        cap = self._cap
        isz = self._isz
        raw = self._raw
        if m >= cap:
            batch = batch[m - cap:]
        src = batch.tobytes()  # a copy in row order: a view of this ring (latest rows) is safe to re-append
        if m >= cap:
            raw[:cap * isz] = src
            raw[cap * isz:] = src
            self._pos = 0
            self._len = cap
            self._total += m
            return
        pos = self._pos
        end = pos + m  # < 2 * cap, so one contiguous write, then mirror it into the other half
        raw[pos * isz:end * isz] = src
        if end <= cap:
            raw[(pos + cap) * isz:(end + cap) * isz] = src
        else:
            split = (cap - pos) * isz
            raw[(pos + cap) * isz:] = src[:split]
            raw[:(end - cap) * isz] = src[split:]
        self._pos = end - cap if end >= cap else end
        self._total += m
        self._len = min(self._len + m, cap)

    def append(self, row: np.ndarray) -> None:
        """Append one row (a 0-d or 1-row array); prefer :meth:`extend` with batches."""
        self.extend(row)

    def latest(self, n: int | None = None) -> np.ndarray:
        """A view of the newest ``min(n, len)`` rows, oldest first (all retained rows when n is None)."""
        if n is None:
            n = self._len
        elif n < 0:
            raise ValueError(f"latest(n) needs n >= 0, got {n}")
        else:
            n = min(int(n), self._len)
        stop = self._pos + self._cap
        return self._buf[stop - n:stop]

    def since(self, seq: int) -> np.ndarray:
        """A view of the rows with sequence number >= ``seq`` (rows appended since ``total_written`` was seq).

        Raises :class:`RingOverrun` when some of them were already overwritten (or cleared), and
        ``ValueError`` for a sequence number from the future.
        """
        if seq > self._total:
            raise ValueError(f"since({seq}): only {self._total} rows were ever written")
        oldest = self.oldest_seq
        if seq < oldest:
            raise RingOverrun(
                f"since({seq}): rows {seq}..{oldest - 1} are gone (ring keeps {self._cap} rows, oldest is {oldest})"
            )
        return self.latest(self._total - seq)

    def clear(self) -> None:
        """Forget every row; ``total_written`` keeps counting so sequence numbers stay unique."""
        self._len = 0
