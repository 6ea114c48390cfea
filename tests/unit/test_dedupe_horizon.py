"""The dedupe horizon: once the ingest has forgotten an event id (``ingest-seen`` keeps ids for
``dedupe_horizon_days``), a university's re-send of that event is accepted again at the ingest, and still
changes no figure: entity states merge idempotently and the entity-state table keeps the applied ids, so
event counts do not count it twice. Run on the worker's own pure batch path (streams.batch) with dict
tables, checked against the independent oracle."""

from __future__ import annotations

from events.simulator import alliance_day
from infra.oracle import expected_aggregates
from streams import batch as pure
from tests.pure_worker import Worker


def test_a_resend_after_the_horizon_is_accepted_again_and_changes_no_figure() -> None:
    day = [r for r in alliance_day(seed=5, scale=0.05, duplicate_rate=0.0, invalid_rate=0.0, spoofed_rate=0.0)
           if r.kind == "valid" and r.event is not None]
    assert len(day) > 500
    records = [(r.topic, r.key, r.value) for r in day]
    worker = Worker()
    ingested, tabled = worker.send(records)
    assert sum(ingested.ingested.values()) == len(day) and tabled.applied == len(day)
    states, totals = dict(worker.tables[pure.STATES]), worker.totals()
    # the figures are the oracle's before the re-send (windows: the event counts a re-send could double)
    windows = expected_aggregates([r.event for r in day if r.event is not None])["windows"]
    assert {k: v["events"] for k, v in totals["windows"].items()} == {k: v["events"] for k, v in windows.items()}

    worker.tables[pure.SEEN].clear()  # every id is past the horizon: the ingest has forgotten them all
    ingested, tabled = worker.send(records[::-1])  # re-sent, in another order
    assert sum(ingested.ingested.values()) == len(day), "the ingest no longer knows these ids: accepted again"
    assert not ingested.rejected
    assert tabled.applied == 0, "the entity-state table still knows every applied id"
    assert worker.tables[pure.STATES] == states
    assert worker.totals() == totals


def test_within_the_horizon_a_resend_is_a_duplicate() -> None:
    day = [r for r in alliance_day(seed=6, scale=0.02, duplicate_rate=0.0, invalid_rate=0.0, spoofed_rate=0.0)
           if r.kind == "valid"]
    records = [(r.topic, r.key, r.value) for r in day]
    worker = Worker()
    worker.send(records)
    ingested, tabled = worker.send(records)
    assert sum(ingested.ingested.values()) == 0 and tabled.applied == 0
    assert sum(n for (_, reason), n in ingested.rejected.items() if reason == "duplicate") == len(day)
