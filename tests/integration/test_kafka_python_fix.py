"""kafka-python's metadata refresh survives a broker resetting a TLS connection as it is set up
(core.kafka_python_fix), against the session's real broker and its TLS listener.

The fault is the one caught in the broker-bounce chaos runs: the broker accepts the TCP connection and resets it
before the socket is wrapped in TLS, so ``SSLSocket``'s constructor raises ``ConnectionResetError``, and the
metadata request that opened the connection fails with it. Here a producer that has delivered records lets its
connections go idle (the client closes them), then asks for a second topic's partitions: its metadata refresh
opens a new connection, and that one is reset. Without the workaround ``partitions_for`` raises the
``ConnectionResetError`` and the refresh loop has ended with it: the producer would never refresh again."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.net import manager

from bench.kafka_io import read_records
from core.kafka_access import KafkaAccess
from core.topic_admin import provision
from events.topics import TopicSpec
from infra.processes import wait_until

pytestmark = pytest.mark.integration


def reset_next_tls_transport(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every TLS transport kafka-python builds from now on, by outcome: the first one is reset."""
    built: list[str] = []
    original = manager.KafkaSSLTransport

    class Resetting(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if not built:
                built.append("reset")
                raise ConnectionResetError(104, "Connection reset by peer")
            built.append("built")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(manager, "KafkaSSLTransport", Resetting)
    return built


def test_a_producer_learns_a_topic_after_its_metadata_connection_was_reset(kafka_admin: KafkaAccess,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert kafka_admin.ssl_cafile is not None, "the session's broker has a TLS listener"
    first, second = (f"test.kafka-python-fix.{uuid.uuid4().hex[:8]}" for _ in range(2))
    provision(kafka_admin, [TopicSpec(first, 2), TopicSpec(second, 2)])
    producer = KafkaProducer(**kafka_admin.kafka_python(), acks="all", max_block_ms=20_000,
                             connections_max_idle_ms=1_000)
    try:
        producer.send(first, value=b"before").get(timeout=30)
        conns = producer._metadata._manager._conns  # (kafka-python's own: wait until it closed its idle connections)
        wait_until(lambda: not conns, timeout=30, what="the producer's idle connections closed")
        resets = reset_next_tls_transport(monkeypatch)
        started = time.monotonic()
        assert producer.partitions_for(second) == {0, 1}  # (refreshed after the reset)
        values = [f"record {i}".encode() for i in range(10)]
        for value in values:
            producer.send(second, value=value).get(timeout=30)
        loop = producer._metadata._refresh_loop_future
        assert loop is not None and not loop.is_done, "the metadata refresh loop runs on"
        print(f"learnt {second} {time.monotonic() - started:.2f} s after the reset; transports: {resets}")
    finally:
        producer.close(timeout=5)
    assert resets[:2] == ["reset", "built"]  # the fault happened, and the client connected again
    assert sorted(value for *_, value in asyncio.run(read_records(kafka_admin, second, 2))) == sorted(values)
