"""Real captures replayed by the simulator and read back through the real venue adapters.

Issue #3's must-hold, end to end: every real Binance and Bybit file in the shared recorded data is
served by :class:`SimulatorServer` in capture mode (websocket routes and REST snapshot from the
recording), our own :class:`BinanceUsdmFeed` / :class:`BybitLinearFeed` connect to it over loopback
exactly as to the venue, and the book they keep is compared with the venue's own top of book:

* Binance: the ``bookTicker`` at every update id present in both streams;
* Bybit ``orderbook.500`` archive: the simulator's own book at the end (the file has no other top);
* Bybit v5 (cryptofeed v3): ``tickers`` bid1/ask1, which share the book's cross sequence (``cs`` =
  ``seq``), where the book's top did not move around that sequence;
* Bybit ``orderbook.1`` (cryptofeed PR 1085): the file's only book stream is a top of book, so the
  adapter's book must equal each message.
"""

from __future__ import annotations

import asyncio
import bisect
import json
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from app.paths import recorded
from feeds.binance_usdm import BinanceUsdmFeed
from feeds.bybit_linear import BybitLinearFeed
from feeds.capture.readers import open_capture
from feeds.simulator.capture import CaptureSource
from feeds.simulator.server import SimulatorServer
from tests.feeds._helpers import TopCheckSink

pytestmark = pytest.mark.timeout(60)


def simulator_records(folder: str, name: str, limit: int | None = None) -> list[tuple[int, str]]:
    """A capture of any format as the simulator's ``(local_ns, raw)`` records (REST depth as native lines)."""
    out: list[tuple[int, str]] = []
    for rec in open_capture(recorded(folder, name)):
        if rec.channel.startswith("ws"):
            out.append((rec.local_ns, rec.raw))
        elif rec.channel.startswith("rest:"):
            url = urlsplit(rec.channel[5:])
            if url.path == "/fapi/v1/depth" and "symbol=" not in url.query:
                out.append((rec.local_ns, rec.raw))  # hftbacktest's bare snapshot: its stream names it
            elif url.path == "/fapi/v1/depth":
                out.append((rec.local_ns, json.dumps({"rest": f"{url.path}?{url.query}"}, separators=(",", ":"))[:-1]
                            + f',"data":{rec.raw}}}'))
        if limit is not None and len(out) >= limit:
            break
    return out


class TickerPairingSink(TopCheckSink):
    """Also pairs every venue top (a Bybit ``tickers`` frame) with that frame's cross sequence ``cs``."""

    def __init__(self) -> None:
        super().__init__([])
        self.ticker_tops: list[tuple[str, int, tuple]] = []

    def on_batch(self, symbol: str, batch, update_id: int | None) -> None:  # noqa: ANN001
        seen = len(self.venue_top_seq)
        super().on_batch(symbol, batch, update_id)
        if len(self.venue_top_seq) > seen:
            raw = self.raw[-1][1]  # the frame being processed
            self.ticker_tops.append((symbol, json.loads(raw)["cs"], self.venue_top_seq[-1][2]))


async def _serve_and_read(records: list[tuple[int, str]], make_feed: Callable[[dict], object],
                          sink: TopCheckSink, expected_frames: int, speed: float = 0) -> dict[str, tuple]:
    """Replay ``records`` into a feed until it has read ``expected_frames`` frames; returns the simulator's
    own book levels per symbol at the end."""
    source = CaptureSource(records, speed=speed)
    async with SimulatorServer(capture=source) as srv:
        feed = make_feed(srv.endpoints())
        task = asyncio.create_task(feed.run(sink))  # type: ignore[attr-defined]
        try:
            async with asyncio.timeout(45):
                while not (source.done is not None and source.done.is_set() and len(sink.raw) >= expected_frames):
                    if task.done():
                        task.result()
                        raise AssertionError("the feed stopped before the capture was read")
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)  # anything still in flight
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return {s.symbol: srv.levels(s.symbol) for s in source.specs}


