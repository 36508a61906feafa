"""The benchmark suite (`make bench`, `depthdesk bench`).

Each ``benchmarks/bench_<area>.py`` exposes ``run(quick: bool = False) -> list[BenchResult]``; the
runner discovers them, prints a table, or with ``--json`` one object per line. A ``peer`` is another
implementation raced in the same process on the same data; ``ratio`` = how many times faster we are
(for a rate: ours / peer; for a time: peer / ours), so > 1 always means we win.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class BenchResult:
    """One measured figure."""

    name: str
    value: float
    unit: str
    peer: str | None = None
    ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The row as printed by ``--json``: name, value, unit, and peer/ratio when a peer ran."""
        row: dict[str, Any] = {"name": self.name, "value": self.value, "unit": self.unit}
        if self.peer is not None:
            row["peer"] = self.peer
            row["ratio"] = self.ratio
        row.update(self.extra)
        return row
