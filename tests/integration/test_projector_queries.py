"""Migrations against the real database, and the portal query layer (CLI and HTTP API) over projected rows."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from consumers.api import build_api
from consumers.errors import MigrationError
from consumers.migrate import discover, migrate
from consumers.projector import ProjectorConfig
from core.kafka_access import ADMIN
from core.settings import PROJECT_ROOT, Settings
from infra.processes import free_port
from tests.integration.test_projector import (
    build_scenario,
    config_for,
    end_offsets,
    make_topics,
    produce,
    project_until_caught_up,
)

pytestmark = pytest.mark.integration


async def test_migrate_applies_each_file_once_in_order_and_names_a_failing_file(pg_dsn: str, tmp_path: Path) -> None:
    first = await migrate(pg_dsn)
    assert [m.version for m in first] == [m.version for m in discover()]
    assert await migrate(pg_dsn) == []
    conn = await asyncpg.connect(pg_dsn)
    try:
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
        tables = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    finally:
        await conn.close()
    assert versions == [m.version for m in discover()]
    assert {"postings", "employers", "fair_checkins", "service_progress", "agg_snapshot", "consumer_offsets",
            "projector_rejects"} <= tables

    for m in discover():
        (tmp_path / m.path.name).write_text(m.sql)
    (tmp_path / "900_ok.sql").write_text("CREATE TABLE t900 (id int);")
    (tmp_path / "901_broken.sql").write_text("CREATE TABLE t901 (id int); SELECT no_such_column FROM t901;")
    with pytest.raises(MigrationError, match=r"901_broken\.sql failed and was rolled back"):
        await migrate(pg_dsn, tmp_path)
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 900
        assert await conn.fetchval("SELECT to_regclass('t901')") is None  # the whole file rolled back
    finally:
        await conn.close()
    (tmp_path / "900_ok.sql").write_text("CREATE TABLE t900 (id bigint);")
    with pytest.raises(MigrationError, match=r"900_ok\.sql: changed after it was applied"):
        await migrate(pg_dsn, tmp_path)


async def test_queries_via_cli_and_http_api(kafka_settings: Settings, pg_dsn: str, unique: str) -> None:
    sc = build_scenario(seed=3, postings=20)
    topics = make_topics(kafka_settings.kafka(ADMIN), unique)
    produce(kafka_settings.kafka(ADMIN), topics, sc)
    await migrate(pg_dsn)
    config: ProjectorConfig = config_for(kafka_settings, pg_dsn, topics, f"q-{unique}")
    await project_until_caught_up(config, end_offsets(kafka_settings.kafka(ADMIN), topics.all))
    conn = await asyncpg.connect(pg_dsn)
    try:
        open_scu = await conn.fetchval(
            "SELECT count(*) FROM postings WHERE state = 'open' AND university = 'scu' AND posted_at IS NOT NULL")
        served = await conn.fetchval("SELECT count(*) FROM service_progress WHERE fully_served")
        # what the projector keeps of alliance.agg.seeker-guarantee (per job seeker) and of a rollup
        await conn.execute(
            "INSERT INTO agg_snapshot (aggregate, key, dims, value, updated_at) VALUES "
            "('seeker-guarantee', $1, '{}', '{\"fully_served\": true}', now()), "
            "('mentors', 'university=scu', '{\"university\": \"scu\"}', '{\"mentors\": 3}', now()) "
            "ON CONFLICT DO NOTHING", f"seeker:ps_{unique:0>32}"[:43])
        per_student = await conn.fetchval("SELECT count(*) FROM agg_snapshot WHERE key LIKE 'seeker:%'")
    finally:
        await conn.close()

    code, out, _ = await cli(pg_dsn, "query", "open-postings", "--university", "scu", "--format", "json")
    assert code == 0
    assert sum(r["postings"] for r in json.loads(out)) == open_scu > 0
    code, out, _ = await cli(pg_dsn, "query", "service-guarantee")
    assert code == 0 and out.splitlines()[0].split()[:2] == ["university", "seekers"]
    code, _, err = await cli(pg_dsn, "query", "fairs", "--university", "nope")
    assert code == 2 and "unknown university 'nope'" in err

    token = secrets.token_urlsafe(24)
    server = TestServer(build_api(pg_dsn, SecretStr(token)), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as anonymous:
            for headers, status in (({}, 401), ({"Authorization": "Bearer nope"}, 403),
                                    ({"Authorization": f"Basic {token}"}, 401)):
                for path in ("/queries", "/queries/service-guarantee", "/queries/snapshots"):
                    async with anonymous.get(server.make_url(path), headers=headers) as r:
                        assert r.status == status and "rows" not in await r.json(), (path, headers)
            async with anonymous.get(server.make_url("/healthz")) as r:
                assert r.status == 200  # health stays open (no data)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30),
                                         headers={"Authorization": f"Bearer {token}"}) as http:
            async with http.get(server.make_url("/queries/snapshots?limit=1000")) as r:
                keys = [x["key"] for x in (await r.json())["rows"]]
                assert per_student > 0 and keys  # the read model holds per-student records; the API hides them
                assert not [k for k in keys if k.startswith("seeker:")]
            async with http.get(server.make_url("/queries")) as r:
                assert set(await r.json()) >= {"open-postings", "posting-funnel", "fairs", "mentors",
                                               "service-guarantee"}
            async with http.get(server.make_url("/queries/service-guarantee")) as r:
                body = await r.json()
                assert r.status == 200 and sum(x["fully_served"] for x in body["rows"]) == served
            async with http.get(server.make_url("/queries/posting-funnel?university=cqu&limit=5")) as r:
                funnel = (await r.json())["rows"]
                assert 0 < len(funnel) <= 5 and {x["university"] for x in funnel} == {"cqu"}
            async with http.get(server.make_url("/queries/fairs")) as r:
                assert len((await r.json())["rows"]) == 4
            async with http.get(server.make_url("/queries/nope")) as r:
                assert r.status == 404 and "unknown query" in (await r.json())["error"]
            async with http.get(server.make_url("/healthz")) as r:
                assert r.status == 200
    finally:
        await server.close()
    unconfigured = TestServer(build_api(pg_dsn, None), host="127.0.0.1", port=free_port())
    await unconfigured.start_server()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            async with http.get(unconfigured.make_url("/queries"), headers={"Authorization": "Bearer x"}) as r:
                assert r.status == 503 and "ALLIANCE_HTTP_TOKEN" in (await r.json())["error"]
    finally:
        await unconfigured.close()


async def cli(dsn: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "consumers", *args, cwd=PROJECT_ROOT, env={**os.environ, "ALLIANCE_DATABASE_URL": dsn},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return int(proc.returncode or 0), out.decode(), err.decode()
