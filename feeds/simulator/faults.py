"""Fault injection for the simulator's websocket sends: deterministic with a seed, every fault counted.

A :class:`FaultPlan` says how often each fault happens (a probability per data message) and from
which message on (``start_after``, so a client can sync first). Each connection gets its own
:class:`FaultInjector` seeded from the plan's seed and the connection's number, so a run with the
same seed, rates and traffic injects the same faults. Counters are kept per kind and summed by the
server (``SimulatorServer.fault_counts()``) so tests can compare them with the client's counters.

Kinds:

- ``drop``: the message is not sent (a sequence gap for the client).
- ``duplicate``: the message is sent twice.
- ``reorder``: the message is held and sent after the next one.
- ``malformed``: a broken frame (truncated JSON) is sent before the message.
- ``disconnect``: the TCP connection is aborted before the message (no close frame).
- ``stall``: the sender sleeps ``stall_ms`` before the message (a slow link).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

FAULT_KINDS = ("drop", "duplicate", "reorder", "malformed", "disconnect", "stall")

# Action codes a decision returns (ints: the writer runs this per message).
SEND = 0
DROP = 1
DUPLICATE = 2
REORDER = 3
MALFORMED = 4
DISCONNECT = 5
STALL = 6


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Per-message probabilities of each fault, the first message they may hit, and the seed."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    malformed: float = 0.0
    disconnect: float = 0.0
    stall: float = 0.0
    stall_ms: float = 200.0
    start_after: int = 50  # data messages sent clean first, so the client can sync
    max_disconnects: int = 1_000_000  # per connection; tests use 1 to see one reconnect
    seed: int = 0

    def __post_init__(self) -> None:
        for kind in FAULT_KINDS:
            p = getattr(self, kind)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"fault rate {kind}={p!r} must be within 0..1")
        if sum(getattr(self, k) for k in FAULT_KINDS) > 1.0:
            raise ValueError("fault rates add up to more than 1")
        if self.stall_ms < 0 or self.start_after < 0:
            raise ValueError("stall_ms and start_after must be >= 0")

    @property
    def active(self) -> bool:
        """True when any fault can happen."""
        return any(getattr(self, k) > 0 for k in FAULT_KINDS)

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """Parse ``drop=0.01,duplicate=0.005,stall=0.001,stall_ms=300,seed=7`` (``dup`` = duplicate)."""
        aliases = {"dup": "duplicate", "delay": "stall", "malformed_frames": "malformed"}
        names = {f.name for f in fields(cls)}
        values: dict[str, float | int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, raw = part.partition("=")
            key = aliases.get(key.strip(), key.strip())
            if not sep or key not in names:
                raise ValueError(f"bad fault spec {part!r}: expected NAME=VALUE with NAME one of "
                                 f"{', '.join(FAULT_KINDS)}, stall_ms, start_after, max_disconnects, seed")
            try:
                values[key] = int(raw) if key in ("start_after", "max_disconnects", "seed") else float(raw)
            except ValueError:
                raise ValueError(f"bad fault value in {part!r}") from None
        return cls(**values)  # type: ignore[arg-type]


NO_FAULTS = FaultPlan()


class FaultInjector:
    """Decides, message by message, what happens to one connection's sends; counts each fault."""

    def __init__(self, plan: FaultPlan, connection_number: int) -> None:
        self.plan = plan
        self.counts = dict.fromkeys(FAULT_KINDS, 0)
        self.sent = 0
        self._rng = np.random.default_rng([plan.seed, connection_number])
        kinds = [DROP, DUPLICATE, REORDER, MALFORMED, DISCONNECT, STALL]
        rates = [plan.drop, plan.duplicate, plan.reorder, plan.malformed, plan.disconnect, plan.stall]
        self._codes = kinds
        self._edges = np.cumsum(rates).tolist()
        self._active = plan.active
        self._buffer = np.empty(0)
        self._pos = 0

    def decide(self) -> int:
        """The action for the next data message (``SEND`` when no fault hits it)."""
        self.sent += 1
        if not self._active or self.sent <= self.plan.start_after:
            return SEND
        if self._pos >= len(self._buffer):
            self._buffer = self._rng.random(4096)
            self._pos = 0
        u = self._buffer[self._pos]
        self._pos += 1
        for code, edge in zip(self._codes, self._edges, strict=True):
            if u < edge:
                if code == DISCONNECT and self.counts["disconnect"] >= self.plan.max_disconnects:
                    return SEND
                self.counts[FAULT_KINDS[code - 1]] += 1
                return code
        return SEND


def malformed_frame(message: str) -> str:
    """A broken frame derived from a real one: cut mid-way, so it is never valid JSON."""
    cut = max(1, len(message) // 2)
    return message[:cut] + "\x00}{"
