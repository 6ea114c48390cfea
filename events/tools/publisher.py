"""The university-side publisher SDK: validated events onto the university's ingest topic.

Example::

    from events.tools.publisher import Publisher

    with Publisher("kafka.alliance.example:9092", "scu") as pub:
        pub.publish(job_posted_event)          # a model, already validated
        pub.publish({"type": "...", ...})      # a mapping: validated with events.codec.from_dict
    # leaving the block flushes; any record the broker did not acknowledge raises DeliveryError

Guarantees: idempotent producer with ``acks=all`` (no duplicates from retries, nothing acknowledged
before every in-sync replica has it); the record key is the event's subject (entity id), so every
event about one entity lands in one partition, in order; every record carries CloudEvents-style
headers (``ce_*``, ``content-type``). Events whose ``source`` is not the publisher's university are
refused with EventValidationError (field ``source``) before anything is sent. A record that could not
be delivered is never silently dropped: ``flush()`` and ``close()`` raise DeliveryError naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer
from kafka.errors import AuthorizationError, KafkaError, KafkaTimeoutError, SaslAuthenticationFailedError

from core.access_policy import writer
from core.kafka_access import KafkaAccess
from events.base import MAX_EVENT_BYTES, Event, future_problem
from events.codec import encode, from_dict
from events.errors import EventError, EventValidationError, FieldProblem
from events.ownership import ownership_problem
from events.reference import UNIVERSITIES
from events.topics import ingest_topic
from events.wire import cloudevent_headers

#: how long the producer itself keeps retrying a record (leader moves, broker restarts) before failing it
DELIVERY_TIMEOUT_S = 120
#: a flush waits this long: past the delivery timeout, so every record ends acknowledged or failed by the
#: producer; a shorter wait would report records as lost that the producer is still retrying (and may deliver)
FLUSH_TIMEOUT_S = DELIVERY_TIMEOUT_S + 15.0

#: producer settings tuned for bulk imports; ``producer_config`` overrides any of them
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable_idempotence": True,
    "acks": "all",
    "linger_ms": 20,
    "batch_size": 256 * 1024,
    "max_in_flight_requests_per_connection": 5,  # the maximum that keeps idempotent ordering
    "max_request_size": 1024 * 1024,
    "allow_auto_create_topics": False,
    "max_block_ms": 15_000,
    "bootstrap_timeout_ms": 15_000,
    "delivery_timeout_ms": DELIVERY_TIMEOUT_S * 1000,
    "request_timeout_ms": 30_000,
}

#: how many in-flight records are kept before finished futures are reaped and checked
REAP_EVERY = 5_000


class PublisherError(EventError):
    """Root of the publisher's own failures (broker unreachable, topic missing, records not delivered)."""


class BrokerUnavailableError(PublisherError):
    """The broker could not be reached or the ingest topic does not exist."""


@dataclass(frozen=True)
class FailedDelivery:
    event_id: str
    key: str
    error: str


class DeliveryError(PublisherError):
    """Records the broker did not acknowledge; ``failures`` names each event."""

    def __init__(self, failures: list[FailedDelivery]) -> None:
        self.failures = failures
        first = failures[0] if failures else None
        detail = f"; first: event {first.event_id}: {first.error}" if first else ""
        super().__init__(f"{len(failures)} event(s) not delivered{detail}")


def check_event(event: Event | Mapping[str, Any], university: str) -> Event:
    """Validate ``event`` for publication by ``university``: a model or a mapping -> a valid Event.

    Raises EventValidationError naming every bad field (a mapping) and refusing a foreign ``source``.
    """
    if isinstance(event, Event):
        model = event
    elif isinstance(event, Mapping):
        model = from_dict(dict(event))
    else:
        raise EventValidationError([FieldProblem("event", f"expected an Event or a mapping, got "
                                                          f"{type(event).__name__}")])
    if model.source != university:
        raise EventValidationError(
            [FieldProblem("source", f"{model.source!r} is not this publisher's university {university!r}")],
            model.type)
    if (problem := future_problem(model, datetime.now(UTC))) is not None:  # the alliance would refuse it
        raise EventValidationError([FieldProblem("occurred_at", problem)], model.type)
    if (problem := ownership_problem(model)) is not None:  # so would it this (reason not_owner)
        raise EventValidationError([FieldProblem("subject", problem)], model.type)
    return model


