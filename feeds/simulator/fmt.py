"""Exact decimal text for ticks and lots, as venues print them (no float formatting on the hot path)."""

from __future__ import annotations

from feeds.simulator.market import SymbolSpec


class Fmt:
    """Turns integer ticks/lots of one symbol into venue price/quantity strings, with a price cache."""

    __slots__ = ("spec", "_pdec", "_pmul", "_qdec", "_qmul", "_px", "_pscale", "_qscale")

    def __init__(self, spec: SymbolSpec) -> None:
        self.spec = spec
        self._pdec = spec.price_decimals
        self._pscale = 10 ** self._pdec
        self._pmul = round(spec.tick_size * self._pscale)
        self._qdec = spec.qty_decimals
        self._qscale = 10 ** self._qdec
        self._qmul = round(spec.lot_size * self._qscale)
        self._px: dict[int, str] = {}

    def px(self, tick: int) -> str:
        """Price text of a tick (cached: the same few hundred ticks repeat all day)."""
        text = self._px.get(tick)
        if text is None:
            text = self._fixed(tick * self._pmul, self._pdec, self._pscale)
            if len(self._px) > 200_000:
                self._px.clear()
            self._px[tick] = text
        return text

    def qty(self, lots: int) -> str:
        """Quantity text of a number of lots."""
        return self._fixed(lots * self._qmul, self._qdec, self._qscale)

    @staticmethod
    def _fixed(units: int, decimals: int, scale: int) -> str:
        if decimals == 0:
            return str(units)
        sign = "-" if units < 0 else ""
        whole, frac = divmod(abs(units), scale)
        return f"{sign}{whole}.{frac:0{decimals}d}"

    def decimal(self, value: float, decimals: int) -> str:
        """A float as fixed-point text (marks, rates: not hot)."""
        return f"{value:.{decimals}f}"
