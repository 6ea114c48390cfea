"""Fault injection: ``python -m infra chaos --scenario S --repeat N``.

Modelled on Kafka's own system tests (StreamsEosTest: kill -9 an instance three times and demand every record
and exact sums). Every run publishes a simulated alliance day (duplicates, invalid and spoofed records
included) to fresh topics while a fault hits the workers, the projector, the database or the publisher,
then compares every aggregate on its topic, in ``agg_snapshot`` and in the read model's typed tables with
the independent oracle (infra.oracle). A run that does not converge within the timeout is "stuck".

Scenarios (each on the local stack the command starts itself, like ``python -m infra run``):

  fresh-start        no fault: the day is published first, then one worker starts on the backlog (a stall or
                     a hang at start-up shows as "stuck")
  kill-worker        kill -9 one of two workers three times mid-backlog; it restarts with its identity
  kill-only-worker   kill -9 the only worker mid-backlog, then start it again
  rolling-restart    graceful restart of each of two workers in turn, while events arrive
  zombie-worker      SIGSTOP one of two workers past the group session timeout, then SIGCONT
  kill-projector     kill -9 the projector mid-stream, then start it again
  restart-postgres   stop and start PostgreSQL mid-stream (the projector retries)
  kill-publisher     kill -9 a university's publish command mid-file, then run it again
  worker-down-alert  a real Prometheus scrapes the worker: AllianceWorkerDown fires while it is down and
                     resolves once it is back (checked through Prometheus's HTTP API)
  broker-bounce      on a 3-broker local KRaft cluster (the compose topology: replication 3,
                     min.insync.replicas 2, started by this command on local_kafka_port + 10): kill -9 the
                     leader of an ingest partition, then of a canonical event partition, five bounces in
                     all (--bounces), while universities keep publishing and two workers process

The table printed at the end (and written with ``--json``): scenario, runs, events in, lost, double
counted, wrong keys, stuck runs, runs with incidents (a service's log shows a fault that can make figures
wrong, e.g. faust's assignor leaving out a missing changelog topic: the run fails even if its figures came
out exact), recovery p50/max (seconds from the last fault to an exact result). A run whose publisher could
not deliver the day is stuck, with the publisher's error and its Kafka client's log (``kafka-clients.log``
beside the services' logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr

from consumers.migrate import migrate
from core.db_access import OWNER
from core.kafka_access import ADMIN, KafkaAccess
from core.settings import PROJECT_ROOT, Settings
from core.topic_admin import admin_client, provision_deployment
from events.reference import UNIVERSITIES
from events.simulator import alliance_day
from events.simulator.publish import publish
from events.topics import AGGREGATES, Family, agg_topic, family_topic, ingest_topic
from infra.errors import InfraError
from infra.kafka_local import LocalKafkaCluster
from infra.local import LocalStack
from infra.oracle import accepted_events, expected_aggregates
from infra.processes import Service, free_port, projector, wait_until, worker
from infra.verify import Verdict, aggregates_on_topics, latest, snapshot, typed_tables, verdict

Progress = Callable[[str], None]


@dataclass
class RunResult:
    scenario: str
    events_in: int
    verdict: Verdict
    stuck: bool
    recovery_s: float | None
    notes: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)  # what the services' logs say went wrong (log_incidents)

    @property
    def ok(self) -> bool:
        return not self.stuck and self.verdict.exact and not self.incidents


#: lines of a service's log that make a run fail even when its figures came out exact (they may not, next time)
INCIDENTS = {
    "Ignoring missing topic": "faust's assignor left out a topic the group leader did not see yet: its table "
                              "partitions were held by no worker (streams.worker.ensure_changelogs prevents it)",
}


def log_incidents(log_dir: Path) -> list[str]:
    """One line per service log in ``log_dir`` and :data:`INCIDENTS` pattern found in it."""
    found = []
    for path in sorted(log_dir.glob("*.log")):
        text = path.read_text(errors="replace")
        found += [f"{path.name}: {why}" for pattern, why in INCIDENTS.items() if pattern in text]
    return found


class Run:
    """One run of a scenario: fresh topics and database, its own workers and projector."""

    def __init__(self, settings: Settings, log_dir: Path, scenario: str, events: int, seed: int,
                 workers: int, progress: Progress, bounces: int = 5) -> None:
        self.id = f"{scenario}-{uuid.uuid4().hex[:6]}"
        self.progress = progress
        self.records = alliance_day(seed=seed, scale=events / 20_000)
        self.expected = expected_aggregates(accepted_events(self.records))
        self.suffix = f".chaos-{self.id}"
        self.database = f"chaos_{self.id.replace('-', '_')}"
        self.local_pg = LocalStack(settings).postgres  # the run's own database on it, or on the given server
        update: dict[str, Any] = {"topic_suffix": self.suffix, "app_id": f"chaos-{self.id}"}
        self.server_dsn = ""  # an external server: ALLIANCE_DATABASE_URL, allowed to create the run's database
        if self.local_pg is not None:
            update["local_postgres_database"] = self.database
        else:
            self.server_dsn = settings.dsn_for(OWNER)
            update["database_url"] = SecretStr(f"{self.server_dsn.rpartition('/')[0]}/{self.database}")
        self.cfg = settings.model_copy(update=update)
        self.log_dir = log_dir / self.id
        ports = [free_port() for _ in range(workers + 1)]
        self.workers = [worker(i, self.cfg, self.log_dir, port=p) for i, p in enumerate(ports[:-1])]
        self.projector = projector(self.cfg, self.log_dir, ports[-1])
        self.published = 0
        self.publish_error: BaseException | None = None  # the background publisher's failure, if any
        self.last_fault = time.monotonic()
        self.bounces = bounces  # broker-bounce: leader kills per run

    @property
    def admin(self) -> KafkaAccess:
        """The run's cluster as admin (publishes for every university, reads for the verdict)."""
        return self.cfg.kafka(ADMIN)

    # -- set-up and the stream ------------------------------------------------------------------------

    def start(self, with_workers: bool = True) -> None:
        provision_deployment(self.cfg)
        asyncio.run(self._create_database())
        services = [*self.workers, self.projector] if with_workers else [self.projector]
        for s in services:
            s.start(self.cfg)
        for s in services:
            s.wait_ready(120)

    @property
    def admin_dsn(self) -> str:
        return self.local_pg.dsn_for("postgres") if self.local_pg is not None else self.server_dsn

    async def _create_database(self) -> None:
        if self.local_pg is not None:  # roles and privileges as the stack's own database has them
            await asyncio.to_thread(self.local_pg.prepare_database, self.database)
        else:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                await conn.execute(f'CREATE DATABASE "{self.database}"')
            finally:
                await conn.close()
        await migrate(self.cfg.dsn_for(OWNER))

    def publish_in_background(self, seconds: float, skip: Callable[[Any], bool] = lambda r: False) -> threading.Thread:
        """Publish the day's records (but those ``skip`` names) spread over ``seconds``."""
        records = [replace(r, topic=r.topic + self.suffix) for r in self.records if not skip(r)]
        rate = max(len(records) / seconds, 1.0)

        def send() -> None:
            def seen(sent: int, _total: int) -> None:
                self.published = sent
            try:
                publish(records, self.cfg.kafka, progress=seen, rate=rate)
            except BaseException as exc:  # reported by run_scenario (with the clients' log), not by the thread
                self.publish_error = exc

        thread = threading.Thread(target=send, name=f"publish-{self.id}", daemon=True)
        thread.start()
        return thread

    def wait_published(self, share: float, thread: threading.Thread | None = None) -> None:
        total = len(self.records)
        wait_until(lambda: self.published >= share * total or (thread is not None and not thread.is_alive()),
                   120, f"{share:.0%} of the day published", interval=0.05)

    def fault(self, what: str) -> None:
        self.last_fault = time.monotonic()
        self.progress(f"    fault: {what}")

    # -- faults ---------------------------------------------------------------------------------------

    def kill(self, service: Service) -> None:
        assert service.proc is not None
        service.proc.kill()
        service.proc.wait(timeout=30)
        self.fault(f"kill -9 {service.name}")

    def restart(self, service: Service, ready: bool = True) -> None:
        service.start(self.cfg)
        if ready:
            service.wait_ready(120)

    # -- the verdict ----------------------------------------------------------------------------------

    def converge(self, timeout: float) -> tuple[Verdict, bool, float | None]:
        """Read the topics and the read model until they match the oracle (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        topics = [agg_topic(n) + self.suffix for n in AGGREGATES]
        result = Verdict()
        while True:
            for s in [*self.workers, self.projector]:
                if s.proc is not None and not s.alive():
                    self.progress(f"    {s.name} exited ({s.proc and s.proc.returncode}); starting it again")
                    self.restart(s, ready=False)
            state = asyncio.run(latest(self.admin, topics, f"verify-{uuid.uuid4().hex[:6]}",
                                       lambda st: False, wait_s=3.0))
            places = {"topics": aggregates_on_topics(state, self.suffix)}
            places.update(asyncio.run(self._read_model()))
            result = verdict(places, self.expected)
            if result.exact:
                return result, False, time.monotonic() - self.last_fault
            if time.monotonic() > deadline:
                return result, True, None
            time.sleep(1.0)

    async def _read_model(self) -> dict[str, Any]:
        try:
            conn = await asyncpg.connect(self.cfg.dsn_for(OWNER), timeout=5)  # every table, per-student ones too
        except (OSError, asyncpg.PostgresError):
            return {}  # the database is restarting: the next round reads it
        try:
            return {"agg_snapshot": await snapshot(conn), "typed tables": await typed_tables(conn)}
        finally:
            await conn.close()

    def stop(self, keep: bool = False) -> None:
        for s in [*self.workers, self.projector]:
            if s.alive():
                s.stop(timeout=30)
        if not keep:
            asyncio.run(self._drop_database())

    async def _drop_database(self) -> None:
        try:
            conn = await asyncpg.connect(self.admin_dsn, timeout=10)
        except (OSError, asyncpg.PostgresError):
            return
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await conn.close()


# ------------------------------------------------------------------------------------------ scenarios

def fresh_start(run: Run, stack: LocalStack) -> None:
    thread = run.publish_in_background(1)  # the whole day at once, before any worker of the group exists
    thread.join()
    run.fault("backlog published; starting the worker")
    run.restart(run.workers[0], ready=False)


def kill_worker(run: Run, stack: LocalStack) -> None:
    thread = run.publish_in_background(20)
    for i, share in enumerate((0.2, 0.45, 0.7)):
        run.wait_published(share, thread)
        victim = run.workers[i % 2]
        run.kill(victim)
        time.sleep(1.0)
        run.restart(victim, ready=False)
    thread.join()


def kill_only_worker(run: Run, stack: LocalStack) -> None:
    thread = run.publish_in_background(15)
    run.wait_published(0.4, thread)
    run.kill(run.workers[0])
    run.restart(run.workers[0], ready=False)
    thread.join()


def rolling_restart(run: Run, stack: LocalStack) -> None:
    thread = run.publish_in_background(25)
    for share, w in zip((0.25, 0.6), run.workers, strict=True):
        run.wait_published(share, thread)
        code = w.stop(timeout=40)
        run.fault(f"graceful stop of {w.name} (exit {code})")
        run.restart(w)
    thread.join()


def zombie_worker(run: Run, stack: LocalStack) -> None:
    thread = run.publish_in_background(20)
    run.wait_published(0.3, thread)
    zombie = run.workers[1]
    assert zombie.proc is not None
    zombie.proc.send_signal(signal.SIGSTOP)
    run.fault(f"SIGSTOP {zombie.name} for {run.cfg.session_timeout_seconds + 5:.0f}s")
    time.sleep(run.cfg.session_timeout_seconds + 5)
    zombie.proc.send_signal(signal.SIGCONT)
    run.fault(f"SIGCONT {zombie.name}")
    thread.join()


def kill_projector(run: Run, stack: LocalStack) -> None:
    thread = run.publish_in_background(15)
    run.wait_published(0.5, thread)
    run.kill(run.projector)
    time.sleep(1.0)
    run.restart(run.projector, ready=False)
    thread.join()


def restart_postgres(run: Run, stack: LocalStack) -> None:
    pg = stack.postgres
    if pg is None:
        raise InfraError("restart-postgres needs the local PostgreSQL (ALLIANCE_DATABASE_URL is set)")
    thread = run.publish_in_background(15)
    run.wait_published(0.4, thread)
    pg.stop()
    run.fault("PostgreSQL stopped")
    time.sleep(3.0)
    pg.start()
    run.fault("PostgreSQL started again")
    thread.join()


def kill_publisher(run: Run, stack: LocalStack) -> None:
    """One university publishes its part of the day with the CLI; the first run is killed mid-file."""
    university = "cqu"
    mine = [r for r in run.records if r.topic.endswith(f".{university}") and r.kind in ("valid", "duplicate")]
    path = run.log_dir / f"{university}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(r.value + b"\n" for r in mine))
    by_cli = {id(r) for r in mine}
    thread = run.publish_in_background(10, skip=lambda r: id(r) in by_cli)
    command = [sys.executable, "-m", "events.tools", "publish", "-u", university, str(path), "--no-progress",
               "--topic", f"alliance.ingest.{university}{run.suffix}", "--bootstrap", run.cfg.bootstrap]
    # as a university's own system would: its principal and the deployment's CA, nothing else
    access = run.cfg.kafka(university)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALLIANCE_")},
           "ALLIANCE_KAFKA_USERNAME": university,
           "ALLIANCE_KAFKA_PASSWORD": access.password.get_secret_value() if access.password else "",
           **({"ALLIANCE_KAFKA_SSL_CAFILE": access.ssl_cafile} if access.ssl_cafile else {})}
    first = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.5)  # the CLI starts (imports, connects) and sends part of the file
    finally:  # (also when the chaos command itself is stopped meanwhile)
        first.kill()
        first.wait(timeout=30)
    run.fault(f"kill -9 the publish command of {university} ({len(mine)} lines)")
    again = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
                           check=False)
    if again.returncode not in (0, 1):  # 1: some lines invalid (the day has duplicates of the university)
        raise InfraError(f"the second publish run failed ({again.returncode}): {again.stderr[-2000:]}")
    thread.join()


def worker_down_alert(run: Run, stack: LocalStack) -> None:
    from infra.prometheus_local import LocalPrometheus

    prom = LocalPrometheus(run.log_dir / "prometheus", targets={"alliance-worker": [w.port for w in run.workers]})
    prom.start()
    try:
        thread = run.publish_in_background(10)
        thread.join()
        prom.wait_target_up("alliance-worker")
        victim = run.workers[0]
        run.kill(victim)
        fired = prom.wait_alert("AllianceWorkerDown", firing=True, timeout=300)
        run.progress(f"    AllianceWorkerDown firing after {fired:.0f}s (rule: for 2m)")
        run.restart(victim)
        resolved = prom.wait_alert("AllianceWorkerDown", firing=False, timeout=120)
        run.progress(f"    AllianceWorkerDown resolved {resolved:.0f}s after the restart")
        run.fault("worker back")
    finally:
        prom.stop()


def broker_bounce(run: Run, stack: LocalStack) -> None:
    cluster = stack.kafka
    if not isinstance(cluster, LocalKafkaCluster):
        raise InfraError("broker-bounce needs the local 3-broker cluster")
    thread = run.publish_in_background(40)
    targets = [ingest_topic(next(iter(UNIVERSITIES))) + run.suffix, family_topic(Family.RECRUITMENT) + run.suffix]
    for i in range(run.bounces):
        run.wait_published(0.1 + 0.8 * i / run.bounces, thread)
        topic = targets[i % 2]
        leader = wait_for(partial(partition_leader, run.admin, topic, 0), 60, f"the leader of {topic}[0]")
        node = cluster.node(leader)
        node.kill()
        run.fault(f"kill -9 broker {leader} (leader of {topic}[0])")
        time.sleep(3.0)
        node.start(wait=False)
        node.wait_ready(120)
        # the next bounce only once every replica of both topics caught up again (Kafka's bounce tests too)
        wait_for(lambda: all_in_sync(run.admin, targets, cluster.size), 120, "replicas back in sync")
        run.fault(f"broker {leader} back, replicas in sync")
    thread.join()


def wait_for(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    """``probe()``'s first truthy result; a broker that is not answering yet is asked again."""
    from kafka.errors import KafkaError

    found: list[Any] = []

    def once() -> bool:
        try:
            value = probe()
        except (KafkaError, OSError, InfraError):
            return False
        if value:
            found.append(value)
        return bool(value)

    wait_until(once, timeout, what, interval=0.5)
    return found[-1]


