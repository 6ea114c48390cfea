"""Publish a simulated alliance day (events.simulator) to the ingest topics, and its command line.

    python -m events.simulator --scale 1 --seed 7 [--bootstrap HOST:PORT] [--rate N] [--dry-run]

Records are sent exactly as the simulator made them (bad ones included: this is what sloppy university
systems would send), in list order, by an idempotent ``acks=all`` kafka-python producer, so the order of
records with one key is kept on the broker. Every send future is checked; anything not acknowledged
raises SimulatorPublishError.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any, TextIO

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from core.kafka_access import KafkaAccess
from events.errors import EventError
from events.simulator.day import alliance_day
from events.simulator.world import DEFAULT_DAY, DEFAULT_PSEUDONYM_KEY, KINDS, UUID_VERSIONS, Record
from events.tools.publisher import FLUSH_TIMEOUT_S, PRODUCER_DEFAULTS, ProducersByWriter, PublisherError
from events.topics import ingest_owner

#: the universities' producer settings (idempotent, acks=all, ordering kept), under the simulator's client id
PRODUCER_CONFIG: dict[str, Any] = {**PRODUCER_DEFAULTS, "client_id": "alliance-simulator"}
#: futures are checked (and the producer flushed) every CHECK_EVERY records
CHECK_EVERY = 2_000


class SimulatorPublishError(EventError):
    """The simulated day could not be published completely (broker, topic or delivery failure)."""


def throttle_delay(sent: int, rate: float | None, elapsed_s: float) -> float:
    """Seconds to wait before sending record number ``sent`` (0-based) to keep ``rate`` records/s."""
    if rate is None:
        return 0.0
    return max(0.0, sent / rate - elapsed_s)


def _check(futures: list[Any], timeout_s: float) -> None:
    """Raise SimulatorPublishError if any future failed (they are all done after a flush)."""
    failures = []
    for future in futures:
        try:
            future.get(timeout=timeout_s)
        except KafkaError as exc:
            failures.append(str(exc))
    if failures:
        raise SimulatorPublishError(f"{len(failures)} record(s) not acknowledged; first: {failures[0]}")


def _flush_and_check(producers: ProducersByWriter, futures: list[Any]) -> None:
    try:
        producers.flush(FLUSH_TIMEOUT_S)
    except KafkaTimeoutError as exc:
        raise SimulatorPublishError(f"broker did not acknowledge in {FLUSH_TIMEOUT_S:.0f}s: {exc}") from None
    _check(futures, timeout_s=1.0)
    futures.clear()


#: how each university's producer reaches Kafka: its own principal (``Settings.kafka``)
Credentials = Callable[[str], KafkaAccess]


def publish(records: Iterable[Record], credentials: Credentials, *,
            progress: Callable[[int, int], None] | None = None, rate: float | None = None) -> int:
    """Send ``records`` in order to their topics; returns how many were sent (all acknowledged).

    Each university's records go through a producer of its own principal (``credentials(code)``), as its
    own system would send them: a university may write only its ingest topic, and nobody else may.
    ``progress(sent, total)`` is called every few hundred records and at the end; ``rate`` throttles to
    that many records per second (steady-load runs). Raises SimulatorPublishError on any failure.
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    items = list(records)
    total = len(items)
    producers = ProducersByWriter(credentials, **PRODUCER_CONFIG)

    def producer_for(topic: str) -> KafkaProducer:
        if ingest_owner(topic) is None:  # the simulator writes as universities only
            raise SimulatorPublishError(f"{topic} is not a member university's ingest topic")
        try:
            return producers(topic)
        except PublisherError as exc:
            raise SimulatorPublishError(str(exc)) from None

    futures: list[Any] = []
    sent = 0
    started = time.monotonic()
    try:
        for record in items:
            delay = throttle_delay(sent, rate, time.monotonic() - started)
            if delay > 0:
                time.sleep(delay)
            try:
                futures.append(producer_for(record.topic).send(record.topic, value=record.value, key=record.key))
            except KafkaTimeoutError as exc:
                raise SimulatorPublishError(
                    f"topic {record.topic} unavailable (provision it: python -m infra provision): {exc}"
                ) from None
            sent += 1
            if sent % CHECK_EVERY == 0:
                _flush_and_check(producers, futures)
            if progress is not None and (sent % 250 == 0 or sent == total):
                progress(sent, total)
        _flush_and_check(producers, futures)
    finally:
        producers.close(timeout=5)
    if progress is not None and total == 0:
        progress(0, 0)
    return sent


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


