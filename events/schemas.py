"""JSON Schema (draft 2020-12) per event type and one AsyncAPI 3.0.0 document, generated from the models.

The schemas describe the wire as the ingest accepts it (pydantic "validation" mode, plus what the models
check in code and JSON Schema can say: ``type`` is required, university codes are an enum, free text
must not contain personal data). Rules across fields (salary_min <= salary_max, deadline not before
occurred_at, a fair ends after it starts, subject == data.<key field>) are enforced by events.codec and
named in each schema's description.

``python -m events.tools schemas --out schemas/`` writes them; ``--check`` fails if the committed files are stale.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from events import aggregates, base, compat
from events.base import MAX_EVENT_BYTES, SCHEMA_VERSION, Event
from events.codec import ALL_EVENTS
from events.errors import REASON_CODES, EventError
from events.reference import UNIVERSITIES
from events.topics import (
    AGGREGATES,
    DLQ_TOPIC,
    Family,
    TopicSpec,
    agg_topic,
    family_topic,
    ingest_topic,
    registry,
)
from events.wire import CE_SPECVERSION, CONTENT_TYPE

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
ASYNCAPI_FILE = "asyncapi.yaml"
_COMPONENT_REF = "#/components/schemas/{model}"
_CROSS_FIELD_RULES = (
    "Also checked by the codec: subject (the Kafka key) equals data.{key}; dates lie in "
    "2000-01-01 .. 2100-01-01; the encoded event is at most {size} bytes{extra}."
)
_EXTRA_RULES = {
    "recruitment.job_posted": "; salary_min <= salary_max; data.deadline is not before occurred_at",
    "recruitment.job_posting_updated": "; at least one field changes; salary_min <= salary_max",
    "jobfair.scheduled": "; ends_at is after starts_at and at most 14 days later",
    "recruitment.hired": "; data.work_city and data.degree only with schema_version 2",
}


class AllianceJsonSchema(GenerateJsonSchema):
    """Adds to the generated schema what the models check with plain functions."""

    def function_after_schema(self, schema: core_schema.AfterValidatorFunctionSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        func = schema["function"].get("function")
        if func is base._known_university:
            inner = {**inner, "enum": sorted(UNIVERSITIES)}
        elif func is base._clean_text:
            patterns = [p.pattern for _, p in base._PERSONAL] + [base._CONTROL.pattern]
            inner = {**inner, "not": {"anyOf": [{"pattern": p} for p in patterns]},
                     "description": "free text; must not contain personal data (" +
                                    ", ".join(what for what, _ in base._PERSONAL) + ") or a control character "
                                    "(U+0000-U+001F except tab, LF, CR; U+007F)"}
        return inner


def schema_file_name(event_type: str) -> str:
    return f"{event_type}.json"


def _decorate_event(schema: dict[str, Any], cls: type[Event]) -> dict[str, Any]:
    """Envelope facts the model cannot express itself."""
    event_type = cls.model_fields["type"].default
    schema["required"] = ["type", *[r for r in schema.get("required", []) if r != "type"]]
    doc = (cls.__dict__.get("__doc__") or "").strip()
    rules = _CROSS_FIELD_RULES.format(key=cls.key_field, size=MAX_EVENT_BYTES,
                                      extra=_EXTRA_RULES.get(event_type, ""))
    schema["description"] = f"{doc}\n\n{rules}" if doc else rules
    schema["x-alliance-family"] = cls.family
    schema["x-alliance-key"] = f"data.{cls.key_field}"
    schema["x-alliance-schema-version"] = cls.version
    schema["properties"]["schema_version"]["maximum"] = cls.version
    schema["title"] = event_type
    return schema


def event_json_schema(cls: type[Event]) -> dict[str, Any]:
    """The standalone JSON Schema (draft 2020-12) of one event type."""
    event_type = cls.model_fields["type"].default
    body = _decorate_event(cls.model_json_schema(mode="validation", schema_generator=AllianceJsonSchema), cls)
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": f"urn:alliance:events:{event_type}:v{cls.version}", **body}


def aggregate_json_schema(name: str) -> dict[str, Any]:
    """The standalone JSON Schema of the records on ``alliance.agg.<name>`` (events.aggregates)."""
    body = aggregates.json_schema(name)
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": f"urn:alliance:aggregates:{name}:v{SCHEMA_VERSION}",
            "description": f"A record of alliance.agg.{name}: {AGGREGATES[name]}", **body}


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, one per event type and one per aggregate (``aggregate.<name>.json``)."""
    out = {schema_file_name(cls.model_fields["type"].default): event_json_schema(cls) for cls in ALL_EVENTS}
    out.update({f"aggregate.{name}.json": aggregate_json_schema(name) for name in AGGREGATES})
    return out


