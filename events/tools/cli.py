"""``python -m events.tools <command>``: tools for member universities and maintainers of the contract.

Commands:
  publish        validate a JSONL or CSV file of one university's events and publish the valid ones
  pseudonymise   print the alliance pseudonym (ps.<university>.<key id>.<hex>) of student numbers
  erase          ask the alliance to erase students (PIPL): one services.seeker_erasure_requested each
  retract        take back events the university published by mistake (corrections.event_retracted)
  correct        replace events with corrected versions (corrections.event_corrected)
  dlq            the dead-letter topic: summary, export one university's rejects, redrive fixed ones
  schemas        write the JSON Schemas and the AsyncAPI document generated from the models

Exit codes of publish: 0 every line was valid (and published), 1 some lines were invalid (every valid
line was still published; see the report), 2 usage, file or broker error, 130 interrupted (Ctrl-C). A run
that stops early (2 or 130) says on stderr up to which line it had read and how many events it had sent.
Settings come from the environment (ALLIANCE_KAFKA_BOOTSTRAP_SERVERS, ALLIANCE_PSEUDONYM_KEY, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from core.errors import AllianceError
from core.kafka_access import OPS, KafkaAccess
from core.settings import Settings, load_settings
from events.base import Event
from events.errors import EventError
from events.reference import UNIVERSITIES
from events.tools.bulk import (
    FORMATS,
    BulkError,
    ImportReport,
    Progress,
    count_lines,
    detect_format,
    format_problems,
    iter_file,
    run_import,
    write_problems_csv,
)

EXIT_OK, EXIT_SOME_BAD, EXIT_ERROR = 0, 1, 2
PRINT_LIMIT = 100


def _university(value: str) -> str:
    code = value.strip().lower()
    if code not in UNIVERSITIES:
        raise argparse.ArgumentTypeError(f"unknown university {value!r}; members: {', '.join(sorted(UNIVERSITIES))}")
    return code


def _settings() -> Settings:
    return load_settings()  # SettingsError (an AllianceError) names a bad ALLIANCE_* value


# -- publish ----------------------------------------------------------------------------------------

def _cmd_publish(args: argparse.Namespace) -> int:
    university: str = args.university
    fmt = detect_format(args.file, args.format) if args.file != "-" else (args.format or "jsonl")
    total = None if args.file == "-" else count_lines(Path(args.file))
    progress = None if args.no_progress else Progress(total, sys.stderr)

    # bytes, decoded line by line (events.tools.bulk.text_lines): a bad byte is a bad line, not a crash mid-file
    stream: BinaryIO = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")
    with stream:
        parsed = iter_file(stream, fmt, university)
        if args.dry_run:
            report = run_import(parsed, university, None, progress)
            return _finish(report, "dry run, nothing published", args.errors_out)
        from events.tools.publisher import Publisher, PublisherError

        kafka = _settings().kafka(university).at(args.bootstrap)
        report = ImportReport(university)
        with Publisher(kafka, university, topic=args.topic) as publisher:
            try:
                report = run_import(parsed, university, publisher.publish, progress, report=report)
                publisher.flush()
            except (PublisherError, KeyboardInterrupt) as exc:
                stopped = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"error: {exc}"
                print(f"{stopped}\n{_stopped_early(report, publisher.sent)}", file=sys.stderr)
                return 130 if isinstance(exc, KeyboardInterrupt) else EXIT_ERROR
        return _finish(report, f"published to {publisher.topic}", args.errors_out)


def _stopped_early(report: ImportReport, sent: int) -> str:
    """What a publish run that stopped early had done: valid lines up to the last one read were handed to
    the producer, some may not have been acknowledged; nothing after that line was read."""
    return (f"stopped early at line {report.lines}: {sent} valid event(s) from lines 1-{report.lines} had been "
            f"sent (some may not have been acknowledged); lines after {report.lines} were not read. Re-running "
            "the same file is safe: event ids are stable and the alliance drops exact re-sends.")


def _finish(report: ImportReport, target: str, errors_out: Path | None) -> int:
    if report.problems:
        print(f"{report.bad} bad line(s):", file=sys.stderr)
        print(format_problems(report.problems, PRINT_LIMIT), file=sys.stderr)
    if errors_out is not None:
        write_problems_csv(report.problems, errors_out)
    print(f"{report.university}: {report.ok} valid event(s) {target}; {report.bad} bad line(s)"
          + (f" (report: {errors_out})" if errors_out is not None and report.bad else ""))
    return EXIT_SOME_BAD if report.bad else EXIT_OK


# -- pseudonymise -----------------------------------------------------------------------------------

def _cmd_pseudonymise(args: argparse.Namespace) -> int:
    from events.privacy import pseudonymise

    settings = _settings()
    key, key_id = settings.pseudonym_key_and_id()  # SettingsError without a key (or its id) outside development
    if settings.pseudonym_key is None:
        print("warning: ALLIANCE_PSEUDONYM_KEY is not set; using the development key (ALLIANCE_ENVIRONMENT="
              "development), whose pseudonyms are not the alliance's", file=sys.stderr)
    numbers: list[str] = []
    for arg in args.student_numbers:
        numbers += [line.strip() for line in sys.stdin if line.strip()] if arg == "-" else [arg]
    for number in numbers:
        print(pseudonymise(args.university, number, key, key_id))
    return EXIT_OK


# -- erase ------------------------------------------------------------------------------------------

def _cmd_erase(args: argparse.Namespace) -> int:
    """One erasure request per pseudonym; every pseudonym is checked before anything is sent."""
    import uuid
    from datetime import UTC, datetime

    from events.codec import from_dict
    from events.ownership import ownership_problem
    from events.privacy import minted_by

    university: str = args.university
    seekers: list[str] = []
    for arg in args.seekers:
        seekers += [line.strip() for line in sys.stdin if line.strip()] if arg == "-" else [arg.strip()]
    requests, bad = [], 0
    for n, seeker in enumerate(dict.fromkeys(seekers), start=1):
        try:
            request = from_dict({
                "event_id": str(uuid.uuid4()), "type": "services.seeker_erasure_requested", "source": university,
                "occurred_at": datetime.now(UTC).isoformat(), "schema_version": 1, "data": {"seeker_id": seeker}})
        except EventError:  # not a pseudonym (a raw student number?): say which one, never echo it
            bad += 1
            print(f"seeker {n}: not a pseudonym (ps.<university>.<key id>.<32 hex> or ps_<32 hex>)", file=sys.stderr)
            continue
        if ownership_problem(request) is not None:
            bad += 1
            print(f"seeker {n}: minted by {minted_by(seeker)[0]!r}, not {university!r}: only its university may "  # type: ignore[index]
                  "ask to erase a student", file=sys.stderr)
            continue
        requests.append(request)
    if bad:
        print(f"{bad} of {len(seekers)} seeker(s) refused; nothing was sent", file=sys.stderr)
        return EXIT_SOME_BAD
    status = _send(args, university, requests, "erasure request(s)", "an erasure applied twice changes nothing")
    if status == EXIT_OK and not args.dry_run:
        for request in requests:  # the university's record of what it asked: request id, pseudonym
            print(f"{request.event_id} {request.subject}")
    return status


def _send(args: argparse.Namespace, university: str, events: Sequence[Event], what: str, rerun: str) -> int:
    """Publish ``events`` (all checked already) to the university's ingest topic, or only say they are valid
    (``--dry-run``); each is keyed by its subject, like the events it is about."""
    if args.dry_run:
        print(f"{university}: {len(events)} {what} valid; dry run, nothing sent")
        return EXIT_OK
    from events.tools.publisher import Publisher, PublisherError

    kafka = _settings().kafka(university).at(args.bootstrap)
    with Publisher(kafka, university, topic=args.topic) as publisher:
        try:
            for event in events:
                publisher.publish(event)
            publisher.flush()
        except PublisherError as exc:
            print(f"error: {exc}; re-running the command is safe ({rerun})", file=sys.stderr)
            return EXIT_ERROR
    print(f"{university}: {len(events)} {what} published to {publisher.topic}", file=sys.stderr)
    return EXIT_OK


# -- retract / correct ------------------------------------------------------------------------------

def _read_events(path: str) -> list[tuple[int, dict[str, object] | None]]:
    """(line number, JSON object or None if the line is not one) of a JSONL file; - is standard input."""
    lines = sys.stdin.read().splitlines() if path == "-" else Path(path).read_text(encoding="utf-8").splitlines()
    out: list[tuple[int, dict[str, object] | None]] = []
    for n, line in enumerate(lines, start=1):
        if line.strip():
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            out.append((n, obj if isinstance(obj, dict) else None))
    return out


def _cmd_revise(args: argparse.Namespace) -> int:
    """Retract or correct the university's own events: one revision per line of FILE, all checked first."""
    import uuid
    from datetime import UTC, datetime

    from events.codec import from_dict
    from events.corrections import EventCorrected, EventRetracted
    from events.ownership import ownership_problem

    university: str = args.university
    retract = args.command == "retract"
    try:
        lines = _read_events(args.file)
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    revisions: list[EventRetracted | EventCorrected] = []
    bad = 0
    for n, obj in lines:
        try:
            if obj is None:
                raise EventError("not a JSON object")
            data: dict[str, object]
            if retract:  # the line names the original: its event_id, type and subject (or the whole event)
                data = {"event_id": obj.get("event_id"), "type": obj.get("type"), "subject": obj.get("subject"),
                        "reason": args.reason}
            else:  # the line is the corrected event (the original's event_id, type, subject, source)
                data = {"corrected": {"source": university, **obj}, "reason": args.reason}
            revision = from_dict({
                "event_id": str(uuid.uuid4()), "type": "corrections.event_retracted" if retract
                else "corrections.event_corrected", "source": university,
                "occurred_at": datetime.now(UTC).isoformat(), "schema_version": 1, "data": data})
            assert isinstance(revision, EventRetracted | EventCorrected)
            if (problem := ownership_problem(revision)) is not None:
                raise EventError(problem)
        except EventError as exc:
            bad += 1
            print(f"line {n}: {exc}", file=sys.stderr)
            continue
        revisions.append(revision)
    if bad or not revisions:
        print(f"{bad} of {len(lines)} line(s) refused; nothing was sent", file=sys.stderr)
        return EXIT_SOME_BAD
    what = "retraction(s)" if retract else "correction(s)"
    status = _send(args, university, revisions, what, "a revision applied twice is refused the second time, "
                                                       "as not_revisable, and changes nothing")
    if status == EXIT_OK and not args.dry_run:
        for revision in revisions:  # the university's record: revision id, original id
            print(f"{revision.event_id} {revision.original_id}")
    return status


