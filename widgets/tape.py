"""Time & sales: reconstructed aggressor prints (same time + side = one print), newest on top."""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
from PySide6.QtCore import QRect, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontMetrics, QMouseEvent, QPainter, QPaintEvent, QPixmap
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.core.events import BUY_EVENT, KIND_MASK, LIQUIDATION_EVENT, TRADE_EVENT
from app.core.frame import Frame
from app.core.instrument import Instrument
from widgets import fmt
from widgets.ladder import LEFT, RIGHT, StaticTextCache
from widgets.theme import DARK, Palette, mono_font

PRINT_DTYPE = np.dtype(
    [
        ("exch_ts", "<i8"),
        ("side", "<i1"),  # +1 aggressive buy, -1 aggressive sell
        ("qty", "<f8"),
        ("first_tick", "<i8"),
        ("last_tick", "<i8"),  # the worst price the aggressor reached
        ("fills", "<i4"),
        ("levels", "<i4"),
        ("liquidation", "?"),
    ]
)
MAX_PRINTS = 2000


def merge_prints(rows: np.ndarray) -> np.ndarray:
    """Trade/liquidation event rows -> prints: consecutive fills with the same exch_ts and side merge."""
    kinds = rows["ev"] & KIND_MASK
    rows = rows[(kinds == TRADE_EVENT) | (kinds == LIQUIDATION_EVENT)]
    if len(rows) == 0:
        return np.zeros(0, PRINT_DTYPE)
    side = np.where(rows["ev"] & BUY_EVENT, 1, -1).astype(np.int8)
    liq = (rows["ev"] & KIND_MASK) == LIQUIDATION_EVENT
    ts = rows["exch_ts"]
    starts = np.flatnonzero(np.r_[True, (ts[1:] != ts[:-1]) | (side[1:] != side[:-1]) | (liq[1:] != liq[:-1])])
    ends = np.r_[starts[1:], len(rows)] - 1
    out = np.zeros(len(starts), PRINT_DTYPE)
    out["exch_ts"] = ts[starts]
    out["side"] = side[starts]
    out["qty"] = np.add.reduceat(rows["qty"], starts)
    out["first_tick"] = rows["ival"][starts]
    out["last_tick"] = rows["ival"][ends]
    out["fills"] = ends - starts + 1
    ticks = rows["ival"]
    change = np.r_[True, ticks[1:] != ticks[:-1]]
    change[starts] = True
    out["levels"] = np.add.reduceat(change.astype(np.int32), starts)
    out["liquidation"] = liq[starts]
    return out


