"""Schema evolution: events.compat tells a breaking change of an event schema from a compatible one, and
``python -m events.tools schemas`` refuses to commit a breaking change without a new schema version."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from events import compat, schemas
from events.tools.cli import main

NAME = "recruitment.job_posting_updated.json"


@pytest.fixture
def committed() -> dict[str, Any]:
    return schemas.json_schemas()[NAME]


def _data(schema: dict[str, Any]) -> dict[str, Any]:
    return schema["$defs"]["JobPostingUpdatedData"]  # type: ignore[no-any-return]


def _changed(schema: dict[str, Any], change: Any) -> list[str]:
    new = copy.deepcopy(schema)
    change(new)
    return compat.breaking_changes(schema, new)


def test_the_committed_schemas_are_compatible_with_the_models() -> None:
    for name, generated in schemas.json_schemas().items():
        on_disk = json.loads((Path("schemas") / name).read_text(encoding="utf-8"))
        assert compat.breaking_changes(on_disk, generated) == [], name
    assert schemas.breaking(Path("schemas")) == {}


@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: _data(s)["properties"].pop("deadline"), "deadline: removed"),
    (lambda s: _data(s)["required"].append("title"), "title: now required"),
    (lambda s: _data(s)["properties"].update(room={"type": "string"}) or _data(s)["required"].append("room"),
     "room: now required"),
    (lambda s: _data(s)["properties"]["title"]["anyOf"][0].update(maxLength=50), "maxLength 200 -> 50"),
    (lambda s: _data(s)["properties"]["positions"]["anyOf"][0].update(type="string"), "type integer -> string"),
    (lambda s: _data(s)["properties"]["title"].update(anyOf=_data(s)["properties"]["title"]["anyOf"][:1]),
     "no longer nullable"),
    (lambda s: s["properties"]["source"]["enum"].remove("swupl"), "values no longer accepted: ['swupl']"),
    (lambda s: _data(s)["properties"]["posting_id"].update(pattern="^[a-z]+$"), "pattern"),
    (lambda s: _data(s)["properties"]["posting_id"].update(minLength=5), "minLength none -> 5"),
    (lambda s: _data(s)["properties"]["posting_id"].update(  # an alternative that drops the old pattern
        pattern="^([a-z]+|[0-9]+)$"), "pattern"),
    (lambda s: _data(s)["properties"]["posting_id"].update(  # not one group: "(a)|(b)" is not "(a|b)"
        pattern="^(" + _data(s)["properties"]["posting_id"]["pattern"][1:-1] + ")|(x)$"), "pattern"),
], ids=["removed", "optional-made-required", "required-added", "narrower", "type", "not-nullable", "enum",
        "pattern", "min", "pattern-alternative-replaces", "pattern-two-groups"])
def test_breaking_changes_are_named(committed: dict[str, Any], change: Any, expected: str) -> None:
    found = _changed(committed, change)
    assert any(expected in f for f in found), found


@pytest.mark.parametrize("change", [
    lambda s: _data(s)["properties"].update(room={"anyOf": [{"type": "string"}, {"type": "null"}]}),
    lambda s: s["properties"]["source"]["enum"].append("newu"),
    lambda s: _data(s)["properties"]["positions"]["anyOf"][0].update(maximum=50_000),
    lambda s: _data(s)["properties"]["title"].update(description="another text"),
    lambda s: _data(s)["properties"]["title"]["anyOf"][0]["not"]["anyOf"].append({"pattern": "x"}),
    lambda s: _data(s)["properties"]["posting_id"].update(  # ^old$ -> ^(old|new)$: the keyed pseudonyms' way
        pattern="^(" + _data(s)["properties"]["posting_id"]["pattern"][1:-1] + "|x-[0-9]+)$"),
], ids=["optional-field-added", "enum-widened", "range-widened", "description", "personal-data-rule",
        "pattern-alternative-added"])
def test_compatible_changes_pass(committed: dict[str, Any], change: Any) -> None:
    assert _changed(committed, change) == []


def test_the_generator_refuses_to_commit_a_breaking_change_without_a_new_version(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schemas.write(tmp_path)
    # the committed schema knew a field the models no longer have: regenerating would remove it
    path = tmp_path / NAME
    old = json.loads(path.read_text(encoding="utf-8"))
    _data(old)["properties"]["room"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    path.write_text(json.dumps(old), encoding="utf-8")
    assert main(["schemas", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "room: removed" in err and "SCHEMA_VERSION" in err
    assert json.loads(path.read_text(encoding="utf-8")) == old  # nothing was written
    assert main(["schemas", "--out", str(tmp_path), "--check"]) == 1
    assert "(breaking: data.room: removed)" in capsys.readouterr().err
    # a schema committed under an older version may be replaced (the new version is its own contract)
    old["$id"] = old["$id"].replace(":v1", ":v0")
    path.write_text(json.dumps(old), encoding="utf-8")
    assert schemas.breaking(tmp_path) == {}
    assert main(["schemas", "--out", str(tmp_path), "--allow-breaking"]) == 0
