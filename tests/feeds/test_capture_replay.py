"""ReplayFeed and the seek cache: same batches as the processor, keyframes equal a full replay, controls."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from app.core.events import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    KIND_MASK,
    SELL_EVENT,
    SIDE_MASK,
)
from app.paths import recorded
from feeds.base import LIVE, STOPPED
from feeds.capture.readers import CaptureError
from feeds.capture.replay import ReplayFeed


class RecordingSink:
    """A FeedSink that keeps every call."""

    def __init__(self) -> None:
        self.instruments: list = []
        self.batches: list[tuple[str, np.ndarray, int | None]] = []
        self.statuses: list[tuple[str, str, str]] = []

    def on_instrument(self, instrument) -> None:  # noqa: ANN001
        self.instruments.append(instrument)

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        self.batches.append((symbol, np.array(batch), update_id))

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        self.statuses.append((symbol, state, reason))

    def on_raw(self, local_ns: int, raw: str) -> None:
        return None


class DictBook:
    """Reference book for the tests: absolute size per (side, tick), the DepthBook apply rules."""

    def __init__(self) -> None:
        self.sides: dict[int, dict[int, float]] = {BUY_EVENT: {}, SELL_EVENT: {}}

    def apply(self, batch: np.ndarray) -> None:
        for row in batch:
            kind = int(row["ev"]) & KIND_MASK
            side = int(row["ev"]) & SIDE_MASK
            if kind == DEPTH_CLEAR_EVENT:
                for s in (BUY_EVENT, SELL_EVENT) if side == 0 else (side,):
                    self.sides[s].clear()
            elif kind in (DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT):
                book = self.sides[side]
                if row["qty"] > 0:
                    book[int(row["ival"])] = float(row["qty"])
                else:
                    book.pop(int(row["ival"]), None)


def _run(feed: ReplayFeed, sink: RecordingSink | None = None) -> RecordingSink:
    sink = sink or RecordingSink()
    asyncio.run(feed.run(sink))
    return sink


@pytest.fixture(scope="module")
def eth_head(tmp_path_factory: pytest.TempPathFactory, eth_capture: Path) -> Path:
    """The first 20,000 lines (about 90 s of market) of the real ETHUSDT capture: fast, still real."""
    import gzip

    path = tmp_path_factory.mktemp("eth") / "eth_head.gz"
    with gzip.open(eth_capture, "rt") as src, gzip.open(path, "wt") as dst:
        for i, line in enumerate(src):
            if i == 20_000:
                break
            dst.write(line)
    return path


@pytest.fixture(scope="module")
def eth_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seek cache folder shared by the tests of this module (built by the first that needs it)."""
    return tmp_path_factory.mktemp("cache") / "eth_head.ddcache"


def test_eth_raw_replay_and_cache_give_the_same_batches(eth_head: Path, eth_cache: Path) -> None:
    raw = _run(ReplayFeed(eth_head))
    feed = ReplayFeed(eth_head, cache=True, cache_dir=eth_cache)
    cached = _run(feed)
    assert len(raw.batches) == len(cached.batches) > 19_000
    for (s1, b1, u1), (s2, b2, u2) in zip(raw.batches, cached.batches, strict=True):
        assert s1 == s2 and u1 == u2 and np.array_equal(b1, b2)


REAL = [
    ("binance_usdm", "cryptofeed_BINANCE_FUTURES.ws.1.0"),
    ("bybit_linear", "nautilus_2024-12-01_XRPUSDT_ob500.data"),
    ("bybit_linear", "cryptofeed_pr1085_BYBIT.ws.1.0"),
    ("bybit_v5_agpl", "cryptofeed_v3_BYBIT.jsonl"),
]


@pytest.mark.parametrize(("folder", "name"), REAL)
def test_raw_replay_runs_to_the_end_and_the_cache_replays_the_same_batches(
        folder: str, name: str, tmp_path: Path) -> None:
    path = recorded(folder, name)
    raw = _run(ReplayFeed(path))
    feed = ReplayFeed(path, cache=True, cache_dir=tmp_path / "cache")
    cached = _run(feed)
    assert len(raw.batches) > 40 and len(raw.batches) == len(cached.batches)
    for (s1, b1, u1), (s2, b2, u2) in zip(raw.batches, cached.batches, strict=True):
        assert s1 == s2 and u1 == u2 and np.array_equal(b1, b2)
    assert feed.counters().malformed == 0 and feed.counters().resyncs == 0
    assert all(st == STOPPED for _, st, _ in raw.statuses[-len(feed.symbols):])
    assert any(st == LIVE for _, st, _ in raw.statuses)


