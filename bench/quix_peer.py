"""``python -m bench.quix_peer worker --web-port N``: the Python peer of the pipeline measurement, a Quix
Streams application (the optional ``bench`` extra, never a runtime dependency) doing the pipeline's work
(bench.peer_steps) on the same ingest topics, with RocksDB state and changelogs.

Topologies (``BENCH_PEER_TOPOLOGY``):

- ``direct``: one dataframe per ingest topic; each record is ingested and applied to its entity in one
  process step (a university's records are keyed by their entity's subject, so the ingest key scopes the
  entity's state): one Kafka hop less than the worker;
- ``canonical``: the worker's layout: the accepted events go to the canonical family topics and are applied
  from there (one dataframe per family topic).

Both send the partials (the differences, bench.peer_steps) to the partials topic, read back by the rollup
step. (Quix's ``group_by`` would do the same hops through its repartition topics, but on eight concatenated
ingest topics it names one longer than Kafka's 255 characters.)

``BENCH_PEER_GUARANTEE``: ``at-least-once`` or ``exactly-once`` (Kafka transactions). Output topics are the
run's with ``.quix-<topology>-<alo|eos>`` appended. Tuned as the benchmark issue asks: librdkafka
``fetch.wait.max.ms=50`` and a 50 ms poll timeout (the defaults wait out a 1 s poll per call).

Serves ``/freshness/`` (``ingest`` and ``tables`` counts) and ``/readyz`` like the worker, so the benchmark
times it with the same polling code. Settings come from the ALLIANCE_* environment; it connects as the
broker's own principal when the credential store has it (a benchmark broker: the alliance's ACLs grant no
transactional ids and no internal topics of a Quix application)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

from aiohttp import web
from prometheus_client import CollectorRegistry
from quixstreams import Application, message_context
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models import TopicConfig
from quixstreams.models.serializers import SerializationContext, Serializer

from bench.peer_steps import GUARANTEES, TOPOLOGIES, Out, Steps, output_suffix
from core.credentials import CredentialsError
from core.kafka_access import BROKER, MECHANISM, STREAMS, KafkaAccess
from core.metrics import metrics_app
from core.runtime import tune_gc
from core.settings import Settings, load_settings
from events.reference import UNIVERSITIES
from events.topics import AGGREGATES, Family, agg_topic, family_topic, ingest_topic, registry
from streams import batch as pure


class _Value(Serializer):
    """Writes an :class:`Out`'s value (the steps produce their records' bytes themselves)."""

    def __call__(self, value: Out, ctx: SerializationContext) -> bytes | None:  # type: ignore[override]
        return value.value


def _access(settings: Settings) -> KafkaAccess:
    try:
        return settings.kafka(BROKER)
    except CredentialsError:  # a credential store without the broker's password (an external cluster)
        return settings.kafka(STREAMS)


def connection(access: KafkaAccess) -> ConnectionConfig:
    extra: dict[str, Any] = {}
    if access.username is not None and access.password is not None:
        extra = {"sasl_mechanism": MECHANISM, "sasl_username": access.username, "sasl_password": access.password}
    protocol = cast(Any, access.protocol.lower())  # one of Quix's literals (core.kafka_access.KafkaAccess)
    return ConnectionConfig(bootstrap_servers=access.bootstrap, security_protocol=protocol,
                            ssl_ca_location=access.ssl_cafile, **extra)


def build(settings: Settings, topology: str, guarantee: str, state_dir: str,
          loglevel: str = "WARNING") -> tuple[Application, Steps]:
    if topology not in TOPOLOGIES or guarantee not in GUARANTEES:
        raise SystemExit(f"quix peer: topology must be one of {TOPOLOGIES}, guarantee one of {GUARANTEES}")
    suffix = settings.topic_suffix
    out_suffix = output_suffix(suffix, topology, guarantee)
    app = Application(broker_address=connection(_access(settings)), consumer_group=settings.app_id,
                      auto_offset_reset="earliest", processing_guarantee=cast(Any, guarantee), state_dir=state_dir,
                      consumer_extra_config={"fetch.wait.max.ms": 50}, consumer_poll_timeout=0.05,
                      loglevel=cast(Any, loglevel.upper()))

    steps = Steps(topic=lambda name: name + out_suffix, source=lambda name: name + suffix)
    partitions = {steps.topic(spec.name): spec.partitions for spec in registry()}

    def inbound(name: str) -> Any:
        return app.topic(name, key_deserializer="bytes", value_deserializer="bytes")

    def outbound(name: str) -> Any:  # created with the partitions of the run's topic of the same name
        return app.topic(name, key_serializer="bytes", value_serializer=_Value(),
                         key_deserializer="bytes", value_deserializer="bytes",
                         config=TopicConfig(num_partitions=partitions[name],
                                            replication_factor=settings.replication_factor))

    outputs = {name: outbound(name) for name in
               [steps.topic(agg_topic(n)) for n in AGGREGATES] + [steps.dlq, steps.partials]
               + ([steps.topic(family_topic(f)) for f in Family] if topology == "canonical" else [])}

    def to_output(value: Out, *_: Any) -> Any:
        return outputs[value.topic]

    def step_on(step: Callable[[pure.Raw, Any], list[Out]], previous: bool = False) -> Callable[..., list[Out]]:
        """A stateful Quix callback running ``step`` on the record read, or (``previous``) on an :class:`Out`
        of the previous step in the same process (no Kafka hop between them)."""
        def call(value: Any, key: Any, timestamp: int, _headers: Any, state: Any) -> list[Out]:
            ctx = message_context()
            topic, key, value = (value.topic, value.key, value.value) if previous else (ctx.topic, key, value)
            return step(pure.Raw(topic, ctx.partition, ctx.offset, timestamp / 1000, key, value), state)
        return call

    def each(sdf: Any, step: Callable[[pure.Raw, Any], list[Out]], previous: bool = False) -> Any:
        return sdf.apply(step_on(step, previous), stateful=True, metadata=True, expand=True)

    for u in UNIVERSITIES:
        outs = each(app.dataframe(inbound(ingest_topic(u) + suffix)), steps.ingest)
        if topology == "direct":  # the ingest key is the entity's subject: the entity's state is here
            outs.filter(lambda o: o.topic == steps.dlq).to_topic(to_output, key=lambda o: o.key)
            each(outs.filter(lambda o: o.topic != steps.dlq), steps.tables, previous=True).to_topic(
                to_output, key=lambda o: o.key)
        else:  # to the canonical topics, read back by entity like the worker's tables agent
            outs.to_topic(to_output, key=lambda o: o.key)
    if topology == "canonical":
        for f in Family:
            each(app.dataframe(inbound(steps.topic(family_topic(f)))), steps.tables).to_topic(
                to_output, key=lambda o: o.key)
    each(app.dataframe(inbound(steps.partials)), steps.rollup).to_topic(to_output, key=lambda o: o.key)
    return app, steps


def serve(port: int, steps: Steps) -> None:
    """``/freshness/`` beside ``core.metrics``' ``/metrics``, ``/healthz`` and ``/readyz`` on ``port``, served
    by an event loop of its own in a daemon thread (Quix runs the main thread)."""
    app = metrics_app(CollectorRegistry(), ready=lambda: True)

    async def freshness(_: web.Request) -> web.Response:
        return web.json_response(steps.freshness())

    app.router.add_get("/freshness/", freshness)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    threading.Thread(target=loop.run_forever, daemon=True).start()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quix_peer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker")
    w.add_argument("-l", "--loglevel", default="warning")
    w.add_argument("--web-port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = load_settings()
    topology = os.environ.get("BENCH_PEER_TOPOLOGY", "direct")
    guarantee = os.environ.get("BENCH_PEER_GUARANTEE", "at-least-once")
    state_dir = os.environ.get("BENCH_PEER_STATE_DIR") or str(settings.local_dir / "quix-state" / settings.app_id)
    tune_gc()  # the worker's garbage collector settings (core.runtime): the same per-record code, tuned alike
    app, steps = build(settings, topology, guarantee, state_dir, args.loglevel)
    serve(args.web_port, steps)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
