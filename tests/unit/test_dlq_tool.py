"""events.tools.dlq (pure): summary rows, export lines, the redrive plan (each DLQ record once)."""

from __future__ import annotations

import json

from events import wire
from events.tools.dlq import export_line, parse, plan_redrive, summary


def _headers(university: str, reason: str) -> list[tuple[str, bytes]]:
    return [(wire.DLQ_UNIVERSITY, university.encode()), (wire.DLQ_REASON, reason.encode()),
            (wire.DLQ_DETAIL, b"data.salary_min: too high"), (wire.DLQ_SOURCE_TOPIC, b"alliance.ingest.scu"),
            (wire.DLQ_SOURCE_PARTITION, b"1"), (wire.DLQ_SOURCE_OFFSET, b"42")]


def test_summary_groups_by_university_and_reason_with_first_and_last() -> None:
    rejects = [parse(0, i, 1_764_000_000_000 + i * 1000, b"{}", _headers(u, r))
               for i, (u, r) in enumerate([("scu", "invalid"), ("scu", "invalid"), ("cqu", "duplicate"),
                                           ("scu", "not_owner")])]
    rows = summary(rejects)
    assert [(r["university"], r["reason"], r["records"]) for r in rows] == [
        ("cqu", "duplicate", 1), ("scu", "invalid", 2), ("scu", "not_owner", 1)]
    assert rows[1]["first"] < rows[1]["last"]


def test_export_keeps_json_records_as_objects_and_skips_redacted_ones() -> None:
    line = export_line(parse(2, 7, 0, b'{"type": "x"}', _headers("scu", "invalid")))
    assert line is not None and line["record"] == {"type": "x"} and line["dlq"] == "2:7"
    assert line["source"] == "alliance.ingest.scu[1]@42"
    assert export_line(parse(2, 8, 0, b"not json", _headers("scu", "malformed")))["record"] == "not json"  # type: ignore[index]
    assert export_line(parse(2, 9, 0, None, _headers("scu", "personal_data"))) is None


def test_redrive_plan_sends_each_dlq_record_once() -> None:
    lines = [json.dumps({"dlq": c, "record": {"n": i}}) for i, c in enumerate(["0:1", "0:2", "0:1", "1:5"])]
    lines += ["{broken", json.dumps({"record": {}}), ""]
    plan = plan_redrive(enumerate(lines, start=1), redriven={"1:5"})
    assert [(n, c) for n, c, _ in plan.send] == [(1, "0:1"), (2, "0:2")]
    assert plan.already == [3, 4]  # the same record twice in the file; one redriven in an earlier run
    assert [n for n, _ in plan.bad] == [5, 6]
