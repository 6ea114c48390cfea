"""Operations configs: Prometheus (promtool), Grafana dashboard, docker-compose (Compose Specification).

promtool comes from the Debian package ``prometheus`` (installed by infra.tools.ensure_promtool when
missing); the Compose Specification schema comes from an npm package (infra.tools.ensure_compose_schema).
No Docker engine is needed.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml
from prometheus_client import CollectorRegistry

from consumers.metrics import ProjectorMetrics
from core.db_access import READER
from core.kafka_access import KafkaAccess
from core.metrics import consumer_lag, metric_names, update_consumer_lag
from core.settings import PROJECT_ROOT, Settings
from events.tools.dlq_watch import DlqMetrics
from infra.processes import free_port
from infra.tools import ensure_compose_schema, promtool
from streams.metrics import FAUST_SENSOR_PREFIX, PipelineMetrics, faust_sensor_names

PROM_DIR = PROJECT_ROOT / "infra" / "prometheus"
GRAFANA_DIR = PROJECT_ROOT / "infra" / "grafana"
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
OPERATIONS_DOC = PROJECT_ROOT / "docs" / "operations.md"

PROMETHEUS_BUILTINS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def known_metric_names() -> set[str]:
    """Series names of the real definitions: worker pipeline, faust sensors, projector, DLQ watcher."""
    worker, projector, dlq = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    PipelineMetrics(worker)
    ProjectorMetrics(projector)
    DlqMetrics(dlq)
    names = (metric_names(worker) | metric_names(projector) | metric_names(dlq)
             | faust_sensor_names(FAUST_SENSOR_PREFIX))
    return names | PROMETHEUS_BUILTINS


# ------------------------------------------------------------------------------ PromQL name parsing

PROMQL_FUNCTIONS_AND_KEYWORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right", "and",
    "or", "unless", "offset", "bool", "inf", "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TEMPLATE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")
_IDENT = re.compile(r"(?<![A-Za-z0-9_.:])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (functions, keywords, labels, durations removed)."""
    text = _STRING.sub('""', expr)
    text = _TEMPLATE.sub("1m", text)
    text = _BRACES.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENT.finditer(text):
        ident, call = match.group(1), match.group(2)
        if call or ident.lower() in PROMQL_FUNCTIONS_AND_KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", ident):
            continue
        names.add(ident)
    return names


