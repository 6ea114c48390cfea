"""A running Faust worker and a running projector (real processes) are scraped: both /metrics pass
``promtool check metrics``, carry the pipeline's series, and answer /healthz and /readyz."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from pydantic import SecretStr

from consumers.migrate import migrate
from core.settings import Settings
from core.topic_admin import provision_deployment
from events.simulator import alliance_day
from events.simulator.publish import publish
from infra.processes import Service, free_ports, freshness, metric_sum, projector, worker
from infra.tools import promtool

pytestmark = pytest.mark.integration


def _wait(check: object, timeout: float, what: str, services: list[Service]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert all(s.alive() for s in services), f"a service died while waiting for {what}"
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def test_worker_and_projector_metrics_are_clean_and_live(
    pg_dsn: str, unique: str, settings: Settings
) -> None:
    web_port, metrics_port = free_ports(2)
    token = f"tok-{unique}"
    cfg = settings.model_copy(update={
        "database_url": SecretStr(pg_dsn), "topic_suffix": f".m{unique}", "app_id": f"metrics-{unique}",
        "web_port": web_port, "http_token": SecretStr(token)})
    provision_deployment(cfg)
    await migrate(pg_dsn)
    log_dir = cfg.local_dir / "logs"
    w, p = worker(0, cfg, log_dir), projector(cfg, log_dir, metrics_port)
    services = [w, p]
    try:
        for s in services:
            s.start(cfg)
        for s in services:
            s.wait_ready(timeout=120)
        records = alliance_day(seed=5, scale=0.01)
        publish([replace(r, topic=r.topic + cfg.topic_suffix) for r in records], cfg.kafka)
        valid = sum(r.kind == "valid" for r in records)
        _wait(lambda: freshness([w]).get("tables", 0) >= valid, 120, "the worker", services)
        _wait(lambda: sum(metric_sum(p, "alliance_projector_events_total").values()) >= valid, 120,
              "the projector", services)

        for svc, must_have in ((w, ["alliance_events_ingested_total", "alliance_events_rejected_total",
                                    "alliance_event_latency_seconds_bucket", "alliance_table_keys"]),
                               (p, ["alliance_projector_batch_rows_bucket", "alliance_projector_rows_total",
                                    "alliance_consumer_lag_messages"])):
            status, body = svc.get("/metrics")
            assert status == 200
            for name in must_have:
                assert f"\n{name}" in body, (svc.name, name)
            check = promtool("check", "metrics", stdin=body)
            assert check.returncode == 0, (svc.name, check.stdout, check.stderr)
            assert svc.get("/healthz")[0] == 200 and svc.get("/readyz")[0] == 200

        # the worker reports the lag of its partitions (refreshed every 10 s): all caught up by now
        _wait(lambda: len(metric_sum(w, "alliance_consumer_lag_messages")) > 0, 30, "worker lag", services)
        worker_lag = metric_sum(w, "alliance_consumer_lag_messages")
        assert any(f'topic="alliance.ingest.scu{cfg.topic_suffix}"' in labels for labels in worker_lag), worker_lag
        _wait(lambda: sum(metric_sum(w, "alliance_consumer_lag_messages").values()) == 0, 60, "zero lag", services)
        ingested = metric_sum(w, "alliance_events_ingested_total")
        assert int(sum(ingested.values())) == valid
        status, faust_body = w.get("/metrics/faust")
        assert status == 200 and "faust_messages_received" in faust_body

        # data views need the token; per-student, member and bookkeeping keys are never served; faust's own
        # /router/ and /table/ endpoints are off
        bearer = {"Authorization": f"Bearer {token}"}
        for headers, code in (({}, 401), ({"Authorization": "Bearer wrong"}, 403), (bearer, 200)):
            status, body = w.get("/aggregates/postings-by-segment/", headers)
            assert status == code and ('"rows"' in body) == (code == 200), (headers, status, body[:200])
        posting = next(r.event for r in records if r.kind == "valid" and r.event is not None
                       and r.event.type == "recruitment.job_posted")
        seeker = next(r.event for r in records if r.kind == "valid" and r.event is not None
                      and r.event.family == "services")
        assert w.get(f"/entities/posting:{posting.subject}/", {})[0] == 401
        status, body = w.get(f"/entities/posting:{posting.subject}/", bearer)
        assert status == 200 and '"posted":true' in body.replace(" ", ""), body[:300]
        assert '"_log"' not in body  # the domain's state: the log's count is the worker's bookkeeping
        assert w.get(f"/entities/seeker:{seeker.subject}/", bearer)[0] == 403
        assert w.get(f"/entities/posting:{posting.subject}|application|x/", bearer)[0] == 404
        assert w.get(f"/entities/applied:{posting.source}/{posting.event_id}/", bearer)[0] == 404
        for path in ("/router/", "/table/", "/graph/", "/stats/"):
            assert w.get(path, bearer)[0] == 404, path
        assert w.get("/freshness/")[0] == 200  # counts only: open on the internal port
    finally:
        for s in services:
            s.stop()
