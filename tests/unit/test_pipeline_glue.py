"""The worker's faust glue (streams.pipeline.Pipeline) in memory: fake tables, a fake writer, fake faust
events. What each agent batch writes, to which partition, and that every write precedes the one flush."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import faust
import pytest
from prometheus_client import CollectorRegistry

from bench.workload import load_items
from core.partitioning import key_partition
from events import jobfair as j
from events import recruitment as r
from events import services as sv
from events.reference import City, Degree, EmployerType, Industry
from events.topics import DLQ_TOPIC, EVENT_PARTITIONS, PARTIALS_TOPIC, agg_topic, family_topic, ingest_topic
from streams.domains import domains
from streams.pipeline import NOTHING_PENDING, PartitionNotHeld, Pipeline, require_held
from streams.store import URL, Store, held, register, store_options, table_bytes
from streams.writer import BatchWriter

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


@dataclass
class Message:
    """A consumed record as the glue reads it (faust's ``ConsumerMessage``)."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes | None
    value: bytes | None


class Table(dict[str, Any]):
    """A faust table as the glue uses it: ``get`` and ``data``."""

    @property
    def data(self) -> dict[str, Any]:
        return self


@dataclass
class Writer:
    """The batch writer as the glue sees it: puts staged (and counted per table partition, as the real writer
    counts its changelog record batches) until the flush writes them, or a discard forgets them."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    staged: list[tuple[Any, str, Any]] = field(default_factory=list)
    sizes: dict[tuple[int, int], int] = field(default_factory=dict)

    def add(self, topic: str, key: bytes | None, value: bytes | None, *, partition: int | None = None,
            headers: list[tuple[str, bytes]] | None = None) -> None:
        self.calls.append(("add", topic, key, value, dict(headers or [])))

    def put_all(self, table: Any, entries: Iterable[tuple[int, str, Any]]) -> None:
        for partition, key, value in entries:
            self.staged.append((table, key, value))
            size = self.entry_bytes(key, value)
            self.sizes[(id(table), partition)] = self.sizes.get((id(table), partition), 0) + size
            self.calls.append(("put", table, partition, key, value))

    entry_bytes = staticmethod(BatchWriter.entry_bytes)  # (the real writer's measure of an entry)

    def dlq(self) -> list[dict[str, bytes]]:
        """The headers of every record sent to the dead-letter topic."""
        return [c[4] for c in self.calls if c[0] == "add" and c[1] == DLQ_TOPIC + ".t"]

    def largest_changelog_batch(self) -> int:
        return max(self.sizes.values(), default=0)

    def discard(self) -> None:
        self.staged, self.sizes = [], {}
        sealed = [i for i, c in enumerate(self.calls) if c[0] in ("seal", "flush")]
        del self.calls[sealed[-1] + 1 if sealed else 0:]  # what was staged since the last seal: never sent

    def seal(self) -> Any:
        """What was staged, taken out now, and written to the tables (as the persistent store does once the
        broker acknowledged the changelog) when the flush is awaited."""
        staged, size = self.staged, self.largest_changelog_batch()
        self.staged, self.sizes = [], {}
        self.calls.append(("seal",))

        async def flush() -> int:
            for table, key, value in staged:
                if value is None:
                    table.data.pop(key, None)
                else:
                    table.data[key] = value
            self.calls.append(("flush", size))
            return 0

        return flush

    def take(self) -> list[tuple[Any, ...]]:
        """The calls of one batch: every write, then exactly one seal and its flush, as the last calls."""
        calls, self.calls = self.calls, []
        assert calls[-2:] == [("seal",), ("flush", calls[-1][1])], calls
        assert not [c for c in calls[:-2] if c[0] in ("seal", "flush")], calls
        return calls[:-2]


def posted(pid: str = "scu-job-1") -> r.JobPosted:
    return r.JobPosted(source="scu", occurred_at=T0, data=r.JobPostedData(
        posting_id=pid, employer_id="emp-1", employer_name="Chengdu Tianfu Software",
        employer_type=EmployerType.PRIVATE, industry=Industry.IT_SOFTWARE, city=City.CHENGDU,
        title="Backend engineer", positions=3, degree_min=Degree.BACHELOR, salary_min=8000, salary_max=14000,
        deadline=date(2099, 12, 31)))


def pipeline() -> tuple[Pipeline, Writer]:
    writer = Writer()
    p = Pipeline(seen=Table(), states=Table(), rollups=Table(),  # type: ignore[arg-type]
                 domains=domains(), topic=lambda name: name + ".t", dlq=DLQ_TOPIC + ".t", writer=writer,
                 registry=CollectorRegistry())
    return p, writer


async def handled(p: Pipeline, agent: str, batch: list[Message]) -> None:
    """``batch`` through ``agent``'s two phases one after the other, as the worker runs a batch with nothing
    pending (and as it runs the parts of a split batch)."""
    await p.run(p.steps(agent), batch)


def ev(topic: str, partition: int, offset: int, value: bytes | None, key: bytes | None = b"k") -> Message:
    return Message(topic + ".t", partition, offset, T0.timestamp() + 60, key, value)


async def test_ingest_writes_the_dedupe_table_to_the_record_partition_then_flushes_once() -> None:
    p, w = pipeline()
    e = posted()
    await handled(p, "ingest", [ev(ingest_topic("scu"), 2, 10, e.to_json()), ev(ingest_topic("scu"), 1, 4, e.to_json()),
                    ev(ingest_topic("scu"), 0, 7, b"{not json")])
    calls = w.take()
    [put] = [c for c in calls if c[0] == "put"]
    assert put[1] is p.seen and put[2] == 2 and put[3] == f"scu/{e.event_id}"
    assert calls.index(put) < min(i for i, c in enumerate(calls) if c[0] == "add")
    canonical = [c for c in calls if c[0] == "add" and c[1] == family_topic("recruitment") + ".t"]
    assert [(c[2], c[4]["x-alliance-ingest-partition"], c[4]["x-alliance-ingest-offset"]) for c in canonical] == \
        [(b"scu-job-1", b"2", b"10")]
    dlq = [c[4]["x-alliance-reject-reason"] for c in calls if c[1] == DLQ_TOPIC + ".t"]
    assert dlq == [b"duplicate", b"malformed"]
    assert p.events_applied["ingest"] == 1 and p.events_processed["ingest"] == 3

    # the same record read again from the same coordinates (after a crash): a replay, sent on, not a reject
    await handled(p, "ingest", [ev(ingest_topic("scu"), 2, 10, e.to_json())])
    calls = w.take()
    assert [c[1] for c in calls] == [family_topic("recruitment") + ".t"]
    assert p.metrics is not None and p.metrics.records_replayed.labels(agent="ingest")._value.get() == 1


async def test_tables_and_rollup_write_each_key_to_its_event_partition_and_a_replay_changes_nothing() -> None:
    p, w = pipeline()
    booth = j.BoothRegistered(source="cqu", occurred_at=T0, data=j.BoothRegisteredData(
        fair_id="cqu-fair-1", booth_id="b-1", employer_id="emp-1", employer_name="Chongqing Auto",
        employer_type=EmployerType.STATE_OWNED, industry=Industry.AUTOMOTIVE, positions_offered=3))
    job = posted()
    batch = [ev(family_topic("recruitment"), 4, 0, job.to_json()),
             ev(family_topic("jobfair"), 1, 0, booth.to_json()),
             ev(family_topic("jobfair"), 1, 1, b'{"type": "jobfair.nope"}')]
    await handled(p, "tables", batch)
    calls = w.take()
    puts = {c[3]: c[2] for c in calls if c[0] == "put" and c[1] is p.states}
    # the entity, its member keys (streams.domains.base), the applied ids and the partial sums: one table,
    # each key to the partition of the event that caused it
    logs = {k: v for k, v in puts.items() if "|event" in k or "|refold|" in k}  # each entity's event log
    states = {k: v for k, v in puts.items() if not k.startswith(("applied:", "partial:")) and k not in logs}
    applied = {k: v for k, v in puts.items() if k.startswith("applied:")}
    assert states == {"posting:scu-job-1": 4, "fair:cqu-fair-1": 1, "fair:cqu-fair-1|booth|b-1": 1}
    # (events.corrections), and the posting's refold index (the job posting is not a member: streams.engine)
    assert logs == {"posting:scu-job-1|event|0": 4, "fair:cqu-fair-1|event|0": 1, "posting:scu-job-1|refold|0": 4}
    values = {c[3]: c[4] for c in calls if c[0] == "put" and c[1] is p.states}
    # a log's count, in its entity's state: events logged, complete, events standing, refold index entries (a
    # booth is a member of its fair: not indexed)
    assert values["posting:scu-job-1"]["_log"] == [1, True, 1, 1]
    assert values["fair:cqu-fair-1"]["_log"] == [1, True, 1, 0]
    assert applied == {f"applied:scu/{job.event_id}": 4, f"applied:cqu/{booth.event_id}": 1}
    assert {v for k, v in puts.items() if k.startswith("partial:postings-by-segment")} == {4}
    views = {c[2]: json.loads(c[3]) for c in calls if c[0] == "add" and c[1] == agg_topic("fairs") + ".t"}
    assert views[b"cqu-fair-1"]["value"]["booths"] == 1
    assert [c[4]["x-alliance-university"] for c in calls if c[1] == DLQ_TOPIC + ".t"] == [b"internal"]
    partials = [c for c in calls if c[0] == "add" and c[1] == PARTIALS_TOPIC + ".t"]
    assert partials and p.events_applied["tables"] == 2

    # a replay of the same batch: no new applied ids, the same partials sent again
    await handled(p, "tables", batch[:2])
    again = w.take()
    assert not [c for c in again if c[0] == "put" and c[3].startswith("applied:")]
    def sums(records: list[tuple[Any, ...]]) -> list[tuple[str, str, str, Any]]:
        bodies = [json.loads(c[3]) for c in records if c[0] == "add" and c[1] == PARTIALS_TOPIC + ".t"]
        return sorted((b["aggregate"], b["key"], b["member"], b["partial"]) for b in bodies)

    assert sums(again) == sums(partials)

    # the rollup sums the partials into the alliance-wide records, keyed by dimensions
    await handled(p, "rollup", [ev(PARTIALS_TOPIC, 0, i, c[3], c[2]) for i, c in enumerate(partials)] +
                   [ev(PARTIALS_TOPIC, 0, 99, b'{"aggregate": 1}')])
    rolled = w.take()
    segments = [json.loads(c[3]) for c in rolled if c[0] == "add" and c[1] == agg_topic("postings-by-segment") + ".t"]
    assert {s["key"]["university"]: s["value"]["open_positions"] for s in segments} == {"scu": 3, "*": 3}
    assert [c[4]["x-alliance-reject-reason"] for c in rolled if c[1] == DLQ_TOPIC + ".t"] == [b"malformed"]


async def test_a_batch_too_large_for_one_changelog_record_batch_is_applied_in_parts(monkeypatch: Any) -> None:
    """A university's long postings, all on one partition: a batch whose writes to one changelog partition
    would pass the split size is processed in halves (each computed from what the one before wrote), down to
    parts that fit, and ends where the whole batch in one go ends: the same table, the same latest partial per
    member, every event applied once. A single event whose own writes do not fit goes to the DLQ, not applied
    (it cannot be written atomically, and a flush the broker refuses would stop every worker)."""
    import streams.pipeline

    def postings() -> list[Message]:
        out = []
        for i in range(12):
            e = posted(f"scu-job-{i}")
            e = e.model_copy(update={"data": e.data.model_copy(update={"description": "很" * 400})})
            out.append(ev(family_topic("recruitment"), 4, i, e.to_json(), key=e.key))
        return out

    batch = postings()
    whole, w_whole = pipeline()
    await handled(whole, "tables", batch)
    [(_, one_flush)] = [c for c in w_whole.calls if c[0] == "flush"]
    limit = one_flush // 5  # the whole batch writes five times what a part may
    monkeypatch.setattr(streams.pipeline, "SPLIT_BYTES", limit)
    parts, w_parts = pipeline()
    await handled(parts, "tables", batch)
    flushes = [size for c in w_parts.calls if c[0] == "flush" for size in c[1:]]
    assert len(flushes) >= 5 and all(size <= limit for size in flushes), flushes
    assert parts.split_batches == {"tables": len(flushes) - 1}  # each split makes one more part
    assert dict(parts.states) == dict(whole.states)
    assert parts.events_applied["tables"] == whole.events_applied["tables"] == 12
    assert parts.events_processed["tables"] == 12

    def latest_partials(calls: list[tuple[Any, ...]]) -> dict[tuple[str, str], Any]:
        bodies = [json.loads(c[3]) for c in calls if c[0] == "add" and c[1] == PARTIALS_TOPIC + ".t"]
        return {(json.dumps(b["key"], sort_keys=True), b["member"]): b["partial"] for b in bodies}

    assert latest_partials(w_parts.calls) == latest_partials(w_whole.calls)
    # not even one event's writes fit: ~3.4 KB each (its log entry holds the description, 1,200 bytes in UTF-8)
    monkeypatch.setattr(streams.pipeline, "SPLIT_BYTES", 2_000)
    refused, w_refused = pipeline()
    await handled(refused, "tables", batch[:3])
    assert not refused.states  # nothing of them applied ...
    dlq = w_refused.dlq()
    assert [h["x-alliance-reject-reason"] for h in dlq] == [b"unprocessable"] * 3  # ... each refused alone
    assert all(b"exceed one changelog record batch" in h["x-alliance-reject-detail"] for h in dlq)
    assert [h["x-alliance-source-offset"] for h in dlq] == [b"0", b"1", b"2"]
    assert refused.events_processed["tables"] == 3 and refused.events_applied["tables"] == 0
    assert refused.metrics is not None
    assert refused.metrics.events_rejected.labels(university="internal", reason="unprocessable")._value.get() == 3


async def test_one_oversized_event_is_refused_and_the_good_events_around_it_are_applied(monkeypatch: Any) -> None:
    """A malicious university slips one event whose own writes cannot fit between ordinary ones: the halving
    isolates it, it alone goes to the DLQ, every other event of the batch is applied."""
    import streams.pipeline

    # an ordinary posting writes ~2.2 KB, the long one ~8.2 KB (UTF-8, the writer's measure: BatchWriter.entry_bytes)
    monkeypatch.setattr(streams.pipeline, "SPLIT_BYTES", 6_000)
    events = [posted(f"scu-job-{i}") for i in range(7)]
    events[3] = events[3].model_copy(update={"data": events[3].data.model_copy(update={"description": "很" * 2000})})
    p, w = pipeline()
    await handled(p, "tables",
                  [ev(family_topic("recruitment"), 4, i, e.to_json(), key=e.key) for i, e in enumerate(events)])
    dlq = w.dlq()
    assert [(h["x-alliance-reject-reason"], h["x-alliance-source-offset"]) for h in dlq] == [(b"unprocessable", b"3")]
    postings = {k for k in p.states if k.startswith("posting:") and "|" not in k}
    assert postings == {f"posting:scu-job-{i}" for i in range(7) if i != 3}
    assert p.events_applied["tables"] == 6 and p.events_processed["tables"] == 7


SEEKER = "ps.scu.dev." + "5e" * 16


def _served_then_erased(n: int) -> tuple[list[Message], Message]:
    """``n`` job recommendations of one seeker (their own 1-1-3-1 entity: a log of ``n`` events on one partition),
    and the erasure request's copy on that partition, as the tables agent reads them."""
    events = [sv.JobRecommended(source="scu", occurred_at=T0, data=sv.JobRecommendedData(
        seeker_id=SEEKER, recommendation_id=f"rec-{i}", posting_id=f"scu-job-{i}")) for i in range(n)]
    request = sv.SeekerErasureRequested(source="scu", occurred_at=T0 + timedelta(minutes=1),
                                        data=sv.SeekerErasureRequestedData(seeker_id=SEEKER))
    partition = key_partition(request.key, EVENT_PARTITIONS)
    served = [ev(family_topic("services"), partition, i, e.to_json(), key=e.key) for i, e in enumerate(events)]
    return served, ev(family_topic("services"), partition, n, request.to_json(), key=request.key)


class FailingWriter(Writer):
    """The fake writer, but its ``fail_at``-th flush raises before writing anything (a crash in the middle)."""

    fail_at = 0
    flushes = 0

    def seal(self) -> Any:
        flush = super().seal()

        async def failing() -> int:
            self.flushes += 1
            if self.flushes == self.fail_at:
                raise ConnectionError("the worker died here")
            return await flush()  # type: ignore[no-any-return]
        return failing


async def test_an_erasure_too_large_for_one_changelog_record_batch_is_written_in_parts_and_resumes(
        monkeypatch: Any) -> None:
    """A seeker with many events on one partition: the erasure's own writes pass the split size. Before, it was
    refused to the DLQ (and the seeker stayed); now it is written in parts, each within the limit, its view's
    tombstone with the first, and it ends as the erasure in one write does. A crash before any later part leaves a
    prefix; the record is read again (its offset was not committed) and the erasure completes from there."""
    import streams.pipeline

    whole, w_whole = pipeline()
    served, erasure = _served_then_erased(60)
    await handled(whole, "tables", served)
    before = dict(whole.states)
    w_whole.calls.clear()
    await handled(whole, "tables", [erasure])
    [(_, one_flush)] = [c for c in w_whole.calls if c[0] == "flush"]
    assert not [k for k, v in whole.states.items() if SEEKER in k or SEEKER in json.dumps(v)]
    limit = one_flush // 6
    monkeypatch.setattr(streams.pipeline, "SPLIT_BYTES", limit)

    parts, w_parts = pipeline()
    parts.states.update(before)
    await handled(parts, "tables", [erasure])
    flushes = [c[1] for c in w_parts.calls if c[0] == "flush"]
    assert len(flushes) >= 6 and all(size <= limit for size in flushes), flushes
    assert dict(parts.states) == dict(whole.states)
    assert not w_parts.dlq()
    first_flush = next(i for i, c in enumerate(w_parts.calls) if c[0] == "flush")
    [tombstone] = [i for i, c in enumerate(w_parts.calls) if c[0] == "add" and c[3] is None]
    assert w_parts.calls[tombstone][2] == f"seeker:{SEEKER}".encode() and tombstone < first_flush
    assert parts.events_processed["tables"] == 1 and parts.erasures_in_parts == 1 and not parts.split_batches

    for fail_at in range(2, len(flushes) + 1):  # a crash before each later part, then the record again
        crashed, _ = pipeline()
        crashed.writer = failing = FailingWriter()
        failing.fail_at = fail_at
        crashed.states.update(before)
        with pytest.raises(ConnectionError):
            await handled(crashed, "tables", [erasure])
        assert crashed.states != before and crashed.states != whole.states  # a prefix was durable
        assert "tables" not in crashed.events_processed  # not done: its offset is not committed
        again, _ = pipeline()
        again.states.update(crashed.states)
        await handled(again, "tables", [erasure])
        assert dict(again.states) == dict(whole.states), fail_at

    # an event that is not an erasure still may not be cut: refused, as before
    monkeypatch.setattr(streams.pipeline, "SPLIT_BYTES", 500)
    refused, w_refused = pipeline()
    await handled(refused, "tables", served[:1])
    assert [h["x-alliance-reject-reason"] for h in w_refused.dlq()] == [b"unprocessable"]


async def test_a_seekers_index_past_one_changelog_record_batch_does_not_refuse_their_further_events(
        monkeypatch: Any) -> None:
    """A seeker whose events keep adding keys naming them on one partition (job recommendations): before, their
    index was one value listing every such key, and once it alone passed the split size each further event naming
    them was refused to the DLQ as ``unprocessable``. Its pages (streams.erasure.PAGE_KEYS keys each) keep every
    event's writes small: all are applied, and the erasure still removes the seeker."""
    import streams.pipeline

    served, erasure = _served_then_erased(400)
    index_bytes = 400 * len(f'"seeker:{SEEKER}|recommended|rec-000",'.encode())  # (the index the old layout wrote)
    monkeypatch.setattr(streams.pipeline, "SPLIT_BYTES", index_bytes // 3)
    p, w = pipeline()
    for start in range(0, len(served), 40):
        await handled(p, "tables", served[start:start + 40])
    assert not w.dlq()
    assert p.events_processed["tables"] == len(served)
    assert p.states[f"seeker:{SEEKER}"]["_log"][0] == len(served)  # (every one applied to their own entity)
    await handled(p, "tables", [erasure])
    assert not [k for k, v in p.states.items() if SEEKER in k or SEEKER in json.dumps(v)]
    assert not w.dlq()


def test_a_1_mb_record_is_cut_in_its_dlq_copy_and_the_good_events_around_it_pass() -> None:
    """Bug: a ~1 MB record on an ingest topic made a DLQ copy larger than the broker takes; the batch failed and
    good events around it were lost."""
    from streams import batch as pure

    good = [posted(f"scu-job-{i}") for i in range(3)]
    huge = b'{"type": "recruitment.job_posted", "pad": "' + b"x" * 1_000_000 + b'"}'
    raws = [pure.Raw(ingest_topic("scu"), 0, i, None, b"k", v)
            for i, v in enumerate([good[0].to_json(), huge, good[1].to_json(), b"", good[2].to_json()])]
    raws[3] = pure.Raw(ingest_topic("scu"), 0, 3, None, b"k" * 5000, b"not json")  # a huge key
    out = pure.ingest(raws, {ingest_topic("scu"): "scu"}, {}.get, datetime.now(UTC), lambda n: n, DLQ_TOPIC)
    assert sum(out.ingested.values()) == 3
    dlq = [(k, v, dict(h)) for t, k, v, h in out.records if t == DLQ_TOPIC]
    assert [h["x-alliance-source-offset"] for _, _, h in dlq] == [b"1", b"3"]
    (_, value, headers), (key, _, key_headers) = dlq
    assert value is not None and len(value) == pure.DLQ_MAX_VALUE_BYTES and value == huge[:len(value)]
    assert headers["x-alliance-value-truncated-from"] == str(len(huge)).encode()
    assert headers["x-alliance-reject-reason"] == b"oversized"
    assert key is not None and len(key) == pure.DLQ_MAX_KEY_BYTES
    assert key_headers["x-alliance-key-truncated-from"] == b"5000"


def test_an_event_the_engine_cannot_apply_goes_to_the_dlq_alone() -> None:
    """A bug in one domain handler (or a value it cannot take) must refuse that event only: the other events
    of the batch are applied, and the refused one is kept in the DLQ with the error."""
    from dataclasses import replace as dc_replace

    from streams import batch as pure

    real = domains()
    recruitment = real["recruitment"]

    def fragile(tx: Any, state: Any, event: Any) -> Any:
        if event.subject == "scu-job-bad":
            raise ValueError("cannot apply this one")
        return recruitment.apply(tx, state, event)

    doms = {**real, "recruitment": dc_replace(recruitment, apply=fragile)}
    events = [posted("scu-job-1"), posted("scu-job-bad"), posted("scu-job-2")]
    raws = [pure.Raw(family_topic("recruitment"), 0, i, None, e.key, e.to_json()) for i, e in enumerate(events)]
    out = pure.tables(raws, doms, lambda _key, _partition: None, T0.isoformat(), lambda n: n, DLQ_TOPIC)
    entity = {k for t, _, k, _ in out.puts
              if t == pure.STATES and k.startswith("posting:") and "|event" not in k and "|refold|" not in k}
    assert entity == {"posting:scu-job-1", "posting:scu-job-2"}
    assert out.applied == 2 and [e.subject for e in out.events] == ["scu-job-1", "scu-job-2"]
    [(key, headers)] = [(k, dict(h)) for t, k, _, h in out.records if t == DLQ_TOPIC]
    assert key == b"scu-job-bad" and headers["x-alliance-reject-reason"] == b"unprocessable"
    assert b"cannot apply this one" in headers["x-alliance-reject-detail"]
    assert headers["x-alliance-event-id"] == str(events[1].event_id).encode()
    segment = [v for t, _, k, v in out.puts if k.startswith("partial:") and "university=*" in k]
    assert [v["open_positions"] for v in segment] == [6]  # two postings of 3 positions, not three


def test_a_batch_of_a_partition_whose_table_partition_is_not_held_is_refused(tmp_path: Path) -> None:
    """faust's assignor may leave a table's changelog out of a worker's assignment (a topic the group leader
    did not see yet) while the worker gets the records of the table's partitions: reads of a partition the
    store does not hold find nothing, so the batch must fail (nothing written, nothing committed) instead of
    publishing figures computed from nothing."""
    register()
    app = faust.App("held-test", broker="kafka://127.0.0.1:1", store=URL, datadir=str(tmp_path))
    rollups = app.Table("rollups", partitions=3, default=None, options=store_options())
    store = rollups.data
    assert isinstance(store, Store)
    assert not any(held(rollups, p) for p in range(3))  # nothing assigned yet
    store._db_for_partition(1)  # what faust does for an assigned partition
    assert held(rollups, 1) and not held(rollups, 0) and not held(rollups, 2)
    batch = [Message(PARTIALS_TOPIC, p, 0, 0.0, b"k", b"{}") for p in (1, 0, 2, 0)]
    with pytest.raises(PartitionNotHeld, match=r"table rollups: partition\(s\) \[0, 2\]"):
        require_held(rollups, batch)
    require_held(rollups, [ev for ev in batch if ev.partition == 1])  # held: goes on
    memory = Table()  # the in-memory store cannot tell: it is taken as held
    require_held(cast(Any, memory), batch)


@pytest.mark.parametrize("horizon_s", [None, 3600])
def test_a_reopened_partition_database_keeps_the_configured_block_cache(tmp_path: Path,
                                                                        horizon_s: int | None) -> None:
    """rocksdict reads an existing database's column family options back from its OPTIONS file, where the
    block cache is not kept: reopened after a restart, every partition database ran with RocksDB's default
    8 MiB cache instead of the configured one (the state benchmark's memory growth after a restart)."""
    from streams.store import BLOCK_CACHE_BYTES

    register()
    configured = BLOCK_CACHE_BYTES
    for start in ("first start", "restart"):
        app = faust.App(f"cache-{horizon_s}", broker="kafka://127.0.0.1:1", store=URL, datadir=str(tmp_path))
        table = app.Table("entity-state", partitions=2, default=None, options=store_options(horizon_s))
        store = table.data
        assert isinstance(store, Store)
        db = store._db_for_partition(1)
        db[b"posting:scu-job-1"] = b"{}"
        assert db.property_int_value("rocksdb.block-cache-capacity") == configured, start
        assert db[b"posting:scu-job-1"] == b"{}"
        db.close()
        store._dbs.clear()
    assert configured != 8 * 1024 * 1024  # RocksDB's default: the test could not tell otherwise


def test_every_database_of_a_worker_shares_one_block_cache_and_one_memtable_budget(tmp_path: Path) -> None:
    """A worker's RocksDB memory does not grow with the partitions it holds: all its databases (every table's,
    every partition's) fill one block cache and one memtable budget (streams.store.shared_budgets); with a cache
    and memtables per database, a worker holding 12 partitions could grow to 144 MiB, and to twice that after
    taking over a failed worker's partitions."""
    from streams.store import BLOCK_CACHE_BYTES, MEMTABLE_BYTES

    register()
    app = faust.App("budgets", broker="kafka://127.0.0.1:1", store=URL, datadir=str(tmp_path))
    tables = [app.Table(name, partitions=6, default=None, options=store_options(horizon))
              for name, horizon in (("entity-state", None), ("ingest-seen", 3600))]
    dbs = [table.data._db_for_partition(p) for table in tables for p in range(6)]
    value = bytes(range(256)) * 8  # 2 KiB that snappy cannot shrink
    n = 20_000  # 40 MB: over the memtable budget, under what 12 databases' own 4 MiB memtables hold unflushed
    for i in range(n):
        dbs[i % len(dbs)][f"posting:scu-job-{i:06}".encode()] = value

    def memtables() -> int:
        return sum(db.property_int_value("rocksdb.cur-size-all-mem-tables") for db in dbs)

    def flushed() -> int:
        return sum(db.property_int_value("rocksdb.total-sst-files-size") for db in dbs)

    deadline = time.monotonic() + 10  # (flushes run on RocksDB's background threads)
    while (memtables() > MEMTABLE_BYTES or not flushed()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert memtables() <= MEMTABLE_BYTES < n * len(value), memtables()
    assert flushed() > 0  # the budget flushed memtables to files: nothing was dropped
    for i in range(0, n, 7):  # every database's reads fill the same cache
        assert dbs[i % len(dbs)][f"posting:scu-job-{i:06}".encode()] == value
    usage = {db.property_int_value("rocksdb.block-cache-usage") for db in dbs}
    capacity = {db.property_int_value("rocksdb.block-cache-capacity") for db in dbs}
    assert capacity == {BLOCK_CACHE_BYTES} and len(usage) == 1  # one cache: each database sees the same usage
    assert 0 < usage.pop() <= BLOCK_CACHE_BYTES
    for db in dbs:
        db.close()


def test_a_database_filters_absent_keys_with_ten_bits_a_key(tmp_path: Path) -> None:
    """Most of a worker's reads are of keys that are not there (a new event's dedupe id, in every seen
    database; its applied key): each file's bloom filter answers them with 10 bits per key (~1 % let through to
    a block read), not faust's default 3 (~15 %). What the files hold says so: their filter blocks' size."""
    register()
    app = faust.App("filters", broker="kafka://127.0.0.1:1", store=URL, datadir=str(tmp_path))
    n = 20_000
    for table in (app.Table("entity-state", partitions=1, default=None, options=store_options(None)),
                  app.Table("ingest-seen", partitions=1, default=None, options=store_options(3600))):
        db = table.data._db_for_partition(0)
        for i in range(n):
            db[f"seen:scu/{i:08}".encode()] = b"1"
        db.flush()
        properties = dict(part.strip().split("=", 1) for part in
                          db.property_value("rocksdb.aggregated-table-properties").split(";") if "=" in part)
        assert int(properties["# entries for filter"]) == n
        assert int(properties["filter block size"]) * 8 >= 9 * n, properties["filter block size"]  # 3 bits: 7,500 B
        db.close()


@dataclass
class StoreWriter(Writer):
    """The batch writer's effect on a persistent store: each put lands in its partition's database (as after
    the broker acknowledged its changelog record)."""

    offset: int = 0

    def put_all(self, table: Any, entries: Iterable[tuple[int, str, Any]]) -> None:
        store = table.data
        for partition, key, value in entries:
            store.write_batch(partition, [(table_bytes(key), None if value is None else table_bytes(value))],
                              self.offset, store.epoch(partition))
            self.offset += 1
            self.calls.append(("put", table, partition, key, value))

    def discard(self) -> None:
        raise AssertionError("a persistent store's writes are not staged here: nothing to discard")


async def test_a_resent_id_under_another_record_key_is_still_refused_with_the_persistent_store(
        tmp_path: Path) -> None:
    """The ingest reads its dedupe ids from whichever partition of the worker holds them (streams.store
    .any_reader), not only the record's: a university re-sending an event (or re-using its id) under another
    record key, so on another partition in a later batch, is refused, and the good event beside it is kept."""
    register()
    app = faust.App("resend-test", broker="kafka://127.0.0.1:1", store=URL, datadir=str(tmp_path))
    seen = app.Table("ingest-seen", partitions=3, default=None, options=store_options())
    for partition in range(3):
        seen.data._db_for_partition(partition)
    writer = StoreWriter()
    p = Pipeline(seen=seen, states=Table(), rollups=Table(),  # type: ignore[arg-type]
                 domains=domains(), topic=lambda name: name + ".t", dlq=DLQ_TOPIC + ".t", writer=writer)
    e = posted()
    await handled(p, "ingest", [ev(ingest_topic("scu"), 2, 10, e.to_json())])
    assert seen.data.get_in(f"scu/{e.event_id}", 2) is not None and writer.take()
    other = posted("scu-job-2")
    reused = posted("scu-job-3").model_copy(update={"event_id": e.event_id})  # same id, other content
    await handled(p, "ingest", [ev(ingest_topic("scu"), 1, 4, e.to_json(), key=b"another-key"),
                    ev(ingest_topic("scu"), 1, 5, other.to_json()),
                    ev(ingest_topic("scu"), 0, 9, reused.to_json(), key=b"scu-job-3")])
    calls = writer.take()
    assert [c[4]["x-alliance-reject-reason"] for c in calls if c[1] == DLQ_TOPIC + ".t"] == \
        [b"duplicate", b"conflict"]
    assert [c[2] for c in calls if c[0] == "add" and c[1] == family_topic("recruitment") + ".t"] == [b"scu-job-2"]


async def overlapped(p: Pipeline, agent: str, batches: list[list[Message]], *, read_through: bool = True) -> None:
    """``batches`` as the worker's serving loop (streams.app.serve_inbox) runs them when each next batch is
    there while the one before waits for the broker: computed through the previous batch's pending entries
    before that batch's flush even began (the fake writer writes the tables at the flush, as the persistent
    store does after the acknowledgement), staged and sent after it completed."""
    steps = p.steps(agent)
    pending, previous = NOTHING_PENDING, None
    for batch in cast(Any, batches):
        writes = steps.compute(batch, pending if read_through else NOTHING_PENDING)
        if previous is not None:
            await previous
        previous, staged = steps.launch(batch, writes)
        assert staged is not None
        pending = staged
    assert previous is not None
    await previous


def partial_sums(calls: list[tuple[Any, ...]]) -> list[tuple[str, str, str, Any]]:
    bodies = [json.loads(c[3]) for c in calls if c[0] == "add" and c[1] == PARTIALS_TOPIC + ".t"]
    return sorted((b["aggregate"], json.dumps(b["key"], sort_keys=True), b["member"], json.dumps(b["partial"]))
                  for b in bodies)


async def test_batches_computed_while_the_previous_ones_writes_are_pending_end_where_one_after_another_ends(
) -> None:
    """Simulated alliance events through the ingest and the tables agent in batches of 300, one after another
    and overlapped: the same tables, the same records. A university re-sends an event of the first batch in
    the second (under another record key): a duplicate in both. Computed without the pending entries, the
    overlapped batches end elsewhere (the test would see a loop that forgot them)."""
    items = load_items(900)
    ingest = [[ev(it.topic, 0, i, it.value, it.key) for i, it in enumerate(items[start:start + 300], start)]
              for start in range(0, 900, 300)]
    ingest[1].append(ev(items[10].topic, 1, 5000, items[10].value, key=b"another-key"))
    one_by_one, w_one = pipeline()
    for batch in ingest:
        await handled(one_by_one, "ingest", batch)
    both, w_both = pipeline()
    await overlapped(both, "ingest", ingest)
    assert dict(both.seen) == dict(one_by_one.seen) and len(both.seen) == 900
    sent = [c for c in w_both.calls if c[0] == "add"]
    assert sent == [c for c in w_one.calls if c[0] == "add"]
    assert both.events_applied["ingest"] == 900
    dlq = [dict(c[4]) for c in sent if c[1] == DLQ_TOPIC + ".t"]
    assert [h["x-alliance-reject-reason"] for h in dlq] == [b"duplicate"]  # found among the pending entries

    canonical = [Message(c[1], key_partition(c[2], EVENT_PARTITIONS), i, T0.timestamp() + 60, c[2], c[3])
                 for i, c in enumerate(c for c in sent if c[1].startswith("alliance.events."))]
    tables = [canonical[start:start + 250] for start in range(0, len(canonical), 250)]
    assert len(tables) == 4
    one_by_one, w_one = pipeline()
    for batch in tables:
        await handled(one_by_one, "tables", batch)
    both, w_both = pipeline()
    await overlapped(both, "tables", tables)
    assert dict(both.states) == dict(one_by_one.states)
    assert partial_sums(w_both.calls) == partial_sums(w_one.calls)
    assert both.events_applied["tables"] == one_by_one.events_applied["tables"] == 900
    blind, _ = pipeline()
    await overlapped(blind, "tables", tables, read_through=False)
    assert dict(blind.states) != dict(one_by_one.states)


async def test_a_launched_batch_is_sealed_at_once_so_another_agents_flush_never_sends_it() -> None:
    """Bug (found by the benchmark, never committed): a launched batch stayed staged in the shared writer until
    its completion ran, so the next agent to flush sent its records and it was acknowledged with an empty flush
    of its own, before its writes were. Every launch now seals what it staged."""
    p, w = pipeline()
    e = posted()
    ingest, tables = p.steps("ingest"), p.steps("tables")
    first = [ev(ingest_topic("scu"), 0, 0, e.to_json())]
    work, _ = ingest.launch(first, ingest.compute(first, NOTHING_PENDING))
    second = [ev(family_topic("recruitment"), 4, 0, e.to_json(), key=e.key)]
    other, _ = tables.launch(second, tables.compute(second, NOTHING_PENDING))
    await other  # the tables agent's batch, acknowledged first: the ingest's entries are not in it
    assert not p.seen and "posting:scu-job-1" in p.states
    await work
    assert len(p.seen) == 1
    assert [c[0] for c in w.calls if c[0] in ("seal", "flush")] == ["seal", "seal", "flush", "flush"]
