"""The publisher SDK and ``python -m events.tools publish`` against the real broker.

End to end: realistic files of three universities (every event family) are published by the CLI to the
registry's ingest topics and read back exactly (ids, keys, values, headers, per-key order). A file with
good and bad lines publishes exactly the good ones and reports exactly the bad ones (exit code 1).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from core.access_policy import UNIVERSITY_OPERATIONS, Grant, Resource
from core.kafka_access import ADMIN, KafkaAccess
from core.settings import PROJECT_ROOT, Settings
from core.topic_admin import grant, provision
from events.base import Event
from events.codec import decode, encode, from_dict
from events.errors import EventValidationError
from events.reference import UNIVERSITIES
from events.tools.bulk import iter_csv, iter_jsonl, read_problems_csv
from events.tools.publisher import BrokerUnavailableError, DeliveryError, Publisher
from events.topics import TopicSpec, ingest_topic
from events.wire import cloudevent_headers
from tests.data.samples import DATA_DIR, SAMPLE_UNIVERSITIES, bulk, semester

pytestmark = pytest.mark.integration

Offsets = dict[TopicPartition, int]


# -- helpers ----------------------------------------------------------------------------------------

async def end_offsets(kafka: KafkaAccess, topic: str) -> Offsets:
    consumer = AIOKafkaConsumer(**kafka.aiokafka(), enable_auto_commit=False)
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            parts = consumer.partitions_for_topic(topic)
            while not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic)
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            result: Offsets = await consumer.end_offsets(tps)
            return result
    finally:
        await consumer.stop()


async def read_since(kafka: KafkaAccess, topic: str,
                     start: Offsets | None = None) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from ``start`` (default: the beginning) to its current end."""
    stop = await end_offsets(kafka, topic)
    start = start or dict.fromkeys(stop, 0)
    if all(start[tp] >= end for tp, end in stop.items()):
        return []  # nothing new (and aiokafka dislikes a consumer stopped before it ever ran)
    consumer = AIOKafkaConsumer(**kafka.aiokafka(), enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        consumer.assign(list(stop))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        async with asyncio.timeout(60):
            while [tp for tp, end in stop.items() if await consumer.position(tp) < end]:
                batch = await consumer.getmany(timeout_ms=500)
                for tp_records in batch.values():
                    records += [r for r in tp_records if r.offset < stop[TopicPartition(r.topic, r.partition)]]
    finally:
        await consumer.stop()
    return records


def as_sent(event: Event) -> tuple[str, bytes, bytes, tuple[tuple[str, bytes], ...]]:
    return str(event.event_id), event.key, encode(event), tuple(cloudevent_headers(event))


def as_received(record: ConsumerRecord[bytes, bytes]) -> tuple[str, bytes, bytes, tuple[tuple[str, bytes], ...]]:
    assert record.key is not None and record.value is not None
    return str(decode(record.value).event_id), record.key, record.value, tuple(record.headers)


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a university's system runs it: only the broker's credential store in its environment (the
    university's principal and password come from it)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALLIANCE_")}, **settings.kafka_env()}
    return subprocess.run([sys.executable, "-m", "events.tools", *args], capture_output=True, text=True,
                          timeout=300, cwd=PROJECT_ROOT, env=env, check=False)


def valid_events(path: Path, university: str) -> list[Event]:
    with path.open(encoding="utf-8", newline="") as f:
        parsed = iter_csv(f, university) if path.suffix == ".csv" else iter_jsonl(f, university)
        return [p.event for p in parsed if p.ok and p.event is not None]


def assert_key_order_kept(records: list[ConsumerRecord[bytes, bytes]], expected: list[Event]) -> None:
    """Every entity's events arrive in one partition, in file order."""
    by_key: dict[bytes, list[str]] = defaultdict(list)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert r.key is not None and r.value is not None
        by_key[r.key].append(str(decode(r.value).event_id))
        partitions[r.key].add(r.partition)
    want: dict[bytes, list[str]] = defaultdict(list)
    for e in expected:
        want[e.key].append(str(e.event_id))
    assert by_key == want
    assert all(len(p) == 1 for p in partitions.values())


@pytest.fixture(scope="module")
def provisioned(kafka_settings: Settings) -> Settings:
    provision(kafka_settings.kafka(ADMIN))
    return kafka_settings


def staging_topic(kafka: KafkaAccess, name: str, partitions: int = 3, **config: str) -> str:
    """A topic outside the registry that every university may use like its own ingest topic (staging)."""
    provision(kafka, [TopicSpec(name, partitions, extra_config=config)])
    grant(kafka, [Grant(u, Resource.TOPIC, name, op) for u in UNIVERSITIES for op in UNIVERSITY_OPERATIONS])
    return name


@pytest.fixture
def scratch_topic(kafka_admin: KafkaAccess, unique: str) -> str:
    return staging_topic(kafka_admin, f"test.ingest.{unique}")


# -- end to end -------------------------------------------------------------------------------------

async def test_realistic_multi_university_files_publish_end_to_end(provisioned: str) -> None:
    settings = provisioned
    for university in SAMPLE_UNIVERSITIES:
        path = DATA_DIR / f"events-{university}.jsonl"
        expected = valid_events(path, university)
        assert len(expected) == len(path.read_text(encoding="utf-8").splitlines())
        assert {e.family for e in expected} == {"recruitment", "jobfair", "mentoring", "services"}
        topic = ingest_topic(university)
        before = await end_offsets(settings.kafka(ADMIN), topic)

        done = run_cli(settings, "publish", "--university", university, str(path),
                       "--bootstrap", settings.bootstrap)

        assert done.returncode == 0, done.stderr
        assert f"{len(expected)} valid event(s) published to {topic}; 0 bad line(s)" in done.stdout
        records = await read_since(settings.kafka(ADMIN), topic, before)
        assert sorted(as_received(r) for r in records) == sorted(as_sent(e) for e in expected)
        assert_key_order_kept(records, expected)


async def test_mixed_jsonl_publishes_exactly_the_good_lines_and_reports_the_bad(
        kafka_settings: Settings, scratch_topic: str, tmp_path: Path) -> None:
    path = DATA_DIR / "mixed-scu.jsonl"
    report = tmp_path / "errors.csv"

    done = run_cli(kafka_settings, "publish", "-u", "scu", str(path), "--topic", scratch_topic,
                   "--errors-out", str(report))

    assert done.returncode == 1, done.stderr
    expected_bad = {int(k): set(v) for k, v in
                    json.loads((DATA_DIR / "mixed-scu.expected.json").read_text(encoding="utf-8")).items()}
    problems = read_problems_csv(report.read_text(encoding="utf-8"))
    reported: dict[int, set[str]] = defaultdict(set)
    for p in problems:
        reported[p.line].add(p.field)
    assert reported == expected_bad
    for line in expected_bad:
        assert f"line {line}: " in done.stderr

    lines = path.read_text(encoding="utf-8").splitlines()
    good_ids = {json.loads(lines[n - 1])["event_id"] for n in range(1, len(lines) + 1)
                if lines[n - 1].strip() and n not in expected_bad}
    records = await read_since(kafka_settings.kafka(ADMIN), scratch_topic)
    assert sorted(str(decode(r.value).event_id) for r in records if r.value) == sorted(good_ids)
    assert len(records) == len(good_ids)
    assert f"{len(good_ids)} valid event(s) published to {scratch_topic}; {len(expected_bad)} bad line(s)" \
        in done.stdout


async def test_mixed_csv_publishes_exactly_the_good_rows(kafka_settings: Settings, scratch_topic: str) -> None:
    path = DATA_DIR / "mixed-cqu.csv"
    done = run_cli(kafka_settings, "publish", "-u", "cqu", str(path), "--topic", scratch_topic)
    assert done.returncode == 1, done.stderr
    expected = valid_events(path, "cqu")
    assert len(expected) == 5
    records = await read_since(kafka_settings.kafka(ADMIN), scratch_topic)
    assert sorted(as_received(r) for r in records) == sorted(as_sent(e) for e in expected)


async def test_dry_run_publishes_nothing(kafka_settings: Settings, scratch_topic: str) -> None:
    done = run_cli(kafka_settings, "publish", "-u", "scu", str(DATA_DIR / "mixed-scu.jsonl"), "--dry-run",
                   "--bootstrap", kafka_settings.bootstrap, "--topic", scratch_topic)
    assert done.returncode == 1
    assert "dry run, nothing published" in done.stdout
    assert await read_since(kafka_settings.kafka(ADMIN), scratch_topic) == []


def test_cli_broker_errors_exit_2(kafka_settings: Settings, unique: str) -> None:
    done = run_cli(kafka_settings, "publish", "-u", "scu", str(DATA_DIR / "events-scu.jsonl"),
                   "--bootstrap", kafka_settings.bootstrap, "--topic", f"never-provisioned-{unique}")
    assert done.returncode == 2
    assert f"never-provisioned-{unique}" in done.stderr and "may not write" in done.stderr, done.stderr


async def test_cli_throughput_20k_lines(kafka_settings: Settings, scratch_topic: str, tmp_path: Path) -> None:
    """Measures (prints) events/s of the CLI for a 20k-line file; asserts only that all arrived."""
    path = tmp_path / "bulk-swjtu.jsonl"
    events = bulk("swjtu", 20_000)
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    started = time.perf_counter()
    done = run_cli(kafka_settings, "publish", "-u", "swjtu", str(path), "--topic", scratch_topic)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    records = await read_since(kafka_settings.kafka(ADMIN), scratch_topic)
    assert len(records) == 20_000
    assert {str(decode(r.value).event_id) for r in records if r.value} == {e["event_id"] for e in events}
    print(f"\nCLI publish: 20000 lines in {elapsed:.2f}s = {20000 / elapsed:.0f} events/s (incl. interpreter start)")


# -- the SDK ----------------------------------------------------------------------------------------

async def test_publisher_sdk_sends_models_and_mappings_and_refuses_foreign_events(
        kafka_settings: Settings, scratch_topic: str) -> None:
    records = semester("swufe")[:10]
    foreign = from_dict(semester("swu")[0])
    sent: list[Event] = []
    with Publisher(kafka_settings.kafka("swufe"), "swufe", topic=scratch_topic) as publisher:
        sent.append(publisher.publish(from_dict(records[0])))
        sent.append(publisher.publish(records[1]))
        with pytest.raises(EventValidationError) as info:
            publisher.publish(foreign)
        assert [p.field for p in info.value.problems] == ["source"]
        with pytest.raises(EventValidationError):
            publisher.publish({**records[2], "data": {**records[2]["data"], "industry": "mining"}})
        progress: list[int] = []
        assert publisher.publish_many(records[2:], progress=progress.append) == 8
        assert progress == [8] and publisher.pending == 0
    sent += [from_dict(r) for r in records[2:]]
    got = await read_since(kafka_settings.kafka(ADMIN), scratch_topic)
    assert sorted(as_received(r) for r in got) == sorted(as_sent(e) for e in sent)


async def test_delivery_failures_surface(kafka_settings: Settings, unique: str) -> None:
    """A record the broker refuses (larger than the topic's max.message.bytes) raises DeliveryError on flush."""
    topic = f"test.small.{unique}"
    staging_topic(kafka_settings.kafka(ADMIN), topic, 1, **{"max.message.bytes": "1200"})
    small = semester("scu")[-1]
    big = next(e for e in semester("scu") if e["type"] == "recruitment.job_posted")
    big = {**big, "data": {**big["data"], "description": "岗位职责：" + "负责产品研发与测试。" * 100}}
    publisher = Publisher(kafka_settings.kafka("scu"), "scu", topic=topic)
    try:
        publisher.publish(small)
        publisher.flush()
        big_event = publisher.publish(big)
        with pytest.raises(DeliveryError) as info:
            publisher.flush()
        assert [f.event_id for f in info.value.failures] == [str(big_event.event_id)]
        assert "MessageSizeTooLarge" in info.value.failures[0].error or "TooLarge" in info.value.failures[0].error
    finally:
        publisher.close()
    got = await read_since(kafka_settings.kafka(ADMIN), topic)
    assert [decode(r.value).event_id for r in got if r.value] == [from_dict(small).event_id]


def test_missing_topic_and_unreachable_broker_are_refused(kafka_settings: Settings, unique: str) -> None:
    with pytest.raises(BrokerUnavailableError, match="may not write"):
        Publisher(kafka_settings.kafka("scu"), "scu", topic=f"missing-{unique}", producer_config={"max_block_ms": 2000})
    with pytest.raises(BrokerUnavailableError, match="cannot connect"):
        Publisher(KafkaAccess("127.0.0.1:1"), "scu", producer_config={"bootstrap_timeout_ms": 1000})


async def test_undecodable_lines_are_per_line_errors_and_every_good_line_is_published(
        kafka_settings: Settings, scratch_topic: str, tmp_path: Path) -> None:
    """Bug: invalid UTF-8, 10,000 levels of nesting or a lone surrogate gave a traceback, exit 1 and half a
    file published; a stray quote in a CSV swallowed the rows after it."""
    good = [line for line in (DATA_DIR / "events-scu.jsonl").read_bytes().splitlines() if line.strip()][:6]
    nul = json.loads(good[0])
    nul["event_id"] = "0d6f5d1e-2f52-4f6a-9a1d-4d2c7a0f0b11"
    nul["data"]["title"] = "Analyst\u0000"
    surrogate = json.loads(good[2])
    surrogate["data"]["employer_name"] = "@@"
    hostile = [
        b'{"type": "recruitment.job_posted", "title": "\xff\xfe not utf-8"}',  # line 2
        b"[" * 10_000 + b"]" * 10_000,                                        # line 4
        json.dumps(surrogate).encode().replace(b'"@@"', b'"\\ud800"'),           # line 6: lone surrogate
        json.dumps(nul).encode(),                                             # line 8: NUL character
    ]
    lines = [good[0], hostile[0], good[1], hostile[1], good[3], hostile[2], good[4], hostile[3], good[5]]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    done = run_cli(kafka_settings, "publish", "-u", "scu", str(path), "--topic", scratch_topic)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    for line, what in ((2, "not UTF-8"), (4, "nested too deeply"), (6, ""), (8, "U+0000")):
        assert f"line {line}: " in done.stderr and what in done.stderr, (line, done.stderr)
    sent = [good[i] for i in (0, 1, 3, 4, 5)]
    records = await read_since(kafka_settings.kafka(ADMIN), scratch_topic)
    assert sorted(str(decode(r.value).event_id) for r in records if r.value) == \
        sorted(json.loads(line)["event_id"] for line in sent)
    assert "5 valid event(s) published" in done.stdout and "4 bad line(s)" in done.stdout


async def test_a_stray_quote_in_a_csv_is_one_bad_row(kafka_settings: Settings, scratch_topic: str,
                                                     tmp_path: Path) -> None:
    source = (DATA_DIR / "mixed-cqu.csv").read_text(encoding="utf-8").splitlines()
    good_rows = [n for n in range(2, len(source) + 1) if str(n) not in
                 json.loads((DATA_DIR / "mixed-cqu.expected.json").read_text(encoding="utf-8"))]
    header, rows = source[0], [source[n - 1] for n in good_rows]
    broken = rows[0].replace(",emp-", ',"emp-', 1)  # a quote that is never closed
    assert broken != rows[0]
    path = tmp_path / "stray.csv"
    path.write_text("\n".join([header, rows[0], broken, *rows[1:]]) + "\n", encoding="utf-8")

    done = run_cli(kafka_settings, "publish", "-u", "cqu", str(path), "--topic", scratch_topic)

    assert done.returncode == 1, done.stderr
    assert "line 3: line: unreadable CSV" in done.stderr
    records = await read_since(kafka_settings.kafka(ADMIN), scratch_topic)
    assert len(records) == len(rows)  # every row after the stray quote was still read and published
    assert f"{len(rows)} valid event(s) published" in done.stdout
