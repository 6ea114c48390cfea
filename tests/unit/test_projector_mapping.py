"""Pure parts of the projector: event -> row tuples, in-batch merge rules, aggregate decoding, batch plans,
migration discovery."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from consumers.errors import MigrationError
from consumers.mapping import AggUpdate, RecordError, TopicKind, decode_agg, event_rows, fold_aggs, plan_batch
from consumers.migrate import discover
from consumers.tables import OFFERS, POSTINGS, SERVICE_ITEMS, TABLES
from events import mentoring as mt
from events import recruitment as rc
from events import services as sv
from events.codec import encode

T0 = datetime(2025, 3, 3, 8, tzinfo=UTC)
SEEKER = "ps_" + "a" * 32


def posted(at: datetime = T0, positions: int = 3) -> rc.JobPosted:
    return rc.JobPosted(source="scu", occurred_at=at, data=rc.JobPostedData(
        posting_id="p1", employer_id="e1", employer_name="Acme", employer_type="private", industry="finance",
        city="chengdu", title="Analyst", positions=positions, degree_min="bachelor", salary_min=5000,
        salary_max=8000, deadline=date(2025, 6, 1)))


def as_dict(table_row: tuple[object, ...]) -> dict[str, object]:
    return dict(zip(POSTINGS.column_names, table_row, strict=True))


def test_job_posted_maps_to_an_employer_and_a_full_posting_row() -> None:
    rows = event_rows(posted())
    assert [t.name for t, _ in rows] == ["employers", "postings"]
    employer = dict(zip(rows[0][0].column_names, rows[0][1], strict=True))
    assert employer == {"employer_id": "e1", "name": "Acme", "employer_type": "private", "industry": "finance",
                        "seen_at": T0}
    p = as_dict(rows[1][1])
    assert p["university"] == "scu" and p["positions"] == 3 and p["positions_at"] == T0 and p["closed_at"] is None
    assert all(p[f"{f}_at"] == T0 for f in ("title", "positions", "salary_min", "salary_max", "deadline"))


def test_an_employer_flag_is_the_flagging_universitys_own_row() -> None:
    """A shared employer: each university's flag is its own row (employer, university); one member's
    suspension is never the alliance's (events.ownership)."""
    rows = []
    for source, severity in (("scu", rc.FlagSeverity.SUSPENDED), ("cqu", rc.FlagSeverity.WARNING)):
        rows += event_rows(rc.EmployerFlagged(source=source, occurred_at=T0, data=rc.EmployerFlaggedData(
            employer_id="e1", severity=severity, reason="unpaid wages")))
    assert [t.name for t, _ in rows] == ["employer_flags", "employer_flags"]
    flags = [dict(zip(t.column_names, row, strict=True)) for t, row in rows]
    assert [(f["employer_id"], f["university"], f["severity"]) for f in flags] == [
        ("e1", "scu", "suspended"), ("e1", "cqu", "warning")]


def test_update_sets_only_the_fields_it_changes_with_their_version() -> None:
    e = rc.JobPostingUpdated(source="scu", occurred_at=T0, data=rc.JobPostingUpdatedData(posting_id="p1",
                                                                                         positions=7))
    [(table, row)] = event_rows(e)
    p = as_dict(row)
    assert table is POSTINGS and p["positions"] == 7 and p["positions_at"] == T0
    assert {k for k, v in p.items() if v is not None} == {"posting_id", "positions", "positions_at"}


def test_merge_keeps_newest_fields_and_earliest_close_in_any_order() -> None:
    later = T0 + timedelta(hours=1)
    upd = rc.JobPostingUpdated(source="scu", occurred_at=later, data=rc.JobPostingUpdatedData(
        posting_id="p1", positions=9))
    close1 = rc.JobPostingClosed(source="scu", occurred_at=T0 + timedelta(minutes=5),
                                 data=rc.JobPostingClosedData(posting_id="p1", reason="filled"))
    close2 = rc.JobPostingClosed(source="scu", occurred_at=later, data=rc.JobPostingClosedData(
        posting_id="p1", reason="expired"))
    rows = [r for e in (upd, close2, posted(), close1) for t, r in event_rows(e) if t is POSTINGS]
    for order in (rows, rows[::-1]):
        [merged] = POSTINGS.merge_rows(order)
        p = as_dict(merged)
        assert p["positions"] == 9 and p["title"] == "Analyst" and p["posted_at"] == T0
        assert p["closed_at"] == close1.occurred_at and p["close_reason"] == "filled"


def test_merge_is_idempotent_and_ties_never_depend_on_arrival_order() -> None:
    a, b = event_rows(posted(positions=3))[1][1], event_rows(posted(positions=4))[1][1]
    assert POSTINGS.merge_rows([a, a, a]) == [a]
    # a tiebreak group (one field): at the same occurred_at the greater value wins, as in the streams
    assert as_dict(POSTINGS.merge_rows([a, b])[0])["positions"] == 4
    assert as_dict(POSTINGS.merge_rows([b, a])[0])["positions"] == 4
    # a group of several fields (JobPosted's description): the first row stays on a tie
    c = event_rows(posted(positions=3).model_copy(update={"source": "cqu"}))[1][1]
    assert as_dict(POSTINGS.merge_rows([a, c])[0])["university"] == "scu"