class TimeAndSalesWidget(QWidget):
    """The tape: merged prints coloured by side, a size filter, big prints emphasised, liquidations marked."""

    print_clicked = Signal("qint64")  # price tick of the clicked print

    def __init__(self, parent: QWidget | None = None, palette: Palette = DARK) -> None:
        super().__init__(parent)
        self._palette = palette
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        controls = QHBoxLayout()
        controls.setContentsMargins(4, 2, 4, 2)
        self.min_size = QDoubleSpinBox(decimals=2, maximum=1e12, singleStep=1.0, toolTip="hide prints smaller")
        self.big_size = QDoubleSpinBox(decimals=2, maximum=1e12, singleStep=10.0, toolTip="emphasise prints from")
        self.min_size.setSpecialValueText("all")
        self.big_size.setSpecialValueText("auto")
        for spin in (self.min_size, self.big_size):
            spin.setMinimumWidth(64)  # room for the value, not for the 1e12 maximum: the dock stays narrow
        controls.addWidget(QLabel("Min size"))
        controls.addWidget(self.min_size, 1)
        controls.addWidget(QLabel("Big from"))
        controls.addWidget(self.big_size, 1)
        layout.addLayout(controls)
        self.list = _TapeList(self)
        layout.addWidget(self.list, 1)
        self._prints = np.zeros(0, PRINT_DTYPE)
        self._instrument: Instrument | None = None
        self._last_key: tuple[int, int, int] | None = None
        self.min_size.valueChanged.connect(self.list.invalidate)
        self.big_size.valueChanged.connect(self.list.invalidate)

    @property
    def prints(self) -> np.ndarray:
        """Every print kept, oldest first (PRINT_DTYPE)."""
        return self._prints

    def visible_prints(self) -> np.ndarray:
        """Prints passing the size filter, newest first."""
        shown = self._prints[self._prints["qty"] >= self.min_size.value()]
        return shown[::-1]

    def big_threshold(self) -> float:
        """Size from which a print is emphasised: the user's, or ~the 95th percentile of recent prints."""
        if self.big_size.value() > 0:
            return self.big_size.value()
        recent = self._prints["qty"][-500:]
        return float(np.quantile(recent, 0.95)) if len(recent) >= 20 else np.inf

    def set_palette_theme(self, palette: Palette) -> None:
        """Repaint in another theme."""
        self._palette = palette
        self.list.invalidate()

    def set_filter(self, min_size: float, big_size: float = 0.0) -> None:
        """Set the size filter and the big-print size (0 = automatic)."""
        self.min_size.setValue(min_size)
        self.big_size.setValue(big_size)

    def clear(self) -> None:
        """Forget every print (symbol switch, replay seek)."""
        self._prints = np.zeros(0, PRINT_DTYPE)
        self._last_key = None
        self.list.invalidate()

    def set_frame(self, frame: Frame) -> None:
        """Take the frame's new trade rows (those after the last one seen) into the tape."""
        if frame.instrument != self._instrument:
            self.clear()
            self._instrument = frame.instrument
        rows = frame.trades
        if len(rows) == 0 or rows.dtype.names is None:
            return
        start = 0
        if self._last_key is not None:
            start = _index_after(rows, self._last_key)
        new = rows[start:]
        if len(new) == 0:
            return
        last = new[-1]
        self._last_key = (int(last["local_ts"]), int(last["exch_ts"]), int(last["order_id"]))
        merged = merge_prints(new)
        if len(merged) == 0:
            return
        prev = self._prints
        if len(prev) and _same_print(prev[-1], merged[0]):
            # a sweep split across two frames is still one aggressor
            joined = prev[-1].copy()
            joined["qty"] += merged[0]["qty"]
            joined["fills"] += merged[0]["fills"]
            joined["levels"] += int(merged[0]["first_tick"] != joined["last_tick"]) + merged[0]["levels"] - 1
            joined["last_tick"] = merged[0]["last_tick"]
            prev = prev.copy()
            prev[-1] = joined
            merged = merged[1:]
        self._prints = np.concatenate([prev, merged])[-MAX_PRINTS:]
        self.list.invalidate()


def _same_print(a: np.void, b: np.void) -> bool:
    return bool(a["exch_ts"] == b["exch_ts"] and a["side"] == b["side"] and a["liquidation"] == b["liquidation"])


def _index_after(rows: np.ndarray, key: tuple[int, int, int]) -> int:
    """Index just after the row with ``key`` (local_ts, exch_ts, id); rows newer by time when not found."""
    local_ts, exch_ts, order_id = key
    hits = np.flatnonzero(
        (rows["local_ts"] == local_ts) & (rows["exch_ts"] == exch_ts) & (rows["order_id"] == np.uint64(order_id))
    )
    if len(hits):
        return int(hits[-1]) + 1
    # the row fell out of the frame's window: everything strictly newer is new
    return int(np.searchsorted(rows["local_ts"], local_ts, side="right"))


