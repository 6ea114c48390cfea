"""A workaround for kafka-python 3.0: a connection reset while a TLS connection is set up stops the client's
metadata refresh for good.

kafka-python 3.0.x (3.0.12 at the time of writing) refreshes metadata in one long-running coroutine per client
(``kafka.cluster.ClusterMetadata._refresh_loop``), which survives a ``KafkaError`` and ends on anything else
(dpkp/kafka-python#2936); nothing restarts it, since ``start_refresh_loop`` does nothing once it ran. Building a
TLS transport (``KafkaConnectionManager._build_transport``) translates the errors of the TCP connect and of the
TLS handshake into ``KafkaConnectionError``, but not those of wrapping the socket in between: when a broker
resets the connection right after accepting it (it is being killed or is still starting), ``SSLSocket``'s
constructor raises ``ConnectionResetError`` (an ``OSError``), the metadata request that opened the connection
fails with it, and the loop ends. The client never asks for metadata again: a producer whose partition leader
moved retries ``NotLeaderForPartitionError`` against the old leader until its records expire (the delivery
timeout), a consumer stops following its leaders. Seen in the broker-bounce chaos scenario about one run in
five (docs/reliability.md), caught with the loop's exception recorded.

:func:`install` makes ``_build_transport`` raise ``KafkaConnectionError`` for an ``OSError`` too (``ssl.SSLError``
is one), as it does for the handshake's: the loop then backs off and refreshes from another node. Every
kafka-python client of the project is configured through ``core.kafka_access.KafkaAccess.kafka_python``, which
installs it. Idempotent; it refuses to install on a kafka-python without the method it wraps (the structure it
relies on changed: check whether the bug is still there)."""

from __future__ import annotations

import functools
from typing import Any

_MARK = "_alliance_translates_os_errors"


class KafkaPythonFixError(RuntimeError):
    pass


def install() -> None:
    """Wrap ``kafka.net.manager.KafkaConnectionManager._build_transport`` (once per process)."""
    from kafka.errors import KafkaConnectionError, KafkaError
    from kafka.net import manager

    cls = getattr(manager, "KafkaConnectionManager", None)
    original = getattr(cls, "_build_transport", None)
    if cls is None or original is None:
        raise KafkaPythonFixError("kafka-python no longer has KafkaConnectionManager._build_transport: "
                                  "core.kafka_python_fix needs a look at the new version")
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    async def _build_transport(self: Any, node: Any, timeout_at: float | None = None) -> Any:
        try:
            return await original(self, node, timeout_at=timeout_at)
        except KafkaError:
            raise
        except OSError as exc:  # (ConnectionResetError wrapping the socket in TLS, an ssl.SSLError, ...)
            raise KafkaConnectionError(f"Transport failed: {type(exc).__name__}: {exc}") from exc

    setattr(_build_transport, _MARK, True)
    cls._build_transport = _build_transport
