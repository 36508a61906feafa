"""Errors the user can fix; the CLI prints them as one line (never a traceback)."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad argument, file, config): printed as one line, exit 2."""
