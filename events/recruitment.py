"""Recruitment family: job postings (full-time and internships), applications, offers, hires."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from events.base import Count, Day, EntityId, Event, LongText, Payload, SeekerId, ShortText
from events.reference import City, Degree, EmployerType, Industry, WorkLocation

FAMILY = "recruitment"


class PostingKind(StrEnum):
    FULL_TIME = "full_time"
    INTERNSHIP = "internship"


class CloseReason(StrEnum):
    FILLED = "filled"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class FlagSeverity(StrEnum):
    WARNING = "warning"
    SUSPENDED = "suspended"


Salary = Field(ge=0, le=1_000_000, description="monthly salary in CNY")


class JobPostedData(Payload):
    posting_id: EntityId
    employer_id: EntityId
    employer_name: ShortText
    employer_type: EmployerType
    industry: Industry
    city: City
    district: ShortText | None = None
    title: ShortText
    description: LongText | None = None
    kind: PostingKind = PostingKind.FULL_TIME
    positions: int = Field(ge=1, le=10_000)
    degree_min: Degree
    salary_min: int = Salary
    salary_max: int = Salary
    deadline: Day

    @model_validator(mode="after")
    def _salary_range(self) -> JobPostedData:
        if self.salary_min > self.salary_max:
            raise ValueError("salary_min must not exceed salary_max")
        return self


class JobPostingUpdatedData(Payload):
    posting_id: EntityId
    title: ShortText | None = None
    positions: int | None = Field(default=None, ge=1, le=10_000)
    salary_min: int | None = Field(default=None, ge=0, le=1_000_000, description="monthly salary in CNY")
    salary_max: int | None = Field(default=None, ge=0, le=1_000_000, description="monthly salary in CNY")
    deadline: Day | None = None

    @model_validator(mode="after")
    def _something_changes(self) -> JobPostingUpdatedData:
        changed = [f for f in ("title", "positions", "salary_min", "salary_max", "deadline")
                   if getattr(self, f) is not None]
        if not changed:
            raise ValueError("an update must change at least one of title, positions, salary_*, deadline")
        if self.salary_min is not None and self.salary_max is not None and self.salary_min > self.salary_max:
            raise ValueError("salary_min must not exceed salary_max")
        return self


class JobPostingClosedData(Payload):
    posting_id: EntityId
    reason: CloseReason


class ApplicationSubmittedData(Payload):
    posting_id: EntityId
    application_id: EntityId
    seeker_id: SeekerId
    degree: Degree


class OfferMadeData(Payload):
    posting_id: EntityId
    offer_id: EntityId
    application_id: EntityId
    seeker_id: SeekerId
    salary_monthly: int = Salary


class OfferAnswerData(Payload):
    posting_id: EntityId
    offer_id: EntityId
    seeker_id: SeekerId


class HiredData(Payload):
    posting_id: EntityId
    offer_id: EntityId
    seeker_id: SeekerId
    start_date: Day
    # version 2: where the graduate will work and their degree (talent flow; both optional)
    work_city: WorkLocation | None = Field(default=None, description="v2: where the graduate will work (a "
                                                                     "city of the circle, or outside_circle)")
    degree: Degree | None = Field(default=None, description="v2: the graduate's degree")


class EmployerFlaggedData(Payload):
    employer_id: EntityId
    severity: FlagSeverity
    reason: ShortText
    postings_affected: Count = 0


class _Recruitment(Event):
    family = FAMILY
    key_field = "posting_id"


class JobPosted(_Recruitment):
    type: Literal["recruitment.job_posted"] = "recruitment.job_posted"
    data: JobPostedData

    @model_validator(mode="after")
    def _deadline_after_posting(self) -> JobPosted:
        if self.data.deadline < self.occurred_at.date():
            raise ValueError("data.deadline is before the posting was published (occurred_at)")
        return self


class JobPostingUpdated(_Recruitment):
    type: Literal["recruitment.job_posting_updated"] = "recruitment.job_posting_updated"
    data: JobPostingUpdatedData


class JobPostingClosed(_Recruitment):
    type: Literal["recruitment.job_posting_closed"] = "recruitment.job_posting_closed"
    data: JobPostingClosedData


class ApplicationSubmitted(_Recruitment):
    type: Literal["recruitment.application_submitted"] = "recruitment.application_submitted"
    data: ApplicationSubmittedData


class OfferMade(_Recruitment):
    type: Literal["recruitment.offer_made"] = "recruitment.offer_made"
    data: OfferMadeData


class OfferAccepted(_Recruitment):
    type: Literal["recruitment.offer_accepted"] = "recruitment.offer_accepted"
    data: OfferAnswerData


class OfferDeclined(_Recruitment):
    type: Literal["recruitment.offer_declined"] = "recruitment.offer_declined"
    data: OfferAnswerData


class Hired(_Recruitment):
    """Version 2 added ``work_city`` and ``degree`` (optional): a version 1 event is still valid, and may not
    carry them."""

    version = 2
    type: Literal["recruitment.hired"] = "recruitment.hired"
    data: HiredData

    @model_validator(mode="after")
    def _v2_fields_need_v2(self) -> Hired:
        if self.schema_version < 2 and (self.data.work_city is not None or self.data.degree is not None):
            raise ValueError("data.work_city and data.degree are fields of schema_version 2 (this event says 1)")
        return self


class EmployerFlagged(_Recruitment):
    key_field = "employer_id"
    type: Literal["recruitment.employer_flagged"] = "recruitment.employer_flagged"
    data: EmployerFlaggedData


EVENTS: tuple[type[Event], ...] = (
    JobPosted, JobPostingUpdated, JobPostingClosed, ApplicationSubmitted, OfferMade, OfferAccepted,
    OfferDeclined, Hired, EmployerFlagged,
)
