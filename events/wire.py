"""What travels with an event on the wire besides its JSON value: the Kafka key (``Event.key``, the subject)
and the CloudEvents-style headers (Kafka binary content mode) every publisher sets."""

from __future__ import annotations

from events.base import Event

CE_SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"


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
