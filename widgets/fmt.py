"""Short, aligned text for sizes, rates and times: the ladder and tape share one way to print numbers."""

from __future__ import annotations

import time


def qty(value: float) -> str:
    """A size in at most ~6 characters (``0.125``, ``12.5``, ``1 250``, ``12.5k``, ``1.25M``); '' for 0."""
    a = abs(value)
    if a == 0:
        return ""
    if a >= 1e6:
        return f"{value / 1e6:.2f}M"
    if a >= 1e4:
        return f"{value / 1e3:.1f}k"
    if a >= 1000:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def signed_qty(value: float) -> str:
    """A size change with its sign (``+12.5``, ``-3.00``); '' for 0."""
    return "" if value == 0 else ("+" if value > 0 else "") + qty(value)


def notional(value: float) -> str:
    """Money in the quote currency, compact (``$12.3k``)."""
    a = abs(value)
    if a >= 1e9:
        return f"${value / 1e9:.2f}B"
    if a >= 1e6:
        return f"${value / 1e6:.2f}M"
    if a >= 1e3:
        return f"${value / 1e3:.1f}k"
    return f"${value:.0f}"


def clock(ts_ns: int, millis: bool = True) -> str:
    """Wall-clock UTC time of a ns timestamp (``12:34:56.789``)."""
    if ts_ns <= 0:
        return "--:--:--"
    secs, ns = divmod(int(ts_ns), 1_000_000_000)
    text = time.strftime("%H:%M:%S", time.gmtime(secs))
    return f"{text}.{ns // 1_000_000:03d}" if millis else text


def percent(value: float, digits: int = 2) -> str:
    """A fraction as a signed percentage (``+0.0100%``)."""
    return f"{value * 100:+.{digits}f}%"
