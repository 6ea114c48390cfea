"""The benchmark's Quix Streams peer (bench.quix_peer), a real Quix application on the real broker, does
the pipeline's work: for a day with duplicates, invalid, spoofed and foreign records and 3 % revisions, the
latest records on its aggregated topics equal the independent oracle's figures, in both topologies (one
at-least-once, one exactly-once), and its rejects reach its DLQ topic."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from bench.peer_steps import output_suffix
from core.kafka_access import ADMIN
from core.settings import Settings
from core.topic_admin import provision
from events.simulator import alliance_day
from events.simulator.publish import publish
from events.topics import AGGREGATES, DLQ_TOPIC, agg_topic, registry
from infra.oracle import accepted_events, expected_aggregates, expected_rejects
from infra.processes import Service, free_ports
from infra.verify import aggregates_on_topics, all_match, latest, value_diffs

pytestmark = pytest.mark.integration

RUNS = (("direct", "at-least-once"), ("canonical", "exactly-once"))


async def test_the_quix_peer_publishes_the_oracles_aggregates_in_both_topologies(settings: Settings,
                                                                                   unique: str) -> None:
    records = alliance_day(seed=31, scale=0.03, revision_rate=0.03)
    suffix = f".q{unique}"
    provision(settings.kafka(ADMIN), [s for s in registry() if s.name.startswith("alliance.ingest.")],
              suffix=suffix, app_id=f"q-{unique}")
    assert publish([replace(r, topic=r.topic + suffix) for r in records], settings.kafka) == len(records)
    expected = expected_aggregates(accepted_events(records))
    rejects = sum(expected_rejects(records).values())
    log_dir = settings.local_dir / f"quix-peer-{unique}"
    peers = []
    for (topology, guarantee), port in zip(RUNS, free_ports(len(RUNS)), strict=True):
        peers.append(Service(f"quix peer {topology}", ["-m", "bench.quix_peer", "worker", "--web-port", str(port)],
                             log_dir / f"{topology}.log", port,
                             env={"BENCH_PEER_TOPOLOGY": topology, "BENCH_PEER_GUARANTEE": guarantee,
                                  "BENCH_PEER_STATE_DIR": str(log_dir / f"state-{topology}")}))
    try:
        for (topology, _), peer in zip(RUNS, peers, strict=True):
            peer.start(settings.model_copy(update={"topic_suffix": suffix, "app_id": f"q-{unique}-{topology}"}))
        for (topology, guarantee), peer in zip(RUNS, peers, strict=True):
            out = output_suffix(suffix, topology, guarantee)
            topics = [agg_topic(n) + out for n in AGGREGATES] + [DLQ_TOPIC + out]

            def done(state: dict[str, dict[str, Any]], out: str = out, peer: Service = peer) -> bool:
                assert peer.alive(), peer.log_tail()
                return all_match(aggregates_on_topics(state, out), expected) and \
                    len(state[DLQ_TOPIC + out]) >= rejects

            state = await latest(settings.kafka(ADMIN), topics, f"check-{unique}-{topology}", done, wait_s=240)
            got = aggregates_on_topics(state, out)
            for name in AGGREGATES:
                assert not value_diffs(got[name], expected[name]), (topology, name, value_diffs(got[name],
                                                                                              expected[name])[:5])
            assert len(state[DLQ_TOPIC + out]) == rejects, topology
            assert (peer.json("/freshness/") or {})["tables"]["events_processed"] == len(accepted_events(records))
    finally:
        for peer in peers:
            await asyncio.to_thread(peer.stop)