class _TapeList(QWidget):
    """The painted list of prints (cached; rebuilt when prints, filter, size or theme change)."""

    MAX_HZ = 25.0
    COLUMNS = (("Time", 0.34), ("Price", 0.26), ("Size", 0.22), ("", 0.18))

    def __init__(self, tape: TimeAndSalesWidget) -> None:
        super().__init__(tape)
        self._tape = tape
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._font = mono_font(9.0)
        self._bold = QFont(self._font)
        self._bold.setBold(True)
        self._texts = StaticTextCache(self._font, self._bold)
        fm = QFontMetrics(self._font)
        self.row_h = fm.height() + 3
        self.header_h = fm.height() + 6
        self._cache: QPixmap | None = None
        self._dirty = True
        self._last_render = 0.0
        self._later = QTimer(self, singleShot=True)
        self._later.timeout.connect(self.update)
        self._shown = np.zeros(0, PRINT_DTYPE)

    def invalidate(self) -> None:
        """Rebuild on the next paint, at most MAX_HZ times a second (nobody reads a tape at 60 Hz)."""
        self._dirty = True
        wait_ms = int((self._last_render + 1.0 / self.MAX_HZ - time.monotonic()) * 1000)
        if wait_ms <= 0:
            self.update()
        elif not self._later.isActive():
            self._later.start(wait_ms)

    def resizeEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt override
        self._dirty = True
        super().resizeEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        row = (int(event.position().y()) - self.header_h) // self.row_h
        if event.position().y() >= self.header_h and 0 <= row < len(self._shown):
            self._tape.print_clicked.emit(int(self._shown[row]["last_tick"]))
        super().mousePressEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        ratio = self.devicePixelRatioF()
        if self._cache is None or self._cache.size() != self.size() * ratio:
            self._cache = QPixmap(self.size() * ratio)
            self._cache.setDevicePixelRatio(ratio)
            self._dirty = True
        if self._dirty:
            self._render(self._cache)
            self._dirty = False
            self._last_render = time.monotonic()
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._cache)
        painter.end()

    def _render(self, target: QPixmap) -> None:
        tape, p = self._tape, self._tape._palette
        painter = QPainter(target)
        w, h = self.width(), self.height()
        painter.fillRect(0, 0, w, h, p.q("panel"))
        painter.fillRect(0, 0, w, self.header_h, p.q("panel_alt"))
        xs = [0]
        for _, share in self.COLUMNS:
            xs.append(xs[-1] + int(share * w))
        xs[-1] = w
        header_font = QFont(self._font)
        header_font.setPointSizeF(8.0)
        painter.setFont(header_font)
        painter.setPen(p.q("text_dim"))
        for i, (title, _) in enumerate(self.COLUMNS):
            painter.drawText(QRect(xs[i] + 4, 0, xs[i + 1] - xs[i] - 8, self.header_h), Qt.AlignmentFlag.AlignCenter,
                             title)
        rows = max(0, (h - self.header_h) // self.row_h)
        shown = tape.visible_prints()[:rows]
        self._shown = shown
        inst = tape._instrument
        big = tape.big_threshold()
        q_max = float(shown["qty"].max()) if len(shown) else 1.0
        align_r, align_l = RIGHT, LEFT
        # batched like the ladder: one drawRects per colour, texts grouped by pen (fewer GIL hand-offs)
        fills: dict[tuple[str, int], list[QRect]] = defaultdict(list)
        texts: list[tuple[tuple[str, bool], QRect, int, str]] = []
        for i, pr in enumerate(shown.tolist()):
            ts, side, qty, _first, last_tick, _fills, levels, liquidation = pr
            y = self.header_h + i * self.row_h
            colour = "buy" if side > 0 else "sell"
            is_big = qty >= big
            # background strength grows with size (in 4 steps): a glance finds the prints that matter
            alpha = 150 if is_big else 30 + 20 * min(3, int(4 * qty / q_max))
            fills[(colour, alpha)].append(QRect(0, y, w, self.row_h - 1))
            pen = ("text" if is_big else colour, is_big)
            price = inst.format_price(int(last_tick)) if inst else str(int(last_tick))
            texts.append((pen, QRect(4, y, xs[1] - 8, self.row_h), align_l, fmt.clock(int(ts))))
            texts.append((pen, QRect(xs[1], y, xs[2] - xs[1] - 6, self.row_h), align_r, price))
            texts.append((pen, QRect(xs[2], y, xs[3] - xs[2] - 6, self.row_h), align_r, fmt.qty(float(qty))))
            tag = "LIQ" if liquidation else (f"{levels}lv" if levels > 1 else "")
            if tag:
                texts.append((("alert" if liquidation else "text_dim", False),
                              QRect(xs[3], y, xs[4] - xs[3] - 6, self.row_h), align_r, tag))
        painter.setPen(Qt.PenStyle.NoPen)
        for (name, alpha), rects in fills.items():
            painter.setBrush(p.q(name, alpha))
            painter.drawRects(rects)
        texts.sort(key=lambda t: t[0])
        current = None
        for pen, rect, align, text in texts:
            if pen != current:
                painter.setPen(p.q(pen[0]))
                painter.setFont(self._bold if pen[1] else self._font)
                current = pen
            self._texts.draw(painter, rect, align, text, pen[1])
        painter.end()
