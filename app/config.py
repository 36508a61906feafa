"""Configuration: ``resources/default.toml`` deep-merged with an optional user TOML (``--config``).

Venue endpoints live under ``[venues.binance-usdm]`` (``rest``, ``ws_public``, ``ws_market``) and
``[venues.bybit-linear]`` (``rest``, ``ws``); the key names equal the feed constructors' parameter
names, so ``BinanceUsdmFeed(symbols, **venue_endpoints(cfg, "binance-usdm"))`` wires a feed.
"""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from app.cli import UserError

VENUES = ("binance-usdm", "bybit-linear", "demo")
# Endpoint keys per configurable venue and the URL schemes each accepts.
VENUE_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "binance-usdm": {"rest": ("http", "https"), "ws_public": ("ws", "wss"), "ws_market": ("ws", "wss")},
    "bybit-linear": {"rest": ("http", "https"), "ws": ("ws", "wss")},
}


class ConfigError(UserError):
    """Unreadable or invalid configuration, or a bad source: one line for the user."""


def load_defaults() -> dict[str, Any]:
    """The packaged ``resources/default.toml``."""
    text = resources.files("resources").joinpath("default.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_config(user_path: str | Path | None = None) -> dict[str, Any]:
    """Defaults merged with ``user_path`` (tables merge key by key; a user value replaces a default)."""
    config = load_defaults()
    if user_path is not None:
        path = Path(user_path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
        try:
            user = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML in {path}: {exc}") from None
        config = merge(config, user, where=str(path))
    validate_venues(config)
    return config


def merge(base: dict[str, Any], over: dict[str, Any], where: str = "config", _path: str = "") -> dict[str, Any]:
    """A deep copy of ``base`` with ``over`` merged in; a table may not replace a value or vice versa."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        dotted = f"{_path}.{key}" if _path else key
        if key in out and isinstance(out[key], dict) != isinstance(value, dict):
            kind = "a table" if isinstance(out[key], dict) else "a value"
            raise ConfigError(f"{where}: {dotted} must be {kind}")
        if isinstance(value, dict) and key in out:
            out[key] = merge(out[key], value, where, dotted)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate_venues(config: dict[str, Any]) -> None:
    """Only known venues, only their endpoint keys, each a URL with the right scheme."""
    venues = config.get("venues", {})
    if not isinstance(venues, dict):
        raise ConfigError("config: [venues] must be a table")
    for venue, table in venues.items():
        if venue not in VENUE_KEYS:
            raise ConfigError(f"config: unknown venue [venues.{venue}] (known: {', '.join(VENUE_KEYS)})")
        if not isinstance(table, dict):
            raise ConfigError(f"config: [venues.{venue}] must be a table")
        allowed = VENUE_KEYS[venue]
        for key, value in table.items():
            if key not in allowed:
                raise ConfigError(f"config: unknown key {key!r} in [venues.{venue}] (known: {', '.join(allowed)})")
            schemes = allowed[key]
            if not isinstance(value, str) or value.split("://", 1)[0] not in schemes or "://" not in value:
                want = " or ".join(f"{s}://" for s in schemes)
                raise ConfigError(f"config: venues.{venue}.{key} must be a {want} URL, got {value!r}")
        missing = [k for k in allowed if k not in table]
        if missing:
            raise ConfigError(f"config: [venues.{venue}] lacks {', '.join(missing)}")


def venue_endpoints(config: dict[str, Any], venue: str) -> dict[str, str]:
    """The endpoint strings of ``venue`` (keys as the feed constructor's parameters)."""
    if venue not in VENUE_KEYS:
        raise ConfigError(f"no endpoints for venue {venue!r} (configurable: {', '.join(VENUE_KEYS)})")
    table = config.get("venues", {}).get(venue)
    if table is None:
        raise ConfigError(f"config: [venues.{venue}] is missing")
    return {key: table[key] for key in VENUE_KEYS[venue]}


def parse_source(text: str) -> tuple[str, str]:
    """``"binance-usdm:BTCUSDT"`` -> ``("binance-usdm", "BTCUSDT")`` (symbol upper-cased)."""
    venue, sep, symbol = text.strip().partition(":")
    if not sep or not venue or not symbol:
        raise ConfigError(f"bad source {text!r}: write VENUE:SYMBOL, e.g. binance-usdm:BTCUSDT")
    venue = venue.lower()
    if venue not in VENUES:
        raise ConfigError(f"unknown venue {venue!r} in {text!r} (known: {', '.join(VENUES)})")
    symbol = symbol.upper()
    if not symbol.isascii() or not symbol.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"bad symbol {symbol!r} in {text!r}: letters and digits only")
    return venue, symbol