# -- dlq --------------------------------------------------------------------------------------------

def _dlq_topics(args: argparse.Namespace, role: str = OPS) -> tuple[KafkaAccess, str, Settings]:
    """Where the DLQ is and whom to act as: ``ops`` reads the DLQ; a redrive acts as the university."""
    from events.topics import DLQ_TOPIC

    settings = _settings()
    return settings.kafka(role).at(args.bootstrap), args.dlq_topic or settings.topic(DLQ_TOPIC), settings


def _cmd_dlq_watch(args: argparse.Namespace) -> int:
    from events.tools.dlq_watch import serve

    kafka, topic, _ = _dlq_topics(args)
    print(f"watching {topic} as {kafka.principal}; metrics on :{args.metrics_port}/metrics", file=sys.stderr)
    try:
        serve(kafka, topic, args.metrics_port, args.interval)
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def _cmd_dlq_summary(args: argparse.Namespace) -> int:
    from events.tools import dlq
    from events.tools.dlq_kafka import read_dlq

    kafka, topic, _ = _dlq_topics(args)

    def progress(done: int, total: int) -> None:
        print(f"\rread {done} of {total} DLQ record(s)", end="", file=sys.stderr, flush=True)

    rows = dlq.summary(read_dlq(kafka, topic, args.university, progress=None if args.no_progress else progress))
    if not args.no_progress:
        print(file=sys.stderr)
    print(json.dumps(rows, indent=2) if args.json else dlq.format_table(rows))
    return EXIT_OK


