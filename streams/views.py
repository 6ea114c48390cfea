"""HTTP views on the worker's tables, each reporting freshness.

  GET /aggregates/{name}/     rollup totals held by this worker (postings-by-segment, mentors,
                              service-guarantee, windows) + freshness                      [token]
  GET /entities/{key}/        one posting, fair, mentor or employer state (e.g. posting:scu-job-1), routed
                              to the worker that owns the key's partition; never a job seeker  [token]
  GET /freshness/             per agent: first and last batch time, seconds since, events processed, batches split
                              (counts only)

[token]: ``Authorization: Bearer <ALLIANCE_HTTP_TOKEN>`` (core.http_auth). faust's own /router/ and /table/
endpoints are off (streams.app.faust_config).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View
from pydantic import SecretStr

from core.http_auth import entity_key_problem, token_problem
from streams import rollup
from streams.domains.base import without_log
from streams.pipeline import Pipeline


def _age(iso: str | None) -> float | None:
    if not iso:
        return None
    return round(time.time() - datetime.fromisoformat(iso).astimezone(UTC).timestamp(), 3)


def freshness(pipeline: Pipeline) -> dict[str, Any]:
    """Per agent: when it began its first batch since the worker started and when it completed its last (the
    benchmark times a drain between the two), events processed (replays after a rebalance included) and, for
    ingest and tables, events applied for the first time (accepted new events; events new to their entity
    state)."""
    now = time.time()
    out: dict[str, Any] = {}
    for agent, at in pipeline.last_batch_at.items():
        first = pipeline.first_batch_at.get(agent, at)
        out[agent] = {"first_batch_at": datetime.fromtimestamp(first, UTC).isoformat(),
                      "last_batch_at": datetime.fromtimestamp(at, UTC).isoformat(),
                      "seconds_since_last_batch": round(now - at, 3),
                      "events_processed": pipeline.events_processed.get(agent, 0)}
        if agent in pipeline.events_applied:
            out[agent]["events_applied"] = pipeline.events_applied[agent]
        if agent in pipeline.split_batches:  # batches too large for one changelog record batch (streams.writer)
            out[agent]["batches_split"] = pipeline.split_batches[agent]
        if agent == "tables" and pipeline.erasures_in_parts:  # (streams.batch.resumable_parts)
            out[agent]["erasures_in_parts"] = pipeline.erasures_in_parts
    return out


def register_views(app: faust.App, pipeline: Pipeline, token: SecretStr | None) -> None:
    def refused(view: View, request: Request) -> Response | None:
        problem = token_problem(token, request.headers.get("Authorization"))
        return None if problem is None else view.json({"error": problem[1]}, status=problem[0])

    @app.page("/aggregates/{name}/")
    class Aggregates(View):
        async def get(self, request: Request, name: str) -> Response:
            if (no := refused(self, request)) is not None:
                return no
            rows = []
            for key, state in pipeline.rollups.data.items():
                if key.startswith(f"{name}|") and not rollup.empty(state):  # (empty: a tombstone on the topic)
                    record = rollup.record(state)
                    record["event_time_age_seconds"] = _age(state.get("updated_at"))
                    rows.append(record)
            return self.json({"aggregate": name, "rows": rows, "freshness": freshness(pipeline)})

    @app.page("/entities/{key}/")
    class Entity(View):
        @app.table_route(table=pipeline.states, match_info="key")  # type: ignore[arg-type]  # faust omits path args
        async def get(self, request: Request, key: str) -> Response:
            if (no := refused(self, request)) is not None:
                return no
            if (problem := entity_key_problem(key)) is not None:
                return self.json({"error": problem[1]}, status=problem[0])
            state = pipeline.states.get(key)
            if state is None:
                return self.notfound(f"no entity {key!r}")
            return self.json({"key": key, "state": without_log(state),
                              "event_time_age_seconds": _age(state.get("updated_at")),
                              "freshness": freshness(pipeline)})

    @app.page("/freshness/")
    class Freshness(View):
        async def get(self, request: Request) -> Response:
            return self.json(freshness(pipeline))
