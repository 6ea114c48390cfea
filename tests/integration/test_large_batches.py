"""A backlog of a university's longest postings, all keyed to one partition: a tables batch of them would write
~16 MiB to one changelog partition, more than one record batch may hold (and the broker accepts). Before
2026-12-05 every worker taking the partition over stopped on it (exit 70, the same batch again after each
restart). The worker processes such a batch in parts (streams.pipeline, streams.writer.SPLIT_BYTES): it stays
up and every figure matches the independent oracle."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import date, timedelta
from typing import Any

import pytest
from kafka import KafkaProducer

from core.kafka_access import ADMIN, STREAMS
from core.partitioning import key_partition
from core.settings import Settings
from core.topic_admin import provision
from events import recruitment as r
from events.base import Event
from events.codec import encode
from events.reference import City, Degree, EmployerType, Industry
from events.topics import AGGREGATES, EVENT_PARTITIONS, agg_topic, family_topic
from infra.oracle import expected_aggregates
from infra.processes import free_ports, worker
from infra.verify import aggregates_on_topics, all_match, latest, value_diffs
from streams.app import BATCH_SIZE

pytestmark = pytest.mark.integration

N = BATCH_SIZE + 200  # more than a tables batch (streams.app.BATCH_SIZE), all on one partition


def _long_postings(n: int) -> list[Event]:
    """``n`` valid postings of scu with the longest description allowed, each keyed to events partition 0."""
    out: list[Event] = []
    i = 0
    day = date(2026, 3, 2)
    while len(out) < n:
        i += 1
        e = r.JobPosted(source="scu", occurred_at=f"{day + timedelta(days=i % 20)}T09:00:00+08:00",
                        data=r.JobPostedData(
                            posting_id=f"scu-long-{i:06d}", employer_id=f"emp-{i % 40}", employer_name="成都长文本科技",
                            employer_type=EmployerType.PRIVATE, industry=Industry.IT_SOFTWARE, city=City.CHENGDU,
                            title="后端工程师", description="很" * 2000, positions=1 + i % 5,
                            degree_min=Degree.BACHELOR, salary_min=8000, salary_max=14000,
                            deadline=date(2099, 12, 31)))
        if key_partition(e.key, EVENT_PARTITIONS) == 0:
            out.append(e)
    return out


def _backlog(settings: Settings, suffix: str, events: list[Event]) -> None:
    """The postings on the canonical topic, as the ingest wrote them while the tables stage was down."""
    producer = KafkaProducer(**settings.kafka(STREAMS).kafka_python(), acks="all", linger_ms=20)
    for e in events:
        producer.send(family_topic("recruitment") + suffix, encode(e), key=e.key)
    producer.flush()
    producer.close()


# (the oracle's alliance-wide 1-1-3-1 row of zeros: the worker publishes that row with the first service)
NAMES = [n for n in AGGREGATES if n != "service-guarantee"]


def _setup(settings: Settings, suffix: str, app_id: str) -> tuple[Settings, list[Event]]:
    """Topics and the backlog of ``N`` long postings; the worker settings."""
    provision(settings.kafka(ADMIN), suffix=suffix, app_id=app_id)
    events = _long_postings(N)
    _backlog(settings, suffix, events)
    return settings.model_copy(update={"topic_suffix": suffix, "app_id": app_id}), events


async def _figures_match_the_oracle(settings: Settings, suffix: str, group: str, events: list[Event],
                                    w: Any) -> None:
    """Wait (``w`` alive) until every aggregate the postings make equals the oracle's, then check each."""
    expected = expected_aggregates(events)

    def done(state: dict[str, dict[str, Any]]) -> bool:
        assert w.alive(), w.log_tail(40)
        return all_match(aggregates_on_topics(state, suffix), expected, NAMES)

    state = await latest(settings.kafka(ADMIN), [agg_topic(n) + suffix for n in AGGREGATES], group, done, wait_s=180)
    actual = aggregates_on_topics(state, suffix)
    assert expected["postings-by-segment"] and expected["windows"]  # the figures the postings make
    for name in NAMES:
        assert not value_diffs(actual[name], expected[name]), (name, value_diffs(actual[name], expected[name])[:5])


async def _tables_freshness(w: Any) -> dict[str, Any]:
    """The tables agent's part of the worker's ``/freshness/`` (empty while it does not answer)."""
    doc = await asyncio.to_thread(w.json, "/freshness/")
    return (doc or {}).get("tables", {})  # type: ignore[no-any-return]


async def test_a_backlog_of_long_postings_on_one_partition_is_applied_in_parts(settings: Settings,
                                                                             unique: str) -> None:
    suffix = f".t{unique}"
    cfg, events = _setup(settings, suffix, f"large-{unique}")
    [port] = free_ports(1)
    w = worker(0, cfg.model_copy(update={"web_port": port}), settings.local_dir / f"large-{unique}")
    try:
        w.start(cfg)
        await _figures_match_the_oracle(settings, suffix, f"check-{unique}", events, w)
        tables = await _tables_freshness(w)
        assert tables["events_applied"] == N
        assert tables.get("batches_split", 0) >= 1, tables  # the backlog came in batches too large for one write
        assert "stopping without committing" not in w.log.read_text()
    finally:
        w.stop()


async def test_a_worker_killed_between_the_parts_of_a_split_batch_counts_every_posting_once(
        settings: Settings, unique: str) -> None:
    """kill -9 while the worker writes the parts of a split batch (some parts applied, the batch's offsets not
    committed), then the same worker again: it re-reads the batch, the parts already written are replays (it
    applies fewer than all postings for the first time), and every figure equals the oracle's (nothing counted
    twice, nothing lost)."""
    suffix = f".t{unique}"
    cfg, events = _setup(settings, suffix, f"large-kill-{unique}")
    [port] = free_ports(1)
    log_dir = settings.local_dir / f"large-kill-{unique}"
    first = worker(0, cfg.model_copy(update={"web_port": port}), log_dir)
    second = worker(0, cfg.model_copy(update={"web_port": port}), log_dir / "restarted")
    try:
        first.start(cfg)
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, first.log_tail(40)
            tables = await _tables_freshness(first)
            applied = tables.get("events_applied", 0)
            assert applied < BATCH_SIZE, tables  # the first batch (BATCH_SIZE postings) must not be finished yet
            if tables.get("batches_split", 0) >= 1 and applied > 0:  # some of its parts written
                break
            await asyncio.sleep(0.01)
        assert first.proc is not None
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(timeout=10) == -signal.SIGKILL
        second.start(cfg)
        await _figures_match_the_oracle(settings, suffix, f"check-{unique}", events, second)
        again = await _tables_freshness(second)
        assert again["events_processed"] >= N  # the whole backlog read again ...
        assert again["events_applied"] <= N - applied  # ... the parts written before the kill as replays
    finally:
        second.stop()
        first.stop()