def test_promql_name_parser() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, family) (rate(alliance_event_latency_seconds_bucket'
            '[$__rate_interval]))) / on (job) group_left (x) up{job=~"alliance-.*", family!="by"} '
            "and time() - alliance_projector_last_batch_timestamp_seconds offset 5m > 300")
    assert promql_metric_names(expr) == {
        "alliance_event_latency_seconds_bucket", "up", "alliance_projector_last_batch_timestamp_seconds",
    }


# ---------------------------------------------------------------------------------------- Prometheus


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_check_config() -> None:
    result = promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(PROM_DIR / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_test_rules_prove_alerts_fire() -> None:
    result = promtool("test", "rules", "alerts_test.yml", cwd=PROM_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # the unit tests expect at least these alerts to actually fire (non-empty exp_alerts)
    tests = yaml.safe_load((PROM_DIR / "alerts_test.yml").read_text())["tests"]
    firing = {case["alertname"] for t in tests for case in t["alert_rule_test"] if case.get("exp_alerts")}
    assert {"AllianceRejectRateHigh", "AllianceWorkerDown", "AllianceConsumerLagGrowing",
            "AllianceProjectorErrors", "AllianceProjectorStalled", "AllianceProjectorDown",
            "AllianceEventLatencyP99High", "AllianceWorkerPartitionRewinds"} <= firing


def test_alerts_have_severity_annotations_and_a_documented_runbook() -> None:
    doc = OPERATIONS_DOC.read_text()
    anchors = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", doc, flags=re.M)}
    rules = _rules()
    assert {r["alert"] for r in rules} >= {
        "AllianceConsumerLagGrowing", "AllianceRejectRateHigh", "AllianceProjectorErrors",
        "AllianceProjectorStalled", "AllianceWorkerDown", "AllianceProjectorDown",
        "AllianceEventLatencyP99High", "AllianceWorkerPartitionRewinds",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        runbook = annotations["runbook"]
        assert runbook.startswith("docs/operations.md#"), rule["alert"]
        anchor = runbook.split("#", 1)[1].split(":", 1)[0]
        assert anchor == rule["alert"].lower() and anchor in anchors, rule["alert"]


def test_alert_expressions_use_only_defined_metrics() -> None:
    known = known_metric_names()
    for rule in _rules():
        names = promql_metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= known, (rule["alert"], names - known)


def test_scrape_targets_match_compose_services_and_ports() -> None:
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    settings = Settings()
    targets: dict[str, set[tuple[str, int]]] = {}
    for job in config["scrape_configs"]:
        found: set[tuple[str, int]] = set()
        for sc in job.get("static_configs", []):
            for target in sc["targets"]:
                host, port = target.rsplit(":", 1)
                found.add((host, int(port)))
        for sd in job.get("dns_sd_configs", []):
            found |= {(name, int(sd["port"])) for name in sd["names"]}
        targets[job["job_name"]] = found
    # one target per worker replica: faust web port, pipeline metrics and faust sensors on one registry
    assert targets["alliance-worker"] == {("worker", settings.web_port)}
    assert targets["alliance-projector"] == {("projector", 9465)}
    assert "--metrics-port" in services["projector"]["command"]
    assert services["projector"]["command"][services["projector"]["command"].index("--metrics-port") + 1] == "9465"
    for job, found in targets.items():
        if job != "prometheus":
            assert {host for host, _ in found} <= set(services), job
    assert config["rule_files"] == ["alerts.yml"]


# ------------------------------------------------------------------------------------------- Grafana


def _dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA_DIR / "dashboards" / "alliance.json").read_text())


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def test_grafana_provisioning_points_at_the_dashboard_and_datasource() -> None:
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "alliance.yml").read_text())
    (ds,) = datasources["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    (provider,) = providers["providers"]
    grafana = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./infra/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./infra/grafana/provisioning"] == "/etc/grafana/provisioning"
    (readmodel,) = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "readmodel.yml").read_text())[
        "datasources"]
    assert readmodel["type"] == "grafana-postgresql-datasource" and readmodel["url"] == "postgres:5432"
    assert readmodel["user"] == READER and readmodel["jsonData"]["sslmode"] == "verify-full"  # portal views only
    assert readmodel["secureJsonData"]["password"] == "$ALLIANCE_PG_PORTAL_PASSWORD"
    assert ":?" in grafana["environment"]["ALLIANCE_PG_PORTAL_PASSWORD"]
    assert mounts["./infra/kafka/compose/tls/ca.pem"] == readmodel["jsonData"]["sslRootCertFile"]
    uids = {p["datasource"]["uid"] for p in _panels(_dashboard()) if "datasource" in p}
    assert uids == {ds["uid"], readmodel["uid"]}


def test_dashboard_queries_reference_only_defined_metrics() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"]
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    known = known_metric_names()
    used: set[str] = set()
    exprs = 0
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            if "rawSql" in target:  # a read-model panel: run as the portal role in tests/integration/test_db_roles.py
                continue
            names = promql_metric_names(target["expr"])
            assert names, (panel["title"], target["expr"])
            assert names <= known, (panel["title"], names - known)
            used |= names
            exprs += 1
    assert exprs >= 20
    # the dashboard covers every area: ingest, rejects, latency, lag, projector, tables, faust internals
    for needle in ("alliance_events_ingested_total", "alliance_events_rejected_total",
                   "alliance_event_latency_seconds_bucket", "alliance_pipeline_latency_seconds_bucket",
                   "alliance_consumer_lag_messages", "alliance_projector_batch_rows_bucket",
                   "alliance_projector_batch_seconds_bucket", "alliance_projector_errors_total",
                   "alliance_table_keys", f"{FAUST_SENSOR_PREFIX}_events_runtime_ms_bucket"):
        assert needle in used, needle


# -------------------------------------------------------------------------------------------- Compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(ensure_compose_schema().read_text())
    assert schema["title"] == "Compose Specification"
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)
    # the schema really rejects what the spec forbids
    broken = {"services": {"x": {"image": "a:1", "depends_on": {"y": {"condition": "sometimes"}}}}}
    assert list(validator.iter_errors(broken))


GENERATED_TLS = "./infra/kafka/compose/tls/"


