"""Talent flow (alliance.agg.talent-flow) on the worker's own pure batch path against the independent oracle:
a simulated day with Hired version 2 (work city, degree) beside version 1, in publish order and reversed;
the contract keeps the versions apart."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from events.codec import encode, from_dict
from events.errors import EventValidationError
from events.simulator import alliance_day
from events.topics import ingest_topic
from infra.oracle import expected_aggregates
from tests.data.samples import one_of_each_type
from tests.pure_worker import Worker


def _day(seed: int) -> list[Any]:
    return [r.event for r in alliance_day(seed=seed, scale=0.1, duplicate_rate=0.0, invalid_rate=0.0,
                                          spoofed_rate=0.0, foreign_rate=0.0) if r.kind == "valid" and r.event]


def _flows(worker: Worker) -> dict[str, dict[str, float]]:
    return worker.totals().get("talent-flow", {})


@pytest.mark.parametrize("order", ["published", "reversed", "shuffled"])
def test_talent_flow_matches_the_oracle_in_any_order(order: str) -> None:
    day = _day(seed=17)
    hired = [e for e in day if e.type == "recruitment.hired"]
    assert {e.schema_version for e in hired} == {1, 2}  # both versions flow side by side
    assert any(e.data.work_city == "outside_circle" for e in hired)
    events = {"published": day, "reversed": day[::-1], "shuffled": random.Random(5).sample(day, len(day))}[order]
    worker = Worker()
    for start in range(0, len(events), 400):  # several batches
        worker.send([(ingest_topic(e.source), e.key, encode(e)) for e in events[start:start + 400]])
    expected = expected_aggregates(day)["talent-flow"]
    assert expected and _flows(worker) == expected
    stayed = sum(v["hires"] for k, v in expected.items() if "university=*" in k and "outside_circle" not in k)
    left = sum(v["hires"] for k, v in expected.items() if "university=*" in k and "outside_circle" in k)
    assert stayed > left > 0
    assert sum(v["accepted_offers"] for k, v in expected.items() if "university=*" in k) > stayed + left
    # what the worker publishes satisfies the record contract
    records = [json.loads(v) for (t, _), v in worker.agg.items() if t == "alliance.agg.talent-flow" and v]
    assert len(records) == len(expected)


def test_version_1_may_not_carry_version_2_fields_and_versions_beyond_the_newest_are_refused() -> None:
    hired = one_of_each_type()["recruitment.hired"]
    v2 = {**hired, "schema_version": 2, "data": {**hired["data"], "work_city": "chongqing", "degree": "master"}}
    assert from_dict(v2).data.work_city == "chongqing"  # type: ignore[attr-defined]
    assert from_dict(hired).schema_version == 1  # version 1, as every university sends it today
    for bad, reason in (({**v2, "schema_version": 1}, "fields of schema_version 2"),
                        ({**v2, "schema_version": 3}, "has versions 1 to 2"),
                        ({**one_of_each_type()["recruitment.job_posted"], "schema_version": 2}, "versions 1 to 1"),
                        ({**v2, "data": {**v2["data"], "work_city": "shenzhen"}}, "work_city")):
        with pytest.raises(EventValidationError, match=reason):
            from_dict(bad)
