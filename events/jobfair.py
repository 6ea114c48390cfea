"""Job-fair family: fairs, employer booths, student check-ins, on-site offers. Keyed by fair id."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from events.base import Count, EntityId, Event, Payload, SeekerId, ShortText, Timestamp, UniversityCode
from events.reference import City, EmployerType, Industry

FAMILY = "jobfair"


class JobFairScheduledData(Payload):
    fair_id: EntityId
    name: ShortText
    host_university: UniversityCode
    city: City
    venue: ShortText
    starts_at: Timestamp
    ends_at: Timestamp
    expected_booths: Count = 0

    @model_validator(mode="after")
    def _ends_after_start(self) -> JobFairScheduledData:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if (self.ends_at - self.starts_at).days > 14:
            raise ValueError("a job fair lasts at most 14 days")
        return self


class BoothRegisteredData(Payload):
    fair_id: EntityId
    booth_id: EntityId
    employer_id: EntityId
    employer_name: ShortText
    employer_type: EmployerType
    industry: Industry
    positions_offered: int = Field(ge=0, le=10_000)


class StudentCheckedInData(Payload):
    fair_id: EntityId
    seeker_id: SeekerId
    booth_id: EntityId | None = Field(default=None, description="None = the fair's entrance")


class OnSiteOfferMadeData(Payload):
    fair_id: EntityId
    booth_id: EntityId
    offer_id: EntityId
    seeker_id: SeekerId


class JobFairClosedData(Payload):
    fair_id: EntityId


class _JobFair(Event):
    family = FAMILY
    key_field = "fair_id"


class JobFairScheduled(_JobFair):
    type: Literal["jobfair.scheduled"] = "jobfair.scheduled"
    data: JobFairScheduledData


class BoothRegistered(_JobFair):
    type: Literal["jobfair.booth_registered"] = "jobfair.booth_registered"
    data: BoothRegisteredData


class StudentCheckedIn(_JobFair):
    type: Literal["jobfair.student_checked_in"] = "jobfair.student_checked_in"
    data: StudentCheckedInData


class OnSiteOfferMade(_JobFair):
    type: Literal["jobfair.onsite_offer_made"] = "jobfair.onsite_offer_made"
    data: OnSiteOfferMadeData


class JobFairClosed(_JobFair):
    type: Literal["jobfair.closed"] = "jobfair.closed"
    data: JobFairClosedData


EVENTS: tuple[type[Event], ...] = (JobFairScheduled, BoothRegistered, StudentCheckedIn, OnSiteOfferMade, JobFairClosed)
