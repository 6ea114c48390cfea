"""The benchmark's pipeline row on the real broker (bench.pipeline.pipeline_run): the bare loop, the faust no-op
agent (timed by its own clock: it drains the events in a few tenths of a second) and the worker over the same
events, and none of the measurement's topics left afterwards."""

from __future__ import annotations

import pytest

from bench.env import Services
from bench.pipeline import pipeline_run
from bench.workload import load_items
from core.kafka_access import ADMIN
from core.settings import Settings
from core.topic_admin import admin_client

pytestmark = pytest.mark.integration

EVENTS = 3_000


def test_the_bare_loop_the_noop_agent_and_the_worker_drain_the_same_events(settings: Settings, pg_server_dsn: str,
                                                                          unique: str) -> None:
    svc = Services(settings.kafka_bootstrap_servers, pg_server_dsn, False, unique,
                   credentials=settings.kafka_credentials_file, cafile=settings.kafka_ssl_cafile)
    lines: list[str] = []
    run = pipeline_run(svc, load_items(EVENTS), label="p1", log_dir=settings.local_dir / f"pipe-{unique}",
                       progress=lines.append)
    assert run.events == EVENTS and run.baseline_rate is not None and run.baseline_rate > 0
    assert run.noop_rate is not None and run.noop_rate > 0, lines  # timed, even when within one poll
    assert any("faust no-op agent: 3,000 events" in line and "its own clock" in line for line in lines), lines
    assert 0 < run.timing.events <= EVENTS and run.timing.seconds > 0 and run.timing.cpu_seconds > 0
    admin = admin_client(settings.kafka(ADMIN), f"check-{unique}")
    try:
        left = [t for t in admin.list_topics() if f"bench-{unique}-" in t or f".bench-{unique}" in t]
    finally:
        admin.close()
    assert left == []