# -- AsyncAPI ---------------------------------------------------------------------------------------

def _headers_schema() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "type": "object",
        "description": "CloudEvents-style Kafka headers (binary content mode); values are UTF-8 strings.",
        "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "ce_schemaversion",
                     "content-type"],
        "properties": {
            "ce_specversion": {**text, "const": CE_SPECVERSION},
            "ce_id": {**text, "format": "uuid", "description": "= event_id"},
            "ce_type": {**text, "description": "= type"},
            "ce_source": {**text, "enum": sorted(UNIVERSITIES), "description": "= source (university code)"},
            "ce_time": {**text, "format": "date-time", "description": "= occurred_at (UTC)"},
            "ce_subject": {**text, "description": "= subject (the record key)"},
            "ce_schemaversion": {**text, "pattern": "^[1-9][0-9]*$", "description": "= schema_version"},
            "content-type": {**text, "const": CONTENT_TYPE},
        },
    }


def _channel_binding(spec: TopicSpec) -> dict[str, Any]:
    cfg: dict[str, Any] = {"cleanup.policy": ["compact" if spec.compacted else "delete"]}
    if spec.retention_ms is not None:
        cfg["retention.ms"] = spec.retention_ms
    return {"kafka": {"topic": spec.name, "partitions": spec.partitions, "topicConfiguration": cfg,
                      "bindingVersion": KAFKA_BINDING_VERSION}}


def _message_id(cls: type[Event]) -> str:
    return cls.__name__


