"""Pixel access on grabbed widget images."""

from __future__ import annotations

from PySide6.QtGui import QColor, QImage


def pixel(image: QImage, x: int, y: int) -> QColor:
    """The colour at (x, y) of a grabbed image, in logical pixels."""
    ratio = image.devicePixelRatio()
    return QColor(image.pixel(int(x * ratio), int(y * ratio)))


def blueish(c: QColor) -> bool:
    """Bid colours: clearly more blue than red."""
    return c.blue() > c.red() + 40


def reddish(c: QColor) -> bool:
    """Ask colours: clearly more red than blue."""
    return c.red() > c.blue() + 40
