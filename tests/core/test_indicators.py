"""Indicators against brute-force references written the slow obvious way."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.indicators import (
    aligned_returns,
    bucket_last,
    ema,
    leader_warning,
    recent_move,
    rolling_corr_beta,
    rsi,
    session_cumsum,
)

S = 1_000_000_000


def test_session_cumsum_resets_at_each_session() -> None:
    rng = np.random.default_rng(1)
    ts = np.sort(rng.integers(0, 10 * 3600 * S, 500))
    d = rng.normal(0, 5, 500)
    out = session_cumsum(ts, d, session_ns=3600 * S, offset_ns=1800 * S)
    acc, ses = 0.0, None
    for i in range(500):
        s = (ts[i] - 1800 * S) // (3600 * S)
        if s != ses:
            acc, ses = 0.0, s
        acc += d[i]
        assert out[i] == pytest.approx(acc, abs=1e-9)


def test_session_cumsum_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        session_cumsum(np.array([2, 1]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError):
        session_cumsum(np.array([1]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        session_cumsum(np.array([1]), np.array([1.0]), session_ns=0)


def brute_ema(x: list[float], n: int) -> list[float]:
    a = 2 / (n + 1)
    out, prev = [], None
    for v in x:
        if math.isnan(v):
            out.append(math.nan)
            continue
        prev = v if prev is None else a * v + (1 - a) * prev
        out.append(prev)
    return out


@given(st.lists(st.one_of(st.floats(1, 1000), st.just(math.nan)), min_size=1, max_size=60),
       st.integers(1, 30))
@settings(max_examples=60, deadline=None)
def test_ema_matches_the_recursion(x: list[float], n: int) -> None:
    np.testing.assert_allclose(ema(np.array(x), n), brute_ema(x, n), rtol=1e-12, equal_nan=True)


def brute_rsi(x: list[float], n: int) -> list[float]:
    """Wilder's RSI from the textbook: changes, SMA seed over the first n, then smoothing."""
    px = [v for v in x if not math.isnan(v)]
    idx = [i for i, v in enumerate(x) if not math.isnan(v)]
    out = [math.nan] * len(x)
    ch = [px[i] - px[i - 1] for i in range(1, len(px))]
    if len(ch) < n:
        return out
    g = [max(c, 0.0) for c in ch]
    lo = [max(-c, 0.0) for c in ch]
    ag, al = sum(g[:n]) / n, sum(lo[:n]) / n
    for j in range(n - 1, len(ch)):
        if j >= n:
            ag = (ag * (n - 1) + g[j]) / n
            al = (al * (n - 1) + lo[j]) / n
        val = (50.0 if ag == 0 else 100.0) if al == 0 else 100 - 100 / (1 + ag / al)
        out[idx[j + 1]] = val
    return out


@given(st.lists(st.one_of(st.floats(1, 1000), st.just(math.nan)), min_size=1, max_size=80),
       st.integers(1, 20))
@settings(max_examples=60, deadline=None)
def test_rsi_matches_wilder(x: list[float], n: int) -> None:
    np.testing.assert_allclose(rsi(np.array(x), n), brute_rsi(x, n), rtol=1e-9, atol=1e-9, equal_nan=True)


def test_rsi_known_values() -> None:
    up = np.arange(30, dtype=float)
    assert rsi(up, 14)[-1] == 100.0
    assert rsi(-up, 14)[-1] == 0.0
    assert rsi(np.full(30, 5.0), 14)[-1] == 50.0
    assert np.isnan(rsi(up, 14)[:14]).all() and not np.isnan(rsi(up, 14)[14])