class ProducersByWriter:
    """One kafka-python producer per principal that may write a topic (``core.access_policy.writer``), each
    with that principal's credentials (``credentials(principal)``, e.g. ``Settings.kafka``): a university's
    records go out as that university, as its own system would send them. ``config``: producer settings.
    Used by everything that writes on behalf of several principals at once (the simulator, the benchmark)."""

    def __init__(self, credentials: Callable[[str], KafkaAccess], **config: Any) -> None:
        self.credentials, self.config = credentials, config
        self.by_writer: dict[str, KafkaProducer] = {}

    def __call__(self, topic: str) -> KafkaProducer:
        """The producer for ``topic``, connected on first use; PublisherError if no principal may write it."""
        who = writer(topic)
        if who is None:
            raise PublisherError(f"no principal may write {topic}")
        if who not in self.by_writer:
            access = self.credentials(who)
            try:
                self.by_writer[who] = KafkaProducer(**access.kafka_python(), **self.config)
            except KafkaError as exc:
                raise BrokerUnavailableError(f"cannot connect to {access}: {exc}") from None
        return self.by_writer[who]

    def flush(self, timeout: float) -> None:
        for producer in self.by_writer.values():
            producer.flush(timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        for producer in self.by_writer.values():
            producer.close(timeout=timeout)


class Publisher:
    """Publishes one university's events to its ingest topic (see the module docstring).

    ``kafka`` says where and as whom (the university's own principal: it may write only its ingest topic);
    ``topic`` overrides the ingest topic (tests, staging); ``producer_config`` overrides producer
    settings (e.g. ``compression_type="gzip"``). The constructor connects and checks that the topic exists
    and may be written, raising BrokerUnavailableError otherwise.
    """

    def __init__(self, kafka: KafkaAccess, university: str, *, client_id: str | None = None,
                 topic: str | None = None, producer_config: Mapping[str, Any] | None = None) -> None:
        if university not in UNIVERSITIES:
            raise EventValidationError([FieldProblem("source", f"unknown university code {university!r}")])
        self.university = university
        self.topic = topic or ingest_topic(university)
        config = {**PRODUCER_DEFAULTS, **(producer_config or {})}
        config["client_id"] = client_id or f"alliance-publisher-{university}"
        self._pending: list[tuple[str, str, Any]] = []  # (event_id, key, future)
        self._failures: list[FailedDelivery] = []
        self.sent = 0
        try:
            self._producer = KafkaProducer(**kafka.kafka_python(), **config)
        except SaslAuthenticationFailedError as exc:
            raise BrokerUnavailableError(f"Kafka refused the credentials of {kafka}: {exc}") from None
        except KafkaError as exc:  # kafka-python 3 raises KafkaTimeoutError("Unable to bootstrap ...")
            raise BrokerUnavailableError(f"cannot connect to {kafka}: {exc}") from None
        try:
            self._producer.partitions_for(self.topic)
        except KafkaTimeoutError:
            self._producer.close(timeout=1)
            raise BrokerUnavailableError(
                f"topic {self.topic} does not exist on {kafka.bootstrap} or {kafka.principal} may not write it "
                "(provision it: python -m infra provision)"
            ) from None
        except AuthorizationError:
            self._producer.close(timeout=1)
            raise BrokerUnavailableError(f"{kafka.principal} may not write {self.topic} (it does not exist, or "
                                         "a university writes only its own alliance.ingest.<code>)") from None
        except KafkaError as exc:
            self._producer.close(timeout=1)
            raise BrokerUnavailableError(f"cannot use topic {self.topic} on {kafka}: {exc}") from None

    # -- publishing -------------------------------------------------------------------------------

    def publish(self, event: Event | Mapping[str, Any], *, headers: Sequence[tuple[str, bytes]] = ()) -> Event:
        """Validate and send one event (asynchronously), with ``headers`` after the CloudEvents ones.
        Returns the validated event.

        Raises EventValidationError before sending anything if the event is invalid or foreign;
        DeliveryError if an earlier record has already failed.
        """
        model = check_event(event, self.university)
        value = encode(model)
        if len(value) > MAX_EVENT_BYTES:
            raise EventValidationError(
                [FieldProblem("event", f"{len(value)} bytes exceeds {MAX_EVENT_BYTES}")], model.type)
        self._raise_failures()
        try:
            future = self._producer.send(self.topic, value=value, key=model.key,
                                         headers=[*cloudevent_headers(model), *headers])
        except KafkaTimeoutError as exc:
            raise BrokerUnavailableError(f"broker did not accept the record in time: {exc}") from None
        except KafkaError as exc:
            raise PublisherError(f"send failed: {exc}") from None
        self._pending.append((str(model.event_id), str(model.subject), future))
        self.sent += 1
        if len(self._pending) >= REAP_EVERY:
            self._reap()
        return model

    def publish_many(self, events: Iterable[Event | Mapping[str, Any]],
                     progress: Callable[[int], None] | None = None, *, flush: bool = True) -> int:
        """Publish every event of ``events`` (stops at the first invalid one, which raises).

        ``progress(n)`` is called every 1000 events and at the end with the number sent so far.
        With ``flush`` (the default) waits until the broker has acknowledged them all.
        Returns the number of events sent.
        """
        count = 0
        for event in events:
            self.publish(event)
            count += 1
            if progress is not None and count % 1000 == 0:
                progress(count)
        if flush:
            self.flush()
        if progress is not None:
            progress(count)
        return count

    def flush(self, timeout: float | None = FLUSH_TIMEOUT_S) -> None:
        """Wait until every sent record is acknowledged; raise DeliveryError naming any that failed."""
        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            pass  # the still-pending futures are reported as failures below
        self._reap(final=True)
        self._raise_failures()

    def close(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Flush, then close the producer. Raises DeliveryError if records were not delivered."""
        try:
            self.flush(timeout)
        finally:
            self._producer.close(timeout=timeout)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:  # do not hide the original error; still give buffered records their chance
            try:
                self.close()
            except PublisherError:
                pass

    # -- delivery bookkeeping -----------------------------------------------------------------------

    def _reap(self, final: bool = False) -> None:
        """Drop acknowledged futures, record failed ones; with ``final`` unfinished ones count as failed."""
        still: list[tuple[str, str, Any]] = []
        for event_id, key, future in self._pending:
            if not future.is_done:
                if final:
                    self._failures.append(FailedDelivery(event_id, key, "not acknowledged before timeout"))
                else:
                    still.append((event_id, key, future))
            elif future.failed():
                self._failures.append(FailedDelivery(event_id, key, repr(future.exception)))
        self._pending = still

    def _raise_failures(self) -> None:
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeliveryError(failures)

    @property
    def pending(self) -> int:
        """Records sent but not yet known to be acknowledged."""
        return len(self._pending)
