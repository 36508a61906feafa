"""Make the README screenshots (`make screenshots`): the real desk, offscreen, saved as small PNGs.

The desk runs on the real engine, fed by the embedded demo exchange when this build has it (else by
the GUI benchmark's paced in-process feed); price alerts are set next to the market so the alert
panel shows alerts that really fired. The signals close-up (iceberg, absorption, gap, large order)
uses the sample book of ``widgets.sample`` until the detectors run in the demo.

Usage: QT_QPA_PLATFORM=offscreen python scripts/screenshots.py [--out docs/screenshots] [--seconds 6]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MAX_BYTES = 300_000


def _spin(seconds: float) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def _save(widget, path: Path, width: int | None = None) -> Path:  # noqa: ANN001 - a QWidget
    """Grab a widget to PNG, scaled down only if the file would exceed MAX_BYTES."""
    from PySide6.QtCore import Qt

    pixmap = widget.grab()
    if width is not None and pixmap.width() > width:
        pixmap = pixmap.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)
    pixmap.save(str(path), "PNG", 0)  # 0 = smallest file
    while path.stat().st_size > MAX_BYTES:
        pixmap = pixmap.scaledToWidth(int(pixmap.width() * 0.85), Qt.TransformationMode.SmoothTransformation)
        pixmap.save(str(path), "PNG", 0)
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the desk, take the shots, print their paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--seconds", type=float, default=6.0, help="how long the market runs before the shots")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtWidgets import QApplication

    from app.core.events import NO_PRICE
    from app.main import DEMO_SOURCE, build_desk
    from widgets.alerts import RuleSpec
    from widgets.ladder import LadderWidget
    from widgets.sample import demo_book
    from widgets.theme import LIGHT

    app = QApplication.instance() or QApplication(["depthdesk-screenshots"])
    engine, window, bridge, _symbols, _settings = build_desk(demo=True, settings_dir=Path(tempfile.mkdtemp()))
    source = "embedded demo exchange"
    try:
        engine.add_sources([DEMO_SOURCE])
    except Exception:  # noqa: BLE001 - this build has no simulator: use the paced feed
        from benchmarks.bench_gui import PacedFeed

        engine.discard()
        engine.add_feed(PacedFeed(rate=600.0), label=DEMO_SOURCE)
        source = "paced in-process feed"
    window.resize(1600, 1000)
    window.show()
    engine.start()
    bridge.open_symbol(DEMO_SOURCE)
    bridge.start()
    written: list[Path] = []
    try:
        _spin(1.5)
        frame = window.ladder.frame
        if frame is not None and frame.best_bid_tick != NO_PRICE and frame.best_ask_tick != NO_PRICE:
            near = [RuleSpec(kind="price", symbol=DEMO_SOURCE, side=-1, price_tick=frame.best_ask_tick + k,
                             once=True, cooldown_s=0.0, sound=False) for k in (0, 2)]
            near += [RuleSpec(kind="price", symbol=DEMO_SOURCE, side=1, price_tick=frame.best_bid_tick - k,
                              once=True, cooldown_s=0.0, sound=False) for k in (0, 2)]
            # and the detections the desk's own rules listen for
            near += [RuleSpec(kind=k, symbol=DEMO_SOURCE, cooldown_s=5.0, sound=False)
                     for k in ("iceberg", "absorption", "large_order", "sweep", "liquidity_gap")]
            window.set_rules(near)
        window.sound_on = False
        _spin(args.seconds)
        window.ladder.set_large_size(max(1.0, float(_median_level(window.ladder)) * 4.0))
        _spin(0.5)
        written.append(_save(window, out / "desk_dark.png"))
        window.apply_theme("light")
        _spin(1.5)  # restyling takes a moment: let the status bar's fps settle again
        written.append(_save(window, out / "desk_light.png"))
        window.apply_theme("dark")
        window.set_feed_state("demo", "ALTUSDT", "resyncing", "sequence gap")
        _spin(0.3)
        written.append(_save(window.ladder, out / "ladder_stale.png", width=900))
        window.set_feed_state("demo", "ALTUSDT", "live")
    finally:
        bridge.stop()
        engine.stop()
        window.close()
    ladder = LadderWidget()
    ladder.resize(900, 760)
    ladder.set_frame(demo_book())
    ladder.show()
    app.processEvents()
    written.append(_save(ladder, out / "ladder_signals.png"))
    ladder.set_palette_theme(LIGHT)
    ladder.close()
    print(f"source: {source}")
    for path in written:
        print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


def _median_level(ladder) -> float:  # noqa: ANN001 - a LadderWidget
    view = ladder.view
    if view is None:
        return 1.0
    import numpy as np

    sizes = np.concatenate([view.bid[view.bid > 0], view.ask[view.ask > 0]])
    return float(np.median(sizes)) if len(sizes) else 1.0


if __name__ == "__main__":
    sys.exit(main())