def test_an_offer_answer_of_the_same_instant_resolves_to_the_decline_in_any_order() -> None:
    data = {"posting_id": "p1", "offer_id": "o1", "seeker_id": SEEKER}
    yes = event_rows(rc.OfferAccepted(source="scu", occurred_at=T0, data=rc.OfferAnswerData(**data)))[0][1]
    no = event_rows(rc.OfferDeclined(source="scu", occurred_at=T0, data=rc.OfferAnswerData(**data)))[0][1]
    for order in ([yes, no], [no, yes]):
        [row] = OFFERS.merge_rows(order)
        assert row[OFFERS.index("answer")] == "declined"
    assert 'excluded.answer COLLATE "C" > t.answer COLLATE "C"' in OFFERS.upsert_sql()


def test_upsert_sql_only_touches_rows_when_a_version_wins() -> None:
    sql = POSTINGS.upsert_sql()
    assert "ON CONFLICT (posting_id) DO UPDATE" in sql
    assert "excluded.closed_at < t.closed_at" in sql and "excluded.positions_at > t.positions_at" in sql
    where = sql.split(" DO UPDATE SET ")[1].rsplit(" WHERE ", 1)[1]
    assert where.count("IS NOT NULL AND") == len(POSTINGS.groups)  # no version won: no write, no dead tuple
    for table in TABLES:
        table.check()


def test_services_map_to_items_recommendations_by_posting() -> None:
    e = sv.JobRecommended(source="cqu", occurred_at=T0, data=sv.JobRecommendedData(
        seeker_id=SEEKER, recommendation_id="r1", posting_id="p9"))
    [(table, row)] = event_rows(e)
    assert table is SERVICE_ITEMS and row == (SEEKER, "recommendation", "r1", "p9", "cqu", T0)


def test_session_seekers_are_distinct_and_sorted() -> None:
    other = "ps_" + "b" * 32
    e = mt.MentoringSessionHeld(source="swu", occurred_at=T0, data=mt.MentoringSessionHeldData(
        mentor_id="m1", session_id="s1", topic="technology", seeker_ids=(other, SEEKER, other),
        duration_minutes=45))
    [(_, row)] = event_rows(e)
    assert row == ("m1", "s1", "technology", [SEEKER, other], 45, T0)  # (keyed by mentor and session)


def agg(value: object, topic: str = "alliance.agg.fairs", key: bytes | None = b"k") -> AggUpdate:
    return decode_agg(topic, key, None if value is None else json.dumps(value).encode())


FAIR = {"status": "open", "name": "Autumn fair", "host_university": "cqu", "city": "chongqing", "booths": 3,
        "distinct_checkins": 10, "onsite_offers": 1}


def test_decode_agg_values_tombstones_and_errors() -> None:
    good = {"aggregate": "fairs", "key": {"id": "f1"}, "value": FAIR, "updated_at": T0.isoformat()}
    u = agg(good)
    assert (u.aggregate, u.key, u.dims, u.updated_at) == ("fairs", "k", '{"id": "f1"}', T0)
    assert u.value is not None and json.loads(u.value) == FAIR
    assert agg(None).is_tombstone
    for bad, reason in [({**good, "aggregate": "mentors"}, "aggregate"),
                        ({**good, "value": {**FAIR, "booths": "3"}}, "value.booths"),
                        ({**good, "value": {**FAIR, "booths": -1}}, "value.booths"),
                        ({**good, "value": {**FAIR, "surprise": 1}}, "value.surprise"),
                        ({**good, "updated_at": "2025-03-03T08:00:00"}, "updated_at"),
                        ([1], "fairs")]:
        with pytest.raises(RecordError, match=reason):
            agg(bad)
    with pytest.raises(RecordError, match="without a key"):
        agg(good, key=None)


def test_fold_aggs_newest_value_wins_and_the_last_tombstone_deletes() -> None:
    def v(n: int, minutes: int) -> AggUpdate:
        return AggUpdate("fairs", "k", "{}", json.dumps({"n": n}), T0 + timedelta(minutes=minutes))

    tomb = AggUpdate("fairs", "k", None, None, None)
    assert fold_aggs([v(1, 5), v(2, 1)]) == [v(1, 5)]
    assert fold_aggs([v(1, 5), tomb]) == [tomb]
    assert fold_aggs([v(1, 5), tomb, v(2, 1)]) == [v(2, 1)]


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def test_plan_batch_rejects_poison_and_advances_past_it() -> None:
    kinds = {"ev": TopicKind.EVENTS, "x.agg.fairs": TopicKind.AGG}
    good = encode(posted())
    plan = plan_batch([Rec("ev", 0, 10, b"p1", good), Rec("ev", 0, 11, b"p1", b"{oops"),
                       Rec("ev", 1, 4, b"p1", good), Rec("x.agg.fairs", 2, 0, b"k", None),
                       Rec("other", 0, 0, None, b"{}")], kinds)
    assert plan.offsets == {("ev", 0): 12, ("ev", 1): 5, ("x.agg.fairs", 2): 1, ("other", 0): 1}
    assert [(r.offset, r.topic) for r in plan.rejects] == [(11, "ev"), (0, "other")]
    assert "JSON" in plan.rejects[0].reason and "not configured" in plan.rejects[1].reason
    assert len(plan.rows["postings"]) == 1 and plan.families == {"recruitment": 2}
    assert plan.aggs[0].is_tombstone and plan.records == 5


