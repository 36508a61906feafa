"""Configuration loading, merging, validation and source parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import UserError
from app.config import ConfigError, load_config, load_defaults, merge, parse_source, venue_endpoints


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "user.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_have_the_issue_endpoints() -> None:
    cfg = load_config()
    assert venue_endpoints(cfg, "binance-usdm") == {
        "rest": "https://fapi.binance.com",
        "ws_public": "wss://fstream.binance.com/public",
        "ws_market": "wss://fstream.binance.com/market",
    }
    assert venue_endpoints(cfg, "bybit-linear") == {
        "rest": "https://api.bybit.com",
        "ws": "wss://stream.bybit.com/v5/public/linear",
    }


def test_user_file_overrides_one_key_and_keeps_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, '[venues.binance-usdm]\nws_public = "ws://127.0.0.1:9001/public"\n[engine]\nextra = 3\n')
    cfg = load_config(path)
    ep = venue_endpoints(cfg, "binance-usdm")
    assert ep["ws_public"] == "ws://127.0.0.1:9001/public"
    assert ep["rest"] == "https://fapi.binance.com"
    assert cfg["engine"]["extra"] == 3
    assert cfg["engine"]["ring_capacity"] == load_defaults()["engine"]["ring_capacity"]


def test_merge_does_not_mutate_the_defaults() -> None:
    base = {"a": {"b": 1, "c": 2}}
    out = merge(base, {"a": {"b": 5}})
    assert out == {"a": {"b": 5, "c": 2}}
    assert base == {"a": {"b": 1, "c": 2}}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[venues.binance-usdm]\nws = "wss://x"\n', "unknown key 'ws' in [venues.binance-usdm]"),
        ('[venues.kraken]\nrest = "https://x"\n', "unknown venue [venues.kraken]"),
        ('[venues.bybit-linear]\nws = "https://x"\n', "venues.bybit-linear.ws must be a ws:// or wss:// URL"),
        ('[venues.bybit-linear]\nrest = 5\n', "venues.bybit-linear.rest must be a http:// or https:// URL"),
        ("venues = 3\n", "venues must be a table"),
        ("[venues\n", "invalid TOML"),
    ],
)
def test_bad_user_config_is_one_clear_line(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")


def test_parse_source() -> None:
    assert parse_source("binance-usdm:BTCUSDT") == ("binance-usdm", "BTCUSDT")
    assert parse_source("bybit-linear:solusdt") == ("bybit-linear", "SOLUSDT")
    assert parse_source("demo:ALTUSDT") == ("demo", "ALTUSDT")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("BTCUSDT", "write VENUE:SYMBOL"),
        ("binance-usdm:", "write VENUE:SYMBOL"),
        (":BTCUSDT", "write VENUE:SYMBOL"),
        ("okx:BTCUSDT", "unknown venue 'okx'"),
        ("binance-usdm:BTC USDT", "bad symbol"),
    ],
)
def test_parse_source_errors(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_source(text)


def test_demo_has_no_endpoints() -> None:
    with pytest.raises(ConfigError, match="configurable"):
        venue_endpoints(load_config(), "demo")
