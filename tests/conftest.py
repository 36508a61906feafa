"""Suite-wide setup: headless Qt, and the real recorded data from ../shared."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from app.paths import recorded  # noqa: E402


@pytest.fixture(scope="session")
def btc_capture() -> Path:
    """hftbacktest's real Binance USDⓈ-M BTCUSDT capture (2024-08-08, 345 s)."""
    return recorded("binance_usdm", "hftbacktest_usdm_btcusdt_20240808.gz")


@pytest.fixture(scope="session")
def eth_capture() -> Path:
    """hftbacktest's real Binance USDⓈ-M ETHUSDT capture (same window)."""
    return recorded("binance_usdm", "hftbacktest_usdm_ethusdt_20240808.gz")
