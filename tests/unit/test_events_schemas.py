"""The generated JSON Schemas and AsyncAPI document: up to date, valid, and faithful to the codec.

The AsyncAPI document is checked by the reference AsyncAPI parser (@asyncapi/parser, run with node; this
test installs it with npm into .local/npm-asyncapi) and against the official AsyncAPI 3.0.0 JSON Schema
shipped in @asyncapi/specs.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from core.settings import PROJECT_ROOT
from events import schemas
from events.codec import EVENT_TYPES, encode, from_dict
from events.errors import EventValidationError
from events.reference import UNIVERSITIES
from events.topics import registry
from tests.data.samples import SAMPLE_UNIVERSITIES, one_of_each_type, semester

SCHEMA_DIR = PROJECT_ROOT / "schemas"
NPM_DIR = PROJECT_ROOT / ".local" / "npm-asyncapi"
ASYNCAPI_PARSER = "@asyncapi/parser@3.6.6"
VALIDATE_JS = """
import { Parser } from '@asyncapi/parser';
import fs from 'node:fs';
const { document, diagnostics } = await new Parser().parse(fs.readFileSync(process.argv[2], 'utf8'));
console.log(JSON.stringify({ parsed: document !== undefined,
  diagnostics: diagnostics.map(d => ({ code: d.code, severity: d.severity, message: d.message, path: d.path })) }));
