"""Bulk import (JSONL/CSV parsing, per-line problems, progress) and the CLI without a broker."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from events.codec import from_dict
from events.errors import EventValidationError
from events.privacy import DEVELOPMENT_KEY, pseudonymise
from events.tools import bulk
from events.tools.bulk import LineProblem, Progress, iter_csv, iter_jsonl, render_bar, run_import
from events.tools.cli import main
from events.tools.publisher import check_event
from events.wire import cloudevent_headers
from tests.data.samples import DATA_DIR, semester

MIXED_JSONL = DATA_DIR / "mixed-scu.jsonl"
MIXED_CSV = DATA_DIR / "mixed-cqu.csv"


def expected(name: str) -> dict[int, set[str]]:
    raw = json.loads((DATA_DIR / name).read_text(encoding="utf-8"))
    return {int(k): set(v) for k, v in raw.items()}


def fields_by_line(problems: list[LineProblem]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for p in problems:
        out.setdefault(p.line, set()).add(p.field)
    return out


def test_committed_sample_files_match_the_generator(tmp_path: Path) -> None:
    from tests.data.samples import write_files

    for path in write_files(tmp_path):
        assert (DATA_DIR / path.name).read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"tests/data/{path.name} is stale: python -m tests.data.samples")


def test_mixed_jsonl_reports_exactly_the_bad_lines_and_keeps_every_good_one() -> None:
    sent = []
    with MIXED_JSONL.open(encoding="utf-8") as f:
        report = run_import(iter_jsonl(f, "scu"), "scu", sent.append)
    assert fields_by_line(report.problems) == expected("mixed-scu.expected.json")
    good_lines = [n for n, text in enumerate(MIXED_JSONL.read_text(encoding="utf-8").splitlines(), 1)
                  if text.strip() and n not in expected("mixed-scu.expected.json")]
    assert report.ok == len(sent) == len(good_lines)
    assert report.bad == len(expected("mixed-scu.expected.json"))
    lines = MIXED_JSONL.read_text(encoding="utf-8").splitlines()
    assert [str(e.event_id) for e in sent] == [json.loads(lines[n - 1])["event_id"] for n in good_lines]


def test_mixed_csv_reports_exactly_the_bad_lines() -> None:
    sent = []
    with MIXED_CSV.open(encoding="utf-8", newline="") as f:
        report = run_import(iter_csv(f, "cqu"), "cqu", sent.append)
    assert fields_by_line(report.problems) == expected("mixed-cqu.expected.json")
    assert report.ok == len(sent) == 5
    assert {e.type for e in sent} == {"recruitment.job_posted", "mentoring.session_held"}
    session = next(e for e in sent if e.type == "mentoring.session_held")
    assert len(session.data.seeker_ids) == 3  # type: ignore[attr-defined]  # ';'-separated list
    posting = next(e for e in sent if e.type == "recruitment.job_posted")
    assert posting.data.positions == 5 and posting.source == "cqu"  # type: ignore[attr-defined]


def test_csv_and_jsonl_of_the_same_events_give_the_same_events() -> None:
    events = [e for e in semester("uestc") if e["type"] in ("recruitment.job_posted", "mentoring.session_held")]
    jsonl = [json.dumps(e, ensure_ascii=False) for e in events]
    columns = ["type", "occurred_at", "event_id", "schema_version"]
    data_cols = sorted({k for e in events for k in e["data"]})
    out = io.StringIO()
    import csv

    w = csv.writer(out)
    w.writerow(columns + [f"data.{c}" for c in data_cols])
    for e in events:
        def cell(v: object) -> str:
            return "" if v is None else ";".join(v) if isinstance(v, list) else str(v)
        w.writerow([cell(e[c]) for c in columns] + [cell(e["data"].get(c)) for c in data_cols])
    from_csv = [p.event for p in iter_csv(io.StringIO(out.getvalue()), "uestc")]
    from_jsonl = [p.event for p in iter_jsonl(jsonl, "uestc")]
    assert None not in from_csv and from_csv == from_jsonl


def test_every_problem_of_a_line_is_reported() -> None:
    record = semester("scu")[0]
    record["data"].update(industry="mining", city="beijing", positions="3")
    record["source"] = "cqu"
    [parsed] = iter_jsonl([json.dumps(record)], "scu")
    assert not parsed.ok
    assert {p.field for p in parsed.problems} == {"data.industry", "data.city", "data.positions", "source"}


def test_source_defaults_to_the_university_and_missing_ids_are_stable() -> None:
    record = semester("swu")[0]
    del record["source"], record["event_id"]
    [a] = iter_jsonl([json.dumps(record)], "swu")
    [b] = iter_jsonl([json.dumps(record)], "swu")
    [c] = iter_jsonl([json.dumps(record)], "cqu")  # another university, another id
    assert a.ok and a.event is not None and b.event is not None and c.event is not None
    assert a.event.source == "swu" and a.event.event_id == b.event.event_id != c.event.event_id


def test_duplicate_event_ids_in_one_file_are_reported() -> None:
    line = json.dumps(semester("scu")[0])
    report = run_import(iter_jsonl([line, "", line], "scu"), "scu")
    assert report.ok == 1 and [(p.line, p.field) for p in report.problems] == [(3, "event_id")]


def test_csv_header_errors_are_file_errors() -> None:
    with pytest.raises(bulk.BulkError, match="repeats"):
        list(iter_csv(io.StringIO("type,type\nx,y\n"), "scu"))
    with pytest.raises(bulk.BulkError, match="empty column"):
        list(iter_csv(io.StringIO("type,,occurred_at\n"), "scu"))
    assert list(iter_csv(io.StringIO(""), "scu")) == []


def test_csv_unknown_columns_are_reported_when_filled() -> None:
    text = "type,occurred_at,data.fair_id,data.colour,mood\njobfair.closed,2025-05-01T18:00:00+08:00,f-1,,\n" \
           "jobfair.closed,2025-05-01T18:00:00+08:00,f-2,red,happy\n"
    parsed = list(iter_csv(io.StringIO(text), "scu"))
    assert parsed[0].ok
    assert [p.line for p in parsed] == [2, 3]
    assert {p.field for p in parsed[1].problems} == {"data.colour", "mood"}


def test_format_detection() -> None:
    assert bulk.detect_format("a/b.JSONL") == "jsonl" and bulk.detect_format("x.ndjson") == "jsonl"
    assert bulk.detect_format("x.csv") == "csv" and bulk.detect_format("x.txt", "csv") == "csv"
    with pytest.raises(bulk.BulkError):
        bulk.detect_format("x.txt")


def test_count_lines(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"a\nb\nc")
    assert bulk.count_lines(p) == 3
    p.write_bytes(b"a\nb\n")
    assert bulk.count_lines(p) == 2


def test_progress_bar_rendering() -> None:
    assert render_bar(5000, 10000, 4997, 3, width=10) == "[=====     ] 5000/10000 lines  4997 ok  3 bad"
    assert render_bar(10, None, 9, 1) == "10 lines  9 ok  1 bad"


def test_progress_redraws_on_a_tty_and_prints_lines_otherwise() -> None:
    now = [0.0]
    tty = io.StringIO()
    p = Progress(100, tty, tty=True, interval=1.0, clock=lambda: now[0])
    p.update(10, 10, 0)  # too soon: nothing
    now[0] = 2.0
    p.update(50, 49, 1)
    p.finish(100, 98, 2)
    assert tty.getvalue().startswith("\r[") and tty.getvalue().count("\r") == 2 and tty.getvalue().endswith("\n")
    plain = io.StringIO()
    p = Progress(100, plain, tty=False, interval=1.0, clock=lambda: now[0])
    now[0] = 5.0
    p.update(50, 50, 0)
    p.finish(100, 100, 0)
    assert plain.getvalue().splitlines() == ["progress: [===============               ] 50/100 lines  50 ok  0 bad",
                                             "progress: [==============================] 100/100 lines  100 ok  0 bad"]


def test_error_report_csv_round_trips() -> None:
    problems = [LineProblem(3, "data.title", 'has "quotes", commas'), LineProblem(9, "event", "x\ny")]
    out = io.StringIO()
    bulk.write_problems_csv(problems, out)
    assert bulk.read_problems_csv(out.getvalue()) == problems


# -- publisher pieces that need no broker -------------------------------------------------------------

def test_cloudevent_headers() -> None:
    event = from_dict(semester("scu")[0])
    headers = dict(cloudevent_headers(event))
    assert headers == {
        "ce_specversion": b"1.0", "ce_id": str(event.event_id).encode(), "ce_type": event.type.encode(),
        "ce_source": b"scu", "ce_time": json.loads(event.to_json())["occurred_at"].encode(),
        "ce_subject": event.key, "ce_schemaversion": b"1", "content-type": b"application/json",
    }


def test_check_event_refuses_foreign_events_and_validates_mappings() -> None:
    record = semester("cqu")[0]
    with pytest.raises(EventValidationError) as info:
        check_event(from_dict(record), "scu")
    assert [p.field for p in info.value.problems] == ["source"]
    assert check_event(record, "cqu") == from_dict(record)
    with pytest.raises(EventValidationError) as info:
        check_event({**record, "data": {**record["data"], "city": "paris"}}, "cqu")
    assert [p.field for p in info.value.problems] == ["data.city"]


# -- CLI without a broker ---------------------------------------------------------------------------

def test_cli_dry_run_exit_codes_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["publish", "--dry-run", "-u", "scu", str(DATA_DIR / "events-scu.jsonl")]) == 0
    assert "90 valid event(s)" in capsys.readouterr().out
    report = tmp_path / "report.csv"
    assert main(["publish", "--dry-run", "-u", "scu", str(MIXED_JSONL), "--errors-out", str(report)]) == 1
    captured = capsys.readouterr()
    assert "19 bad line(s)" in captured.out and "line 3: event: malformed JSON" in captured.err
    written = bulk.read_problems_csv(report.read_text(encoding="utf-8"))
    assert fields_by_line(written) == expected("mixed-scu.expected.json")
    assert main(["publish", "--dry-run", "-u", "cqu", str(MIXED_CSV), "--no-progress"]) == 1
    assert "progress" not in capsys.readouterr().err


def test_cli_usage_and_io_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["publish", "--dry-run", "-u", "scu", str(tmp_path / "missing.jsonl")]) == 2
    (tmp_path / "x.txt").write_text("{}\n")
    assert main(["publish", "--dry-run", "-u", "scu", str(tmp_path / "x.txt")]) == 2
    (tmp_path / "dup.csv").write_text("type,type\n")
    assert main(["publish", "--dry-run", "-u", "scu", str(tmp_path / "dup.csv")]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["publish", "-u", "pku", "x.jsonl"])
    assert exit_info.value.code == 2
    assert "unknown university" in capsys.readouterr().err


def test_cli_pseudonymise_uses_the_configured_key(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    key = "the-alliance-shared-test-key"
    monkeypatch.setenv("ALLIANCE_PSEUDONYM_KEY", key)
    monkeypatch.setenv("ALLIANCE_PSEUDONYM_KEY_ID", "k1")
    assert main(["pseudonymise", "--university", "scu", "2021141460123", "2021141460124"]) == 0
    out = capsys.readouterr()
    assert out.out.split() == [pseudonymise("scu", "2021141460123", key, "k1"),
                               pseudonymise("scu", "2021141460124", key, "k1")]
    assert "warning" not in out.err
    monkeypatch.delenv("ALLIANCE_PSEUDONYM_KEY")
    monkeypatch.delenv("ALLIANCE_PSEUDONYM_KEY_ID")
    monkeypatch.delenv("ALLIANCE_ENVIRONMENT", raising=False)
    # no key outside an explicit development mode: an error, never a silent built-in key
    assert main(["pseudonymise", "-u", "cqu", "1"]) == 2
    err = capsys.readouterr().err
    assert "ALLIANCE_PSEUDONYM_KEY is not set" in err and "ALLIANCE_ENVIRONMENT=development" in err
    monkeypatch.setenv("ALLIANCE_PSEUDONYM_KEY", DEVELOPMENT_KEY)  # the built-in key, named, in production
    assert main(["pseudonymise", "-u", "cqu", "1"]) == 2
    assert "development key" in capsys.readouterr().err
    # the alliance's key without its id: refused (pseudonyms must say which key minted them, to rotate)
    monkeypatch.setenv("ALLIANCE_PSEUDONYM_KEY", key)
    assert main(["pseudonymise", "-u", "cqu", "1"]) == 2
    assert "ALLIANCE_PSEUDONYM_KEY_ID is not set" in capsys.readouterr().err
    monkeypatch.setenv("ALLIANCE_PSEUDONYM_KEY_ID", "k2026")
    assert main(["pseudonymise", "-u", "cqu", "1"]) == 0
    assert capsys.readouterr().out.split() == [pseudonymise("cqu", "1", key, "k2026")]
    monkeypatch.setenv("ALLIANCE_PSEUDONYM_KEY_ID", "K 2026")  # not an id: a settings error, exit 2
    assert main(["pseudonymise", "-u", "cqu", "1"]) == 2
    assert "ALLIANCE_PSEUDONYM_KEY_ID" in capsys.readouterr().err
    monkeypatch.delenv("ALLIANCE_PSEUDONYM_KEY_ID")
    monkeypatch.delenv("ALLIANCE_PSEUDONYM_KEY")
    monkeypatch.setenv("ALLIANCE_ENVIRONMENT", "development")
    assert main(["pseudonymise", "-u", "cqu", "1"]) == 0
    out = capsys.readouterr()
    assert out.out.split() == [pseudonymise("cqu", "1", DEVELOPMENT_KEY)] and "warning" in out.err


def test_cli_schemas_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "--out", str(tmp_path)]) == 0
    assert main(["schemas", "--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "jobfair.closed.json").write_text("{}")
    assert main(["schemas", "--out", str(tmp_path), "--check"]) == 1
    assert "stale" in capsys.readouterr().err


def test_help_is_useful(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["publish", "--help"])
    text = capsys.readouterr().out
    for word in ("--dry-run", "--errors-out", "--bootstrap", "data.<field>", "-separated", "exit codes"):
        assert word in text
