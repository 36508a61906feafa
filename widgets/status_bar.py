"""Status bar: feed state per venue, messages/s, engine lag, frames/s, ring fill — always visible."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from widgets.theme import DARK, Palette

GOOD_STATES = ("live", "replay")
WARN_STATES = ("connecting", "syncing")
LAG_WARN_MS = 100.0


class DeskStatusBar(QStatusBar):
    """Per-venue feed state badges plus the rates that show regressions to the user."""

    def __init__(self, parent: QWidget | None = None, palette: Palette = DARK) -> None:
        super().__init__(parent)
        self._palette = palette
        self._feeds: dict[str, QLabel] = {}
        self._states: dict[str, str] = {}
        self.rate_label = QLabel("0 msg/s")
        self.lag_label = QLabel("lag — ms")
        self.fps_label = QLabel("0 fps")
        self.ring_label = QLabel("ring 0%")
        for w, width in ((self.rate_label, 110), (self.lag_label, 100), (self.fps_label, 60), (self.ring_label, 70)):
            w.setMinimumWidth(width)  # numbers change every second: fixed room, no jumping or clipping
            self.addPermanentWidget(w)
        self.setSizeGripEnabled(False)

    def set_palette_theme(self, palette: Palette) -> None:
        """Recolour the badges."""
        self._palette = palette
        for venue, state in self._states.items():
            self.set_feed_state(venue, state)

    def feed_state(self, venue: str) -> str | None:
        """The state shown for a venue."""
        return self._states.get(venue)

    def set_feed_state(self, venue: str, state: str, reason: str = "") -> None:
        """Show a venue's feed state (live green, connecting amber, resyncing/disconnected red)."""
        label = self._feeds.get(venue)
        if label is None:
            label = QLabel()
            self._feeds[venue] = label
            self.insertWidget(len(self._feeds) - 1, label)
        self._states[venue] = state
        p = self._palette
        colour = p.buy if state in GOOD_STATES else p.stale if state in WARN_STATES else p.sell
        label.setText(f"<span style='color:{colour}'>●</span> {venue} <b>{state}</b>")
        label.setToolTip(reason or state)

    def set_rates(self, msgs_per_s: float, lag_ms: float | None, fps: float, ring_fill: float) -> None:
        """Update the numbers (1 Hz clock)."""
        p = self._palette
        self.rate_label.setText(f"{msgs_per_s:,.0f} msg/s")
        if lag_ms is None:
            self.lag_label.setText("lag — ms")
        else:
            colour = p.sell if lag_ms > LAG_WARN_MS else p.text_dim
            self.lag_label.setText(f"<span style='color:{colour}'>lag {lag_ms:,.0f} ms</span>")
        self.fps_label.setText(f"{fps:.0f} fps")
        self.ring_label.setText(f"ring {ring_fill * 100:.0f}%")
