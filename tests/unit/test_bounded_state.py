"""Bounded values: no entity's stored value grows with the events applied to it. A posting with 100,000
applications and a fair with 100,000 check-ins count exactly, and every stored value stays small."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from events import jobfair as j
from events import recruitment as r
from streams import engine
from streams.domains import domains

T0 = datetime(2026, 11, 26, 1, tzinfo=UTC)
N = 100_000
MAX_VALUE_BYTES = 1024


def _run(events: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    table: dict[str, Any] = {}  # the entity-state table: states, members, applied ids, partials
    partials: dict[str, Any] = {}
    doms = domains()
    for start in range(0, len(events), 1000):
        batch = [(0, e) for e in events[start:start + 1000]]
        out = engine.process(batch, doms, lambda key, _partition: table.get(key))
        assert not out.failed
        table.update({k: v for k, (_, v) in out.states.items()})
        partials.update({engine.partial_key(pk): v for pk, v in out.partials.items()})
        table.update(partials)
        table.update(dict.fromkeys(out.applied_ids, 1))
    states = {k: v for k, v in table.items() if not k.startswith(("applied:", "partial:"))}
    return states, partials


def test_a_posting_with_100000_applications_and_a_fair_with_100000_checkins_stay_small_and_exact() -> None:
    seekers = [f"ps_{i:032x}" for i in range(N)]
    apps = [r.ApplicationSubmitted.model_validate({
        "source": "scu", "occurred_at": T0 + timedelta(seconds=i % 3600),
        "data": {"posting_id": "scu-job-big", "application_id": f"a-{i}", "seeker_id": seekers[i],
                 "degree": "bachelor"}}) for i in range(N)]
    checkins = [j.StudentCheckedIn.model_validate({
        "source": "cqu", "occurred_at": T0 + timedelta(seconds=i % 3600),
        "data": {"fair_id": "cqu-fair-big", "seeker_id": seekers[i % (N // 2) * 2 % N]}}) for i in range(N)]
    states, partials = _run(apps + checkins + apps[:2000])  # the last 2,000 are replays
    funnel = domains()["recruitment"].view(states["posting:scu-job-big"])
    fair = domains()["jobfair"].view(states["fair:cqu-fair-big"])
    assert funnel is not None and funnel[2]["applications"] == N
    distinct = len({seekers[i % (N // 2) * 2 % N] for i in range(N)})
    assert fair is not None and fair[2]["distinct_checkins"] == distinct
    largest = max(len(json.dumps(v)) for v in states.values())
    assert largest < MAX_VALUE_BYTES, largest
    assert max(len(json.dumps(v)) for v in partials.values()) < MAX_VALUE_BYTES
    day = sum(v["events"] for k, v in partials.items() if k.startswith("partial:windows|") and "granularity=day" in k)
    assert day == 2 * N  # every event counted once, replays not again