def _partitions(kafka: KafkaAccess, topics: list[str]) -> list[tuple[str, dict[str, Any]]]:
    admin = admin_client(kafka, "alliance-chaos", timeout_s=10)
    try:
        return [(t["name"], p) for t in admin.describe_topics(topics) for p in t["partitions"]]
    finally:
        admin.close()


def partition_leader(kafka: KafkaAccess, topic: str, partition: int) -> int | None:
    for _, p in _partitions(kafka, [topic]):
        if p["partition_index"] == partition and p["leader_id"] >= 0:
            return int(p["leader_id"])
    return None


def all_in_sync(kafka: KafkaAccess, topics: list[str], replicas: int) -> bool:
    parts = _partitions(kafka, topics)
    return bool(parts) and all(len(p["isr_nodes"]) == replicas and p["leader_id"] >= 0 for _, p in parts)


def cluster_settings(settings: Settings) -> Settings:
    """The 3-broker cluster's settings: replication 3 on ports beside the single local broker's."""
    return settings.model_copy(update={"local_brokers": 3, "replication_factor": 3,
                                       "local_kafka_port": settings.local_kafka_port + 10,
                                       "local_kafka_controller_port": settings.local_kafka_controller_port + 10})


SCENARIOS: dict[str, tuple[Callable[[Run, LocalStack], None], int]] = {  # scenario -> (faults, workers)
    "fresh-start": (fresh_start, 1),
    "kill-worker": (kill_worker, 2),
    "kill-only-worker": (kill_only_worker, 1),
    "rolling-restart": (rolling_restart, 2),
    "zombie-worker": (zombie_worker, 2),
    "kill-projector": (kill_projector, 1),
    "restart-postgres": (restart_postgres, 1),
    "kill-publisher": (kill_publisher, 1),
    "worker-down-alert": (worker_down_alert, 1),
    "broker-bounce": (broker_bounce, 2),
}
CLUSTER_SCENARIOS = {"broker-bounce"}  # run on the local 3-broker cluster


