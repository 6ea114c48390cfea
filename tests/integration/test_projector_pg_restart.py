"""A real PostgreSQL restart (pg_ctl stop -m fast, then start) while the projector is mid-stream: it keeps
retrying, reconnects, and ends with exactly the expected rows and offsets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from consumers.migrate import migrate
from core.kafka_access import ADMIN
from core.settings import Settings
from infra.postgres_local import LocalPostgres
from infra.processes import free_port
from tests.integration.test_projector import (
    actual_state,
    build_scenario,
    end_offsets,
    expected_state,
    make_topics,
    produce,
    stored,
)
from tests.integration.test_projector_crash import catch_up_and_stop, start_projector

pytestmark = pytest.mark.integration


async def test_postgres_restart_mid_stream_loses_and_duplicates_nothing(
        kafka_settings: Settings, unique: str, session_dir: Path, tmp_path: Path) -> None:
    server = LocalPostgres(home=session_dir / f"pg-restart-{unique}", port=free_port(), fast=True)
    await asyncio.to_thread(server.start)
    try:
        dsn = server.dsn
        sc = build_scenario(seed=9, postings=60)
        topics = make_topics(kafka_settings.kafka(ADMIN), unique)
        produce(kafka_settings.kafka(ADMIN), topics, sc, duplicate_every=5)
        await migrate(dsn)
        want = end_offsets(kafka_settings.kafka(ADMIN), topics.all)
        total = sum(want.values())
        group, log = f"pgrestart-{unique}", tmp_path / "projector.log"
        proc = start_projector(kafka_settings, dsn, group, list(topics.events.values()),
                               list(topics.aggs.values()), log)
        try:
            async with asyncio.timeout(60):
                while sum((await stored(dsn, group)).values()) < total // 4:
                    assert proc.poll() is None, log.read_text()
                    await asyncio.sleep(0.02)
            await asyncio.to_thread(server.stop)
            assert not server.is_running()
            await asyncio.sleep(2)  # the projector meets a dead database for a while
            assert proc.poll() is None, "the projector must keep retrying, not exit:\n" + log.read_text()
            await asyncio.to_thread(server.start)
            await catch_up_and_stop(proc, dsn, group, want, log)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        assert await stored(dsn, group) == want
        assert await actual_state(dsn) == expected_state(sc)
        assert "database unavailable" in log.read_text()
    finally:
        await asyncio.to_thread(server.stop)
