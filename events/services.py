"""Employment services family: the "1 briefing, 1 counselling, 3 recommendations, 1 training or
internship" guarantee every job seeker is promised. Keyed by the (pseudonymous) job seeker."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from events.base import EntityId, Event, Payload, SeekerId, ShortText

FAMILY = "services"


class TrainingKind(StrEnum):
    TRAINING = "training"
    INTERNSHIP = "internship"


class PolicyBriefingDeliveredData(Payload):
    seeker_id: SeekerId
    briefing_id: EntityId
    topic: ShortText


class CareerCounsellingHeldData(Payload):
    seeker_id: SeekerId
    counselling_id: EntityId
    counsellor_id: EntityId


class JobRecommendedData(Payload):
    seeker_id: SeekerId
    recommendation_id: EntityId
    posting_id: EntityId


class TrainingOrInternshipOfferedData(Payload):
    seeker_id: SeekerId
    program_id: EntityId
    kind: TrainingKind
    provider: ShortText


class SeekerErasureRequestedData(Payload):
    """PIPL erasure: the seeker's university asks the alliance to erase one of its students (docs/security.md,
    "Erasing a student"). Only the university named in the pseudonym may ask (events.ownership)."""

    seeker_id: SeekerId


class _Services(Event):
    family = FAMILY
    key_field = "seeker_id"


class PolicyBriefingDelivered(_Services):
    type: Literal["services.policy_briefing_delivered"] = "services.policy_briefing_delivered"
    data: PolicyBriefingDeliveredData


class CareerCounsellingHeld(_Services):
    type: Literal["services.career_counselling_held"] = "services.career_counselling_held"
    data: CareerCounsellingHeldData


class JobRecommended(_Services):
    type: Literal["services.job_recommended"] = "services.job_recommended"
    data: JobRecommendedData


class TrainingOrInternshipOffered(_Services):
    type: Literal["services.training_or_internship_offered"] = "services.training_or_internship_offered"
    data: TrainingOrInternshipOfferedData


class SeekerErasureRequested(_Services):
    """Not a service: every stage erases the seeker's identifiers and keeps the anonymous figures (the
    worker's tables: streams.erasure; the read model: consumers.erasure)."""

    type: Literal["services.seeker_erasure_requested"] = "services.seeker_erasure_requested"
    data: SeekerErasureRequestedData


EVENTS: tuple[type[Event], ...] = (
    PolicyBriefingDelivered, CareerCounsellingHeld, JobRecommended, TrainingOrInternshipOffered,
    SeekerErasureRequested,
)
