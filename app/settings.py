"""The user's persisted desk settings: layout, theme, symbols, alert rules (an INI file via QSettings).

Lives in platformdirs' user config dir, or ``$DEPTHDESK_CONFIG_DIR`` (tests point it at a tmp dir).
Lists and dicts are stored as JSON text so the file reads the same on every platform.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import platformdirs
from PySide6.QtCore import QByteArray, QSettings

DEFAULT_SYMBOLS = ["demo:ALTUSDT"]


def config_dir() -> Path:
    """Where settings live: ``$DEPTHDESK_CONFIG_DIR`` or the platform's user config dir."""
    env = os.environ.get("DEPTHDESK_CONFIG_DIR")
    return Path(env) if env else Path(platformdirs.user_config_dir("depthdesk", appauthor=False))


class Settings:
    """Typed access to the settings file; every setter writes through (``sync`` flushes to disk)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "desk.ini"
        self._q = QSettings(str(self.path), QSettings.Format.IniFormat)

    def sync(self) -> None:
        """Write pending changes to disk; raises when the file cannot be written."""
        self._q.sync()
        if self._q.status() != QSettings.Status.NoError:
            raise OSError(f"cannot write settings to {self.path}")

    # -- plain values
    def _get_json(self, key: str, default: Any) -> Any:
        raw = self._q.value(key)
        if raw is None:
            return default
        try:
            return json.loads(str(raw))
        except json.JSONDecodeError:
            return default  # a hand-edited broken value falls back rather than blocking startup

    def _set_json(self, key: str, value: Any) -> None:
        self._q.setValue(key, json.dumps(value))

    @property
    def theme(self) -> str:
        """``dark`` (default) or ``light``."""
        value = str(self._q.value("ui/theme", "dark"))
        return value if value in ("dark", "light") else "dark"

    @theme.setter
    def theme(self, value: str) -> None:
        if value not in ("dark", "light"):
            raise ValueError(f"theme must be dark or light, got {value!r}")
        self._q.setValue("ui/theme", value)

    @property
    def symbols(self) -> list[str]:
        """Watchlist symbols, ``venue:SYMBOL``."""
        value = self._get_json("ui/symbols", DEFAULT_SYMBOLS)
        return [str(s) for s in value] if isinstance(value, list) else list(DEFAULT_SYMBOLS)

    @symbols.setter
    def symbols(self, value: list[str]) -> None:
        self._set_json("ui/symbols", list(value))

    @property
    def active_symbol(self) -> str | None:
        """The symbol whose ladder was open."""
        value = self._q.value("ui/active_symbol")
        return str(value) if value else None

    @active_symbol.setter
    def active_symbol(self, value: str | None) -> None:
        self._q.setValue("ui/active_symbol", value or "")

    @property
    def alert_rules(self) -> list[dict[str, Any]]:
        """Alert rules as plain dicts (``RuleSpec.to_dict``)."""
        value = self._get_json("alerts/rules", [])
        return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []

    @alert_rules.setter
    def alert_rules(self, value: list[dict[str, Any]]) -> None:
        self._set_json("alerts/rules", value)

    def flag(self, key: str, default: bool) -> bool:
        """A boolean option (sound, tray, muted, auto_centre)."""
        value = self._q.value(f"options/{key}")
        if value is None:
            return default
        return str(value).lower() in ("1", "true", "yes")

    def set_flag(self, key: str, value: bool) -> None:
        """Store a boolean option."""
        self._q.setValue(f"options/{key}", "true" if value else "false")

    def number(self, key: str, default: float) -> float:
        """A numeric option (ladder grouping, tape filter…)."""
        value = self._q.value(f"options/{key}")
        try:
            return float(value) if value is not None else default
        except (TypeError, ValueError):
            return default

    def set_number(self, key: str, value: float) -> None:
        """Store a numeric option."""
        self._q.setValue(f"options/{key}", float(value))

    # -- window layout (Qt's opaque blobs)
    def layout(self) -> tuple[QByteArray | None, QByteArray | None]:
        """(geometry, dock state) saved by the main window, or None each."""
        geo, state = self._q.value("layout/geometry"), self._q.value("layout/state")
        return (geo if isinstance(geo, QByteArray) else None, state if isinstance(state, QByteArray) else None)

    def set_layout(self, geometry: QByteArray, state: QByteArray) -> None:
        """Store ``saveGeometry()`` and ``saveState()``."""
        self._q.setValue("layout/geometry", geometry)
        self._q.setValue("layout/state", state)
