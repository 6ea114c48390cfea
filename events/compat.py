"""Schema evolution rules: which changes of an event's JSON Schema break a university's publisher.

A university's system follows the committed schema of each event type (schemas/<type>.json). A change
breaks it when an event it sends today would be refused tomorrow:

- a field removed or renamed (the contract refuses unknown fields);
- a field added as required, or an optional field made required, or a field no longer nullable;
- a type changed; a constant changed; enum values removed;
- a range narrowed: ``maximum``/``maxLength``/``maxItems`` lowered or added, ``minimum``/``minLength``/
  ``minItems`` raised or added; a ``pattern`` added or changed (unless the new one only adds alternatives:
  ``^old$`` -> ``^(old|new)$``).

Compatible (no version bump): an optional field added, enum values added, ranges widened, descriptions
and titles changed. The free-text personal-data rules (``not``) may tighten at any time: they only refuse
what must never have been sent (docs/security.md).

A breaking change needs a new schema version (``events.base.SCHEMA_VERSION``, in ``$id`` as ``:v<N>``):
``python -m events.tools schemas`` refuses to overwrite a committed schema with a breaking change of the
same version (docs/events.md, "Schema evolution").
"""

from __future__ import annotations

import re
from typing import Any

Schema = dict[str, Any]
_VERSION = re.compile(r":v(\d+)$")



def _top_level_alternatives(body: str) -> list[str]:
    """The alternatives of ``(a|b|...)`` split at its top level (escapes, classes and groups respected)."""
    if not (body.startswith("(") and body.endswith(")")):
        return [body]
    inner, parts, depth, in_class, start, i = body[1:-1], [], 0, False, 0, 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:  # the outer parentheses do not enclose the whole body: "(a)|(b)"
                return [body]
        elif ch == "|" and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
        i += 1
    return [*parts, inner[start:]]


def pattern_widened(old: str | None, new: str) -> bool:
    """True if ``new`` accepts everything ``old`` accepts because it only adds alternatives: ``^old$`` ->
    ``^(old|other)$`` (anchored both). A conservative check: any other change counts as breaking."""
    if old is None or not (old.startswith("^") and old.endswith("$") and new.startswith("^") and new.endswith("$")):
        return False
    return old[1:-1] in _top_level_alternatives(new[1:-1])

def version(schema: Schema) -> int:
    match = _VERSION.search(str(schema.get("$id", "")))
    return int(match.group(1)) if match else 1


def _resolve(node: Any, root: Schema) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return node
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _variants(node: Any, root: Schema) -> tuple[list[Any], bool]:
    """The non-null alternatives of a node and whether null is allowed."""
    node = _resolve(node, root)
    if isinstance(node, dict) and "anyOf" in node:
        options = [_resolve(o, root) for o in node["anyOf"]]
        return [o for o in options if o.get("type") != "null"], any(o.get("type") == "null" for o in options)
    return [node], isinstance(node, dict) and node.get("type") == "null"


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """What in ``new`` refuses events that ``old`` accepted (empty: compatible)."""
    problems: list[str] = []
    _compare("", old, new, old, new, problems)
    return problems


def _compare(path: str, o: Any, n: Any, old_root: Schema, new_root: Schema, out: list[str]) -> None:
    o_vars, o_null = _variants(o, old_root)
    n_vars, n_null = _variants(n, new_root)
    where = path or "(event)"
    if o_null and not n_null:
        out.append(f"{where}: no longer nullable")
    if len(o_vars) != 1 or len(n_vars) != 1:
        if [v.get("type") for v in o_vars] != [v.get("type") for v in n_vars]:
            out.append(f"{where}: alternatives changed")
        return
    a, b = o_vars[0], n_vars[0]
    if not isinstance(a, dict) or not isinstance(b, dict):
        return
    if a.get("type") != b.get("type"):
        out.append(f"{where}: type {a.get('type')} -> {b.get('type')}")
        return
    if "const" in a or "const" in b:
        if a.get("const") != b.get("const"):
            out.append(f"{where}: constant {a.get('const')!r} -> {b.get('const')!r}")
    if "enum" in b and "const" not in a:
        if "enum" not in a:
            out.append(f"{where}: now limited to {b['enum']}")
        elif removed := [v for v in a["enum"] if v not in b["enum"]]:
            out.append(f"{where}: values no longer accepted: {removed}")
    for key in ("maximum", "maxLength", "maxItems", "exclusiveMaximum"):
        if key in b and (key not in a or b[key] < a[key]):
            out.append(f"{where}: {key} {a.get(key, 'none')} -> {b[key]}")
    for key in ("minimum", "minLength", "minItems", "exclusiveMinimum"):
        if key in b and (key not in a or b[key] > a[key]):
            out.append(f"{where}: {key} {a.get(key, 'none')} -> {b[key]}")
    if "pattern" in b and b["pattern"] != a.get("pattern") and not pattern_widened(a.get("pattern"), b["pattern"]):
        out.append(f"{where}: pattern {a.get('pattern', 'none')!r} -> {b['pattern']!r}")
    if a.get("type") == "object":
        a_props, b_props = a.get("properties", {}), b.get("properties", {})
        for name in a_props:
            if name not in b_props and b.get("additionalProperties") is False:
                out.append(f"{path + '.' if path else ''}{name}: removed")
        newly_required = set(b.get("required", [])) - set(a.get("required", []))
        for name in sorted(newly_required):
            out.append(f"{path + '.' if path else ''}{name}: now required")
        for name in a_props.keys() & b_props.keys():
            _compare(f"{path + '.' if path else ''}{name}", a_props[name], b_props[name], old_root, new_root, out)
    if a.get("type") == "array" and "items" in a and "items" in b:
        _compare(f"{where}[]", a["items"], b["items"], old_root, new_root, out)
