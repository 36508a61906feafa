"""The value object every detector emits; lives in the core so frames and widgets can carry it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Kinds a detector may emit (DESIGN.md §6; issue "Detection and alerts").
KINDS = (
    "iceberg",
    "absorption",
    "liquidity_gap",
    "thin_book",
    "pull",
    "stack",
    "sweep",
    "big_trade",
    "large_order",
)
STATES = ("open", "update", "close")


@dataclass(frozen=True, slots=True)
class Detection:
    """One detector finding at one moment: ``open`` → ``update``* → ``close`` share an ``id``.

    ``side`` is the *book* side involved (+1 bid, -1 ask): a sweep lifting offers is ask (-1).
    ``price_tick`` is the level (for a gap: its edge nearest mid; ``price_far_tick`` the other edge).
    ``evidence`` holds the numbers that justify it (executed, visible, refills, hidden, band, duration…).
    """

    id: int
    kind: str
    venue: str
    symbol: str
    side: int
    price_tick: int
    exch_ts: int
    state: str
    price_far_tick: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown detection kind {self.kind!r}")
        if self.state not in STATES:
            raise ValueError(f"unknown detection state {self.state!r}")
        if self.side not in (1, -1):
            raise ValueError(f"detection side must be +1 (bid) or -1 (ask), got {self.side!r}")
