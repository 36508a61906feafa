"""Reconnect delays: exponential backoff with full jitter, reset after a connection that lasted."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delay before the n-th consecutive reconnect: ``uniform(base/2, min(cap, base * 2**n))``.

    Jitter keeps many clients (or many symbols' connections) from reconnecting in lockstep; the lower
    bound keeps a flapping server from being hammered at zero delay.
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        """The delay to wait now; each call doubles the ceiling up to ``cap_s``."""
        ceiling = min(self.cap_s, self.base_s * (2.0**self.attempts))
        self.attempts += 1
        return self.rng.uniform(min(self.base_s / 2, ceiling), ceiling)

    def reset(self) -> None:
        """A connection worked: start again from ``base_s``."""
        self.attempts = 0
