"""core.kafka_python_fix: what the wrapper translates, and how it installs (the real fault, on the real broker:
tests/integration/test_kafka_python_fix.py)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
from kafka.errors import KafkaConnectionError, NodeNotReadyError
from kafka.net import manager

from core import kafka_python_fix


class _Manager:
    def __init__(self, raises: BaseException | None) -> None:
        self.raises = raises

    async def _build_transport(self, node: Any, timeout_at: float | None = None) -> Any:
        if self.raises is not None:
            raise self.raises
        return ("transport", node, timeout_at)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[_Manager]:
    cls = type("KafkaConnectionManager", (_Manager,), {})
    monkeypatch.setattr(manager, "KafkaConnectionManager", cls)
    kafka_python_fix.install()
    return cls


def build(cls: type[_Manager], raises: BaseException | None) -> Any:
    return asyncio.run(cls(raises)._build_transport("node-1", timeout_at=5.0))


def test_os_errors_become_connection_errors(fake: type[_Manager]) -> None:
    for error in (ConnectionResetError(104, "Connection reset by peer"), ssl.SSLError("bad record mac"),
                  OSError(107, "Transport endpoint is not connected")):
        with pytest.raises(KafkaConnectionError, match=type(error).__name__) as caught:
            build(fake, error)
        assert caught.value.__cause__ is error


def test_results_kafka_errors_and_other_errors_pass_through(fake: type[_Manager]) -> None:
    assert build(fake, None) == ("transport", "node-1", 5.0)
    kafka_error = NodeNotReadyError("node-1")
    with pytest.raises(NodeNotReadyError) as caught:
        build(fake, kafka_error)
    assert caught.value is kafka_error
    with pytest.raises(ValueError):  # (not an I/O failure: a bug stays visible)
        build(fake, ValueError("bug"))


def test_install_wraps_once(fake: type[_Manager]) -> None:
    wrapped = fake._build_transport
    kafka_python_fix.install()
    assert fake._build_transport is wrapped
    assert wrapped is not _Manager._build_transport


def test_install_refuses_a_kafka_python_without_the_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager, "KafkaConnectionManager", type("KafkaConnectionManager", (), {}))
    with pytest.raises(kafka_python_fix.KafkaPythonFixError, match="_build_transport"):
        kafka_python_fix.install()


def test_the_installed_kafka_python_is_wrapped() -> None:
    kafka_python_fix.install()
    assert getattr(manager.KafkaConnectionManager._build_transport, "_alliance_translates_os_errors", False)
