"""Mentoring family: the "Double Hundred" mentor group. Keyed by mentor id."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from events.base import EntityId, Event, Payload, SeekerId, ShortText, UniversityCode
from events.reference import EmployerType, Industry

FAMILY = "mentoring"


class Expertise(StrEnum):
    CAREER_PLANNING = "career_planning"
    ENTREPRENEURSHIP = "entrepreneurship"
    INTERVIEW_SKILLS = "interview_skills"
    INDUSTRY_INSIGHT = "industry_insight"
    POLICY_AND_LAW = "policy_and_law"
    TECHNOLOGY = "technology"


class MentorRegisteredData(Payload):
    mentor_id: EntityId
    university: UniversityCode
    expertise: Expertise
    industry: Industry
    employer_type: EmployerType
    title: ShortText


class MentorAssignedData(Payload):
    mentor_id: EntityId
    seeker_id: SeekerId


class MentoringSessionHeldData(Payload):
    mentor_id: EntityId
    session_id: EntityId
    topic: Expertise
    seeker_ids: tuple[SeekerId, ...] = Field(min_length=1, max_length=50)
    duration_minutes: int = Field(ge=10, le=480)


class _Mentoring(Event):
    family = FAMILY
    key_field = "mentor_id"


class MentorRegistered(_Mentoring):
    type: Literal["mentoring.mentor_registered"] = "mentoring.mentor_registered"
    data: MentorRegisteredData


class MentorAssigned(_Mentoring):
    type: Literal["mentoring.mentor_assigned"] = "mentoring.mentor_assigned"
    data: MentorAssignedData


class MentoringSessionHeld(_Mentoring):
    type: Literal["mentoring.session_held"] = "mentoring.session_held"
    data: MentoringSessionHeldData


EVENTS: tuple[type[Event], ...] = (MentorRegistered, MentorAssigned, MentoringSessionHeld)
