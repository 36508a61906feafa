"""Widget-test helpers: a private settings dir and pixel access on grabs."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings go to a fresh tmp dir (never the user's)."""
    d = tmp_path / "config"
    monkeypatch.setenv("DEPTHDESK_CONFIG_DIR", str(d))
    return d