def _cmd_dlq_export(args: argparse.Namespace) -> int:
    from events.tools import dlq
    from events.tools.dlq_kafka import read_dlq

    kafka, topic, _ = _dlq_topics(args)
    rejects = read_dlq(kafka, topic, args.university)
    lines = [line for r in rejects if (line := dlq.export_line(r)) is not None]
    with open(args.out, "w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    withheld = len(rejects) - len(lines)
    print(f"{args.university}: {len(lines)} reject(s) written to {args.out}"
          + (f"; {withheld} refused as personal data kept no value in the DLQ: fix those at the source and "
             "publish them again" if withheld else ""))
    return EXIT_OK


def _cmd_dlq_redrive(args: argparse.Namespace) -> int:
    from events.tools import dlq
    from events.tools.bulk import text_lines
    from events.tools.dlq_kafka import redrive, redriven
    from events.topics import ingest_topic

    kafka, _, settings = _dlq_topics(args, role=args.university)  # a university redrives its own rejects
    topic = args.topic or settings.topic(ingest_topic(args.university))
    with open(args.file, "rb") as f:
        decoded = list(text_lines(f))
    plan = dlq.plan_redrive([(n, text) for n, text, _ in decoded if text is not None], redriven(kafka, topic))
    plan.bad += [(problem.line, problem.reason) for _, text, problem in decoded if problem is not None]
    sent, invalid = (0, []) if args.dry_run else redrive(kafka, args.university, topic, plan)
    for number, why in [*plan.bad, *invalid]:
        print(f"line {number}: {why}", file=sys.stderr)
    print(f"{args.university}: {sent} redriven{' (dry run)' if args.dry_run else ''}, {len(plan.already)} "
          f"already redriven before (skipped), {len(plan.bad) + len(invalid)} line(s) still invalid"
          + (f"; {len(plan.send)} would be sent" if args.dry_run else ""))
    return EXIT_SOME_BAD if plan.bad or invalid else EXIT_OK


# -- schemas ----------------------------------------------------------------------------------------

def _cmd_schemas(args: argparse.Namespace) -> int:
    from events import schemas

    out: Path = args.out
    if args.check:
        stale = schemas.stale(out)
        breaking = schemas.breaking(out)
        for name in stale:
            print(f"stale: {out / name}" + (" (breaking: " + "; ".join(breaking[name]) + ")"
                                             if name in breaking else ""), file=sys.stderr)
        if stale:
            print("regenerate with: python -m events.tools schemas --out " + str(out)
                  + (" (breaking changes need a new schema version first)" if breaking else ""), file=sys.stderr)
            return EXIT_SOME_BAD
        print(f"{out}: up to date")
        return EXIT_OK
    try:
        written = schemas.write(out, allow_breaking=args.allow_breaking)
    except schemas.BreakingChangeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SOME_BAD
    print(f"wrote {len(written)} file(s) to {out}")
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m events.tools", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    from events.tools import bulk

    pub = sub.add_parser(
        "publish", help="validate a JSONL/CSV file and publish its valid events",
        description="Validate every line of FILE and publish the valid events to the university's "
                    "ingest topic (alliance.ingest.<university>). Invalid lines are reported with "
                    "line number, field and reason; they never stop the valid ones.\n\n"
                    "exit codes: 0 every line valid and published, 1 some lines invalid (the valid ones "
                    "were published), 2 usage, file or broker error, 130 interrupted. A run that stops "
                    "early (2, 130) prints up to which line it read and how many events it had sent; "
                    "re-running the same file is safe.\n\n" + (bulk.__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    pub.add_argument("--university", "-u", required=True, type=_university,
                     help=f"code of the publishing university ({', '.join(sorted(UNIVERSITIES))})")
    pub.add_argument("file", metavar="FILE", help="a .jsonl/.ndjson or .csv file; - reads standard input")
    pub.add_argument("--format", choices=FORMATS, help="file format (default: from the file name)")
    pub.add_argument("--dry-run", action="store_true", help="validate only; connect to no broker")
    pub.add_argument("--bootstrap", metavar="HOST:PORT",
                     help="Kafka bootstrap servers (default: ALLIANCE_KAFKA_BOOTSTRAP_SERVERS, else the "
                          "local broker 127.0.0.1:9092)")
    pub.add_argument("--topic", help="publish to this topic instead of alliance.ingest.<university> (staging)")
    pub.add_argument("--errors-out", type=Path, metavar="REPORT.csv",
                     help="also write every problem to this CSV file (columns line, field, reason)")
    pub.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    pub.set_defaults(func=_cmd_publish)

    pse = sub.add_parser(
        "pseudonymise", aliases=["pseudonymize"], help="print the pseudonym of student numbers",
        description="Print the alliance pseudonym (ps_ + 32 hex digits, HMAC-SHA256 keyed with "
                    "ALLIANCE_PSEUDONYM_KEY) of each STUDENT_NUMBER, one per line. Use it for seeker_id "
                    "fields: raw student numbers, names and phone numbers never leave the university.")
    pse.add_argument("--university", "-u", required=True, type=_university, help="the student's university")
    pse.add_argument("student_numbers", metavar="STUDENT_NUMBER", nargs="+",
                     help="student number(s); - reads one per line from standard input")
    pse.set_defaults(func=_cmd_pseudonymise)

    era = sub.add_parser(
        "erase", help="ask the alliance to erase students (PIPL erasure requests)",
        description="Publish one services.seeker_erasure_requested per PSEUDONYM (of the university's own "
                    "students: ps.<university>.<key id>.<hex>, or the first form ps_<hex>). Every stage then "
                    "replaces the student's pseudonym with an anonymous id, keeps every figure, and refuses "
                    "later events naming them (docs/security.md, 'Erasing a student'). Prints one line per "
                    "request: its event id and the pseudonym. Exit 0 sent, 1 some pseudonyms refused (nothing "
                    "sent), 2 settings or broker error.")
    era.add_argument("--university", "-u", required=True, type=_university, help="the students' university")
    era.add_argument("seekers", metavar="PSEUDONYM", nargs="+", help="pseudonym(s); - reads one per line from stdin")
    era.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (default: settings)")
    era.add_argument("--topic", help="publish to this topic instead of alliance.ingest.<university> (staging)")
    era.add_argument("--dry-run", action="store_true", help="check the pseudonyms; send nothing")
    era.set_defaults(func=_cmd_erase)

    for name, what, line in (
            ("retract", "take back events the university published by mistake",
             "Each line of FILE names one of the university's own events: its event_id, type and subject (the "
             "event as published will do)."),
            ("correct", "replace events the university published with their corrected versions",
             "Each line of FILE is the corrected event: the original's event_id, type and subject (and the "
             "university as source); any other field may change. To move an event to another entity, "
             "retract it and publish a new one.")):
        rev = sub.add_parser(
            name, help=what,
            description=f"{what.capitalize()} (events.corrections; docs/events.md, 'Corrections and "
                        f"retractions'). {line} Every stage then moves to the figures it would have had "
                        "without the original (or with the corrected version). Every line is checked before "
                        "anything is sent. Prints one line per revision: its event id and the original's. Send "
                        "revisions after their originals: one whose original has not been applied yet is "
                        "refused (not_revisable, in the DLQ). Exit 0 sent, 1 some lines refused (nothing sent), "
                        "2 file, settings or broker error.")
        rev.add_argument("--university", "-u", required=True, type=_university, help="the publishing university")
        rev.add_argument("file", metavar="FILE", help="JSONL, one event per line; - reads standard input")
        rev.add_argument("--reason", required=True, help="why, for the alliance's operators (no personal data)")
        rev.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (default: settings)")
        rev.add_argument("--topic", help="publish to this topic instead of alliance.ingest.<university> (staging)")
        rev.add_argument("--dry-run", action="store_true", help="check every line; send nothing")
        rev.set_defaults(func=_cmd_revise)

    dlq_parser = sub.add_parser(
        "dlq", help="the dead-letter topic: summary, export one university's rejects, redrive fixed ones",
        description=_dlq_doc(), formatter_class=argparse.RawDescriptionHelpFormatter)
    dlq_sub = dlq_parser.add_subparsers(dest="dlq_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (default: settings)")
    common.add_argument("--dlq-topic", help="the DLQ topic (default: alliance.dlq + ALLIANCE_TOPIC_SUFFIX)")
    summ = dlq_sub.add_parser("summary", parents=[common], help="rejects by university and reason, first/last")
    summ.add_argument("--university", "-u", type=_university, help="only this university")
    summ.add_argument("--json", action="store_true", help="JSON rows instead of a table")
    summ.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    summ.set_defaults(func=_cmd_dlq_summary)
    exp = dlq_sub.add_parser("export", parents=[common], help="one university's rejects as JSONL it can fix")
    exp.add_argument("--university", "-u", required=True, type=_university)
    exp.add_argument("--out", required=True, type=Path, metavar="FILE.jsonl")
    exp.set_defaults(func=_cmd_dlq_export)
    red = dlq_sub.add_parser("redrive", parents=[common],
                             help="send the fixed records of an exported file to the university's ingest topic")
    red.add_argument("--university", "-u", required=True, type=_university)
    red.add_argument("file", metavar="FILE.jsonl", help="a file written by `dlq export`, its records fixed")
    red.add_argument("--topic", help="the ingest topic (default: alliance.ingest.<university> + suffix)")
    red.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")
    red.set_defaults(func=_cmd_dlq_redrive)
    wat = dlq_sub.add_parser("watch", parents=[common],
                             help="serve the DLQ's size and age per reason as Prometheus metrics (ops)")
    wat.add_argument("--metrics-port", type=int, default=9466, help="the /metrics port (default 9466)")
    wat.add_argument("--interval", type=float, default=30.0, help="seconds between refreshes (default 30)")
    wat.set_defaults(func=_cmd_dlq_watch)

    sch = sub.add_parser(
        "schemas", help="write the JSON Schemas and AsyncAPI document",
        description="Write one JSON Schema (draft 2020-12) per event type and asyncapi.yaml "
                    "(AsyncAPI 3.0.0: topics, operations, messages, Kafka bindings), generated from "
                    "the models in events/.")
    sch.add_argument("--out", type=Path, default=Path("schemas"), help="output directory (default: schemas)")
    sch.add_argument("--check", action="store_true",
                     help="write nothing; exit 1 if the files in --out differ from the models")
    sch.add_argument("--allow-breaking", action="store_true",
                     help="overwrite committed schemas even with a breaking change of the same version (only "
                          "before any university uses them; docs/events.md)")
    sch.set_defaults(func=_cmd_schemas)
    return parser


def _dlq_doc() -> str:
    from events.tools import dlq

    return dlq.__doc__ or ""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (BulkError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except EventError as exc:  # PublisherError (broker unreachable, topic missing, not delivered) and kin
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except AllianceError as exc:  # the ALLIANCE_* environment does not form valid Settings
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
