"""Chart indicators on plain arrays: CVD with session reset, EMA, Wilder RSI, returns on aligned time
buckets, rolling correlation and beta to a market leader, the leader's recent move and the exposure
warning ("the leader drops sharply while we are long a small cap").

Gaps are NaN in and NaN out: an indicator never bridges a gap with an invented value, it carries its
state across (EMA/RSI skip NaN inputs; returns across a missing bucket are NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY_NS = 86_400_000_000_000


def session_cumsum(ts: np.ndarray, delta: np.ndarray, session_ns: int = DAY_NS, offset_ns: int = 0) -> np.ndarray:
    """Cumulative sum of ``delta`` restarting at every session boundary (sessions of ``session_ns`` from
    ``offset_ns``; the default is the UTC day): the CVD of per-trade or per-bar deltas. ``ts`` ascending."""
    if session_ns <= 0:
        raise ValueError(f"session length must be > 0 ns, got {session_ns!r}")
    ts = np.asarray(ts, np.int64)
    delta = np.nan_to_num(np.asarray(delta, np.float64))
    if ts.shape != delta.shape:
        raise ValueError(f"times {ts.shape} and deltas {delta.shape} differ in shape")
    if ts.size == 0:
        return np.zeros(0)
    if (np.diff(ts) < 0).any():
        raise ValueError("session_cumsum needs ascending times")
    ses = (ts - offset_ns) // session_ns
    total = np.cumsum(delta)
    starts = np.r_[True, ses[1:] != ses[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(ts.size), 0))
    return total - (total - delta)[first]


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """Exponential moving average, alpha = 2 / (n + 1), seeded with the first finite value; NaN stays NaN."""
    if n < 1:
        raise ValueError(f"EMA length must be >= 1, got {n!r}")
    alpha = 2.0 / (n + 1.0)
    vals = np.asarray(x, np.float64).tolist()
    out = [float("nan")] * len(vals)
    prev = None
    for i, v in enumerate(vals):  # recursive by nature; series here are thousands of points, not millions
        if v != v:  # NaN: keep the state, draw nothing
            continue
        prev = v if prev is None else prev + alpha * (v - prev)
        out[i] = prev
    return np.asarray(out)


def rsi(x: np.ndarray, n: int = 14) -> np.ndarray:
    """Wilder's RSI: the first average gain/loss is the mean of the first ``n`` changes, then
    ``avg = (avg * (n - 1) + change) / n``; 100 when there were no losses, 50 when nothing moved.
    NaN until ``n`` changes were seen; a NaN price contributes no change (the next change is measured
    from the last known price)."""
    if n < 1:
        raise ValueError(f"RSI length must be >= 1, got {n!r}")
    vals = np.asarray(x, np.float64).tolist()
    out = [float("nan")] * len(vals)
    last = None
    gains: list[float] = []
    losses: list[float] = []
    avg_g = avg_l = 0.0
    count = 0
    for i, v in enumerate(vals):
        if v != v:
            continue
        if last is None:
            last = v
            continue
        ch = v - last
        last = v
        g, lo = (ch, 0.0) if ch > 0 else (0.0, -ch)
        count += 1
        if count < n:
            gains.append(g)
            losses.append(lo)
            continue
        if count == n:
            gains.append(g)
            losses.append(lo)
            avg_g, avg_l = sum(gains) / n, sum(losses) / n
        else:
            avg_g = (avg_g * (n - 1) + g) / n
            avg_l = (avg_l * (n - 1) + lo) / n
        if avg_l == 0.0:
            out[i] = 50.0 if avg_g == 0.0 else 100.0
        else:
            out[i] = 100.0 - 100.0 / (1.0 + avg_g / avg_l)
    return np.asarray(out)


def bucket_last(ts: np.ndarray, px: np.ndarray, bucket_ns: int, first: int, last: int) -> np.ndarray:
    """Last finite price in each bucket ``first..last`` (bucket = ts // bucket_ns); NaN for empty buckets."""
    if bucket_ns <= 0:
        raise ValueError(f"bucket must be > 0 ns, got {bucket_ns!r}")
    out = np.full(max(0, last - first + 1), np.nan)
    ts = np.asarray(ts, np.int64)
    px = np.asarray(px, np.float64)
    ok = np.isfinite(px)
    b = ts[ok] // bucket_ns
    p = px[ok]
    inside = (b >= first) & (b <= last)
    b, p = b[inside], p[inside]
    if b.size:
        order = np.argsort(b, kind="stable")  # stable: equal buckets keep time order, the last wins
        out[b[order] - first] = p[order]
    return out


def log_returns(px: np.ndarray) -> np.ndarray:
    """Log return between consecutive points (NaN when either is missing or not > 0); one shorter."""
    px = np.asarray(px, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lp = np.where(px > 0, np.log(np.where(px > 0, px, 1.0)), np.nan)
    return np.diff(lp)


def aligned_returns(sym_ts: np.ndarray, sym_px: np.ndarray, lead_ts: np.ndarray, lead_px: np.ndarray,
                    bucket_ns: int, first: int | None = None, last: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bucket numbers, symbol returns, leader returns) on common time buckets; NaN where either lacks data.

    The return of bucket ``b`` is log(last price in b / last price in b - 1).
    """
    sym_ts = np.asarray(sym_ts, np.int64)
    lead_ts = np.asarray(lead_ts, np.int64)
    if first is None or last is None:
        both = [a for a in (sym_ts, lead_ts) if a.size]
        if len(both) < 2:
            e = np.zeros(0)
            return e.astype(np.int64), e, e
        first = max(int(a.min()) for a in both) // bucket_ns if first is None else first
        last = min(int(a.max()) for a in both) // bucket_ns if last is None else last
    if last < first:
        e = np.zeros(0)
        return e.astype(np.int64), e, e
    a = bucket_last(sym_ts, sym_px, bucket_ns, first, last)
    b = bucket_last(lead_ts, lead_px, bucket_ns, first, last)
    return np.arange(first + 1, last + 1, dtype=np.int64), log_returns(a), log_returns(b)


def rolling_corr_beta(sym: np.ndarray, lead: np.ndarray, window: int, min_points: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correlation, beta of ``sym`` on ``lead``, points used) over the trailing ``window`` positions.

    Positions where either return is NaN are left out of the window's statistics; a window with fewer than
    ``min_points`` (default: half the window, at least 3) usable pairs, or a flat leader, gives NaN.
    beta = cov(sym, lead) / var(lead).
    """
    if window < 2:
        raise ValueError(f"correlation window must be >= 2, got {window!r}")
    x = np.asarray(lead, np.float64)
    y = np.asarray(sym, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"symbol returns {y.shape} and leader returns {x.shape} differ in shape")
    need = max(3, window // 2) if min_points is None else max(2, int(min_points))
    ok = np.isfinite(x) & np.isfinite(y)
    xs, ys = np.where(ok, x, 0.0), np.where(ok, y, 0.0)

    def trailing(v: np.ndarray) -> np.ndarray:
        c = np.concatenate(([0.0], np.cumsum(v)))
        lo = np.maximum(np.arange(1, v.size + 1) - window, 0)
        return c[1:] - c[lo]

    n = trailing(ok.astype(np.float64))
    sx, sy = trailing(xs), trailing(ys)
    sxx, syy, sxy = trailing(xs * xs), trailing(ys * ys), trailing(xs * ys)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sy / n
        vx = sxx - sx * sx / n
        vy = syy - sy * sy / n
        scale = np.maximum(np.abs(sxx), 1e-300)
        flat_x = vx <= scale * 1e-12
        flat_y = vy <= np.maximum(np.abs(syy), 1e-300) * 1e-12
        corr = np.where(flat_x | flat_y, np.nan, cov / np.sqrt(np.abs(vx * vy)))
        beta = np.where(flat_x, np.nan, cov / vx)
    enough = n >= need
    corr = np.where(enough, np.clip(corr, -1.0, 1.0), np.nan)
    beta = np.where(enough, beta, np.nan)
    return corr, beta, n.astype(np.int64)


def recent_move(ts: np.ndarray, px: np.ndarray, window_ns: int) -> float:
    """Fractional price change over the last ``window_ns``: last price / price at (last time - window) - 1.

    The reference is the last finite price at or before the window start (the first one when the series is
    shorter); NaN with fewer than two finite prices.
    """
    ts = np.asarray(ts, np.int64)
    px = np.asarray(px, np.float64)
    ok = np.isfinite(px) & (px > 0)
    ts, px = ts[ok], px[ok]
    if px.size < 2:
        return float("nan")
    start = int(ts[-1]) - int(window_ns)
    i = int(np.searchsorted(ts, start, side="right")) - 1
    ref = px[max(i, 0)]
    return float(px[-1] / ref - 1.0)


@dataclass(frozen=True, slots=True)
class LeaderWarning:
    """The exposure check of one symbol against one leader."""

    active: bool
    leader: str
    leader_move: float  # fraction over the move window
    expected_move: float  # beta x leader move (NaN when beta is unknown)
    text: str


def leader_warning(leader: str, leader_move: float, beta: float, corr: float, *, long_position: bool = True,
                   small_cap: bool = True, drop_threshold: float = 0.005, min_corr: float = 0.0
                   ) -> LeaderWarning:
    """Warn when ``leader`` fell by at least ``drop_threshold`` (a fraction, e.g. 0.005 = 0.5 %) over the move
    window while a long small-cap position is exposed (and, if ``min_corr`` > 0, the symbol follows it)."""
    if not drop_threshold > 0:
        raise ValueError(f"drop threshold must be a fraction > 0, got {drop_threshold!r}")
    expected = beta * leader_move if np.isfinite(beta) else float("nan")
    dropping = np.isfinite(leader_move) and leader_move <= -drop_threshold
    follows = min_corr <= 0 or (np.isfinite(corr) and corr >= min_corr)
    active = bool(dropping and follows and long_position and small_cap)
    if active:
        exp = f"; expect {expected * 100:+.2f} % (beta {beta:.2f})" if np.isfinite(expected) else ""
        text = f"{leader} {leader_move * 100:+.2f} %: long exposed{exp}"
    elif dropping:
        text = f"{leader} {leader_move * 100:+.2f} %"
    else:
        text = ""
    return LeaderWarning(active, leader, float(leader_move), float(expected), text)
