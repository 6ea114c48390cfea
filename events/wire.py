"""What travels with an event on the wire besides its JSON value: the Kafka key (``Event.key``, the subject)
and the CloudEvents-style headers (Kafka binary content mode) every publisher sets."""

from __future__ import annotations

from typing import Protocol

from events.base import Event

CE_SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

# The dead-letter topic's headers (alliance.dlq): why a record was refused and where it came from.
DLQ_REASON = "x-alliance-reject-reason"  # one of events.errors.REASON_CODES
DLQ_DETAIL = "x-alliance-reject-detail"
DLQ_SOURCE_TOPIC = "x-alliance-source-topic"
DLQ_SOURCE_PARTITION = "x-alliance-source-partition"
DLQ_SOURCE_OFFSET = "x-alliance-source-offset"
DLQ_UNIVERSITY = "x-alliance-university"
DLQ_EVENT_ID = "x-alliance-event-id"
# On a record redriven from the DLQ (python -m events.tools dlq redrive): the DLQ record it fixes,
# "<partition>:<offset>", so that nothing is redriven twice.
REDRIVE_OF = "x-alliance-redrive-of"


class ConsumedRecord(Protocol):
    """A record as a consumer reads it back from a topic (aiokafka's ``ConsumerRecord`` in the projector, faust's
    message in the worker's agents): the fields the alliance's consumers read. ``streams.batch.Record`` adds the
    timestamp, whose unit differs between the two clients."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


def cloudevent_headers(event: Event) -> list[tuple[str, bytes]]:
    """The CloudEvents-style (Kafka binary mode) headers of one record."""
    occurred = event.occurred_at.isoformat().replace("+00:00", "Z")
    return [
        ("ce_specversion", CE_SPECVERSION.encode()),
        ("ce_id", str(event.event_id).encode()),
        ("ce_type", event.type.encode()),
        ("ce_source", event.source.encode()),
        ("ce_time", occurred.encode()),
        ("ce_subject", str(event.subject).encode()),
        ("ce_schemaversion", str(event.schema_version).encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
