"""The local 3-node KRaft cluster (the compose topology as local processes) stops cleanly whatever the order its
nodes are stopped in. Each node is a broker and a controller; a broker's controlled shutdown waits for the
controller quorum to approve it, and the quorum is the other nodes. When they had left first (stopped before it,
or quicker than it when all were stopped together), the last broker waited for an approval that could not come,
was killed after 45 s and left its log directory without a clean-shutdown marker (its next start recovers every
log). That happened in the chaos test's broker-bounce cluster: the node that had never been bounced led most
partitions and was approved last."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from infra.kafka_local import LocalKafkaCluster, broker_properties, compose_properties
from infra.processes import free_ports

pytestmark = pytest.mark.integration


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_a_local_cluster_stopped_node_by_node_leaves_every_log_directory_clean(tmp_path: Path) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    port = free_ports(1, span=6)[0]  # node i listens on port + 2(i-1), its controller on port + 1 + 2(i-1)
    cluster = LocalKafkaCluster(home=tmp_path / "kafka-cluster-3", cache_dir=PROJECT_ROOT / ".local", port=port,
                                controller_port=port + 1)
    cluster.start()
    try:
        admin = KafkaAdminClient(**cluster.superuser.kafka_python(), client_id="local-cluster-test")
        try:  # partitions on every node, so that each broker has leaderships to give up
            admin.create_topics([NewTopic(f"stop-order-{i}", 3, 3) for i in range(6)])
        finally:
            admin.close()
        stopped = []
        for node_id in (2, 3, 1):  # the last one is stopped when no controller quorum is left
            started = time.monotonic()
            cluster.node(node_id).stop()
            stopped.append((node_id, round(time.monotonic() - started, 1)))
            assert not cluster.node(node_id).is_running()
    finally:
        cluster.stop()
    data = sorted((tmp_path / "kafka-cluster-3").glob("node-*/data"))
    assert len(data) == 3
    unclean = [d.parent.name for d in data if not (d / ".kafka_cleanshutdown").exists()]
    assert unclean == [], (unclean, stopped)  # seconds per stop, for the reader: a kill came after 45 s


def test_only_the_local_nodes_skip_the_controlled_shutdown() -> None:
    """compose's brokers keep it: a rolling restart moves each broker's leaderships away before it stops."""
    def rendered(development: bool) -> dict[str, str]:
        return properties("\n".join(broker_properties(
            node_id=1, voters="1@127.0.0.1:9093", listeners={"INTERNAL": ("127.0.0.1:9092", "127.0.0.1:9092")},
            controller="127.0.0.1:9093", broker_password="x", replicas=3, data_dir="/data", development=development)))

    assert rendered(development=True)["controlled.shutdown.enable"] == "false"
    assert "controlled.shutdown.enable" not in rendered(development=False)
    assert "controlled.shutdown.enable" not in properties(compose_properties())