def _event_message(cls: type[Event], payload_ref: str) -> dict[str, Any]:
    event_type = cls.model_fields["type"].default
    key_schema = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.:-]{0,79}$",
                  "description": f"the subject: data.{cls.key_field}"}
    return {
        "name": event_type,
        "title": cls.__name__,
        "summary": f"{cls.family} event {event_type}, keyed by data.{cls.key_field}",
        "contentType": CONTENT_TYPE,
        "headers": {"allOf": [{"$ref": "#/components/schemas/CloudEventHeaders"},
                              {"type": "object", "properties": {"ce_type": {"const": event_type}}}]},
        "payload": {"$ref": payload_ref},
        "bindings": {"kafka": {"key": key_schema, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _canonical_id(cls: type[Event]) -> str:
    return f"{cls.__name__}Canonical"


def _aggregate_message_id(name: str) -> str:
    return "Aggregate" + "".join(part.capitalize() for part in name.split("-"))


def _channel_id(spec: TopicSpec) -> str:
    return spec.name.removeprefix("alliance.").replace(".", "-")


def _discriminators_as_names(node: Any) -> Any:
    """AsyncAPI 3.0.0 schema objects name a discriminator by its property only (JSON Schema's OpenAPI-style
    ``{"propertyName": ..., "mapping": ...}`` is refused): the corrected event inside a correction."""
    if isinstance(node, dict):
        return {k: (v["propertyName"] if k == "discriminator" and isinstance(v, dict) else _discriminators_as_names(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_discriminators_as_names(v) for v in node]
    return node


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the backbone's topics, as a plain mapping."""
    record_models = [m for models in aggregates.RECORDS.values() for m in models]
    key_map, defs = models_json_schema([(cls, "validation") for cls in (*ALL_EVENTS, *record_models)],
                                       ref_template=_COMPONENT_REF, schema_generator=AllianceJsonSchema)
    schemas: dict[str, Any] = _discriminators_as_names(dict(defs.get("$defs", {})))
    payload_refs: dict[type[Event], str] = {}
    for cls in ALL_EVENTS:
        ref = key_map[(cls, "validation")]["$ref"]
        name = ref.rsplit("/", 1)[1]
        schemas[name] = _decorate_event(copy.deepcopy(schemas[name]), cls)
        payload_refs[cls] = ref
    schemas["CloudEventHeaders"] = _headers_schema()
    schemas["RejectedRecord"] = {"type": "string", "description": "the rejected record value, unchanged"}

    schemas["ProvenanceHeaders"] = {
        "type": "object",
        "description": "set by the streams ingest on canonical records: where the event was first read",
        "properties": {"x-alliance-ingest-topic": {"type": "string"},
                       "x-alliance-ingest-partition": {"type": "string", "pattern": "^[0-9]+$"},
                       "x-alliance-ingest-offset": {"type": "string", "pattern": "^[0-9]+$"}},
    }
    messages: dict[str, Any] = {_message_id(cls): _event_message(cls, payload_refs[cls]) for cls in ALL_EVENTS}
    for cls in ALL_EVENTS:
        canonical = _event_message(cls, payload_refs[cls])
        canonical["headers"] = {"$ref": "#/components/schemas/ProvenanceHeaders"}
        canonical["summary"] += "; validated and deduplicated"
        messages[_canonical_id(cls)] = canonical
    messages["Rejected"] = {
        "name": "rejected",
        "title": "Rejected input",
        "summary": "a record the ingest refused, unchanged, with the reason in headers",
        "headers": {"type": "object", "description": "why and where the record was rejected",
                    "properties": {"x-alliance-reject-reason": {"type": "string", "enum": list(REASON_CODES)},
                                   "x-alliance-reject-detail": {"type": "string"}},
                    "patternProperties": {"^x-alliance-": {"type": "string"}}},
        "payload": {"$ref": "#/components/schemas/RejectedRecord"},
    }
    messages["Internal"] = {
        "name": "internal",
        "title": "Internal record",
        "summary": "a record internal to the backbone's stream processors (not a public contract)",
        "payload": {"type": "object"},
    }
    for name, models in aggregates.RECORDS.items():
        refs = [key_map[(m, "validation")] for m in models]
        messages[_aggregate_message_id(name)] = {
            "name": f"aggregate-{name}",
            "title": f"Aggregate {name}",
            "summary": f"latest value of one {name} key (compacted topic; no value = deleted): {AGGREGATES[name]}",
            "contentType": CONTENT_TYPE,
            "payload": refs[0] if len(refs) == 1 else {"oneOf": refs},
            "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": KAFKA_BINDING_VERSION}},
        }

    specs = {s.name: s for s in registry()}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    def add_channel(spec: TopicSpec, message_ids: list[str], description: str) -> str:
        cid = _channel_id(spec)
        channels[cid] = {
            "address": spec.name,
            "title": spec.name,
            "description": description,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in message_ids},
            "bindings": _channel_binding(spec),
        }
        return cid

    def add_operation(op_id: str, action: str, cid: str, summary: str) -> None:
        operations[op_id] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": summary,
            "messages": [{"$ref": f"#/channels/{cid}/messages/{m}"} for m in channels[cid]["messages"]],
        }

    every_event = [_message_id(cls) for cls in ALL_EVENTS]
    for code, uni in UNIVERSITIES.items():
        cid = add_channel(specs[ingest_topic(code)], every_event,
                          f"Raw events published by {uni.name} ({code}); source must be {code!r}.")
        add_operation(f"publish-{code}", "send", cid,
                      f"{uni.name} publishes its events (python -m events.tools publish --university {code})")
        operations[f"publish-{code}"]["bindings"] = {"kafka": {
            "clientId": {"type": "string", "const": f"alliance-publisher-{code}"},
            "bindingVersion": KAFKA_BINDING_VERSION}}
    for family in Family:
        members = [_canonical_id(cls) for cls in ALL_EVENTS if cls.family in (family.value, "corrections")]
        cid = add_channel(specs[family_topic(family)], members,
                          f"Validated, deduplicated {family.value} events from every university.")
        add_operation(f"consume-{family.value}", "receive", cid,
                      f"The read model and portals consume canonical {family.value} events.")
    add_channel(specs[DLQ_TOPIC], ["Rejected"], "Input the ingest rejected, with the reason in headers.")
    for name, desc in AGGREGATES.items():
        cid = add_channel(specs[agg_topic(name)], [_aggregate_message_id(name)], f"Aggregate: {desc}.")
        add_operation(f"consume-agg-{name}", "receive", cid, f"Portals read the {name} aggregate.")
    for spec in registry():  # anything else in the registry (internal topics)
        if _channel_id(spec) not in channels:
            add_channel(spec, ["Internal"], spec.description or "internal topic")

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:alliance:event-backbone",
        "info": {
            "title": "Chengdu-Chongqing university employment alliance: event backbone",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": (
                "Member universities publish employment events to their own ingest topic; the backbone "
                "validates and deduplicates them into canonical per-family topics and aggregates them. "
                "Generated by `python -m events.tools schemas` from the pydantic models in events/; do not edit."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka", "protocolVersion": "4.0",
                      "description": "the local single-node broker (python -m infra up); elsewhere "
                                     "ALLIANCE_KAFKA_BOOTSTRAP_SERVERS names the cluster"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


# -- files ------------------------------------------------------------------------------------------

def render() -> dict[str, str]:
    """File name -> exact file content of every generated file."""
    files = {name: json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
             for name, schema in json_schemas().items()}
    files[ASYNCAPI_FILE] = ("# Generated by `python -m events.tools schemas --out schemas/`; do not edit.\n"
                            + yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=True,
                                             width=110))
    return files


class BreakingChangeError(EventError):
    """A regenerated schema would refuse events its committed version accepts, without a version bump."""

    def __init__(self, changes: dict[str, list[str]]) -> None:
        self.changes = changes
        lines = [f"  {name}: {change}" for name, found in changes.items() for change in found]
        super().__init__("breaking change(s) without a new schema version (events.base.SCHEMA_VERSION; "
                         "docs/events.md, 'Schema evolution'):\n" + "\n".join(lines))


def breaking(out: Path) -> dict[str, list[str]]:
    """File name -> breaking changes of the regenerated event schemas against those committed in ``out``
    (only where the version stayed the same; events.compat)."""
    found: dict[str, list[str]] = {}
    for name, schema in json_schemas().items():
        path = out / name
        if not path.is_file() or name.startswith("aggregate."):
            continue
        committed = json.loads(path.read_text(encoding="utf-8"))
        if compat.version(schema) > compat.version(committed):
            continue  # a new version may break; the old one stays documented in git and in docs/events.md
        if changes := compat.breaking_changes(committed, schema):
            found[name] = changes
    return found


def write(out: Path, *, allow_breaking: bool = False) -> list[Path]:
    """Write every generated file into ``out``; returns the paths written. Refuses (BreakingChangeError,
    nothing written) to overwrite a committed event schema with a breaking change of the same version."""
    if not allow_breaking and (changes := breaking(out)):
        raise BreakingChangeError(changes)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(out: Path) -> list[str]:
    """Names of generated files that are missing from ``out`` or differ from the models."""
    problems = []
    for name, text in render().items():
        path = out / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            problems.append(name)
    return problems
