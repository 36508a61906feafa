"""Where things live: the shared recorded data (tests, benchmarks) and the user's folders."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The team's ``shared/`` folder: ``$DEPTHDESK_SHARED`` or the folder beside the checkout."""
    env = os.environ.get("DEPTHDESK_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def recorded(*parts: str) -> Path:
    """A file of ``shared/data/recorded/``; raises with a clear message when it is missing."""
    path = shared_dir().joinpath("data", "recorded", *parts)
    if not path.exists():
        raise FileNotFoundError(f"recorded data not found: {path} (set DEPTHDESK_SHARED to the shared/ folder)")
    return path
