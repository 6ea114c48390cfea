"""The benchmark's services on the test session's broker and database, for the integration tests of its
measurements (each measurement provisions topics of its own and must drop them all afterwards)."""

from __future__ import annotations

from bench.env import Services
from core.kafka_access import ADMIN
from core.settings import Settings
from core.topic_admin import admin_client


def bench_services(settings: Settings, pg_server_dsn: str, run_id: str) -> Services:
    return Services(settings.kafka_bootstrap_servers, pg_server_dsn, False, run_id,
                    credentials=settings.kafka_credentials_file, cafile=settings.kafka_ssl_cafile)


def topics_left(settings: Settings, run_id: str) -> list[str]:
    """The broker's topics of the run ``run_id`` (its measurements' topics and their changelogs)."""
    admin = admin_client(settings.kafka(ADMIN), f"check-{run_id}")
    try:
        return [t for t in admin.list_topics() if f"bench-{run_id}-" in t]
    finally:
        admin.close()