def test_bucket_last_and_aligned_returns_against_a_dict() -> None:
    rng = np.random.default_rng(2)
    a_ts = np.sort(rng.integers(0, 100 * S, 300))
    b_ts = np.sort(rng.integers(0, 100 * S, 200))
    a_px = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 300)))
    b_px = 50_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, 200)))
    a_px[10] = np.nan
    buckets, ra, rb = aligned_returns(a_ts, a_px, b_ts, b_px, S, 0, 99)
    last_a: dict[int, float] = {}
    for t, p in zip(a_ts.tolist(), a_px.tolist(), strict=True):
        if not math.isnan(p):
            last_a[t // S] = p
    last_b = {t // S: p for t, p in zip(b_ts.tolist(), b_px.tolist(), strict=True)}
    assert buckets.tolist() == list(range(1, 100))
    for i, b in enumerate(buckets.tolist()):
        if b in last_a and b - 1 in last_a:
            assert ra[i] == pytest.approx(math.log(last_a[b] / last_a[b - 1]))
        else:
            assert math.isnan(ra[i])
        if b in last_b and b - 1 in last_b:
            assert rb[i] == pytest.approx(math.log(last_b[b] / last_b[b - 1]))
        else:
            assert math.isnan(rb[i])
    np.testing.assert_array_equal(bucket_last(b_ts, b_px, S, 5, 7)[~np.isnan(bucket_last(b_ts, b_px, S, 5, 7))],
                                  [last_b[b] for b in (5, 6, 7) if b in last_b])


def test_rolling_corr_and_beta_match_numpy_per_window() -> None:
    rng = np.random.default_rng(3)
    n, w = 400, 60
    lead = rng.normal(0, 1e-3, n)
    sym = 1.8 * lead + rng.normal(0, 8e-4, n)
    sym[50:55] = np.nan
    lead[200] = np.nan
    corr, beta, used = rolling_corr_beta(sym, lead, w)
    for i in range(n):
        lo = max(0, i - w + 1)
        x, y = lead[lo:i + 1], sym[lo:i + 1]
        ok = np.isfinite(x) & np.isfinite(y)
        assert used[i] == ok.sum()
        if ok.sum() < w // 2:
            assert np.isnan(corr[i]) and np.isnan(beta[i])
            continue
        ref_c = np.corrcoef(x[ok], y[ok])[0, 1]
        ref_b = np.polyfit(x[ok], y[ok], 1)[0]
        assert corr[i] == pytest.approx(ref_c, rel=1e-7, abs=1e-9)
        assert beta[i] == pytest.approx(ref_b, rel=1e-7)
    assert 1.5 < beta[-1] < 2.1 and corr[-1] > 0.7


def test_flat_leader_gives_no_beta() -> None:
    corr, beta, _ = rolling_corr_beta(np.linspace(0, 1, 20), np.zeros(20), 10)
    assert np.isnan(corr).all() and np.isnan(beta).all()
    with pytest.raises(ValueError):
        rolling_corr_beta(np.zeros(3), np.zeros(4), 2)
    with pytest.raises(ValueError):
        rolling_corr_beta(np.zeros(3), np.zeros(3), 1)


def test_recent_move_uses_the_price_at_the_window_start() -> None:
    ts = np.array([0, 10, 20, 30, 40]) * S
    px = np.array([100.0, 101.0, np.nan, 99.0, 98.0])
    assert recent_move(ts, px, 15 * S) == pytest.approx(98.0 / 101.0 - 1)  # ref at t=25 -> price at 10
    assert recent_move(ts, px, 100 * S) == pytest.approx(98.0 / 100.0 - 1)  # shorter series: first price
    assert math.isnan(recent_move(ts[:1], px[:1], S))


def test_leader_warning_rule() -> None:
    w = leader_warning("BTCUSDT", -0.012, beta=2.0, corr=0.8, drop_threshold=0.01)
    assert w.active and w.expected_move == pytest.approx(-0.024) and "BTCUSDT" in w.text
    assert not leader_warning("BTCUSDT", -0.008, 2.0, 0.8, drop_threshold=0.01).active
    assert not leader_warning("BTCUSDT", -0.02, 2.0, 0.8, long_position=False).active
    assert not leader_warning("BTCUSDT", -0.02, 2.0, 0.8, small_cap=False).active
    assert not leader_warning("BTCUSDT", -0.02, 2.0, 0.1, min_corr=0.5).active
    assert leader_warning("BTCUSDT", -0.02, float("nan"), float("nan")).active  # no corr needed by default
    assert not leader_warning("BTCUSDT", 0.03, 2.0, 0.8).active
    with pytest.raises(ValueError):
        leader_warning("BTCUSDT", -0.02, 1.0, 1.0, drop_threshold=0)
