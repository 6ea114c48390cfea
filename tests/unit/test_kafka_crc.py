"""kafka-python's CRC-32C: the C implementation is installed (the ``kafka-python[crc32c]`` dependency), agrees with
kafka-python's own pure-Python one, and a client configured without it is warned about (core.kafka_access)."""

from __future__ import annotations

import logging
import random

import pytest
from kafka.record import util
from kafka.record._crc32c import crc as python_crc32c
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from core import kafka_access
from core.kafka_access import KafkaAccess


@pytest.fixture(autouse=True)
def _fresh_warning_cache() -> None:
    kafka_access._warn_without_c_crc32c.cache_clear()


def test_kafka_python_checksums_with_the_c_crc32c() -> None:
    assert util.crc32c_c is not None, "the 'crc32c' package (kafka-python[crc32c]) is not installed"


def test_the_c_crc32c_agrees_with_kafka_pythons_own() -> None:
    rng = random.Random(7)
    for size in (0, 1, 7, 64, 1000, 4099):
        data = bytes(rng.randrange(256) for _ in range(size))
        assert util.crc32c_c(data) == python_crc32c(data), size


def test_a_record_batch_built_with_it_validates_with_the_python_crc(monkeypatch: pytest.MonkeyPatch) -> None:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(50):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=b"k%d" % i, value=b"v" * i, headers=[])
    data = bytes(builder.build())
    monkeypatch.setattr(util, "crc32c_c", None)  # checked by kafka-python's pure-Python CRC-32C
    assert DefaultRecordBatch(data).validate_crc()


def test_no_warning_with_the_c_crc32c(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="core.kafka_access"):
        KafkaAccess("127.0.0.1:9092").kafka_python()
    assert "CRC-32C" not in caplog.text


def test_a_client_without_it_is_warned_once(monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(util, "crc32c_c", None)
    with caplog.at_level(logging.WARNING, logger="core.kafka_access"):
        KafkaAccess("127.0.0.1:9092").kafka_python()
        KafkaAccess("127.0.0.1:9093").kafka_python()
    warnings = [r for r in caplog.records if "CRC-32C" in r.getMessage()]
    assert len(warnings) == 1
    assert "kafka-python[crc32c]" in warnings[0].getMessage()
