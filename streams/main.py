"""Entry module for ``faust -A streams.main worker`` (the compose deployment) and ``python -m streams``.

The app is built from the environment's Settings by the factory; importing this module builds it, which is
this module's only purpose — nothing else in the package imports it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from infra.settings import load_settings
from streams.app import create_app

settings = load_settings()
registry = CollectorRegistry()
app = create_app(settings, registry=registry, web_port=settings.web_port)
