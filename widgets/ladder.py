"""The DOM ladder: a custom-painted price ladder over one symbol's frames (no table view: too slow).

Drawing is cached in a pixmap that is rebuilt only when a new frame version (or the view: size,
scroll, grouping, theme) arrives; paint events between frames only blit it and draw short-lived
overlays (last-trade and alert flashes, hover). While the desk catches up with a burst the flashes do not
animate: they show as they stand on the (slower) frame paints and resume once it caught up.
"""

from __future__ import annotations

import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PySide6.QtCore import QLine, QPoint, QPointF, QRect, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QContextMenuEvent,
    QFont,
    QFontMetrics,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
    QStaticText,
    QWheelEvent,
)
from PySide6.QtWidgets import QMenu, QSizePolicy, QWidget

from app.core.events import ASK, BID, NO_PRICE
from app.core.frame import Frame
from app.core.instrument import Instrument
from widgets import fmt
from widgets.theme import DARK, Palette, mono_font

# Ticks per ladder row the user can step through (small caps need coarse rows).
TICK_GROUPS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

# Columns left to right: key, title, share of the width.
COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("cum", "Cum", 0.095),
    ("change", "Δ Size", 0.095),
    ("sold", "Sold", 0.085),
    ("bid", "Bid", 0.16),
    ("price", "Price", 0.135),
    ("ask", "Ask", 0.16),
    ("bought", "Bought", 0.085),
    ("signals", "Signals", 0.185),
)
COLUMN_KEYS = tuple(c[0] for c in COLUMNS)

LIVE_STATES = ("live", "replay")
LEFT, RIGHT, CENTRE = 0, 1, 2  # text alignment codes of StaticTextCache.draw
# How long a flash lasts, seconds.
TRADE_FLASH_S = 0.45
ALERT_FLASH_S = 2.0
FLASH_TICK_MS = 33  # the flash animation's clock (~30 Hz)
# Auto-centre re-centres only when mid leaves the middle band (rows from centre): calm, no jitter.
RECENTRE_BAND = 0.3
# A resting level counts as large at this multiple of the median visible level (when no fixed size).
LARGE_MEDIAN_MULTIPLE = 6.0


