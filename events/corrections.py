"""Corrections and retractions: a university takes back (``corrections.event_retracted``) or replaces
(``corrections.event_corrected``) one of its OWN events (docs/events.md, "Corrections and retractions").

Every stage then moves to the values it would have had without the retracted event, or with the corrected
one in place of the original: the worker's entity states and every aggregate (streams.engine refolds the
entity from its remaining events), the read model (consumers.store rebuilds the entity's rows from its event
log). The rules, the same on both sides (:func:`revision_problem`):

- the original is found by (source university, event id): a university can only ever reach its own events;
- a retraction names the original's ``type`` and ``subject``, a correction carries the whole corrected event
  (same ``event_id``, ``type``, ``subject`` and ``source`` as the original; any other field may change). To
  move an event to another entity, retract it and publish a new event;
- the original must have been applied on that canonical partition before the revision arrives (a university
  sends the revision after the original, with the same Kafka key, so they stay in order), and not be
  retracted already; a correction of a correction replaces the newest version;
- a correction naming a job seeker erased before it arrived is refused like any such event.

A refused revision goes to the DLQ with the reason ``not_revisable`` (or ``erased_seeker``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from pydantic import Field, model_validator

from events import jobfair, mentoring, recruitment, services
from events.base import EntityId, Event, Payload, ShortText
from events.privacy import named_seekers

FAMILY = "corrections"

# The events a university may take back or replace: every event type but an erasure request (an erasure is
# final: it removes identifiers, docs/security.md).
REVISABLE: tuple[type[Event], ...] = tuple(
    cls for cls in recruitment.EVENTS + jobfair.EVENTS + mentoring.EVENTS + services.EVENTS
    if cls is not services.SeekerErasureRequested)
REVISABLE_TYPES: dict[str, type[Event]] = {cls.model_fields["type"].default: cls for cls in REVISABLE}

Revisable = (  # (events.codec.AnyEvent is this union and the events below)
    recruitment.JobPosted | recruitment.JobPostingUpdated | recruitment.JobPostingClosed
    | recruitment.ApplicationSubmitted | recruitment.OfferMade | recruitment.OfferAccepted
    | recruitment.OfferDeclined | recruitment.Hired | recruitment.EmployerFlagged
    | jobfair.JobFairScheduled | jobfair.BoothRegistered | jobfair.StudentCheckedIn
    | jobfair.OnSiteOfferMade | jobfair.JobFairClosed
    | mentoring.MentorRegistered | mentoring.MentorAssigned | mentoring.MentoringSessionHeld
    | services.PolicyBriefingDelivered | services.CareerCounsellingHeld | services.JobRecommended
    | services.TrainingOrInternshipOffered
)
assert set(get_args(Revisable)) == set(REVISABLE), "Revisable must list every revisable event class"
RevisableEvent = Annotated[Revisable, Field(discriminator="type")]
RevisableType = Literal[
    "recruitment.job_posted", "recruitment.job_posting_updated", "recruitment.job_posting_closed",
    "recruitment.application_submitted", "recruitment.offer_made", "recruitment.offer_accepted",
    "recruitment.offer_declined", "recruitment.hired", "recruitment.employer_flagged",
    "jobfair.scheduled", "jobfair.booth_registered", "jobfair.student_checked_in", "jobfair.onsite_offer_made",
    "jobfair.closed", "mentoring.mentor_registered", "mentoring.mentor_assigned", "mentoring.session_held",
    "services.policy_briefing_delivered", "services.career_counselling_held", "services.job_recommended",
    "services.training_or_internship_offered",
]
assert set(get_args(RevisableType)) == set(REVISABLE_TYPES), "RevisableType must list every revisable type"


class EventRetractedData(Payload):
    event_id: UUID = Field(description="the id of the university's own event to take back")
    type: RevisableType = Field(description="the retracted event's type")
    subject: EntityId = Field(description="the retracted event's subject (its Kafka key)")
    reason: ShortText = Field(description="why, for the alliance's operators (no personal data)")


class EventCorrectedData(Payload):
    corrected: RevisableEvent = Field(description="the event as it should have been: the original's event_id, "
                                                  "type, subject and source; any other field may change")
    reason: ShortText = Field(description="why, for the alliance's operators (no personal data)")

    @property
    def event_id(self) -> UUID:
        return self.corrected.event_id

    @property
    def type(self) -> str:
        return self.corrected.type

    @property
    def subject(self) -> str:
        return str(self.corrected.subject)


class _Revision(Event):
    family = FAMILY
    key_field = "subject"

    @property
    def target_family(self) -> str:
        """The family of the revised event: its canonical topic is the one the revision goes to."""
        return REVISABLE_TYPES[self.data.type].family  # type: ignore[attr-defined]

    @property
    def original_id(self) -> str:
        return str(self.data.event_id)  # type: ignore[attr-defined]


class EventRetracted(_Revision):
    type: Literal["corrections.event_retracted"] = "corrections.event_retracted"
    data: EventRetractedData


class EventCorrected(_Revision):
    type: Literal["corrections.event_corrected"] = "corrections.event_corrected"
    data: EventCorrectedData

    @model_validator(mode="after")
    def _own_event(self) -> EventCorrected:
        if self.data.corrected.source != self.source:
            raise ValueError(f"data.corrected.source {self.data.corrected.source!r} must be the correcting "
                             f"university {self.source!r}: a university corrects only its own events")
        return self


Revision = EventRetracted | EventCorrected
EVENTS: tuple[type[Event], ...] = (EventRetracted, EventCorrected)


def replacement(revision: Revision) -> Event | None:
    """What takes the original's place: the corrected event, or nothing (a retraction)."""
    return revision.data.corrected if isinstance(revision, EventCorrected) else None


def revision_seekers(revision: Revision, family: str) -> tuple[str, ...]:
    """The job seekers a revision names: those of the corrected event, and a services event's subject (a
    revision naming a seeker erased before it is refused like any event naming them)."""
    named = named_seekers(rep.data) if (rep := replacement(revision)) is not None else ()
    return tuple(dict.fromkeys(named + ((str(revision.subject),) if family == "services" else ())))


def revision_problem(revision: Revision, original: Event | None) -> str | None:
    """Why ``revision`` cannot apply to ``original``: the current version of the event with the revision's
    (source, event id) on the revision's canonical partition (None: unknown there, or retracted already).
    The worker (streams.engine) and the read model (consumers.store) decide with this one rule."""
    if original is None:
        return (f"{revision.source}'s event {revision.original_id} is not known on this partition, or was "
                f"retracted already (a revision must follow its original, with the same subject)")
    if original.type != revision.data.type or str(original.subject) != str(revision.subject):
        return (f"{revision.source}'s event {revision.original_id} is a {original.type} about "
                f"{original.subject!r}, not a {revision.data.type} about {revision.subject!r}")
    return None


def entity_probe(event_type: str, subject: str, source: str) -> Event:
    """An unvalidated event of ``event_type`` about ``subject`` from ``source``: enough for a domain's
    ``state_key`` and for the ownership rule, which read only the class, subject and source (a retraction
    names its original by type and subject)."""
    probe: Any = REVISABLE_TYPES[event_type].model_construct(subject=subject, source=source)
    return probe  # type: ignore[no-any-return]