def test_compose_dependencies_mounts_and_images(compose: dict[str, Any]) -> None:
    services: dict[str, dict[str, Any]] = compose["services"]
    named_volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        depends = service.get("depends_on", {})
        for target in depends if isinstance(depends, list) else depends.keys():
            assert target in services, (name, target)
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith(GENERATED_TLS):  # made by the operator (python -m infra tls), never committed
                assert source.removeprefix(GENERATED_TLS) in ("ca.pem", "server.crt", "server.key"), (name, source)
                assert "server" not in source or name == "postgres", (name, source)  # a private key: the server's
            elif source.startswith((".", "/")):
                assert (PROJECT_ROOT / source).resolve().exists(), (name, source)
                assert (PROJECT_ROOT / source).resolve().is_relative_to(PROJECT_ROOT), (name, source)
            else:
                assert source in named_volumes, (name, source)
        image = service.get("image")
        assert image, name
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and "/" not in tag, (name, image)
        if "build" in service:
            assert (PROJECT_ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert services["kafka-1"]["image"] == "apache/kafka:4.0.2"
    assert services["postgres"]["image"] == "postgres:16"
    assert "healthcheck" in services["postgres"]


def test_compose_kafka_is_a_three_node_kraft_cluster(compose: dict[str, Any]) -> None:
    """compose's brokers run the configuration the local 3-node cluster runs in the chaos tests
    (infra.kafka_local.broker_properties): SASL/SCRAM, ACLs, replication 3, min ISR 2."""
    from infra.kafka_local import COMPOSE_TEMPLATE, compose_properties

    services = compose["services"]
    brokers = {n: s for n, s in services.items() if s.get("image", "").startswith("apache/kafka:")}
    assert set(brokers) == {"kafka-1", "kafka-2", "kafka-3"}
    envs = {n: {k: str(v) for k, v in s["environment"].items()} for n, s in brokers.items()}
    assert sorted(e["NODE_ID"] for e in envs.values()) == ["1", "2", "3"]
    assert len({e["CLUSTER_ID"] for e in envs.values()}) == 1
    for name, service in brokers.items():
        assert service["command"] == ["bash", "/opt/alliance/broker.sh"], name
        assert "./infra/kafka/compose:/opt/alliance:ro" in service["volumes"], name
        assert service["hostname"] == name and "healthcheck" in service, name
        assert "--command-config /tmp/client.properties" in service["healthcheck"]["test"][1], name
        assert f"127.0.0.1:{envs[name]['EXTERNAL_PORT']}:{envs[name]['EXTERNAL_PORT']}" in service["ports"], name
        for var in ("BROKER", "ADMIN", "STREAMS", "PROJECTOR", "OPS", "PORTAL"):  # no default password
            assert envs[name][f"KAFKA_{var}_PASSWORD"].startswith(f"${{ALLIANCE_KAFKA_{var}_PASSWORD:?"), name
    template = COMPOSE_TEMPLATE.read_text()
    assert template == compose_properties(), "stale: python -m infra compose-config"
    props = dict(line.split("=", 1) for line in template.splitlines() if "=" in line and not line.startswith("#"))
    voters = {f"{env['NODE_ID']}@{name}:9093" for name, env in envs.items()}
    assert set(props["controller.quorum.voters"].split(",")) == voters
    assert props["process.roles"] == "broker,controller"
    assert props["default.replication.factor"] == props["offsets.topic.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2" and props["auto.create.topics.enable"] == "false"
    assert "INTERNAL://@HOST@:9092" in props["advertised.listeners"]
    assert set(props["listener.security.protocol.map"].split(",")) == {  # SASL over TLS everywhere
        "INTERNAL:SASL_SSL", "EXTERNAL:SASL_SSL", "CONTROLLER:SASL_SSL"}
    assert props["ssl.keystore.location"] == "@TLS_DIR@/server.pem"
    assert props["ssl.truststore.location"] == "@TLS_DIR@/ca.pem"
    assert props["ssl.endpoint.identification.algorithm"] == "https"
    assert props["allow.everyone.if.no.acl.found"] == "false" and props["super.users"] == "User:broker"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    script = (COMPOSE_TEMPLATE.parent / "broker.sh").read_text()
    assert "name=broker,password=$KAFKA_BROKER_PASSWORD" in script
    for user in ("admin", "streams", "projector", "ops", "portal"):
        assert f'"{user}:$KAFKA_{user.upper()}_PASSWORD"' in script, user
    checked = subprocess.run(["bash", "-n", str(COMPOSE_TEMPLATE.parent / "broker.sh")], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_compose_app_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    bootstrap = "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    app = [n for n, s in services.items() if s.get("build")]
    assert set(app) == {"provision", "db-roles", "migrate", "worker", "projector", "dlq-watch"}
    for name in app:
        assert services[name]["environment"]["ALLIANCE_KAFKA_BOOTSTRAP_SERVERS"] == bootstrap, name
        # TLS: the deployment's CA, mounted read-only (the servers' private key never reaches an app)
        cafile = services[name]["environment"]["ALLIANCE_KAFKA_SSL_CAFILE"]
        assert f"{GENERATED_TLS}ca.pem:{cafile}:ro" in services[name]["volumes"], name
        assert not [v for v in services[name]["volumes"] if "server" in v.split(":")[0]], name
        for url_var in ("ALLIANCE_DATABASE_URL", "ALLIANCE_DATABASE_ADMIN_URL"):  # the database checked likewise
            if url_var in services[name]["environment"]:
                assert services[name]["environment"][url_var].endswith(
                    f"?sslmode=verify-full&sslrootcert={cafile}"), (name, url_var)
    # PostgreSQL: TLS on, the same pg_hba.conf as the local server (hostssl only, passwords only)
    pg = services["postgres"]
    command = pg["command"]
    assert command[0] == "postgres" and "ssl=on" in command and "hba_file=/etc/alliance/pg_hba.conf" in command
    assert "./infra/postgres/pg_hba.conf:/etc/alliance/pg_hba.conf:ro" in pg["volumes"]
    hba = [line.split() for line in (PROJECT_ROOT / "infra/postgres/pg_hba.conf").read_text().splitlines()
           if line.strip() and not line.startswith("#")]
    assert {line[0] for line in hba} == {"local", "hostssl"} and {line[-1] for line in hba} == {"scram-sha-256"}
    # the read model: each process its own PostgreSQL role (core.db_access), the superuser only for db-roles
    roles = {name: m.group(1) if (m := re.match(r"postgresql://([^:@/]+)[:@]",
                                                 services[name]["environment"].get("ALLIANCE_DATABASE_URL", "")))
             else None for name in app}
    assert roles == {"provision": None, "db-roles": None, "migrate": "alliance_owner", "worker": None,
                     "projector": "alliance_projector", "dlq-watch": None}
    admin_url = services["db-roles"]["environment"]["ALLIANCE_DATABASE_ADMIN_URL"]
    assert admin_url.startswith("postgresql://postgres:${ALLIANCE_PG_SUPERUSER_PASSWORD:?"), admin_url
    for name in ("migrate", "projector"):
        url = services[name]["environment"]["ALLIANCE_DATABASE_URL"]
        assert "@postgres:5432/alliance" in url and ":${ALLIANCE_PG_" in url and ":?" in url, name
    assert services["migrate"]["depends_on"]["db-roles"]["condition"] == "service_completed_successfully"
    assert services["provision"]["command"] == ["python", "-m", "infra", "provision"]
    # every service its own principal (provisioning the brokers' own, which grants admin its ACLs)
    users = {name: services[name]["environment"].get("ALLIANCE_KAFKA_USERNAME") for name in app}
    assert users == {"provision": "broker", "db-roles": None, "migrate": None, "worker": "streams",
                     "projector": "projector", "dlq-watch": "ops"}
    for name, user in users.items():
        if user is not None:
            assert services[name]["environment"]["ALLIANCE_KAFKA_PASSWORD"].startswith(
                f"${{ALLIANCE_KAFKA_{user.upper()}_PASSWORD:?"), name
    assert services["provision"]["environment"]["ALLIANCE_REPLICATION_FACTOR"] == "3"
    assert services["migrate"]["command"] == ["python", "-m", "consumers", "migrate"]
    for step in ("provision", "db-roles", "migrate"):
        assert services[step]["restart"] == "no"
    for step in ("provision", "db-roles"):
        assert all(d["condition"] == "service_healthy" for d in services[step]["depends_on"].values())
    worker = services["worker"]
    assert worker["command"] == ["python", "-m", "streams", "worker", "-l", "info"]
    assert worker["environment"]["ALLIANCE_WORKER_INSTANCE_ID"] == "hostname"
    assert worker["deploy"]["replicas"] == 2
    assert worker["depends_on"]["provision"]["condition"] == "service_completed_successfully"
    projector = services["projector"]
    assert projector["command"][:3] == ["python", "-m", "consumers"]
    assert projector["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    mounts = [v.split(":")[:2] for v in services["prometheus"]["volumes"]]
    assert ["./infra/prometheus", "/etc/prometheus"] in mounts
    # no default secrets: compose refuses to start without them; data views need the token (docs/security.md)
    for name in app:
        env = services[name]["environment"]
        assert ":?" in env["ALLIANCE_HTTP_TOKEN"], name
        # pseudonyms are minted at the universities: no alliance service gets the key (docs/security.md)
        assert not any("PSEUDONYM" in var for var in env), name
    postgres = services["postgres"]["environment"]
    assert ":?" in postgres["POSTGRES_PASSWORD"] and postgres["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    assert ":?" in services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    # published ports listen on the host's loopback only
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published and all(str(p).startswith("127.0.0.1:") for p in published), published
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", dockerfile, flags=re.M)
    assert "pip install" in dockerfile


def _module_file(module: str) -> Path:
    parts = module.split(".")
    as_file = PROJECT_ROOT.joinpath(*parts).with_suffix(".py")
    return as_file if as_file.is_file() else PROJECT_ROOT.joinpath(*parts, "__init__.py")


def test_compose_commands_name_modules_that_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("provision", "migrate", "projector", "worker"):
        cmd = services[name]["command"]
        package = cmd[cmd.index("-m") + 1]
        assert (PROJECT_ROOT / package / "__main__.py").is_file(), f"python -m {package} ({name})"
    dockerignore = (PROJECT_ROOT / ".dockerignore").read_text().split()
    for needed in ("events", "streams", "consumers", "infra", "pyproject.toml"):
        assert needed not in dockerignore


def test_faust_command_line_refuses_with_the_supported_command() -> None:
    """``faust -A streams.main worker`` would run the app without the changelog topics, topic check and bounded
    stop of ``python -m streams worker``: it must refuse at once (no broker needed) and name that command."""
    faust_cli = Path(sys.executable).with_name("faust")
    for argv in ([str(faust_cli), "-A", "streams.main", "worker", "-l", "info"],
                 [sys.executable, "-c", "import streams.main"]):
        done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode != 0, (argv, done.stdout, done.stderr)
        assert "python -m streams worker" in done.stderr, (argv, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr


# ------------------------------------------------------------------- live endpoints and a real broker


async def test_consumer_lag_against_the_real_broker(kafka_admin: KafkaAccess, unique: str) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from kafka import KafkaProducer

    from core.topic_admin import provision
    from events.topics import TopicSpec

    topic = f"lag-{unique}"
    provision(kafka_admin, [TopicSpec(topic, 3)])
    producer = KafkaProducer(**kafka_admin.kafka_python(), acks="all")
    for partition, count in ((0, 5), (1, 3)):
        for i in range(count):
            producer.send(topic, f"v{i}".encode(), partition=partition)
    producer.flush(timeout=15)
    producer.close()

    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer = AIOKafkaConsumer(**kafka_admin.aiokafka(), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        assert await consumer_lag(consumer, "g") == {(topic, 0): 5, (topic, 1): 3, (topic, 2): 0}
        consumer.seek(tps[0], 2)
        async with asyncio.timeout(30):  # read partition 1 to its end
            consumer.pause(tps[0], tps[2])
            while await consumer.position(tps[1]) < 3:
                await consumer.getmany(tps[1], timeout_ms=500)
        registry = CollectorRegistry()
        metrics = PipelineMetrics(registry)
        lags = await update_consumer_lag(metrics.consumer_lag, consumer, f"g-{unique}")
    finally:
        await consumer.stop()
    assert lags == {(topic, 0): 3, (topic, 1): 0, (topic, 2): 0}
    assert registry.get_sample_value(
        "alliance_consumer_lag_messages", {"group": f"g-{unique}", "topic": topic, "partition": "0"}) == 3


async def test_projector_metrics_endpoint_passes_promtool() -> None:
    """The projector's /metrics (consumers.metrics, served by core.metrics.serve) is clean for promtool."""
    from core.metrics import serve

    metrics = ProjectorMetrics()
    metrics.batch_rows.observe(120)
    metrics.batch_seconds.observe(0.03)
    metrics.rows_total.labels(table="job_postings").inc(120)
    metrics.errors_total.labels(kind="db").inc()
    metrics.events_total.labels(family="recruitment").inc(120)
    metrics.lag.labels(group="alliance-projector", topic="alliance.events.recruitment", partition="0").set(7)
    metrics.last_batch.set_to_current_time()
    port = free_port()
    runner = await serve(metrics.registry, port, ready=lambda: True, host="127.0.0.1")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200
                text = await resp.text()
    finally:
        await runner.cleanup()
    assert "alliance_projector_rows_total" in text
    result = await asyncio.to_thread(promtool, "check", "metrics", stdin=text)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