def test_bybit_spot_connection_is_not_mixed_into_linear_books() -> None:
    feed = ReplayFeed(recorded("bybit_v5_agpl", "cryptofeed_v3_BYBIT.jsonl"))
    sink = _run(feed)
    btc = [b for s, b, u in sink.batches if s == "BTCUSDT" and u is not None]
    assert feed.symbols == ("BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT")
    assert len(btc) == 414  # the linear orderbook.200 messages only (spot has 300 more)


def test_keyframe_plus_catch_up_equals_the_book_of_a_full_replay(eth_head: Path, eth_cache: Path) -> None:
    feed = ReplayFeed(eth_head, cache=True, cache_dir=eth_cache)
    idx = feed.index()
    assert idx.meta["keyframes"] > 10
    full = DictBook()
    done = 0
    for seconds in (0.5, 37.3, 61.9, 62.0, 80.0):
        target = idx.first_ns + int(seconds * 1e9)
        plan = idx.plan_seek(target)
        for i in range(done, plan.batch):  # the reference walks forward once through every batch
            _sym, rows, uid = idx.batch(i)
            if uid is not None:
                full.apply(rows)
        done = plan.batch
        fast = DictBook()
        for _sym, rows, _uid in plan.keyframes + plan.catch_up:
            fast.apply(rows)
        assert fast.sides == full.sides and len(full.sides[BUY_EVENT]) > 100


