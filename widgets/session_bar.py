"""Session bar: LIVE/REPLAY badge, open a capture, play/pause, speed, step, timeline seek, record."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QWidget,
)

from widgets import fmt
from widgets.theme import DARK, Palette

SPEEDS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 50.0, 0.0)  # 0 = as fast as possible
SLIDER_STEPS = 10_000


class SessionBar(QWidget):
    """Replay controls and the record button; emits commands, shows the session's mode and clock."""

    open_requested = Signal(str)  # capture path
    play_toggled = Signal(bool)  # True = playing
    speed_changed = Signal(float)  # 0 = max
    step_requested = Signal()
    seek_requested = Signal("qint64")  # exch_ts ns
    record_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None, palette: Palette = DARK) -> None:
        super().__init__(parent)
        self._palette = palette
        self._mode = "LIVE"
        self._span = (0, 0)
        self._now_ns = 0
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.setSpacing(6)
        self.mode_label = QLabel("LIVE")
        self.mode_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.mode_label.setMinimumWidth(64)
        self.open_button = QPushButton("Open capture…")
        self.play_button = QPushButton("▶ Play", checkable=True)
        self.step_button = QPushButton("Step ▸|")
        self.speed_box = QComboBox()
        for s in SPEEDS:
            self.speed_box.addItem("max" if s == 0 else f"{s:g}×", s)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.timeline = QSlider(Qt.Orientation.Horizontal)
        self.timeline.setRange(0, SLIDER_STEPS)
        self.time_label = QLabel("--:--:--")
        self.time_label.setMinimumWidth(96)
        self.record_button = QPushButton("● Rec", checkable=True)
        for w in (self.mode_label, self.open_button, self.play_button, self.step_button, self.speed_box):
            layout.addWidget(w)
        layout.addWidget(self.timeline, 1)
        layout.addWidget(self.time_label)
        layout.addWidget(self.record_button)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.play_button.toggled.connect(self._on_play_toggled)
        self.step_button.clicked.connect(self.step_requested)
        self.speed_box.currentIndexChanged.connect(lambda i: self.speed_changed.emit(float(SPEEDS[i])))
        self.timeline.sliderReleased.connect(self._on_slider_released)
        self.record_button.toggled.connect(self._on_record_toggled)
        self.set_mode("LIVE")

    @property
    def mode(self) -> str:
        """``LIVE`` or ``REPLAY``."""
        return self._mode

    @property
    def playing(self) -> bool:
        """Whether replay is running."""
        return self.play_button.isChecked()

    @property
    def speed(self) -> float:
        """Replay speed factor (0 = max)."""
        return float(SPEEDS[self.speed_box.currentIndex()])

    def set_palette_theme(self, palette: Palette) -> None:
        """Recolour the mode badge."""
        self._palette = palette
        self.set_mode(self._mode)

    def set_mode(self, mode: str, span: tuple[int, int] = (0, 0)) -> None:
        """LIVE (replay controls off, record on) or REPLAY over ``span`` = (first, last) exch_ts ns."""
        if mode not in ("LIVE", "REPLAY"):
            raise ValueError(f"session mode must be LIVE or REPLAY, got {mode!r}")
        self._mode = mode
        self._span = span
        replay = mode == "REPLAY"
        for w in (self.play_button, self.step_button, self.speed_box, self.timeline):
            w.setEnabled(replay)
        self.record_button.setEnabled(not replay)
        colour = self._palette.buy if not replay else self._palette.accent
        self.mode_label.setText(mode)
        self.mode_label.setStyleSheet(
            f"QLabel {{ background: {colour}; color: #0b0e12; font-weight: bold; border-radius: 3px; padding: 2px 6px; }}"
        )

    def set_time(self, now_ns: int) -> None:
        """Show the session clock and move the timeline (unless the user is dragging it)."""
        self._now_ns = now_ns
        self.time_label.setText(fmt.clock(now_ns, millis=False) if now_ns else "--:--:--")
        first, last = self._span
        if self._mode == "REPLAY" and last > first and not self.timeline.isSliderDown():
            pos = int((now_ns - first) / (last - first) * SLIDER_STEPS)
            self.timeline.blockSignals(True)
            self.timeline.setValue(max(0, min(SLIDER_STEPS, pos)))
            self.timeline.blockSignals(False)

    def slider_time(self) -> int:
        """The exch_ts the slider points at."""
        first, last = self._span
        return first + int((last - first) * self.timeline.value() / SLIDER_STEPS)

    def set_recording(self, on: bool) -> None:
        """Reflect the recorder's state without emitting a command."""
        self.record_button.blockSignals(True)
        self.record_button.setChecked(on)
        self.record_button.blockSignals(False)
        self._style_record(on)

    def toggle_play(self) -> None:
        """Play/pause (keyboard)."""
        if self.play_button.isEnabled():
            self.play_button.toggle()

    def _on_open_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open capture", "", "Captures (*.gz *.zst *.npz *.csv *.jsonl);;All files (*)"
        )
        if path:
            self.open_requested.emit(path)

    def _on_play_toggled(self, on: bool) -> None:
        self.play_button.setText("⏸ Pause" if on else "▶ Play")
        self.play_toggled.emit(on)

    def _on_slider_released(self) -> None:
        self.seek_requested.emit(self.slider_time())

    def _on_record_toggled(self, on: bool) -> None:
        self._style_record(on)
        self.record_toggled.emit(on)

    def _style_record(self, on: bool) -> None:
        self.record_button.setText("● REC" if on else "● Rec")
        self.record_button.setStyleSheet(
            f"QPushButton {{ color: {self._palette.sell}; font-weight: bold; }}" if on else ""
        )
