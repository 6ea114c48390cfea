"""A worker killed (kill -9) in the middle of a backlog and started again: nothing is lost or counted twice,
the worker's own replays are not reported as university duplicates, and /readyz says "ready" only once the
new worker owns partitions."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from core.kafka_access import ADMIN
from core.settings import Settings
from core.topic_admin import provision
from events.simulator import alliance_day
from events.simulator.publish import publish
from events.topics import AGGREGATES, DLQ_TOPIC, agg_topic
from infra.oracle import accepted_events, expected_aggregates, expected_rejects
from infra.processes import free_ports, metric_sum, wait_applied, worker
from infra.verify import aggregates_on_topics, all_match, latest, value_diffs

pytestmark = pytest.mark.integration


async def test_kill_9_mid_backlog_then_restart(settings: Settings, unique: str) -> None:
    records = alliance_day(seed=31, scale=0.25, duplicate_rate=0.0)  # any 'duplicate' would be the worker's own
    suffix = f".t{unique}"
    provision(settings.kafka(ADMIN), suffix=suffix, app_id=f"restart-{unique}")
    expected = expected_aggregates(accepted_events(records))
    rejects = expected_rejects(records)
    assert rejects["duplicate"] == 0
    cfg = settings.model_copy(update={"topic_suffix": suffix, "app_id": f"restart-{unique}"})
    log_dir = settings.local_dir / f"restart-{unique}"
    first_port, second_port = free_ports(2)
    first = worker(0, cfg.model_copy(update={"web_port": first_port}), log_dir)
    second = worker(1, cfg.model_copy(update={"web_port": second_port}), log_dir)
    readiness: list[dict[str, Any]] = []
    try:
        first.start(cfg)
        await asyncio.to_thread(first.wait_ready, 120)
        assert publish([replace(r, topic=r.topic + suffix) for r in records], settings.kafka) == len(records)
        await asyncio.to_thread(wait_applied, [first], 200, 60)
        assert first.proc is not None
        first.proc.kill()  # kill -9 in the middle of the backlog: whatever it had not committed is re-read
        first.proc.wait(timeout=10)

        second.start(cfg)
        # until the coordinator gives up on the killed member, the new one owns nothing: not ready
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            status, body = await asyncio.to_thread(second.get, "/readyz")
            if status:
                readiness.append({"status": status, **json.loads(body)})
                if status == 200:
                    break
            await asyncio.sleep(0.2)
        assert readiness and readiness[-1]["status"] == 200, readiness[-5:]
        assert all(r["assigned_partitions"] > 0 for r in readiness if r["status"] == 200)
        assert all(not r["ready"] for r in readiness if r["status"] == 503)

        dlq = DLQ_TOPIC + suffix

        def done(state: dict[str, dict[str, Any]]) -> bool:
            assert second.alive(), f"the restarted worker exited; see {log_dir}"
            return all_match(aggregates_on_topics(state, suffix), expected) and \
                len(state[dlq]) >= sum(rejects.values())

        state = await latest(settings.kafka(ADMIN), [*(agg_topic(n) + suffix for n in AGGREGATES), dlq],
                             f"check-{unique}", done, wait_s=180)
        actual = aggregates_on_topics(state, suffix)
        for name in AGGREGATES:
            assert not value_diffs(actual[name], expected[name]), (name, value_diffs(actual[name],
                                                                                   expected[name])[:10])
        replayed = await asyncio.to_thread(metric_sum, second, "alliance_records_replayed_total")
    finally:
        second.stop()
        if first.alive():
            first.stop()
    # the re-read records the killed worker had accepted are replays, not 'duplicate' client errors
    reasons = Counter(h["x-alliance-reject-reason"].decode() for _, h in state[dlq].values())
    assert reasons["duplicate"] == 0, (reasons, replayed)
    # a bad record re-read after the crash may be copied again; its source coordinates tell (docs/streams.md)
    by_source = {(h["x-alliance-source-topic"], h["x-alliance-source-partition"], h["x-alliance-source-offset"]):
                 h["x-alliance-reject-reason"].decode() for _, h in state[dlq].values()}
    invalid = {"invalid", "personal_data", "unknown_type", "malformed", "oversized"}
    assert Counter("rejected_invalid" if r in invalid else r for r in by_source.values()) == +rejects
