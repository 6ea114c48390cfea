"""Bulk import of a university's events from JSONL or CSV, line by line, with a per-line error report.

Every line is parsed and validated on its own: a bad line is reported with *every* problem found in it
(line number, field, reason) and never stops or drops its valid neighbours.

JSONL: one event object per line, exactly as on the wire (see docs/events.md). Blank lines are skipped.

Files are read as bytes and each line is decoded on its own: a line that is not UTF-8, not JSON, nested
absurdly deep, or holds a lone surrogate (``"\\ud800"``) or a control character is reported as a bad line.

CSV: a header row, then one event per row, each row on one line (a quoted cell may not span lines: a stray
quote is an error of its own line and never swallows the rows after it). Columns:
  type           the event type, e.g. ``recruitment.job_posted`` (required)
  occurred_at    ISO 8601 with a UTC offset, e.g. ``2025-03-01T09:30:00+08:00`` (required)
  event_id       UUID (optional, see below)
  source, subject, schema_version   optional envelope fields
  data.<field>   one column per payload field, e.g. ``data.posting_id``, ``data.salary_min``
An empty cell means "absent" (so a file may mix event types, each row filling its own columns).
Integers are written plainly (``15000``); lists (``data.seeker_ids``) are ``;``-separated.

In both formats ``source`` defaults to the university the file is published for and must equal it;
a missing ``event_id`` is derived from the line's content (UUID v5), so re-running the same file after
an interruption republishes the same ids, which the alliance deduplicates.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TextIO

from events.base import Event
from events.codec import EVENT_TYPES, from_dict
from events.errors import EventError, EventValidationError

FORMATS = ("jsonl", "csv")
LIST_SEPARATOR = ";"
_EVENT_ID_NAMESPACE = uuid.UUID("6f0e3c55-1c2a-4a51-9d0e-7a0c3f1b2e64")
_INT = re.compile(r"[+-]?\d+")
_ENVELOPE_KINDS = {"schema_version": "integer"}


class BulkError(EventError):
    """The file as a whole cannot be read (unknown format, unreadable, a broken CSV header)."""


@dataclass(frozen=True)
class LineProblem:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass(frozen=True)
class ParsedLine:
    """One input line: the valid event, or the problems that make it invalid."""

    line: int
    event: Event | None
    problems: tuple[LineProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return self.event is not None and not self.problems


@dataclass
class ImportReport:
    university: str
    lines: int = 0
    ok: int = 0
    bad: int = 0
    problems: list[LineProblem] = field(default_factory=list)

    @property
    def bad_lines(self) -> list[int]:
        return sorted({p.line for p in self.problems})


# -- one record -------------------------------------------------------------------------------------

def derived_event_id(university: str, record: dict[str, Any]) -> str:
    """A stable event id for a record that has none: UUID v5 of the university and the content."""
    content = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{university}\n{content}"))


def validate_record(record: Any, university: str, line: int,
                    extra: Iterable[LineProblem] = ()) -> ParsedLine:
    """Validate one parsed record for ``university``; collects every problem of the line."""
    problems = list(extra)
    if not isinstance(record, dict):
        problems.append(LineProblem(line, "event", f"a line must be one JSON object, got "
                                                   f"{type(record).__name__}"))
        return ParsedLine(line, None, tuple(problems))
    record = dict(record)
    record.setdefault("source", university)
    if "event_id" not in record:
        try:
            record["event_id"] = derived_event_id(university, record)
        except (UnicodeEncodeError, RecursionError, ValueError) as exc:  # a lone surrogate, absurd nesting
            problems.append(LineProblem(line, "event", f"malformed JSON text: {exc}"))
            return ParsedLine(line, None, tuple(problems))
    event: Event | None = None
    try:
        event = from_dict(record)
    except EventValidationError as exc:
        problems += [LineProblem(line, p.field, p.reason) for p in exc.problems]
    if record["source"] != university and not any(p.field == "source" for p in problems):
        problems.append(LineProblem(line, "source",
                                    f"{record['source']!r} in a file published for {university!r}"))
    return ParsedLine(line, None if problems else event, tuple(problems))


# -- lines -----------------------------------------------------------------------------------------

_BOM = "\ufeff"


def text_lines(lines: Iterable[bytes | str]) -> Iterator[tuple[int, str | None, LineProblem | None]]:
    """Number and decode physical lines: (line, text, None), or (line, None, problem) for a line that is not
    UTF-8. Reading a file as bytes means one bad byte is one bad line, never the end of the import."""
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, None, LineProblem(number, "line", f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at "
                                                                f"byte {exc.start + 1} ({exc.reason})")
                continue
        else:
            text = raw
        yield number, text.removeprefix(_BOM) if number == 1 else text, None


# -- JSONL ------------------------------------------------------------------------------------------

def iter_jsonl(lines: Iterable[bytes | str], university: str) -> Iterator[ParsedLine]:
    for number, text, problem in text_lines(lines):
        if problem is not None:
            yield ParsedLine(number, None, (problem,))
            continue
        assert text is not None
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield ParsedLine(number, None, (LineProblem(number, "event", f"malformed JSON: {exc}"),))
            continue
        except RecursionError:
            yield ParsedLine(number, None, (LineProblem(number, "event", "malformed JSON: nested too deeply"),))
            continue
        yield validate_record(record, university, number)


# -- CSV --------------------------------------------------------------------------------------------

@cache
def _field_kinds(event_type: str) -> dict[str, str]:
    """data field -> "integer" | "array" | "string" for one event type (from the payload's schema)."""
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        return {}
    payload = cls.model_fields["data"].annotation
    assert isinstance(payload, type)
    kinds = {}
    for name, prop in payload.model_json_schema()["properties"].items():
        options = prop.get("anyOf", [prop])
        types = {o.get("type") for o in options} - {"null", None}
        kinds[name] = "integer" if types == {"integer"} else "array" if types == {"array"} else "string"
    return kinds


def _cell(value: str, kind: str) -> Any:
    if kind == "integer" and _INT.fullmatch(value):
        return int(value)
    if kind == "array":
        return [item.strip() for item in value.split(LIST_SEPARATOR) if item.strip()]
    return value  # strings, and malformed numbers left for the validator to name


def csv_record(row: dict[str, str], event_type: str | None) -> dict[str, Any]:
    """One CSV row (column -> cell) as an event mapping; empty cells are absent."""
    kinds = _field_kinds(event_type) if event_type else {}
    record: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for column, raw in row.items():
        value = (raw or "").strip()
        if not value:
            continue
        if column.startswith("data."):
            name = column[len("data."):]
            data[name] = _cell(value, kinds.get(name, "string"))
        else:
            record[column] = _cell(value, _ENVELOPE_KINDS.get(column, "string"))
    if data or "data" not in record:
        record["data"] = data
    return record


def _csv_cells(text: str) -> list[str]:
    """The cells of one CSV line. A record must fit on its line: a quote left open (a stray ``"``) is an
    error of this line alone instead of silently swallowing the lines after it."""
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise ValueError(f"unreadable CSV ({exc}): a quoted cell is not closed on this line (a record must "
                         "fit on one line; write a quote inside a quoted cell as \"\")") from None
    return rows[0] if rows else []


def iter_csv(stream: Iterable[bytes | str], university: str) -> Iterator[ParsedLine]:
    lines = text_lines(stream)
    try:
        number, text, problem = next(lines)
    except StopIteration:
        return
    if problem is not None:
        raise BulkError(f"line 1: unreadable CSV header: {problem.reason}")
    assert text is not None
    try:
        header = [h.strip() for h in _csv_cells(text)]
    except ValueError as exc:
        raise BulkError(f"line 1: unreadable CSV header: {exc}") from None
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise BulkError(f"CSV header repeats column(s): {', '.join(duplicates)}")
    if "" in header:
        raise BulkError(f"CSV header has an empty column name (column {header.index('') + 1})")
    for number, text, problem in lines:
        if problem is not None:
            yield ParsedLine(number, None, (problem,))
            continue
        assert text is not None
        try:
            cells = _csv_cells(text)
        except ValueError as exc:
            yield ParsedLine(number, None, (LineProblem(number, "line", str(exc)),))
            continue
        if not any(c.strip() for c in cells):
            continue
        extra = []
        if len(cells) > len(header):
            extra.append(LineProblem(number, "line", f"{len(cells)} cells but the header has {len(header)}"))
        row = dict(zip(header, cells, strict=False))
        record = csv_record(row, (row.get("type") or "").strip() or None)
        yield validate_record(record, university, number, extra)


# -- files ------------------------------------------------------------------------------------------

def detect_format(path: str, explicit: str | None = None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise BulkError(f"unknown format {explicit!r}; use one of {', '.join(FORMATS)}")
        return explicit
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise BulkError(f"cannot tell the format of {path!r} from its name; pass --format jsonl|csv")


def count_lines(path: Path) -> int:
    """Physical lines of a file (a last line without newline counts)."""
    count, last = 0, b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def iter_file(stream: Iterable[bytes | str], fmt: str, university: str) -> Iterator[ParsedLine]:
    if fmt == "csv":
        return iter_csv(stream, university)
    return iter_jsonl(stream, university)


# -- progress ---------------------------------------------------------------------------------------

def render_bar(lines: int, total: int | None, ok: int, bad: int, width: int = 30) -> str:
    """``[=====     ] 5000/10000 lines  4997 ok  3 bad`` (no bar when the total is unknown)."""
    counts = f"{ok} ok  {bad} bad"
    if not total:
        return f"{lines} lines  {counts}"
    filled = min(width, width * lines // total)
    return f"[{'=' * filled}{' ' * (width - filled)}] {lines}/{total} lines  {counts}"


class Progress:
    """Progress on a stream: a redrawn bar on a terminal, a line every ``interval`` seconds otherwise."""

    def __init__(self, total: int | None, stream: TextIO | None = None, *, tty: bool | None = None,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval if interval is not None else (0.1 if self.tty else 5.0)
        self.clock = clock
        self._last = clock()

    def update(self, lines: int, ok: int, bad: int, *, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        bar = render_bar(lines, self.total, ok, bad)
        if self.tty:
            self.stream.write(f"\r{bar}")
        else:
            self.stream.write(f"progress: {bar}\n")
        self.stream.flush()

    def finish(self, lines: int, ok: int, bad: int) -> None:
        self.update(lines, ok, bad, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# -- the import -------------------------------------------------------------------------------------

def run_import(parsed: Iterable[ParsedLine], university: str,
               sink: Callable[[Event], Any] | None = None, progress: Progress | None = None,
               *, report: ImportReport | None = None) -> ImportReport:
    """Send every valid line to ``sink`` (None = dry run) and collect every problem.

    A line whose event the sink refuses with EventValidationError (e.g. too large once encoded) is
    reported like any other bad line. Other sink errors (broker down) propagate.
    """
    report = report if report is not None else ImportReport(university)  # filled in place: a caller whose
    seen: dict[uuid.UUID, int] = {}                                         # sink failed still sees how far it got
    for item in parsed:
        report.lines = item.line
        problems = list(item.problems)
        event = item.event
        if event is not None and not problems:
            first = seen.setdefault(event.event_id, item.line)
            if first != item.line:
                problems.append(LineProblem(item.line, "event_id", f"duplicate of line {first}"))
        if event is not None and not problems and sink is not None:
            try:
                sink(event)
            except EventValidationError as exc:
                problems += [LineProblem(item.line, p.field, p.reason) for p in exc.problems]
        if problems:
            report.bad += 1
            report.problems.extend(problems)
        else:
            report.ok += 1
        if progress is not None:
            progress.update(report.lines, report.ok, report.bad)
    if progress is not None:
        progress.finish(report.lines, report.ok, report.bad)
    return report


def format_problems(problems: list[LineProblem], limit: int | None = None) -> str:
    shown = problems if limit is None else problems[:limit]
    text = "\n".join(str(p) for p in shown)
    if limit is not None and len(problems) > limit:
        text += f"\n... and {len(problems) - limit} more problem(s) (write them all with --errors-out)"
    return text


def write_problems_csv(problems: list[LineProblem], target: Path | TextIO) -> None:
    """The error report as CSV: line, field, reason."""
    def _write(f: TextIO) -> None:
        w = csv.writer(f)
        w.writerow(["line", "field", "reason"])
        w.writerows([p.line, p.field, p.reason] for p in problems)

    if isinstance(target, Path):
        with target.open("w", encoding="utf-8", newline="") as f:
            _write(f)
    else:
        _write(target)


def read_problems_csv(text: str) -> list[LineProblem]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return [LineProblem(int(r["line"]), r["field"], r["reason"]) for r in rows]