@dataclass(frozen=True, slots=True)
class LadderView:
    """What the ladder shows right now, one array element per visible row (top row first)."""

    ticks: np.ndarray  # row price (group start) in ticks, descending
    bid: np.ndarray
    ask: np.ndarray
    sold: np.ndarray  # session volume of aggressive sells at the row
    bought: np.ndarray
    change: np.ndarray  # + stacked / - pulled over the frame's window
    cum: np.ndarray  # cumulative bid depth from best bid (bid rows) / ask depth from best ask (ask rows)
    large_bid: np.ndarray  # bool
    large_ask: np.ndarray  # bool
    gap: np.ndarray  # bool: inside a detected liquidity gap
    markers: tuple[str, ...]  # signals text per row ('' for none)

    def row_of(self, tick: int) -> int | None:
        """The visible row holding ``tick``, or None when it is off screen."""
        if len(self.ticks) == 0:
            return None
        group = int(self.ticks[0] - self.ticks[1]) if len(self.ticks) > 1 else 1
        row = (int(self.ticks[0]) - (tick // group) * group) // group
        return row if 0 <= row < len(self.ticks) else None


def group_ladder(ticks: np.ndarray, group: int, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sum rows into ``group``-tick rows (keys floor to a multiple of ``group``); ticks stay descending."""
    if group < 1:
        raise ValueError(f"tick group must be >= 1, got {group}")
    if len(ticks) == 0 or group == 1:
        return (ticks, *columns)
    keys = (ticks // group) * group
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return (keys[starts], *(np.add.reduceat(c, starts) if len(c) else c for c in columns))


class LadderWidget(QWidget):
    """Custom-painted DOM ladder over :class:`Frame` s: sizes, bars, traded volume, markers, stale state."""

    price_clicked = Signal("qint64")  # a price tick the user clicked: create a price alert there
    size_alert_requested = Signal("qint64", int, float)  # tick, book side, size resting there now
    auto_centre_changed = Signal(bool)
    group_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None, palette: Palette = DARK) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(420, 240)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._palette = palette
        self._colour_cache: dict[tuple[str, str, int | None], QColor] = {}
        self._price_cache: dict[tuple[float, int], str] = {}
        self._font = mono_font(9.0)
        self._bold = QFont(self._font)
        self._bold.setBold(True)
        self._texts = StaticTextCache(self._font, self._bold)
        self._header_font = QFont(self._font)
        self._header_font.setPointSizeF(8.0)
        self._frame: Frame | None = None
        self._feed_state = "live"  # from status events: a disconnect shows before the next frame
        self._group = 1
        self._auto_centre = True
        self._centre_tick: int | None = None
        self._large_size: float | None = None  # fixed threshold; None = multiple of the median
        self._view: LadderView | None = None
        self._cache: QPixmap | None = None
        self._dirty = True
        self._hover_row: int | None = None
        self._trade_flash: tuple[int, int, float] | None = None  # tick, side, until (monotonic)
        self._last_trade_key: tuple[int, int] | None = None
        self._alert_flashes: dict[int, tuple[float, float]] = {}  # tick -> (start, until)
        # catching up: alert flashes wait here (tick -> seconds still to flash), drawn steady, no animation
        self._held_flashes: dict[int, float] = {}
        self._catching_up = False
        # the flash animation's clock: one shot, re-armed by every paint while a flash lives, so it fires
        # only when no frame painted for a tick (frames at 60 Hz move the fade on; no extra wake-ups)
        self._flash_timer = QTimer(self)
        self._flash_timer.setSingleShot(True)
        self._flash_timer.setInterval(FLASH_TICK_MS)
        self._flash_timer.timeout.connect(self._on_flash_tick)
        self.paint_count = 0  # full re-renders, for tests and the benchmark
        self.flash_paints = 0  # repaints asked for by the flash animation, for tests and the benchmark
        self._relayout()

    # ----------------------------------------------------------------- public API
    @property
    def frame(self) -> Frame | None:
        """The frame shown now."""
        return self._frame

    @property
    def view(self) -> LadderView | None:
        """The visible rows as arrays (computed when a frame or the view changes)."""
        if self._dirty or self._view is None:
            self._view = self._compute_view()
        return self._view

    @property
    def group(self) -> int:
        """Ticks per ladder row."""
        return self._group

    @property
    def centre_tick(self) -> int | None:
        """Price (row start) at the middle row, None before the first frame."""
        return self._centre_tick

    @property
    def auto_centre(self) -> bool:
        """Whether the ladder follows the market."""
        return self._auto_centre

    @property
    def stale(self) -> bool:
        """True when the frame shown is not from a live, synced feed (or there is none)."""
        if self._feed_state not in LIVE_STATES:
            return True
        return self._frame is None or self._frame.state not in LIVE_STATES

    @property
    def stale_reason(self) -> str:
        """The state that makes the ladder stale ('' when live)."""
        if self._feed_state not in LIVE_STATES:
            return self._feed_state
        if self._frame is not None and self._frame.state not in LIVE_STATES:
            return self._frame.state
        return ""

    @property
    def catching_up(self) -> bool:
        """Whether the desk is catching up with a burst (flashes hold still, only frames repaint)."""
        return self._catching_up

    @property
    def flash_animating(self) -> bool:
        """Whether the flash animation's clock runs."""
        return self._flash_timer.isActive()

    def set_catching_up(self, on: bool) -> None:
        """Catching up with a burst: stop the flash animation (its ~30 repaints a second take the GIL the
        engine needs); flashes still pending show steady on frame paints and animate again afterwards."""
        if on == self._catching_up:
            return
        self._catching_up = on
        now = time.monotonic()
        if on:
            self._flash_timer.stop()
            for tick, (_start, until) in self._alert_flashes.items():
                if until > now:
                    self._held_flashes[tick] = until - now
            self._alert_flashes.clear()
            return
        for tick, left in self._held_flashes.items():
            self._alert_flashes[tick] = (now, now + left)
        self._held_flashes.clear()
        if self._alert_flashes or (self._trade_flash is not None and self._trade_flash[2] > now):
            self._flash_timer.start()
        self.update()

    def set_feed_state(self, state: str) -> None:
        """The feed's state from a status event; anything but live/replay shows STALE at once."""
        if state != self._feed_state:
            self._feed_state = state
            self._invalidate()

    @property
    def row_count(self) -> int:
        """Visible price rows."""
        return self._rows

    def set_palette_theme(self, palette: Palette) -> None:
        """Repaint in another theme."""
        self._palette = palette
        self._invalidate()

    def set_frame(self, frame: Frame) -> None:
        """Show a frame; a frame with the version already shown is ignored (no repaint)."""
        if self._frame is not None and frame is self._frame:
            return
        if (
            self._frame is not None
            and frame.version == self._frame.version
            and frame.state == self._frame.state
            and frame.instrument == self._frame.instrument
        ):
            return
        if self._frame is None or frame.instrument != self._frame.instrument:
            self._centre_tick = None
            self._alert_flashes.clear()
            self._held_flashes.clear()
        self._frame = frame
        self._note_last_trade(frame)
        if self._auto_centre or self._centre_tick is None:
            self._follow_market()
        self._invalidate()

    def set_group(self, group: int) -> None:
        """Set ticks per row (one of :data:`TICK_GROUPS`)."""
        if group not in TICK_GROUPS:
            raise ValueError(f"tick group must be one of {TICK_GROUPS}, got {group}")
        if group == self._group:
            return
        self._group = group
        if self._centre_tick is not None:
            self._centre_tick = (self._centre_tick // group) * group
        if self._auto_centre:
            self._centre_tick = None
            self._follow_market()
        self.group_changed.emit(group)
        self._invalidate()

    def group_coarser(self) -> None:
        """Next larger tick grouping."""
        i = TICK_GROUPS.index(self._group)
        self.set_group(TICK_GROUPS[min(i + 1, len(TICK_GROUPS) - 1)])

    def group_finer(self) -> None:
        """Next smaller tick grouping."""
        i = TICK_GROUPS.index(self._group)
        self.set_group(TICK_GROUPS[max(i - 1, 0)])

    def set_auto_centre(self, on: bool) -> None:
        """Follow the market (re-centre when it leaves the middle band) or stay where scrolled."""
        if on == self._auto_centre:
            return
        self._auto_centre = on
        if on:
            self._centre_tick = None
            self._follow_market()
            self._invalidate()
        self.auto_centre_changed.emit(on)

    def centre_now(self) -> None:
        """Put the market in the middle once (keeps the auto-centre setting)."""
        self._centre_tick = None
        self._follow_market()
        self._invalidate()

    def scroll_rows(self, rows: int) -> None:
        """Scroll by rows (positive = up to higher prices); turns auto-centre off."""
        if self._centre_tick is None:
            return
        self.set_auto_centre(False)
        self._centre_tick += rows * self._group
        self._invalidate()

    def jump_to(self, tick: int) -> None:
        """Centre the ladder on a price (e.g. from an alert) and stop following the market."""
        self.set_auto_centre(False)
        self._centre_tick = (tick // self._group) * self._group
        self._invalidate()

    def set_large_size(self, size: float | None) -> None:
        """Highlight levels at least this large; None = a multiple of the median visible level."""
        if size is not None and not size > 0:
            raise ValueError(f"large order size must be positive, got {size}")
        self._large_size = size
        self._invalidate()

    def flash_price(self, tick: int, seconds: float = ALERT_FLASH_S) -> None:
        """Flash a row (an alert fired there); while catching up it shows steady with the next frame and
        blinks once the desk caught up."""
        row_tick = (tick // self._group) * self._group
        if self._catching_up:
            self._held_flashes[row_tick] = max(seconds, self._held_flashes.get(row_tick, 0.0))
            return
        now = time.monotonic()
        self._alert_flashes[row_tick] = (now, now + seconds)
        self._flash_timer.start()
        self.update()

    def tick_at(self, y: int) -> int | None:
        """The price tick of the row under a y pixel, or None (header, no data)."""
        view = self.view
        if view is None or y < self._header_h:
            return None
        row = (y - self._header_h) // self._row_h
        return int(view.ticks[row]) if 0 <= row < len(view.ticks) else None

    def cell_rect(self, row: int, column: str) -> QRect:
        """Pixel rectangle of a cell (row 0 = top price row)."""
        x0, x1 = self._col_x[column]
        return QRect(x0, self._header_h + row * self._row_h, x1 - x0, self._row_h)

    # ----------------------------------------------------------------- model
    def _follow_market(self) -> None:
        frame = self._frame
        if frame is None:
            return
        mid = frame.mid_tick
        if mid is None:
            anchor = frame.last_trade_tick if frame.last_trade_tick != NO_PRICE else None
            if anchor is None and len(frame.ladder_ticks):
                anchor = int(frame.ladder_ticks[len(frame.ladder_ticks) // 2])
            if anchor is None:
                return
            mid = float(anchor)
        target = (int(mid) // self._group) * self._group
        if self._centre_tick is None:
            self._centre_tick = target
            return
        band = max(1, int(self._rows * RECENTRE_BAND)) * self._group
        if abs(target - self._centre_tick) > band:
            self._centre_tick = target

    def _compute_view(self) -> LadderView | None:
        frame = self._frame
        if frame is None or self._centre_tick is None:
            return None
        n, g = self._rows, self._group
        top = self._centre_tick + (n // 2) * g
        ticks = top - np.arange(n, dtype=np.int64) * g
        zeros = np.zeros(n)
        out = {k: zeros.copy() for k in ("bid", "ask", "sold", "bought", "change", "cum")}
        if len(frame.ladder_ticks):
            lt, bid, ask, buy, sell, chg = group_ladder(
                frame.ladder_ticks, g, frame.ladder_bid, frame.ladder_ask, frame.ladder_traded_buy,
                frame.ladder_traded_sell, frame.ladder_size_change,
            )
            # Cumulative depth runs away from the touch: bids downwards, asks upwards.
            cum_bid = np.cumsum(bid)
            cum_ask = np.cumsum(ask[::-1])[::-1]
            pos = (top - lt) // g
            ok = (pos >= 0) & (pos < n)
            p = pos[ok]
            out["bid"][p] = bid[ok]
            out["ask"][p] = ask[ok]
            out["bought"][p] = buy[ok] if len(buy) else 0
            out["sold"][p] = sell[ok] if len(sell) else 0
            out["change"][p] = chg[ok] if len(chg) else 0
            cum = np.where(ask > 0, cum_ask, np.where(bid > 0, cum_bid, 0.0))
            out["cum"][p] = cum[ok]
        threshold = self._large_threshold(out["bid"], out["ask"])
        large_bid = out["bid"] >= threshold
        large_ask = out["ask"] >= threshold
        gap = np.zeros(n, dtype=bool)
        markers = [""] * n
        for det in frame.detections:
            row = (top - (det.price_tick // g) * g) // g
            if det.kind == "liquidity_gap" and det.price_far_tick is not None:
                lo, hi = sorted((det.price_tick, det.price_far_tick))
                gap |= (ticks + g - 1 >= lo) & (ticks <= hi)
                det = replace(det, evidence={**det.evidence, "ticks": hi - lo + 1})
            if not 0 <= row < n:
                continue
            if det.kind == "large_order":
                (large_bid if det.side == BID else large_ask)[row] = True
            text = _marker_text(det.kind, det.evidence)
            if text:
                markers[row] = f"{markers[row]} {text}".strip()
        return LadderView(
            ticks=ticks, bid=out["bid"], ask=out["ask"], sold=out["sold"], bought=out["bought"],
            change=out["change"], cum=out["cum"], large_bid=large_bid, large_ask=large_ask, gap=gap,
            markers=tuple(markers),
        )

    def _large_threshold(self, bid: np.ndarray, ask: np.ndarray) -> float:
        if self._large_size is not None:
            return self._large_size
        sizes = np.concatenate([bid[bid > 0], ask[ask > 0]])
        if len(sizes) < 4:
            return np.inf
        return float(np.median(sizes)) * LARGE_MEDIAN_MULTIPLE

    def _note_last_trade(self, frame: Frame) -> None:
        if frame.last_trade_tick == NO_PRICE:
            return
        key = (frame.last_trade_tick, len(frame.trades) and int(frame.trades["exch_ts"][-1]))
        if key != self._last_trade_key:
            self._last_trade_key = key
            self._trade_flash = (frame.last_trade_tick, frame.last_trade_side, time.monotonic() + TRADE_FLASH_S)
            if not self._catching_up:
                self._flash_timer.start()

    # ----------------------------------------------------------------- geometry
    def _relayout(self) -> None:
        fm = QFontMetrics(self._font)
        self._row_h = fm.height() + 5
        self._header_h = fm.height() + 8
        self._rows = max(3, (self.height() - self._header_h) // self._row_h)
        width = self.width()
        self._col_x: dict[str, tuple[int, int]] = {}
        x = 0.0
        for key, _title, share in COLUMNS:
            x0 = int(round(x))
            x += share * width
            self._col_x[key] = (x0, int(round(x)) if key != "signals" else width)

    def _invalidate(self) -> None:
        self._dirty = True
        self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        self._relayout()
        self._cache = None
        if self._auto_centre:
            self._follow_market()
        self._dirty = True
        super().resizeEvent(event)

    # ----------------------------------------------------------------- painting
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        ratio = self.devicePixelRatioF()
        if self._cache is None or self._cache.size() != self.size() * ratio:
            self._cache = QPixmap(self.size() * ratio)
            self._cache.setDevicePixelRatio(ratio)
            self._dirty = True
        if self._dirty:
            self._view = self._compute_view()
            self._render(self._cache)
            self._dirty = False
            self.paint_count += 1
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._cache)
        self._paint_overlays(painter)
        painter.end()
        if not self._catching_up and self._flash_alive(time.monotonic()):
            self._flash_timer.start()  # re-arm: the fade moves on with the next paint, whoever asks for it

    def _render(self, target: QPixmap) -> None:
        p = self._palette
        painter = QPainter(target)
        painter.fillRect(0, 0, self.width(), self.height(), p.q("panel"))
        self._paint_header(painter)
        view = self._view
        frame = self._frame
        if view is None or frame is None:
            painter.setPen(p.q("text_dim"))
            painter.setFont(self._font)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "waiting for data…")
            painter.end()
            return
        self._paint_rows(painter, view, frame)
        if self.stale:
            self._paint_stale(painter, self.stale_reason)
        painter.end()

    def _paint_header(self, painter: QPainter) -> None:
        p = self._palette
        painter.fillRect(0, 0, self.width(), self._header_h, p.q("panel_alt"))
        painter.setFont(self._header_font)
        painter.setPen(p.q("text_dim"))
        for key, title, _ in COLUMNS:
            x0, x1 = self._col_x[key]
            if key == "price" and self._group > 1:
                title = f"Price ×{self._group}"
            painter.drawText(QRect(x0, 0, x1 - x0, self._header_h), Qt.AlignmentFlag.AlignCenter, title)
        painter.setPen(p.q("grid"))
        painter.drawLine(0, self._header_h - 1, self.width(), self._header_h - 1)

    def _colour(self, key: str, alpha: int | None = None) -> QColor:
        """Palette colours as QColor, made once per theme (painting asks for hundreds per frame)."""
        cache_key = (self._palette.name, key, alpha)
        colour = self._colour_cache.get(cache_key)
        if colour is None:
            colour = self._colour_cache[cache_key] = self._palette.q(key, alpha)
        return colour

    def _paint_rows(self, painter: QPainter, view: LadderView, frame: Frame) -> None:
        # Two passes with as few Qt calls as possible: every call may hand the GIL to the engine
        # thread, so rectangles are batched per colour and texts grouped per pen/font.
        rh, top_y, width = self._row_h, self._header_h, self.width()
        inst = frame.instrument
        g = self._group
        best_bid, best_ask = frame.best_bid_tick, frame.best_ask_tick
        bb_row = view.row_of(best_bid) if best_bid != NO_PRICE else None
        ba_row = view.row_of(best_ask) if best_ask != NO_PRICE else None
        touch_rows = (bb_row, ba_row)
        vis_max = _bar_scale(view.bid, view.ask)
        traded_max = float(max(view.sold.max(initial=0.0), view.bought.max(initial=0.0))) or 1.0
        cum_max = float(view.cum.max(initial=0.0)) or 1.0
        align_l, align_r, align_c = LEFT, RIGHT, CENTRE
        cx = self._col_x
        fills: dict[tuple[str, int | None], list[QRect]] = defaultdict(list)
        texts: list[tuple[tuple[str, int | None], bool, QRect, int, str]] = []
        outlines: list[QRect] = []
        lo_spread = ba_row + 1 if ba_row is not None else None
        hi_spread = bb_row - 1 if bb_row is not None else None
        spread_label_row = (
            (lo_spread + hi_spread) // 2
            if lo_spread is not None and hi_spread is not None and hi_spread >= lo_spread
            else None
        )
        px0, px1 = cx["price"]
        ticks = view.ticks.tolist()
        bids, asks = view.bid.tolist(), view.ask.tolist()
        solds, boughts = view.sold.tolist(), view.bought.tolist()
        cums, changes = view.cum.tolist(), view.change.tolist()
        large_bid, large_ask, gaps = view.large_bid.tolist(), view.large_ask.tolist(), view.gap.tolist()
        two_sided = best_bid != NO_PRICE and best_ask != NO_PRICE
        for i, tick in enumerate(ticks):
            y = top_y + i * rh
            in_spread = two_sided and best_bid < tick and tick + g - 1 < best_ask
            if gaps[i]:
                fills[("gap", None)].append(QRect(0, y, width, rh))
            elif in_spread:
                fills[("grid", None)].append(QRect(0, y, width, rh))
            elif i % 2:
                fills[("panel_alt", None)].append(QRect(0, y, width, rh))
            if i == bb_row:
                fills[("bid_best", None)].append(QRect(px0, y, px1 - px0, rh))
            elif i == ba_row:
                fills[("ask_best", None)].append(QRect(px0, y, px1 - px0, rh))
            elif not in_spread:
                fills[("price_bg", None)].append(QRect(px0, y, px1 - px0, rh))
            bid, ask = bids[i], asks[i]
            is_touch = i in touch_rows
            if i != spread_label_row:
                pen = ("text", None) if (bid > 0 or ask > 0 or is_touch) else ("text_dim", None)
                texts.append((pen, is_touch, QRect(px0, y, px1 - px0, rh), align_c, self._price_text(inst, tick)))
            for side_key, size, bar, large in (
                ("bid", bid, "bid_bar", large_bid[i]),
                ("ask", ask, "ask_bar", large_ask[i]),
            ):
                if size <= 0:
                    continue
                c0, c1 = cx[side_key]
                w = max(1, int((c1 - c0 - 4) * min(1.0, size / vis_max)))
                bx = c1 - 2 - w if side_key == "bid" else c0 + 2
                fills[(bar, None)].append(QRect(bx, y + 2, w, rh - 4))
                if large:
                    fills[("large", 50)].append(QRect(c0 + 1, y + 1, c1 - c0 - 2, rh - 2))
                    outlines.append(QRect(c0 + 1, y + 1, c1 - c0 - 3, rh - 3))
                    pen = ("large", None)
                else:
                    pen = ("text", None)
                texts.append((pen, large or is_touch, QRect(c0 + 5, y, c1 - c0 - 10, rh),
                              align_r if side_key == "bid" else align_l, fmt.qty(size)))
            for key, vol, colour in (("sold", solds[i], "sell"), ("bought", boughts[i], "buy")):
                if vol <= 0:
                    continue
                c0, c1 = cx[key]
                w = max(1, int((c1 - c0 - 4) * min(1.0, vol / traded_max)))
                bx = c1 - 2 - w if key == "sold" else c0 + 2
                fills[(colour, 60)].append(QRect(bx, y + 3, w, rh - 6))
                texts.append(((colour, None), False, QRect(c0 + 4, y, c1 - c0 - 8, rh), align_c, fmt.qty(vol)))
            cum = cums[i]
            if cum > 0:
                c0, c1 = cx["cum"]
                w = max(1, int((c1 - c0 - 4) * min(1.0, cum / cum_max)))
                fills[("ask" if ask > 0 else "bid", 38)].append(QRect(c1 - 2 - w, y + 3, w, rh - 6))
                texts.append((("text_dim", None), False, QRect(c0 + 4, y, c1 - c0 - 8, rh), align_r, fmt.qty(cum)))
            chg = changes[i]
            if chg:
                c0, c1 = cx["change"]
                texts.append(((("stack" if chg > 0 else "pull"), None), False, QRect(c0 + 4, y, c1 - c0 - 8, rh),
                              align_r, fmt.signed_qty(chg)))
            marker = view.markers[i]
            if marker:
                c0, c1 = cx["signals"]
                colour = "iceberg" if "ICE" in marker else "absorption"
                if marker.startswith(("LARGE", "PULL", "STACK")):
                    colour = "large"
                elif marker.startswith("GAP"):
                    colour = "stale"
                fills[(colour, None)].append(QRect(c0 + 2, y + 3, 3, rh - 6))
                texts.append(((colour, None), False, QRect(c0 + 8, y, c1 - c0 - 10, rh), align_l, marker))
        if spread_label_row is not None:
            y = top_y + spread_label_row * rh
            texts.append((("text_dim", None), False, QRect(px0, y, px1 - px0, rh), align_c,
                          f"spread {best_ask - best_bid}t"))
        # pass 1: rectangles, one call per colour (drawing order: backgrounds under bars)
        painter.setPen(Qt.PenStyle.NoPen)
        for key in sorted(fills, key=_fill_order):
            painter.setBrush(self._colour(*key))
            painter.drawRects(fills[key])
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if outlines:
            painter.setPen(QPen(self._colour("large"), 2))
            painter.drawRects(outlines)
        # column separators and the touch lines
        bottom = top_y + len(ticks) * rh
        painter.setPen(self._colour("grid"))
        painter.drawLines([QLine(cx[k][0], top_y, cx[k][0], bottom)
                           for k in ("change", "sold", "bid", "price", "ask", "bought", "signals")])
        if bb_row is not None:
            painter.setPen(self._colour("bid"))
            painter.drawLine(0, top_y + bb_row * rh, width, top_y + bb_row * rh)
        if ba_row is not None:
            painter.setPen(self._colour("ask"))
            painter.drawLine(0, top_y + (ba_row + 1) * rh - 1, width, top_y + (ba_row + 1) * rh - 1)
        # pass 2: texts grouped by pen and font
        texts.sort(key=lambda t: (t[0][0], t[1]))
        current: tuple[Any, bool] | None = None
        draw = self._texts.draw
        for pen, bold, rect, align, text in texts:
            if (pen, bold) != current:
                painter.setPen(self._colour(*pen))
                painter.setFont(self._bold if bold else self._font)
                current = (pen, bold)
            draw(painter, rect, align, text, bold)

    def _price_text(self, inst: Instrument, tick: int) -> str:
        """Formatted price, memoised: the same prices are drawn every frame."""
        key = (inst.tick_size, tick)
        text = self._price_cache.get(key)
        if text is None:
            if len(self._price_cache) > 20_000:
                self._price_cache.clear()
            text = self._price_cache[key] = inst.format_price(tick)
        return text

    def _paint_stale(self, painter: QPainter, state: str) -> None:
        p = self._palette
        painter.fillRect(0, self._header_h, self.width(), self.height(), QColor(0, 0, 0, 110))
        banner_h = self._row_h * 2
        y = self._header_h + 4
        painter.fillRect(0, y, self.width(), banner_h, p.q("stale", 230))
        painter.setPen(QColor("#111111"))
        font = QFont(self._bold)
        font.setPointSizeF(font.pointSizeF() + 2)
        painter.setFont(font)
        painter.drawText(
            QRect(0, y, self.width(), banner_h), Qt.AlignmentFlag.AlignCenter, f"STALE — feed {state.upper()}"
        )
        pen = QPen(p.q("stale"), 3)
        painter.setPen(pen)
        painter.drawRect(1, 1, self.width() - 3, self.height() - 3)

    def _paint_overlays(self, painter: QPainter) -> None:
        view = self._view
        if view is None:
            return
        p = self._palette
        now = time.monotonic()
        rh = self._row_h
        if self._trade_flash is not None:
            tick, side, until = self._trade_flash
            row = view.row_of(tick)
            if row is not None:
                x0, x1 = self._col_x["price"]
                alpha = int(255 * max(0.25, min(1.0, (until - now) / TRADE_FLASH_S))) if until > now else 90
                colour = p.q("buy" if side >= 0 else "sell", alpha)
                painter.setPen(QPen(colour, 2))
                painter.drawRect(x0 + 1, self._header_h + row * rh + 1, x1 - x0 - 3, rh - 3)
        for tick, (start, until) in list(self._alert_flashes.items()):
            if until <= now:
                del self._alert_flashes[tick]
                continue
            row = view.row_of(tick)
            if row is None:
                continue
            # blink twice a second so a fired alert is seen in the corner of an eye
            if int((now - start) * 4) % 2 == 0:
                painter.fillRect(0, self._header_h + row * rh, self.width(), rh, p.q("alert", 110))
        for tick in self._held_flashes:  # catching up: steady, the blinking waits until it caught up
            row = view.row_of(tick)
            if row is not None:
                painter.fillRect(0, self._header_h + row * rh, self.width(), rh, p.q("alert", 110))
        if self._hover_row is not None and self._hover_row < len(view.ticks):
            painter.setPen(QPen(p.q("accent", 160), 1))
            y = self._header_h + self._hover_row * rh
            painter.drawRect(0, y, self.width() - 1, rh - 1)

    def _flash_alive(self, now: float) -> bool:
        if self._trade_flash is not None and self._trade_flash[2] > now:
            return True
        return any(until > now for _start, until in self._alert_flashes.values())

    def _on_flash_tick(self) -> None:
        """No paint for a tick while a flash lives (or it just ended): repaint its next step (or its end)."""
        if self._catching_up:
            return
        if not self._flash_alive(time.monotonic()):
            self._alert_flashes.clear()
        self.flash_paints += 1
        self.update()

    # ----------------------------------------------------------------- input
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton:
            tick = self.tick_at(int(event.position().y()))
            if tick is not None:
                self.price_clicked.emit(tick)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        y = int(event.position().y())
        row = (y - self._header_h) // self._row_h if y >= self._header_h else None
        if row != self._hover_row:
            self._hover_row = row
            self.update()
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        self._hover_row = None
        self.update()
        super().leaveEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() // 120
        if steps:
            self.scroll_rows(int(steps) * 3)
        event.accept()

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 - Qt override
        menu = self.build_context_menu(event.pos())
        if menu is not None:
            menu.exec(event.globalPos())

    def build_context_menu(self, pos: QPoint) -> QMenu | None:
        """The right-click menu for the row under ``pos`` (exposed so tests can trigger its actions)."""
        tick = self.tick_at(pos.y())
        view = self.view
        if tick is None or view is None or self._frame is None:
            return None
        row = view.row_of(tick)
        assert row is not None
        price = self._frame.instrument.format_price(tick)
        menu = QMenu(self)
        act = QAction(f"Alert when price trades at {price}", menu)
        act.triggered.connect(lambda: self.price_clicked.emit(tick))
        menu.addAction(act)
        for side, size, name in ((BID, float(view.bid[row]), "bid"), (ASK, float(view.ask[row]), "ask")):
            if size > 0:
                a = QAction(f"Alert on size at this level ({name} {fmt.qty(size)} @ {price})", menu)
                a.triggered.connect(lambda _=False, s=side, q=size: self.size_alert_requested.emit(tick, s, q))
                menu.addAction(a)
        if view.bid[row] <= 0 and view.ask[row] <= 0:
            a = QAction(f"Alert on size at this level (@ {price})", menu)
            side = BID if (self._frame.mid_tick or tick) > tick else ASK
            a.triggered.connect(lambda: self.size_alert_requested.emit(tick, side, 0.0))
            menu.addAction(a)
        menu.addSeparator()
        centre = QAction("Centre here", menu)
        centre.triggered.connect(lambda: self.jump_to(tick))
        menu.addAction(centre)
        follow = QAction("Auto-centre", menu, checkable=True, checked=self._auto_centre)
        follow.toggled.connect(self.set_auto_centre)
        menu.addAction(follow)
        return menu


class StaticTextCache:
    """Laid-out texts reused across frames (prices and sizes repeat): about twice as fast as drawText."""

    MAX_ENTRIES = 8000

    def __init__(self, font: QFont, bold: QFont) -> None:
        self._fonts = (font, bold)
        # oldest-first eviction, one entry per new text: clearing thousands at once freed their C++ objects
        # in one go, a 200-300 ms stall of the GUI thread after a burst (when sizes change the most)
        self._cache: OrderedDict[tuple[str, bool], tuple[QStaticText, float, float]] = OrderedDict()

    def draw(self, painter: QPainter, rect: QRect, align: int, text: str, bold: bool = False) -> None:
        """Draw ``text`` in ``rect``, ``align`` LEFT/RIGHT/CENTRE (ints: Qt enum arithmetic is slow), v-centred."""
        entry = self._cache.get((text, bold))
        if entry is None:
            if len(self._cache) >= self.MAX_ENTRIES:
                self._cache.popitem(last=False)
            static = QStaticText(text)
            static.setTextFormat(Qt.TextFormat.PlainText)
            static.prepare(font=self._fonts[bold])
            size = static.size()
            entry = self._cache[(text, bold)] = (static, size.width(), size.height())
        static, w, h = entry
        if align == RIGHT:
            x = rect.x() + rect.width() - w
        elif align == LEFT:
            x = rect.x()
        else:
            x = rect.x() + (rect.width() - w) / 2
        painter.drawStaticText(QPointF(x, rect.y() + (rect.height() - h) / 2), static)


def _marker_text(kind: str, evidence: dict) -> str:
    """Short label of a detection for the Signals column (hidden size estimate for icebergs)."""
    if kind == "iceberg":
        hidden = evidence.get("hidden") or evidence.get("hidden_estimate")
        return f"ICE ~{fmt.qty(float(hidden))}" if hidden else "ICE"
    if kind == "absorption":
        vol = evidence.get("absorbed") or evidence.get("volume") or evidence.get("executed")
        return f"ABS {fmt.qty(float(vol))}" if vol else "ABS"
    if kind == "large_order":
        size = evidence.get("size") or evidence.get("visible")
        return f"LARGE {fmt.qty(float(size))}" if size else "LARGE"
    if kind in ("pull", "stack"):
        return kind.upper()
    if kind == "sweep":
        return "SWEEP"
    if kind == "liquidity_gap":
        return f"GAP {evidence.get('ticks', '')}t".replace(" t", "")
    return ""


# backgrounds first, then bars, then marks on top
_FILL_LAYERS = {"gap": 0, "grid": 0, "panel_alt": 0, "price_bg": 1, "bid_best": 1, "ask_best": 1, "large": 3}


def _fill_order(key: tuple[str, int | None]) -> tuple[int, str, int]:
    name, alpha = key
    layer = _FILL_LAYERS.get(name, 2)
    if name == "large" and alpha is None:
        layer = 4  # marker stripe
    return (layer, name, alpha or 0)


def _bar_scale(bid: np.ndarray, ask: np.ndarray) -> float:
    """Size that fills a bar: a high quantile, so one wall saturates instead of flattening every other bar."""
    sizes = np.concatenate([bid[bid > 0], ask[ask > 0]])
    if len(sizes) == 0:
        return 1.0
    if len(sizes) < 8:
        return float(sizes.max())
    return float(np.quantile(sizes, 0.9)) * 1.25
