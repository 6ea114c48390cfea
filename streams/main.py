"""Entry module for ``faust -A streams.main worker`` (the compose deployment).

Importing it builds the worker app (agents, tables, views, Prometheus sensors, /healthz, /readyz) from the
environment's Settings; nothing else in the package imports it. ``python -m streams worker`` does the same.
"""

from __future__ import annotations

from core.settings import load_settings
from streams.worker import build_worker_app

app = build_worker_app(load_settings())
