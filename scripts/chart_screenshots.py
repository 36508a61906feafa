"""Render every chart from the real Binance BTCUSDT / ETHUSDT captures to docs/screenshots/charts_*.png.

The captures (hftbacktest, 2024-08-08, 345 s) go through the real Binance parser into the engine's
MarketState, exactly as a replay does. They carry no mark-price, funding, open-interest or liquidation
messages, so the funding chart gets synthetic rows (mark = the real mid plus a small premium, a 0.01 %
rate, an open interest walk, a few liquidations), said so in the picture's README line.

    QT_QPA_PLATFORM=offscreen PYTHONPATH=. python scripts/chart_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core import events as ev  # noqa: E402
from app.core.instrument import Instrument  # noqa: E402
from app.market import MarketState  # noqa: E402
from app.paths import recorded  # noqa: E402
from feeds.binance_usdm import BinanceUsdmProcessor  # noqa: E402

BTC = Instrument("binance-usdm", "BTCUSDT", tick_size=0.1, lot_size=0.001)
ETH = Instrument("binance-usdm", "ETHUSDT", tick_size=0.01, lot_size=0.001)
CONFIG = {"engine": {"footprint_bar_s": 15.0, "heatmap_minutes": 30.0}}


class _Sink:
    """Applies a processor's batches to one MarketState (what the engine does, without its thread)."""

    def __init__(self, market: MarketState, synthetic_funding: bool) -> None:
        self.market = market
        self.synthetic = synthetic_funding
        self.next_funding_check = 0
        self.rng = np.random.default_rng(7)
        self.oi = 81_250.0

    def on_instrument(self, instrument: Instrument) -> None:
        pass

    def on_status(self, symbol: str, state: str, reason: str = "") -> None:
        self.market.set_state(state)

    def on_raw(self, local_ns: int, raw: str) -> None:
        pass

    def on_batch(self, symbol: str, batch: np.ndarray, update_id: int | None) -> None:
        self.market.apply(batch, update_id)
        if self.synthetic and len(batch):
            ts = int(batch["exch_ts"][-1])
            if ts >= self.next_funding_check:
                self.next_funding_check = ts + 3_000_000_000
                self._funding(ts)

    def _funding(self, ts: int) -> None:
        m = self.market
        bid, ask = m.book.best_bid_tick, m.book.best_ask_tick
        if bid == ev.NO_PRICE or ask == ev.NO_PRICE:
            return
        mid = (bid + ask) / 2 * m.instrument.tick_size
        index = mid * (1 - 0.00012 + self.rng.normal(0, 0.00003))
        next_funding = (ts // (8 * 3600 * 10**9) + 1) * 8 * 3600 * 10**9
        self.oi += self.rng.normal(4.0, 25.0)
        rows = [
            ev.marker_row(ev.MARK_PRICE_EVENT, ts, ts, px=mid, fval=index),
            ev.marker_row(ev.FUNDING_EVENT, ts, ts, px=mid, ival=next_funding,
                          fval=0.0001 + self.rng.normal(0, 0.000004)),
            ev.marker_row(ev.OPEN_INTEREST_EVENT, ts, ts, qty=self.oi),
        ]
        if self.rng.random() < 0.25:
            side = ev.ASK if self.rng.random() < 0.6 else ev.BID
            rows.append(ev.marker_row(ev.LIQUIDATION_EVENT, ts, ts, px=mid, qty=float(self.rng.uniform(0.05, 2)),
                                      side=side))
        self.market.apply(np.concatenate(rows), None)


def replay(path: Path, inst: Instrument, synthetic_funding: bool = False, detectors: object = None
           ) -> MarketState:
    """A MarketState filled from a capture through the real parser."""
    market = MarketState(inst, CONFIG, detectors=detectors)
    sink = _Sink(market, synthetic_funding)
    proc = BinanceUsdmProcessor([inst], sink)  # type: ignore[arg-type]
    with gzip.open(path, "rt") as fh:
        for line in fh:
            local_ns, _, raw = line.partition(" ")
            proc.on_line(raw, int(local_ns))
    return market


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--theme", default="dark")
    args = parser.parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from app.analytics.detectors import DetectorSet
    from widgets.charts import (
        CorrelationWidget,
        CvdPriceWidget,
        FootprintWidget,
        FundingWidget,
        HeatmapWidget,
        VolumeProfileWidget,
    )
    from widgets.theme import palette, style_sheet

    app = QApplication.instance() or QApplication([])
    pal = palette(args.theme)
    app.setStyleSheet(style_sheet(pal))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    btc = replay(recorded("binance_usdm", "hftbacktest_usdm_btcusdt_20240808.gz"), BTC, synthetic_funding=True,
                 detectors=DetectorSet(BTC, {}))
    eth = replay(recorded("binance_usdm", "hftbacktest_usdm_ethusdt_20240808.gz"), ETH)
    cf = btc.chart_frame()

    from PySide6.QtWidgets import QMainWindow

    def framed(widget, w: int, h: int) -> QMainWindow:  # noqa: ANN001 - any QWidget
        """In a main window, as in the desk (the style sheet paints panels dark)."""
        win = QMainWindow()
        win.setCentralWidget(widget)
        win.resize(w, h)
        win.show()
        return win

    def shot(widget, name: str, w: int, h: int) -> None:  # noqa: ANN001 - any QWidget
        win = framed(widget, w, h)
        for _ in range(3):
            app.processEvents()
        widget.set_chart_frame(cf) if hasattr(widget, "set_chart_frame") else None
        for _ in range(3):
            app.processEvents()
        if hasattr(widget, "redraw"):
            widget.redraw()
        app.processEvents()
        path = out / f"charts_{name}.png"
        win.grab().save(str(path))
        print(f"{path}  {path.stat().st_size // 1024} KB")

    hm = HeatmapWidget(palette=pal, window_s=300)
    shot(hm, "heatmap", 1200, 640)
    prof = VolumeProfileWidget(palette=pal)
    shot(prof, "profile", 360, 640)
    fp = FootprintWidget(palette=pal)
    shot(fp, "footprint", 1000, 620)
    cvd = CvdPriceWidget(palette=pal)
    shot(cvd, "cvd", 1000, 560)
    fund = FundingWidget(palette=pal)
    fund.set_position(2.5, ev.BID)
    fund.tick(cf.exch_ts)
    shot(fund, "funding", 520, 560)
    cor = CorrelationWidget(palette=pal)
    eth_cf = eth.chart_frame()
    cor.set_chart_frame(eth_cf)
    cor.bucket_box.setCurrentIndex(0)
    cor.window_box.setCurrentIndex(0)
    cor.drop_spin.setValue(0.05)
    cor.set_series(eth.mid_series(3600), {"BTCUSDT": btc.mid_series(3600)})
    win = framed(cor, 520, 520)
    for _ in range(3):
        app.processEvents()
    path = out / "charts_correlation.png"
    win.grab().save(str(path))
    print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
