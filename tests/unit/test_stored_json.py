"""An applied event's log entry is kept as the canonical record it was read from (``events.codec.StoredJson``)
instead of being built (``stored``) and serialised again: the bytes must be the stored form, every reader must
get the mapping (inside the batch that wrote the entry too: a revision refolds from it, an erasure renames in
it), and the stores must hold what they held before."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import faust

from events.base import Event
from events.codec import StoredJson, decode, decode_stored, encode, plain, stored
from events.simulator import alliance_day
from events.simulator.revisions import retraction
from streams import batch as pure
from streams import store as st
from streams.writer import RECORD_OVERHEAD, BatchWriter
from tests.pure_worker import Worker
from tests.unit.test_corrections import _entities, _published, _records
from tests.unit.test_erasure import erasure_request


def _day(seed: int, revisions: float = 0.0) -> list[Event]:
    return [r.event for r in alliance_day(seed=seed, scale=0.05, duplicate_rate=0.0, invalid_rate=0.0,
                                          spoofed_rate=0.0, foreign_rate=0.0, revision_rate=revisions)
            if r.kind == "valid" and r.event is not None]


def test_the_canonical_record_is_the_stored_form_byte_for_byte() -> None:
    events = _day(seed=11, revisions=0.05)
    assert len({e.type for e in events}) >= 12  # every family, revisions among them
    for event in events:
        assert encode(event) == st.value_bytes(stored(event)), event.type
        assert StoredJson(encode(event)).value() == stored(event)
        assert decode_stored(plain(StoredJson(encode(event)))) == event
    assert plain({"a": 1}) == {"a": 1} and plain(None) is None and plain(b"{}") == b"{}"  # only StoredJson unwraps


def test_a_record_in_another_valid_spelling_is_kept_as_the_event_that_was_applied() -> None:
    """The canonical topics are the worker's own (ACLs), but bytes that decode strictly are a stored form whatever
    their spelling: indented, ASCII-escaped, or with a key twice (both parsers take the last)."""
    event = next(e for e in _day(seed=6) if e.type == "recruitment.application_submitted")
    body = json.loads(encode(event))
    other = "cqu" if event.source != "cqu" else "scu"
    spellings = [json.dumps(body, indent=2, ensure_ascii=True).encode(),
                 (f'{{"source": "{other}", ' + json.dumps(body)[1:]).encode()]
    for raw in spellings:
        tabled = Worker()._tables([pure.Raw("alliance.events.recruitment", 0, 0, None, event.key, raw)])
        assert tabled.applied == 1
        (entry,) = [v for _, _, k, v in tabled.puts if "|event|" in k]
        assert entry.json == raw and decode_stored(plain(entry)) == event == decode(raw)


def test_a_log_entry_is_the_record_the_tables_agent_read() -> None:
    events = _day(seed=4)
    worker = Worker()
    _, tabled = worker.send(_records(events))
    entries = [(key, value) for _, _, key, value in tabled.puts if "|event|" in key]
    assert len(entries) == tabled.applied == len(events)
    records = {raw.value for raw in worker.canonical}
    assert all(type(v) is StoredJson and v.json in records for _, v in entries)
    by_id = {str(e.event_id): e for e in events}
    states = worker.tables[pure.STATES]
    for key, value in entries:  # what a store reads back: the mapping the entry was built as before
        assert states[key] == stored(by_id[states[key]["event_id"]]) == json.loads(value.json)


def test_revisions_and_erasures_in_the_batch_that_wrote_the_entries_read_them_as_mappings() -> None:
    """The day, retractions of some of its events and erasures of two seekers, all in ONE batch (each entry is
    read back from the batch's own writes), against the same sent as three batches (read from the tables)."""
    events = _day(seed=3)
    apps = [e for e in events if e.type == "recruitment.application_submitted"]
    checkins = [e for e in events if e.type == "jobfair.student_checked_in"]
    erased = sorted({apps[0].data.seeker_id, checkins[0].data.seeker_id})  # type: ignore[attr-defined]
    retracted = [e for e in (apps[1:6] + checkins[1:6]) if e.data.seeker_id not in erased]  # type: ignore[attr-defined]
    revisions: list[Event] = [retraction(e, event_id=str(uuid.uuid4())) for e in retracted]
    requests = [erasure_request(s) for s in erased]
    one, three = Worker(), Worker()
    _, tabled = one.send(_records(events + revisions + requests))
    for part in (events, revisions, requests):
        three.send(_records(part))
    assert not one.dlq and not three.dlq
    assert _entities(one) == _entities(three)
    assert _published(one) == _published(three) and one.totals() == three.totals()
    for seeker in erased:  # nowhere in the tables, and no value the batch sent to the changelog names them
        assert not [k for k, v in one.tables[pure.STATES].items() if seeker in k or seeker in json.dumps(v)]
        assert not [k for _, _, k, v in tabled.puts if v is not None and seeker.encode() in st.value_bytes(v)]
    logs = {k: v for k, v in one.tables[pure.STATES].items() if "|event|" in k}
    assert logs == {k: v for k, v in three.tables[pure.STATES].items() if "|event|" in k}
    assert len(logs) == len(events) - len(retracted)  # a retracted entry is emptied (deleted)


def _table(tmp_path: Path, name: str, store: str) -> Any:
    st.register()
    app = faust.App(f"stored-{name}", datadir=str(tmp_path), store=store)
    return app.Table(name, partitions=2)


def test_the_stores_keep_the_mapping_and_the_changelog_the_bytes(tmp_path: Path) -> None:
    event = _day(seed=2)[0]
    entry = StoredJson(encode(event))
    memory = _table(tmp_path, "memory", "memory://")
    writer = BatchWriter(lambda: None)  # type: ignore[arg-type,return-value]  (nothing is sent here)
    writer.put_all(memory, [(1, "posting:x|event|0", entry)])
    staged = writer.largest_changelog_batch()
    assert staged == len(st.table_bytes("posting:x|event|0")) + len(entry.json) + RECORD_OVERHEAD
    writer.seal()
    assert memory.data["posting:x|event|0"] == stored(event)
    rocks = _table(tmp_path, "rocks", "alliance-rocksdb://")
    store = rocks.data
    store._db_for_partition(1)
    store.write_batch(1, [(st.table_bytes("posting:x|event|0"), st.value_bytes(entry))], 0, store.epoch(1))
    assert st.partition_reader(rocks)("posting:x|event|0", 1) == stored(event)