"""


def validator_for(event_type: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / schemas.schema_file_name(event_type)).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_committed_files_are_up_to_date_with_the_models(tmp_path: Path) -> None:
    written = schemas.write(tmp_path)
    committed = {p.name for p in SCHEMA_DIR.iterdir() if p.is_file()}
    assert committed == {p.name for p in written}, "regenerate: python -m events.tools schemas --out schemas/"
    for path in written:
        assert (SCHEMA_DIR / path.name).read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"schemas/{path.name} is stale: python -m events.tools schemas --out schemas/")
    assert schemas.stale(SCHEMA_DIR) == []


def test_stale_detects_an_edited_file(tmp_path: Path) -> None:
    schemas.write(tmp_path)
    target = tmp_path / "recruitment.job_posted.json"
    target.write_text(target.read_text() + " ", encoding="utf-8")
    (tmp_path / "asyncapi.yaml").unlink()
    assert sorted(schemas.stale(tmp_path)) == ["asyncapi.yaml", "recruitment.job_posted.json"]


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_json_schema_is_valid_draft_2020_12(event_type: str) -> None:
    schema = json.loads((SCHEMA_DIR / schemas.schema_file_name(event_type)).read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["type"]["const"] == event_type
    assert "type" in schema["required"]


def test_real_encoded_events_validate_against_their_schema() -> None:
    checked = set()
    for university in SAMPLE_UNIVERSITIES:
        samples = one_of_each_type()
        for record in [*semester(university), samples["services.seeker_erasure_requested"],
                       samples["corrections.event_retracted"], samples["corrections.event_corrected"]]:
            event = from_dict(record)
            wire = json.loads(encode(event))
            validator_for(event.type).validate(wire)
            checked.add(event.type)
    assert checked == set(EVENT_TYPES)


def _mutated(event_type: str, path: str, value: Any) -> dict[str, Any]:
    record = json.loads(encode(from_dict(copy.deepcopy(one_of_each_type()[event_type]))))
    *parents, last = path.split(".")
    node = record
    for p in parents:
        node = node[p]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return record


BROKEN = [
    ("recruitment.job_posted", "data.salary_currency", "CNY"),
    ("recruitment.job_posted", "priority", "high"),
    ("recruitment.job_posted", "data.positions", "3"),
    ("recruitment.job_posted", "data.industry", "mining"),
    ("recruitment.job_posted", "data.city", "beijing"),
    ("recruitment.job_posted", "data.employer_type", "family_business"),
    ("recruitment.application_submitted", "data.degree", "phd"),
    ("recruitment.job_posted", "data.title", "x" * 201),
    ("recruitment.job_posted", "data.description", "请联系 13812345678"),
    ("recruitment.application_submitted", "data.seeker_id", "2021141460123"),
    ("recruitment.job_posted", "type", "recruitment.job_teleported"),
    ("recruitment.job_posted", "type", None),
    ("recruitment.job_posted", "source", "pku"),
    ("recruitment.job_posted", "data.title", None),
    ("recruitment.job_posted", "schema_version", 2),
    ("recruitment.job_posted", "event_id", "not-a-uuid"),
    ("recruitment.job_posted", "data.deadline", "2026-02-30"),
    ("jobfair.scheduled", "data.host_university", "pku"),
    ("mentoring.session_held", "data.seeker_ids", []),
]


@pytest.mark.parametrize(("event_type", "path", "value"), BROKEN, ids=[f"{p}={str(v)[:12]}" for _, p, v in BROKEN])
def test_broken_events_fail_their_schema_and_the_codec(event_type: str, path: str, value: Any) -> None:
    record = _mutated(event_type, path, value)
    errors = list(validator_for(event_type).iter_errors(record))
    assert errors, f"the schema accepted {path}={value!r}"
    with pytest.raises(EventValidationError):
        from_dict(record)


# -- AsyncAPI ---------------------------------------------------------------------------------------

def _asyncapi() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SCHEMA_DIR / schemas.ASYNCAPI_FILE).read_text(encoding="utf-8"))
    return doc


def test_asyncapi_describes_every_topic_message_and_header() -> None:
    doc = _asyncapi()
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {s.name for s in registry()}
    messages = doc["components"]["messages"]
    assert {m["name"] for m in messages.values()} >= set(EVENT_TYPES)
    for cid, channel in doc["channels"].items():
        assert channel["bindings"]["kafka"]["topic"] == channel["address"], cid
    sends = {op["channel"]["$ref"].rsplit("/", 1)[1] for op in doc["operations"].values() if op["action"] == "send"}
    assert sends == {f"ingest-{u}" for u in UNIVERSITIES}
    posted = messages["JobPosted"]
    assert posted["bindings"]["kafka"]["key"]["description"] == "the subject: data.posting_id"
    headers = doc["components"]["schemas"]["CloudEventHeaders"]
    assert {"ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "ce_schemaversion",
            "content-type"} <= set(headers["required"])


@pytest.fixture(scope="module")
def asyncapi_node() -> Path:
    """The directory holding @asyncapi/parser (installed with npm on first use)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: the reference AsyncAPI parser cannot run")
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    with _locked(NPM_DIR / ".lock"):
        if not (NPM_DIR / "node_modules" / "@asyncapi" / "parser" / "package.json").is_file():
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(NPM_DIR),
                            ASYNCAPI_PARSER], check=True, timeout=600)
        (NPM_DIR / "validate.mjs").write_text(VALIDATE_JS, encoding="utf-8")
    return NPM_DIR


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _parse_with_reference_parser(node_dir: Path, document: Path) -> dict[str, Any]:
    done = subprocess.run(["node", str(node_dir / "validate.mjs"), str(document)], capture_output=True,
                          text=True, timeout=120, check=True, cwd=node_dir)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_asyncapi_passes_the_reference_parser(asyncapi_node: Path) -> None:
    result = _parse_with_reference_parser(asyncapi_node, SCHEMA_DIR / schemas.ASYNCAPI_FILE)
    errors = [d for d in result["diagnostics"] if d["severity"] in (0, 1)]  # 0 error, 1 warning
    assert result["parsed"] and errors == []


def test_the_reference_parser_rejects_a_broken_document(asyncapi_node: Path, tmp_path: Path) -> None:
    doc = _asyncapi()
    doc["operations"]["publish-scu"]["channel"] = {"$ref": "#/channels/no-such-channel"}
    doc["channels"]["ingest-scu"]["bindings"]["kafka"]["partitions"] = "three"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = _parse_with_reference_parser(asyncapi_node, broken)
    assert not result["parsed"]
    assert any(d["severity"] == 0 for d in result["diagnostics"])


def test_asyncapi_matches_the_official_3_0_0_json_schema(asyncapi_node: Path) -> None:
    official = json.loads((asyncapi_node / "node_modules" / "@asyncapi" / "specs" / "schemas" /
                           "3.0.0-without-$id.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(official)
    doc = _asyncapi()
    assert list(validator.iter_errors(doc)) == []
    doc["operations"]["publish-scu"]["action"] = "publish"  # an AsyncAPI 2 word
    assert list(validator.iter_errors(doc))
