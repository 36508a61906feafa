"""Chart benchmarks (offscreen): the heatmap redrawing a 1600-pixel-wide, two-hour history per frame.

A full two-hour :class:`~app.core.heatmap.HeatmapHistory` (72,000 columns of 100 ms x 256 rows, a random
walk book sampled through ``sample()``) is shown whole in a :class:`~widgets.charts.HeatmapWidget` whose
plot area is 1600 px wide. Each frame one more column closes and trades land (the market moves on), the
widget takes a new chart frame and its plot repaints synchronously; the time of that is one frame.
Rows: ``gui.heatmap_frame_ms`` (median; p99 and the cold first draw, where every block is reduced, in
``extra``).
"""

from __future__ import annotations

import os
import time

import numpy as np

from app.core.chartframe import ChartFrame
from app.core.events import NO_PRICE
from app.core.heatmap import HeatmapHistory, HeatmapSnapshot
from app.core.instrument import Instrument
from benchmarks import BenchResult

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROWS = ("gui.heatmap_frame_ms",)
GOAL_MS = 8.0
WIDTH_PX = 1600
INST = Instrument("bench", "ALTUSDT", tick_size=0.0001, lot_size=1.0)


class _WalkBook:
    """Just what ``HeatmapHistory.sample`` reads of a book: best prices and a ladder window."""

    def __init__(self, seed: int = 5) -> None:
        self.rng = np.random.default_rng(seed)
        self.mid = 40_000
        self.sizes = self.rng.gamma(1.3, 800.0, 4096).astype(np.float64)
        self.best_bid_tick = self.mid - 1
        self.best_ask_tick = self.mid + 1

    def step(self) -> None:
        self.mid += int(self.rng.integers(-1, 2))
        self.best_bid_tick, self.best_ask_tick = self.mid - 1, self.mid + 1

    def ladder(self, top_tick: int, rows: int, group: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ticks = top_tick - np.arange(rows, dtype=np.int64) * group
        q = self.sizes[(ticks // 7) % self.sizes.size]  # levels that persist as price moves
        bid = np.where(ticks <= self.best_bid_tick, q, 0.0)
        ask = np.where(ticks >= self.best_ask_tick, q, 0.0)
        return ticks, bid, ask


def _fill(hist: HeatmapHistory, book: _WalkBook, columns: int, first_col: int) -> int:
    col_ns = hist.column_ns
    rng = book.rng
    for c in range(first_col, first_col + columns):
        if c % 10 == 0:
            book.step()
        hist.sample(book, c * col_ns)
        n = int(rng.integers(0, 4))
        if n:
            ts = c * col_ns + rng.integers(0, col_ns, n)
            hist.add_trades(ts, book.mid + rng.integers(-3, 4, n), rng.gamma(1.2, 50.0, n), rng.random(n) < 0.5)
    return first_col + columns


def _frame(hist: HeatmapHistory, book: _WalkBook, version: int) -> ChartFrame:
    snap = HeatmapSnapshot(hist, hist.last_closed, hist.open_col or 0, hist.version, INST.tick_size, hist.column_ns)
    return ChartFrame(version=version, instrument=INST, state="live", exch_ts=(hist.open_col or 0) * hist.column_ns,
                      best_bid_tick=book.best_bid_tick, best_ask_tick=book.best_ask_tick,
                      last_trade_tick=NO_PRICE, heatmap=snap)


def bench_heatmap(quick: bool = False) -> list[BenchResult]:
    """Median / p99 time of one heatmap frame over a full two-hour history at 1600 px."""
    from PySide6.QtWidgets import QApplication

    from widgets.charts.heatmap import HeatmapWidget

    app = QApplication.instance() or QApplication([])
    hist = HeatmapHistory()  # 72,000 x 256
    book = _WalkBook()
    t0 = time.perf_counter()
    start_col = 17_000_000_000
    col = _fill(hist, book, hist.columns, start_col)
    fill_s = time.perf_counter() - t0
    widget = HeatmapWidget(window_s=hist.columns * hist.column_ns / 1e9)
    widget.resize(WIDTH_PX + 120, 900)
    widget.show()
    app.processEvents()
    extra_w = int(widget.vb.width()) - WIDTH_PX  # make the plot area itself 1600 px wide
    widget.resize(widget.width() - extra_w, 900)
    app.processEvents()
    version = 1
    t = time.perf_counter()
    widget.set_chart_frame(_frame(hist, book, version))
    widget.plot.viewport().repaint()
    cold_ms = (time.perf_counter() - t) * 1e3
    times = []
    frames = 60 if quick else 400
    for _ in range(frames):
        col = _fill(hist, book, 1, col)
        version += 1
        frame = _frame(hist, book, version)
        t = time.perf_counter()
        widget.set_chart_frame(frame)
        widget.plot.viewport().repaint()
        times.append((time.perf_counter() - t) * 1e3)
        app.processEvents()
    arr = np.asarray(times)
    width = int(widget.vb.width())
    image_w = widget.image.shown_blocks
    widget.close()
    return [BenchResult(
        "gui.heatmap_frame_ms", round(float(np.median(arr)), 3), "ms",
        extra={"p99_ms": round(float(np.percentile(arr, 99)), 3), "max_ms": round(float(arr.max()), 3),
               "cold_first_ms": round(cold_ms, 2), "pixel_columns_written": widget.image.columns_written, "frames": frames, "plot_px": width, "image_columns": image_w,
               "history_columns": hist.columns, "rows": hist.rows, "history_mb": round(hist.nbytes / 1e6, 1),
               "fill_s": round(fill_s, 2), "goal_ms": GOAL_MS},
    )]


def run(quick: bool = False) -> list[BenchResult]:
    """Every chart row."""
    return bench_heatmap(quick)


if __name__ == "__main__":
    for row in run(quick=False):
        print(row.as_json())