def summary(records: Sequence[Record]) -> str:
    """A table of record counts by topic and kind, with totals."""
    by_topic: dict[str, Counter[str]] = {}
    for r in records:
        by_topic.setdefault(r.topic, Counter())[r.kind] += 1
    width = max([len("topic"), *(len(t) for t in by_topic)])
    lines = [f"{'topic':<{width}} " + " ".join(f"{k:>9}" for k in KINDS) + f" {'total':>9}"]
    totals: Counter[str] = Counter()
    for topic in sorted(by_topic):
        counts = by_topic[topic]
        totals.update(counts)
        lines.append(f"{topic:<{width}} " + " ".join(f"{counts[k]:>9}" for k in KINDS)
                     + f" {sum(counts.values()):>9}")
    lines.append(f"{'total':<{width}} " + " ".join(f"{totals[k]:>9}" for k in KINDS)
                 + f" {sum(totals.values()):>9}")
    return "\n".join(lines)


def event_type_summary(records: Sequence[Record]) -> str:
    """Counts of valid records by event type."""
    counts = Counter(r.event.type for r in records if r.kind == "valid" and r.event is not None)
    width = max([len("event type"), *(len(t) for t in counts)])
    return "\n".join([f"{'event type':<{width}} {'valid':>9}"]
                     + [f"{t:<{width}} {counts[t]:>9}" for t in sorted(counts)])


def progress_printer(stream: TextIO) -> Callable[[int, int], None]:
    """A progress callback that rewrites one line on ``stream`` (stderr)."""
    started = time.monotonic()

    def show(sent: int, total: int) -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        pct = 100.0 * sent / total if total else 100.0
        stream.write(f"\rpublished {sent}/{total} ({pct:5.1f}%) {sent / elapsed:8.0f} records/s")
        if sent >= total:
            stream.write("\n")
        stream.flush()

    return show


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m events.simulator",
        description="Generate a realistic alliance day and publish it to the alliance.ingest.* topics.")
    parser.add_argument("--scale", type=float, default=1.0, help="1 = about 20,000 records (default 1)")
    parser.add_argument("--seed", type=int, default=7, help="random seed; same seed, same day (default 7)")
    parser.add_argument("--day", type=date.fromisoformat, default=DEFAULT_DAY,
                        help=f"the simulated date, YYYY-MM-DD (default {DEFAULT_DAY})")
    parser.add_argument("--bootstrap", default=None,
                        help="Kafka bootstrap servers (default: ALLIANCE_KAFKA_BOOTSTRAP_SERVERS or local)")
    parser.add_argument("--rate", type=float, default=None, help="throttle to N records/s (default: unthrottled)")
    parser.add_argument("--dry-run", action="store_true", help="generate and summarise only, publish nothing")
    parser.add_argument("--provision", action="store_true", help="create the registry topics first")
    parser.add_argument("--duplicate-rate", type=float, default=0.02)
    parser.add_argument("--invalid-rate", type=float, default=0.01)
    parser.add_argument("--spoofed-rate", type=float, default=0.005)
    parser.add_argument("--foreign-rate", type=float, default=0.002,
                        help="events about another university's posting or fair (refused: not_owner)")
    parser.add_argument("--out-of-order-rate", type=float, default=0.02)
    parser.add_argument("--revision-rate", type=float, default=0.01,
                        help="events their university retracts or corrects later in the day (events.corrections)")
    parser.add_argument("--uuid-versions", type=_versions, default=(4,), metavar="V[,V...]",
                        help=f"UUID versions of the event ids, in turn (of {', '.join(map(str, UUID_VERSIONS))}; "
                             "default 4)")
    return parser


def _versions(text: str) -> tuple[int, ...]:
    try:
        versions = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated UUID versions, e.g. 4,7") from None
    if not versions or not set(versions) <= set(UUID_VERSIONS):
        raise argparse.ArgumentTypeError(f"{text!r}: versions must be some of {UUID_VERSIONS}")
    return versions


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from core.errors import AllianceError
    from core.settings import load_settings

    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except AllianceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        records = alliance_day(seed=args.seed, scale=args.scale, day=args.day,
                               pseudonym_key=(settings.pseudonym_key.get_secret_value() if settings.pseudonym_key
                                              else DEFAULT_PSEUDONYM_KEY),  # simulated students: a dev tool
                               duplicate_rate=args.duplicate_rate, invalid_rate=args.invalid_rate,
                               spoofed_rate=args.spoofed_rate, foreign_rate=args.foreign_rate,
                               out_of_order_rate=args.out_of_order_rate,
                               uuid_versions=args.uuid_versions, revision_rate=args.revision_rate)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.dry_run:
        # the simulator stands in for every university at once: each one's records go out as that university
        # (credentials from the local credential store, or ALLIANCE_KAFKA_USERNAME/_PASSWORD for all of them)
        bootstrap = args.bootstrap or settings.bootstrap
        try:
            if args.provision:
                from core.topic_admin import provision_deployment

                provision_deployment(settings, bootstrap=args.bootstrap)
            sent = publish(records, lambda role: settings.kafka(role).at(args.bootstrap),
                           progress=progress_printer(sys.stderr), rate=args.rate)
        except (SimulatorPublishError, KafkaError, AllianceError) as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            return 1
        print(f"published {sent} records to {bootstrap}")
    else:
        print(f"dry run: {len(records)} records generated, nothing published")
    print(summary(records))
    print()
    print(event_type_summary(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
