"""Thresholds with an automatic mode: ``max(floor, mean + k·sd)`` of a quantity over the last N minutes.

A threshold in configuration is either a number (fixed), the string ``"auto"`` (automatic with the
detector's defaults) or a table ``{mode = "auto"|"fixed", value, floor, k, minutes, min_samples}``.
Rolling statistics are kept in one-second buckets so adding a sample is a few scalar operations and
memory is bounded by the window, never by the session length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

_NS = 1_000_000_000


class RollingStats:
    """Mean and standard deviation of samples over a sliding time window, in one-second buckets."""

    __slots__ = ("_n", "_sum", "_sq", "_cnt", "_tot", "_tot_sq", "_tot_cnt", "_head_sec")

    def __init__(self, minutes: float) -> None:
        if not minutes > 0:
            raise ValueError(f"rolling window must be > 0 minutes, got {minutes!r}")
        self._n = max(1, int(round(minutes * 60)))
        # Python lists: a detector touches one bucket per sample, and list scalars cost a third of
        # numpy's.
        self._sum = [0.0] * self._n
        self._sq = [0.0] * self._n
        self._cnt = [0] * self._n
        self._tot = 0.0
        self._tot_sq = 0.0
        self._tot_cnt = 0
        self._head_sec: int | None = None

    def _advance(self, sec: int) -> int:
        """Expire buckets older than the window; returns the bucket index of ``sec``."""
        head = self._head_sec
        if head is None:
            self._head_sec = sec
            return sec % self._n
        if sec > head:
            gap = sec - head
            if gap >= self._n:
                self._sum = [0.0] * self._n
                self._sq = [0.0] * self._n
                self._cnt = [0] * self._n
                self._tot = self._tot_sq = 0.0
                self._tot_cnt = 0
            else:
                for s in range(head + 1, sec + 1):
                    i = s % self._n
                    self._tot -= self._sum[i]
                    self._tot_sq -= self._sq[i]
                    self._tot_cnt -= self._cnt[i]
                    self._sum[i] = self._sq[i] = 0.0
                    self._cnt[i] = 0
            self._head_sec = sec
        elif head - sec >= self._n:
            return -1  # older than the window: ignored
        return sec % self._n

    def add(self, value: float, ts: int) -> None:
        """One sample at exchange time ``ts`` (ns)."""
        i = self._advance(ts // _NS)
        if i < 0:
            return
        self._sum[i] += value
        self._sq[i] += value * value
        self._cnt[i] += 1
        self._tot += value
        self._tot_sq += value * value
        self._tot_cnt += 1

    def add_many(self, values: np.ndarray, ts: int) -> None:
        """Several samples at one exchange time."""
        if len(values) == 0:
            return
        i = self._advance(ts // _NS)
        if i < 0:
            return
        s = float(values.sum())
        q = float(np.dot(values, values))
        self._sum[i] += s
        self._sq[i] += q
        self._cnt[i] += len(values)
        self._tot += s
        self._tot_sq += q
        self._tot_cnt += len(values)

    @property
    def count(self) -> int:
        """Samples inside the window."""
        return self._tot_cnt

    def mean(self) -> float:
        """Mean of the window (0 when empty)."""
        return self._tot / self._tot_cnt if self._tot_cnt else 0.0

    def std(self) -> float:
        """Population standard deviation of the window (0 when empty)."""
        if not self._tot_cnt:
            return 0.0
        m = self._tot / self._tot_cnt
        return math.sqrt(max(0.0, self._tot_sq / self._tot_cnt - m * m))


@dataclass(frozen=True, slots=True)
class ThresholdSpec:
    """A parsed threshold: fixed ``value`` or automatic ``max(floor, mean + k·sd)`` over ``minutes``."""

    auto: bool
    value: float = 0.0
    floor: float = 0.0
    k: float = 3.0
    minutes: float = 5.0
    min_samples: int = 30

    @classmethod
    def parse(cls, raw: Any, where: str, *, floor: float = 0.0, k: float = 3.0,
              minutes: float = 5.0, min_samples: int = 30) -> ThresholdSpec:
        """Read a threshold from configuration; raises ``ValueError`` naming ``where`` on bad input."""
        if isinstance(raw, bool):
            raise ValueError(f"{where}: a threshold must be a number, \"auto\" or a table, got {raw!r}")
        if isinstance(raw, int | float):
            if not (math.isfinite(raw) and raw >= 0):
                raise ValueError(f"{where}: threshold must be a finite number >= 0, got {raw!r}")
            return cls(auto=False, value=float(raw))
        if raw == "auto":
            return cls(auto=True, floor=floor, k=k, minutes=minutes, min_samples=min_samples)
        if isinstance(raw, dict):
            unknown = set(raw) - {"mode", "value", "floor", "k", "minutes", "min_samples"}
            if unknown:
                raise ValueError(f"{where}: unknown threshold key(s) {sorted(unknown)}")
            mode = raw.get("mode", "auto")
            if mode not in ("auto", "fixed"):
                raise ValueError(f"{where}: mode must be \"auto\" or \"fixed\", got {mode!r}")
            vals = {}
            for key, default in (("value", 0.0), ("floor", floor), ("k", k), ("minutes", minutes),
                                 ("min_samples", min_samples)):
                v = raw.get(key, default)
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                    raise ValueError(f"{where}.{key}: must be a finite number >= 0, got {v!r}")
                vals[key] = v
            if mode == "fixed" and "value" not in raw:
                raise ValueError(f"{where}: a fixed threshold needs a value")
            if vals["minutes"] <= 0:
                raise ValueError(f"{where}.minutes: must be > 0")
            return cls(auto=mode == "auto", value=float(vals["value"]), floor=float(vals["floor"]),
                       k=float(vals["k"]), minutes=float(vals["minutes"]), min_samples=int(vals["min_samples"]))
        raise ValueError(f"{where}: a threshold must be a number, \"auto\" or a table, got {raw!r}")


class AutoThreshold:
    """A live threshold: fixed, or ``max(floor, mean + k·sd)`` of the samples fed with ``add``."""

    __slots__ = ("spec", "stats")

    def __init__(self, spec: ThresholdSpec) -> None:
        self.spec = spec
        self.stats = RollingStats(spec.minutes) if spec.auto else None

    def add(self, value: float, ts: int) -> None:
        """Feed one sample of the watched quantity (ignored in fixed mode)."""
        if self.stats is not None:
            self.stats.add(value, ts)

    def add_many(self, values: np.ndarray, ts: int) -> None:
        """Feed several samples (ignored in fixed mode)."""
        if self.stats is not None:
            self.stats.add_many(values, ts)

    def value(self) -> float:
        """The threshold now; infinite while an automatic one has fewer than ``min_samples`` samples."""
        spec = self.spec
        st = self.stats
        if st is None:
            return spec.value
        n = st._tot_cnt  # inlined mean/std: detectors ask for this tens of thousands of times
        if n < spec.min_samples:
            return math.inf
        m = st._tot / n
        return max(spec.floor, m + spec.k * math.sqrt(max(0.0, st._tot_sq / n - m * m)))


def winsorized(values: np.ndarray, cap: float) -> np.ndarray:
    """Samples capped at the current threshold, so the outliers a detector looks for (a large order
    resting for seconds) cannot raise their own bar."""
    return np.minimum(values, cap) if math.isfinite(cap) else values
