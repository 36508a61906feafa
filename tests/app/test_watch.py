"""``depthdesk watch``: JSON-lines schema, text view, exit codes (fake feeds through the real CLI)."""

from __future__ import annotations

import json
import math
import time

import pytest
from test_engine_fakes import INST, T0, FakeFeed, Step, basic_script, diff, resync_script

from app import sources
from app.analytics.alerts import Alert
from app.cli import main
from app.core.detection import Detection
from app.core.events import NO_PRICE
from app.core.frame import FundingState
from app.core.instrument import Instrument
from app.jsonout import JsonLinesWriter

TOP_KEYS = {"type", "venue", "symbol", "exch_ts", "local_ts", "update_id", "bid_px", "bid_qty", "ask_px", "ask_qty"}


@pytest.fixture
def fake_sources(monkeypatch: pytest.MonkeyPatch):
    """Make every source string build the scripted feeds put in the returned list."""
    feeds: list[FakeFeed] = []

    def build(self, texts):  # noqa: ANN001, ANN202
        for text in texts:
            sources.parse_source(text)  # the real validation still runs
        return [(f"fake:{','.join(f.symbols)}", f) for f in feeds]

    monkeypatch.setattr(sources.SourceFactory, "build", build)
    return feeds


def json_lines(text: str) -> list[dict]:
    lines = text.splitlines()
    assert lines, "no output"
    return [json.loads(line) for line in lines]


def test_json_lines_schema_and_order(fake_sources, capsys) -> None:
    fake_sources.append(FakeFeed(basic_script()))
    assert main(["watch", "demo:ALTUSDT", "--json", "--duration", "5"]) == 0
    out = capsys.readouterr().out
    objs = json_lines(out)
    types = [o["type"] for o in objs]
    assert types == ["status", "top", "status", "top", "top", "funding", "status", "summary"]
    tops = [o for o in objs if o["type"] == "top"]
    for top in tops:
        assert set(top) == TOP_KEYS
        assert top["venue"] == "fake" and top["symbol"] == "ALTUSDT"
        assert isinstance(top["exch_ts"], int) and isinstance(top["local_ts"], int)
    assert [t["update_id"] for t in tops] == [100, 101, 102]
    assert (tops[0]["bid_px"], tops[0]["bid_qty"], tops[0]["ask_px"], tops[0]["ask_qty"]) == (1.0, 5, 1.001, 4)
    assert tops[2]["ask_px"] == 1.002 and tops[2]["bid_qty"] == 6
    assert '"bid_px":1.000,' in out  # the instrument's decimals, as a JSON number
    statuses = [o for o in objs if o["type"] == "status"]
    assert [s["state"] for s in statuses] == ["syncing", "live", "stopped"]
    assert all(set(s) == {"type", "venue", "symbol", "state", "reason"} for s in statuses)
    fund = next(o for o in objs if o["type"] == "funding")
    assert fund["rate"] == 0.0001 and fund["mark_px"] == 1.0005 and fund["index_px"] == 1.0004
    assert fund["next_funding_ts"] == T0 + 3600 * 10**9
    summary = objs[-1]
    assert summary["messages"] == 5 and summary["resyncs"] == 0 and summary["malformed"] == 0
    assert summary["reconnects"] == 0
    assert summary["sources"][0]["tops"] == 3 and summary["sources"][0]["symbols"] == ["ALTUSDT"]


def test_json_never_reports_an_out_of_sync_book(fake_sources, capsys) -> None:
    fake_sources.append(FakeFeed(resync_script()))
    assert main(["watch", "demo:ALTUSDT", "--json"]) == 0
    objs = json_lines(capsys.readouterr().out)
    assert [o["update_id"] for o in objs if o["type"] == "top"] == [10, 11, 20, 21]
    assert [o["state"] for o in objs if o["type"] == "status"] == ["live", "resyncing", "live", "stopped"]


def test_global_config_option_is_accepted(fake_sources, capsys, tmp_path) -> None:
    cfg = tmp_path / "user.toml"
    cfg.write_text("[engine]\nring_capacity = 4096\n")
    fake_sources.append(FakeFeed(basic_script()))
    assert main(["--config", str(cfg), "watch", "demo:ALTUSDT", "--json"]) == 0
    assert json_lines(capsys.readouterr().out)[-1]["type"] == "summary"
    fake_sources[:] = [FakeFeed(basic_script())]
    assert main(["watch", "demo:ALTUSDT", "--json", "--config", str(cfg)]) == 0
    assert json_lines(capsys.readouterr().out)[-1]["type"] == "summary"