# The files hold 629 (BTCUSDT) and 551 (ETHUSDT) ids in both streams; the ones before the adapter's
# snapshot fetch are applied as one catch-up batch and have no top of their own. Speed 0 = as fast as
# the adapter reads; the 30 s cryptofeed file is paced (x10) so that most of its
# diffs arrive after the snapshot, one by one, instead of waiting in the sync buffer as one catch-up batch
@pytest.mark.parametrize(("name", "symbols", "speed", "min_compared"), [
    ("hftbacktest_usdm_btcusdt_20240808.gz", ["BTCUSDT"], 0, 500),
    ("hftbacktest_usdm_ethusdt_20240808.gz", ["ETHUSDT"], 0, 450),
    ("cryptofeed_BINANCE_FUTURES.ws.1.0", ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"], 10.0, 20),
])
def test_binance_capture_through_simulator_matches_book_ticker(name: str, symbols: list[str], speed: float,
                                                                min_compared: int) -> None:
    records = simulator_records("binance_usdm", name)
    streams = [r for _, r in records if r.startswith('{"stream":"')]
    # what the feed subscribes: its depth stream, bookTicker and trades (the capture's klines are not asked for)
    wanted = sum(("@depth" in r[:40] or "@bookTicker" in r[:40] or "@aggTrade" in r[:40]) for r in streams)
    sink = TopCheckSink([])

    def make_feed(ep: dict) -> BinanceUsdmFeed:
        b = ep["binance-usdm"]
        return BinanceUsdmFeed(symbols, b["rest"], b["ws_public"], b["ws_market"], open_interest_poll_s=3600)

    sim_levels = asyncio.run(_serve_and_read(records, make_feed, sink, wanted, speed))
    compared, equal = sink.matches()
    assert compared >= min_compared, f"only {compared} update ids in both streams"
    assert equal == compared, f"{compared - equal} of {compared} bookTicker tops differ from the adapter's book"
    for sym in symbols:  # and the adapter's final book is the simulator's
        (bt, bq), (at, aq) = sim_levels[sym]
        bid, ask = sink.books[sym].best_bid(), sink.books[sym].best_ask()
        assert (bid[0], ask[0]) == (int(bt[0]), int(at[0])), sym
        assert (bid[1], ask[1]) == pytest.approx((float(bq[0]), float(aq[0])))


def test_bybit_archive_through_simulator_equals_the_simulator_book() -> None:
    records = simulator_records("bybit_linear", "nautilus_2024-12-01_XRPUSDT_ob500.data")
    sink = TopCheckSink([])

    def make_feed(ep: dict) -> BybitLinearFeed:
        return BybitLinearFeed(["XRPUSDT"], ep["bybit-linear"]["rest"], ep["bybit-linear"]["ws"], depth=200)

    sim_levels = asyncio.run(_serve_and_read(records, make_feed, sink, len(records)))
    book_msgs = [u for (s, u) in sink.book_top if s == "XRPUSDT"]
    assert len(book_msgs) == len(records)  # one top per book message: no gap, no resync
    assert not any(st == "resyncing" for _, st, _ in sink.statuses)
    (bt, bq), (at, aq) = sim_levels["XRPUSDT"]
    book = sink.books["XRPUSDT"]
    for side, (ticks, sizes) in ((1, (bt, bq)), (-1, (at, aq))):
        ours_t, ours_q = book.levels(side)
        assert ours_t.tolist() == ticks.tolist()
        assert ours_q.tolist() == pytest.approx(sizes.tolist())


def test_bybit_orderbook1_file_through_simulator() -> None:
    records = simulator_records("bybit_linear", "cryptofeed_pr1085_BYBIT.ws.1.0")
    book_records = [r for _, r in records if r.startswith('{"topic":"orderbook.1.')]
    symbols = sorted({json.loads(r)["data"]["s"] for r in book_records})
    sink = TopCheckSink([])

    def make_feed(ep: dict) -> BybitLinearFeed:
        return BybitLinearFeed(symbols, ep["bybit-linear"]["rest"], ep["bybit-linear"]["ws"], depth=1)

    # paced (x10, ~3 s): at full speed the file would be over before the second subscribe request lands
    asyncio.run(_serve_and_read(records, make_feed, sink, len(book_records), speed=10.0))
    ticks = {inst.symbol: inst.tick_size for inst in sink.instruments}
    compared = 0
    for raw in book_records:
        d = json.loads(raw)["data"]
        tick = ticks[d["s"]]
        want = (round(float(d["b"][0][0]) / tick), float(d["b"][0][1]),
                round(float(d["a"][0][0]) / tick), float(d["a"][0][1]))
        got = sink.book_top.get((d["s"], d["u"]))
        if got is not None:  # a symbol's first messages may precede its subscription, as on the venue
            assert got == want
            compared += 1
    assert len(book_records) == 198 and compared >= 190


def test_bybit_v5_capture_through_simulator_matches_tickers() -> None:
    # the spot connection (BYBIT.ws.3) has the same topic names: replay only the linear connection's frames
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"]
    capture = list(open_capture(recorded("bybit_v5_agpl", "cryptofeed_v3_BYBIT.jsonl")))
    linear_records = [rec for rec in capture if rec.channel.startswith("ws") and "linear" in rec.channel
                      and rec.raw.startswith('{"topic":"') and not rec.raw.startswith('{"topic":"kline')]
    assert 0 < len(linear_records) < sum(rec.raw.startswith('{"topic":"') for rec in capture)
    records = [(rec.local_ns, rec.raw) for rec in linear_records]
    sink = TickerPairingSink()

    def make_feed(ep: dict) -> BybitLinearFeed:
        return BybitLinearFeed(symbols, ep["bybit-linear"]["rest"], ep["bybit-linear"]["ws"], depth=200)

    asyncio.run(_serve_and_read(records, make_feed, sink, len(records)))
    assert all(st != "resyncing" for _, st, _ in sink.statuses)
    # tickers' cs and the book's seq are one cross sequence: pair each frame with what the adapter made of
    # it (the feed hands the raw frame over just before processing it)
    book_by_seq: dict[str, list[tuple[int, tuple]]] = {s: [] for s in symbols}
    for _, raw in sink.raw:
        if raw.startswith('{"topic":"orderbook.'):
            d = json.loads(raw)["data"]
            book_by_seq[d["s"]].append((d["seq"], sink.book_top[(d["s"], d["u"])]))
    compared = price_equal = 0
    for sym, cs, top in sink.ticker_tops:
        seqs = [q for q, _ in book_by_seq[sym]]
        k = bisect.bisect_right(seqs, cs) - 1
        if k < 0 or k + 1 >= len(seqs) or book_by_seq[sym][k][1] != book_by_seq[sym][k + 1][1]:
            continue  # the book moved around this ticker: not comparable
        compared += 1
        price_equal += (book_by_seq[sym][k][1][0], book_by_seq[sym][k][1][2]) == (top[0], top[2])
    assert compared > 200
    assert price_equal == compared