def test_cache_is_reused_then_rebuilt_when_the_capture_changes(tmp_path: Path, eth_head: Path) -> None:
    import shutil

    cap = tmp_path / "eth.gz"
    shutil.copyfile(eth_head, cap)  # a writable copy: the cache goes beside it
    progress: list[float] = []
    idx = ReplayFeed(cap, cache=True, progress=progress.append).index()
    assert idx.folder == tmp_path / "eth.gz.ddcache" and progress[-1] == 1.0 and len(progress) >= 2
    stamp = (idx.folder / "meta.json").stat().st_mtime_ns
    again = ReplayFeed(cap, cache=True).index()
    assert (again.folder / "meta.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    with cap.open("ab") as f:  # the capture grew (a recording appended): the cache must follow
        f.write(b"")
    import os

    os.utime(cap, ns=(time.time_ns(), time.time_ns()))
    rebuilt = ReplayFeed(cap, cache=True).index()
    assert (rebuilt.folder / "meta.json").stat().st_mtime_ns != stamp


def test_start_and_end_select_a_window(eth_head: Path, eth_cache: Path) -> None:
    first = ReplayFeed(eth_head, cache=True, cache_dir=eth_cache).index().first_ns
    feed = ReplayFeed(eth_head, start_ns=first + 50_000_000_000, end_ns=first + 60_000_000_000, cache_dir=eth_cache)
    sink = _run(feed)
    book = [b for _, b, u in sink.batches if u is not None]
    assert int(book[0]["ev"][0]) & KIND_MASK == DEPTH_CLEAR_EVENT  # the keyframe comes first
    plays = sink.batches[2:]
    assert len(plays) > 500
    assert all(first + 50_000_000_000 <= int(b["local_ts"][0]) <= first + 60_000_000_000 for _, b, _ in plays)


def test_paced_replay_takes_real_time_at_the_given_speed() -> None:
    path = recorded("bybit_linear", "nautilus_2024-12-01_XRPUSDT_ob500.data")  # 4.8 s of market
    feed = ReplayFeed(path, speed=4.0)
    t0 = time.monotonic()
    sink = _run(feed)
    elapsed = time.monotonic() - t0
    assert len(sink.batches) == 50 and 1.0 < elapsed < 2.5  # 4.8 s / 4


def test_pause_step_and_seek_controls(eth_head: Path, eth_cache: Path) -> None:
    feed = ReplayFeed(eth_head, cache=True, cache_dir=eth_cache, speed=1.0)
    first = feed.index().first_ns
    sink = RecordingSink()

    async def drive() -> None:
        task = asyncio.ensure_future(feed.run(sink))
        feed.pause()
        await asyncio.sleep(0.2)
        n_paused = len(sink.batches)
        await asyncio.sleep(0.2)
        assert len(sink.batches) == n_paused  # nothing moves while paused
        feed.step(3)
        await asyncio.sleep(0.1)
        assert len(sink.batches) == n_paused + 3
        feed.seek(first + 70_000_000_000)  # a jump while paused delivers the keyframe at once
        await asyncio.sleep(0.1)
        kf = sink.batches[n_paused + 3]
        assert int(kf[1]["ev"][0]) & KIND_MASK == DEPTH_CLEAR_EVENT
        feed.set_speed(None)
        feed.resume()
        await asyncio.wait_for(task, 20)
        assert int(sink.batches[-1][1]["local_ts"][-1]) > first + 85_000_000_000

    asyncio.run(drive())
    with pytest.raises(ValueError, match="between"):
        feed.set_speed(5000)


def test_backward_seek_without_cache_is_refused(eth_head: Path) -> None:
    feed = ReplayFeed(eth_head)
    feed.position_ns = 10**19
    with pytest.raises(ValueError, match="cache"):
        feed.seek(0)


def test_tick_size_override_and_bad_symbol(eth_head: Path) -> None:
    assert ReplayFeed(eth_head).instruments["ETHUSDT"].tick_size == 0.01  # inferred from the prices
    assert ReplayFeed(eth_head, tick_size=0.001).instruments["ETHUSDT"].tick_size == 0.001
    with pytest.raises(CaptureError, match="not in this capture"):
        ReplayFeed(eth_head, symbols=["BTCUSDT"])


def test_okx_is_read_but_not_replayable() -> None:
    with pytest.raises(CaptureError, match="cannot be replayed"):
        ReplayFeed(recorded("okx", "cryptofeed_OKX.ws.1.0"))


def test_tardis_rows_become_book_and_trade_batches(tmp_path: Path) -> None:
    book = tmp_path / "binance-futures_incremental_book_L2_2024-08-08_BTCUSDT.csv"
    trades = tmp_path / "binance-futures_trades_2024-08-08_BTCUSDT.csv"
    book.write_text(
        "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
        "binance-futures,BTCUSDT,1723161256000000,1723161256001000,true,bid,61800.2,2.5\n"
        "binance-futures,BTCUSDT,1723161256000000,1723161256001000,true,bid,61800.1,1.5\n"
        "binance-futures,BTCUSDT,1723161256000000,1723161256001000,true,ask,61800.3,1.0\n"
        "binance-futures,BTCUSDT,1723161257000000,1723161257001000,false,ask,61800.3,0\n"
        "binance-futures,BTCUSDT,1723161257000000,1723161257001000,false,ask,61800.5,3\n")
    trades.write_text(
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "binance-futures,BTCUSDT,1723161256500000,1723161256501000,77,sell,61800.2,0.5\n")
    feed = ReplayFeed(book)
    assert feed.instruments["BTCUSDT"].tick_size == pytest.approx(0.1)
    sink = _run(feed)
    kinds = [[int(e) & KIND_MASK for e in b["ev"]] for _, b, _ in sink.batches]
    assert kinds == [[DEPTH_CLEAR_EVENT, 4, 4, 4], [2], [DEPTH_EVENT, DEPTH_EVENT]]
    ref = DictBook()
    for _, b, _ in sink.batches:
        ref.apply(b)
    assert ref.sides[BUY_EVENT] == {618002: 2.5, 618001: 1.5} and ref.sides[SELL_EVENT] == {618005: 3.0}
    trade = sink.batches[1][1]
    assert int(trade["ev"][0]) & SIDE_MASK == SELL_EVENT and trade["exch_ts"][0] == 1723161256500000000


def test_bare_snapshots_of_a_multi_symbol_capture_find_their_symbol(tmp_path: Path) -> None:
    """hftbacktest-style lines (no channel, bare REST bodies) for 4 symbols: each snapshot syncs its own book."""
    src = ReplayFeed(recorded("binance_usdm", "cryptofeed_BINANCE_FUTURES.ws.1.0"))
    path = tmp_path / "bare.gz"
    import gzip

    with gzip.open(path, "wt") as f:
        for rec in src.reader:
            if rec.channel.startswith("ws") or "/depth" in rec.channel:
                f.write(f"{rec.local_ns} {rec.raw}\n")
    feed = ReplayFeed(path, tick_size=None)
    sink = _run(feed)
    live = {sym for sym, st, _ in sink.statuses if st == LIVE}
    assert live == {"AKROUSDT", "KEEPUSDT", "SUSHIUSDT", "CTKUSDT"}
    assert feed.counters().resyncs == 0


def test_a_read_only_capture_gets_its_cache_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from feeds.capture.index import default_cache_dir

    cap = tmp_path / "ro" / "xrp.data"
    cap.parent.mkdir()
    shutil.copyfile(recorded("bybit_linear", "nautilus_2024-12-01_XRPUSDT_ob500.data"), cap)
    assert default_cache_dir(cap) == cap.with_name("xrp.data.ddcache")
    cap.chmod(0o444)  # like the shared recorded data: never write beside it
    monkeypatch.setenv("DEPTHDESK_CACHE_DIR", str(tmp_path / "user-cache"))
    folder = default_cache_dir(cap)
    assert folder.parent == tmp_path / "user-cache" and folder.name.startswith("xrp.data.")
    idx = ReplayFeed(cap, cache=True).index()
    assert idx.folder == folder and not cap.with_name("xrp.data.ddcache").exists()