def test_migrations_are_numbered_and_a_duplicate_version_is_named(tmp_path: Path) -> None:
    names = [m.path.name for m in discover()]
    assert names == sorted(names) and names[0].startswith("001_")
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "001_b.sql").write_text("SELECT 2;")
    with pytest.raises(MigrationError, match=r"001_b\.sql: version 001 also used by 001_a\.sql"):
        discover(tmp_path)
    (tmp_path / "001_b.sql").unlink()
    (tmp_path / "2_bad.sql").write_text("SELECT 3;")
    with pytest.raises(MigrationError, match=r"2_bad\.sql"):
        discover(tmp_path)


def test_aggregate_of_topic_understands_topic_suffixes() -> None:
    from consumers.mapping import aggregate_of_topic

    assert aggregate_of_topic("alliance.agg.posting-funnel") == "posting-funnel"
    assert aggregate_of_topic("alliance.agg.fairs.staging-2") == "fairs"
    with pytest.raises(ValueError):
        aggregate_of_topic("alliance.agg.unknown")


def test_every_row_a_revision_rebuilds_comes_from_the_events_its_row_source_names() -> None:
    """consumers.mapping.ROW_SOURCES, checked against every event of a simulated day with duplicates: each row an
    event writes in its entity's tables (beside the shared employers) carries the event's entity in its key, and
    the declared field's value when there is one (else the key is the entity alone); every row of one key, whatever
    wrote it, comes from events of one entity, of the declared types, and of one value of the declared field. So a
    revision rebuilding only the rows of its versions (consumers.store._rebuild_rows) finds every event behind
    them. Every type but the employer's flag is declared."""
    from consumers.mapping import ENTITY_TABLES, MAPPERS, ROW_SOURCES
    from consumers.tables import EMPLOYERS
    from events import recruitment
    from events.simulator import alliance_day

    events = [r.event for r in alliance_day(seed=9, scale=0.05, invalid_rate=0.0, spoofed_rate=0.0,
                                            foreign_rate=0.0) if r.kind in ("valid", "duplicate") and r.event]
    assert set(ROW_SOURCES) == set(MAPPERS) - {recruitment.EmployerFlagged}
    behind: dict[tuple[str, tuple[object, ...]], set[tuple[tuple[str, ...], str, str | None]]] = {}
    for event in events:
        source = ROW_SOURCES.get(type(event))
        if source is None:
            continue
        assert event.type in source.types
        for table, row in event_rows(event):
            if table is EMPLOYERS:
                continue
            column = dict((t.name, c) for t, c in ENTITY_TABLES[event.family])[table.name]
            assert row[table.index(column)] == str(event.subject), (event.type, table.name)
            key = row[:len(table.key)]
            value = str(getattr(event.data, source.field)) if source.field is not None else None
            if value is None:
                assert key == (str(event.subject),), (event.type, table.name)  # the entity's own row
            else:
                assert value in key, (event.type, source.field)  # the field is in the key
            behind.setdefault((table.name, key), set()).add((source.types, str(event.subject), value))
    assert {k: v for k, v in behind.items() if len(v) != 1} == {}
    tables = {name for name, _ in behind}
    assert {"postings", "offers", "fairs", "fair_checkins", "mentors", "mentoring_sessions",
            "service_items"} <= tables


def test_the_member_column_of_event_log_takes_the_field_row_sources_declare_for_each_type() -> None:
    """Migration 011's generated ``member`` column (what a member revision's rebuild looks events up by) reads, for
    each type, exactly the data field consumers.mapping.ROW_SOURCES declares, and nothing for the types whose rows
    are their entity's own (or an employer's flag)."""
    import re

    from consumers.mapping import ROW_SOURCES
    from consumers.migrate import MIGRATIONS_DIR

    sql = (MIGRATIONS_DIR / "011_event_log_member.sql").read_text(encoding="utf-8")
    column = dict(re.findall(r"WHEN '([a-z_.]+)' THEN payload->'data'->>'([a-z_]+)'", sql))
    declared = {cls.model_fields["type"].default: source.field for cls, source in ROW_SOURCES.items()
                if source.field is not None}
    assert column == declared
