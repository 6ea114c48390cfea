"""kill -9 of a ``python -m consumers run`` subprocess mid-stream, then a restart: exactly the expected rows,
nothing lost, nothing doubled; SIGTERM then stops it cleanly after its current batch."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consumers.migrate import migrate
from core.kafka_access import ADMIN
from core.settings import PROJECT_ROOT, Settings
from tests.integration.test_projector import (
    actual_state,
    build_scenario,
    caught_up,
    end_offsets,
    expected_state,
    make_topics,
    produce,
    stored,
)

pytestmark = pytest.mark.integration


def start_projector(settings: Settings, dsn: str, group: str, topics: list[str], aggs: list[str],
                    log: Path) -> subprocess.Popen[bytes]:
    """``python -m consumers run`` as the projector principal (its password from the credential store)."""
    env = {**os.environ, **settings.kafka_env(), "ALLIANCE_DATABASE_URL": dsn}
    cmd = [sys.executable, "-m", "consumers", "run", "--group", group, "--batch-size", "10",
           "--batch-timeout-ms", "100", "--pause-ms", "15", "--metrics-port", "0"]
    cmd += [a for t in topics for a in ("--events-topic", t)] + [a for t in aggs for a in ("--agg-topic", t)]
    with log.open("ab") as out:
        return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


async def catch_up_and_stop(proc: subprocess.Popen[bytes], dsn: str, group: str, want: dict[Any, int],
                            log: Path) -> None:
    """Wait until the projector stored every end offset, then SIGTERM it: it must exit 0."""
    try:
        async with asyncio.timeout(120):
            while not caught_up(await stored(dsn, group), want):
                assert proc.poll() is None, read_log(log)
                await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, read_log(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def read_log(log: Path) -> str:
    """The projector's log, for failure messages."""
    return log.read_text()


async def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(
        kafka_settings: Settings, pg_dsn: str, unique: str, tmp_path: Path) -> None:
    sc = build_scenario(seed=5, postings=60)
    topics = make_topics(kafka_settings.kafka(ADMIN), unique)
    produce(kafka_settings.kafka(ADMIN), topics, sc, duplicate_every=4)
    await migrate(pg_dsn)
    want = end_offsets(kafka_settings.kafka(ADMIN), topics.all)
    total = sum(want.values())
    group, log = f"crash-{unique}", tmp_path / "projector.log"
    args = (kafka_settings, pg_dsn, group, list(topics.events.values()), list(topics.aggs.values()), log)

    proc = start_projector(*args)
    try:
        async with asyncio.timeout(60):  # some, but not all, offsets stored
            while sum((await stored(pg_dsn, group)).values()) < total // 3:
                assert proc.poll() is None, log.read_text()
                await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    at_kill = await stored(pg_dsn, group)
    assert 0 < sum(at_kill.values()) < total, "the kill must land mid-stream"

    await catch_up_and_stop(start_projector(*args), pg_dsn, group, want, log)
    assert await stored(pg_dsn, group) == want
    assert await actual_state(pg_dsn) == expected_state(sc)
    assert "resuming from stored offsets" in log.read_text()