class PublishFailed(InfraError):
    """The run's publisher could not deliver the day (its records are not all on the ingest topics)."""


@contextlib.contextmanager
def kafka_client_log(path: Path) -> Iterator[None]:
    """Write what this process's kafka-python clients log (INFO and up: connections, retries, leader moves,
    failed batches) to ``path`` while the block runs: kafka-python logs nowhere by default, and a publisher
    that fails under a fault must leave its evidence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def run_scenario(settings: Settings, stack: LocalStack, name: str, *, events: int, seed: int, timeout: float,
                 log_dir: Path, progress: Progress, keep: bool = False, bounces: int = 5) -> RunResult:
    inject, workers = SCENARIOS[name]
    run = Run(settings, log_dir, name, events, seed, workers, progress, bounces)
    notes: list[str] = []
    clients_log = run.log_dir / "kafka-clients.log"
    with kafka_client_log(clients_log):
        try:
            run.start(with_workers=name != "fresh-start")
            inject(run, stack)
            if run.publish_error is not None:  # the day never fully reached Kafka: no verdict on the pipeline
                raise PublishFailed(f"the publisher failed: {run.publish_error} (its client's log: {clients_log})")
            result, stuck, recovery = run.converge(timeout)
        except Exception as exc:  # a long run goes on with the next run; this one counts as stuck
            if not isinstance(exc, PublishFailed):
                traceback.print_exc()
            progress(f"    {exc}")
            notes.append(f"error: {type(exc).__name__}: {exc}")
            result, stuck, recovery = Verdict(), True, None
        finally:
            run.stop(keep=keep)
    if not result.exact:
        notes += [f"{where}: {diffs[:3]}" for where, diffs in result.wrong.items()]
    incidents = log_incidents(run.log_dir)
    return RunResult(name, len(accepted_events(run.records)), result, stuck, recovery, notes + incidents, incidents)


# --------------------------------------------------------------------------------------------- report

def table(results: list[RunResult]) -> list[dict[str, Any]]:
    rows = []
    for name in dict.fromkeys(r.scenario for r in results):
        mine = [r for r in results if r.scenario == name]
        recoveries = [r.recovery_s for r in mine if r.recovery_s is not None]
        rows.append({
            "scenario": name, "runs": len(mine), "events_in": sum(r.events_in for r in mine),
            "lost": sum(r.verdict.lost for r in mine), "double_counted": sum(r.verdict.double for r in mine),
            "wrong_keys": sum(len(d) for r in mine for d in r.verdict.wrong.values()),
            "stuck": sum(r.stuck for r in mine), "incidents": sum(bool(r.incidents) for r in mine),
            "recovery_p50_s": round(statistics.median(recoveries), 1) if recoveries else None,
            "recovery_max_s": round(max(recoveries), 1) if recoveries else None,
        })
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    head = ["scenario", "runs", "events_in", "lost", "double_counted", "wrong_keys", "stuck", "incidents",
            "recovery_p50_s", "recovery_max_s"]
    cells = [head] + [["-" if row[h] is None else str(row[h]) for h in head] for row in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(head))) for c in cells)


def write_json(path: Path, results: list[RunResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"table": table(results), "runs": [
        {"scenario": r.scenario, "events_in": r.events_in, "lost": r.verdict.lost,
         "double_counted": r.verdict.double, "wrong": r.verdict.wrong, "stuck": r.stuck,
         "recovery_s": r.recovery_s, "incidents": r.incidents, "notes": r.notes} for r in results]}, indent=2))


def main(settings: Settings, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=[*SCENARIOS, "all"], default=None,
                        help="a scenario (repeatable); 'all' = every one (default)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario (default 1)")
    parser.add_argument("--events", type=int, default=20_000, help="records of the simulated day (default 20000)")
    parser.add_argument("--seed", type=int, default=None, help="first simulator seed (default: random)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a run may take to converge")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the table and every run here (rewritten after each run)")
    parser.add_argument("--keep", action="store_true", help="keep each run's database (for inspection)")
    parser.add_argument("--bounces", type=int, default=5, help="broker-bounce: leader kills per run (default 5)")
    args = parser.parse_args(argv)
    names = list(SCENARIOS) if not args.scenario or "all" in args.scenario else list(dict.fromkeys(args.scenario))
    if args.repeat < 1 or args.events < 100 or args.bounces < 1:
        parser.error("--repeat and --bounces must be at least 1 and --events at least 100")
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000

    stack = LocalStack(settings)
    stack.up()
    cluster = None
    if CLUSTER_SCENARIOS & set(names):
        cluster = LocalStack(cluster_settings(settings))
        cluster.up()
    log_dir = settings.local_dir / "chaos"
    results: list[RunResult] = []
    started = time.monotonic()
    try:
        for name in names:
            on = cluster if name in CLUSTER_SCENARIOS and cluster is not None else stack
            for i in range(args.repeat):
                print(f"[chaos] {name} run {i + 1}/{args.repeat} ({args.events} records, seed {seed})", flush=True)
                result = run_scenario(on.settings, on, name, events=args.events, seed=seed, timeout=args.timeout,
                                      log_dir=log_dir, progress=lambda line: print(line, flush=True),
                                      keep=args.keep, bounces=args.bounces)
                seed += 1
                state = "STUCK" if result.stuck else ("WRONG" if not result.verdict.exact else
                                                      "INCIDENT" if result.incidents else "exact")
                recovery = "-" if result.recovery_s is None else f"{result.recovery_s:.1f}s"
                print(f"[chaos]   {state}: lost {result.verdict.lost}, double {result.verdict.double}, "
                      f"recovery {recovery}" + "".join(f"\n          {n}" for n in result.notes), flush=True)
                results.append(result)
                if args.json is not None:  # after every run: an interrupted long run keeps what it measured
                    write_json(args.json, results)
    finally:
        if cluster is not None:  # the single broker stays up like `python -m infra up`; the cluster is the run's
            cluster.down_kafka()
    rows = table(results)
    print(f"\n{format_table(rows)}\n[chaos] {len(results)} run(s) in {time.monotonic() - started:.0f}s", flush=True)
    bad = [r for r in results if not r.ok]
    return 1 if bad else 0