def test_text_view_when_stdout_is_not_a_tty(fake_sources, capsys) -> None:
    fake_sources.append(FakeFeed(basic_script()))
    assert main(["watch", "demo:ALTUSDT", "--levels", "2"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # no escape codes into a pipe
    line = next(ln for ln in out.splitlines() if ln.startswith("fake:ALTUSDT"))
    assert "stopped" in line and "6 @ 1.000" in line and "2 @ 1.002" in line and "last 1.002 B 1.5" in line
    lines = out.splitlines()
    level2 = lines[lines.index(line) + 1]  # --levels 2: one more book row under the symbol's line
    assert "3 @ 0.999" in level2 and level2.rstrip().endswith("|")  # no second ask level
    assert "fake:ALTUSDT: 5 messages, 0 resyncs, 0 reconnects, 0 malformed" in out


def test_a_feed_error_is_one_line_and_non_zero(fake_sources, capsys) -> None:
    fake_sources.append(FakeFeed([], fail=LookupError("binance-usdm: unknown symbol NOPEUSDT")))
    assert main(["watch", "demo:NOPEUSDT", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown symbol NOPEUSDT" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["watch", "nowhere:BTCUSDT"], "unknown venue"),
        (["watch", "BTCUSDT"], "VENUE:SYMBOL"),
        (["watch", "binance-usdm:BTC/USDT"], "bad symbol"),
        (["watch", "demo:ALTUSDT", "--duration", "0"], "--duration"),
        (["watch", "demo:ALTUSDT", "--duration", "nan"], "--duration"),
        (["watch", "demo:ALTUSDT", "--levels", "0"], "--levels"),
        (["watch", "demo:ALTUSDT", "--config", "/nonexistent/x.toml"], "cannot read config"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err, captured.err


def test_bad_config_content_exits_2(tmp_path, capsys) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[venues.binance-usdm]\nrest = 'ftp://x'\n")
    assert main(["watch", "binance-usdm:BTCUSDT", "--config", str(cfg)]) == 2
    assert "venues.binance-usdm.rest" in capsys.readouterr().err


# -- the writer alone -----------------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass


def test_writer_formats_prices_with_instrument_decimals_and_nulls() -> None:
    sink = Sink()
    w = JsonLinesWriter(sink)
    inst = Instrument("binance-usdm", "BTCUSDT", tick_size=0.1)
    w.top(inst, 1, 2, 3, 642501, 0.1 + 0.2, NO_PRICE, 0.0)
    line = sink.text.strip()
    assert line == ('{"type":"top","venue":"binance-usdm","symbol":"BTCUSDT","exch_ts":1,"local_ts":2,'
                    '"update_id":3,"bid_px":64250.1,"bid_qty":0.30000000000000004,"ask_px":null,"ask_qty":null}')
    assert json.loads(line)["bid_px"] == 64250.1


def test_writer_detection_alert_and_funding_lines() -> None:
    sink = Sink()
    w = JsonLinesWriter(sink)
    det = Detection(7, "liquidity_gap", "fake", "ALTUSDT", -1, 1005, T0, "open", price_far_tick=1012,
                    evidence={"ticks": 7, "depth": float("nan"), "band": (1005, 1012)})
    w.detection(INST, det)
    w.alert(INST, Alert("vacuum ahead", det, T0, 1005, False, "liquidity_gap"))
    w.alert(INST, Alert("at 1.010", None, T0 + 5, 1010, True, "price"))
    w.funding(INST, FundingState(rate=-0.0002, next_funding_ts=5, mark_px=1.0, index_px=0.9995), 1, 2)
    w.summary([{"source": "a", "messages": 3, "resyncs": 1, "reconnects": 0, "malformed": 2},
               {"source": "b", "messages": 4, "resyncs": 0, "reconnects": 1, "malformed": 0}], duration_s=1.5)
    d, a, p, f, s = (json.loads(x) for x in sink.text.splitlines())
    assert d == {"type": "detection", "kind": "liquidity_gap", "venue": "fake", "symbol": "ALTUSDT", "id": 7,
                 "side": "ask", "price": 1.005, "exch_ts": T0, "state": "open", "price_far": 1.012,
                 "ticks": 7, "depth": None, "band": [1005, 1012]}
    assert '"price":1.005,' in sink.text
    assert a == {"type": "alert", "rule": "vacuum ahead", "kind": "liquidity_gap", "exch_ts": T0, "sound": False,
                 "detection": d}
    assert p == {"type": "alert", "rule": "at 1.010", "kind": "price", "exch_ts": T0 + 5, "sound": True,
                 "venue": "fake", "symbol": "ALTUSDT", "price": 1.01}
    assert '"price":1.010}' in sink.text
    assert f["rate"] == -0.0002 and f["index_px"] == 0.9995 and '"mark_px":1.0,' in sink.text
    assert (s["messages"], s["resyncs"], s["reconnects"], s["malformed"]) == (7, 1, 1, 2)
    assert s["duration_s"] == 1.5 and len(s["sources"]) == 2
    assert not any(math.isnan(v) for v in (f["rate"], f["mark_px"]))


def test_writer_summary_with_no_sources() -> None:
    sink = Sink()
    JsonLinesWriter(sink).summary([])
    assert json.loads(sink.text) == {"type": "summary", "messages": 0, "resyncs": 0, "reconnects": 0,
                                     "malformed": 0, "sources": []}


def test_unused_step_helpers_stay_valid() -> None:
    assert Step(batch=diff({1: 1.0}, {}, 1)).batch is not None


def test_sigint_ends_watch_normally_with_a_summary(fake_sources, capsys) -> None:
    import os
    import signal
    import threading

    fake_sources.append(FakeFeed(basic_script(), hold=True))
    timer = threading.Timer(0.4, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        assert main(["watch", "demo:ALTUSDT", "--json", "--duration", "20"]) == 0
    finally:
        timer.cancel()
    objs = json_lines(capsys.readouterr().out)
    assert objs[-1]["type"] == "summary" and objs[-1]["messages"] == 5
    assert objs[-2] == {"type": "status", "venue": "fake", "symbol": "ALTUSDT", "state": "stopped",
                        "reason": "engine stopped"}
    assert fake_sources[0].cancelled


class BrokenStdout:
    """A stdout whose reader went away after ``ok`` lines."""

    def __init__(self, ok: int) -> None:
        self.ok = ok
        self.lines = 0

    def write(self, s: str) -> int:
        if self.lines >= self.ok:
            raise BrokenPipeError(32, "Broken pipe")
        self.lines += s.count("\n")
        return len(s)

    def flush(self) -> None:
        if self.lines >= self.ok:
            raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise OSError("no file descriptor")  # _silence_stdout must cope

    def isatty(self) -> bool:
        return False


def test_a_closed_pipe_ends_watch_quietly(fake_sources, monkeypatch, capsys) -> None:
    import sys

    fake_sources.append(FakeFeed(basic_script(), hold=True))
    out = BrokenStdout(ok=2)
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["watch", "demo:ALTUSDT", "--json", "--duration", "20"]) == 0
    assert fake_sources[0].cancelled
    assert capsys.readouterr().err == ""


class TtyStream(Sink):
    def isatty(self) -> bool:
        return True


def test_text_view_redraws_in_place_on_a_terminal() -> None:
    import asyncio

    from app.commands.watch import TextView
    from app.engine import Engine

    engine = Engine({"engine": {"ring_capacity": 256}})
    engine.add_feed(FakeFeed(basic_script()))
    asyncio.run(engine.run_until(5))
    tty = TtyStream()
    view = TextView(engine, tty, levels=1)
    view.draw()
    first = tty.text
    assert "\x1b[" not in first and first.count("\n") == 1
    view.draw()
    assert tty.text[len(first):].startswith("\x1b[1F\x1b[J")  # back up one line, clear, redraw


def test_bad_alert_rule_in_config_exits_2(tmp_path, capsys) -> None:
    cfg = tmp_path / "alerts.toml"
    cfg.write_text('[[alerts]]\nname = "x"\nkind = "iceberg"\nside = "up"\n')
    assert main(["watch", "demo:ALTUSDT", "--json", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "alert" in err and "side" in err


def test_a_closed_pipe_ends_the_text_view_too(fake_sources, monkeypatch, capsys) -> None:
    import sys

    from app.commands import watch

    monkeypatch.setattr(watch, "PLAIN_REFRESH_S", 0.05)
    fake_sources.append(FakeFeed(basic_script(), hold=True))
    monkeypatch.setattr(sys, "stdout", BrokenStdout(ok=0))
    t0 = time.monotonic()
    assert main(["watch", "demo:ALTUSDT", "--duration", "20"]) == 0
    assert time.monotonic() - t0 < 5 and fake_sources[0].cancelled
