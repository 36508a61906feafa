"""Order-flow analytics on L2 data: detectors and alert rules (numpy only; no Qt, feeds or widgets).

Public API: :class:`app.analytics.detectors.DetectorSet` (run by the engine once per applied batch),
:class:`app.analytics.alerts.AlertEngine` with :func:`app.analytics.alerts.load_rules`, and
:func:`app.analytics.scoring.score` for precision / recall / delay against labelled scenarios.
"""
