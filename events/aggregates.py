"""The contract of the aggregated topics (``alliance.agg.<name>``): one typed record model per aggregate.

Every record on an aggregated topic is a JSON object ``{"aggregate", "key", "value", "updated_at"}`` keyed
(Kafka key) by the entity id or the dimension string; a record without a value is a tombstone. The stream
processors write these records, the projector and the portals read them: both validate against the models
here (``parse_record``), and ``python -m events.tools schemas`` exports their JSON Schemas into the AsyncAPI
document.

Counts are whole numbers >= 0; rates are in 0..1 with 4 decimals. Within one record the metrics are
consistent (e.g. ``fully_served`` of a seeker is true exactly when every step of the guarantee is met).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from events.errors import EventValidationError, FieldProblem
from events.mentoring import Expertise
from events.reference import City, EmployerType, Industry
from events.topics import AGGREGATES, Family

Count = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(ge=0)]
Status = Literal["pending", "open", "closed"]
ALL_UNIVERSITIES = "*"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- keys --------------------------------------------------------------------------------------------

class EntityKey(_Strict):
    id: str = Field(min_length=1, description="the entity id (posting, fair) or seeker:<pseudonym>")


class SegmentKey(_Strict):
    industry: Industry
    city: City
    employer_type: EmployerType
    university: str = Field(description="member university code, or * for the whole alliance")


class MentorKey(_Strict):
    university: str = Field(description="member university code, or * for the whole alliance")
    expertise: Expertise


class ScopeKey(_Strict):
    scope: Literal["alliance"]


class WindowKey(_Strict):
    family: Family
    university: str
    granularity: Literal["hour", "day"]
    bucket: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}(T\d{2})?$",
                        description="Asia/Shanghai calendar: YYYY-MM-DD (day) or YYYY-MM-DDTHH (hour)")


class TalentFlowKey(_Strict):
    university: str = Field(description="the hired seeker's university (from the pseudonym), * for the whole "
                                        "alliance, unknown for pseudonyms of the first form")
    origin: Literal["sichuan", "chongqing", "unknown"] = Field(description="the university's province")
    destination: Literal["sichuan", "chongqing", "outside_circle"] = Field(
        description="where the graduate works: Hired v2 work_city, else the posting's city")
    industry: Industry
    degree: str = Field(description="Hired v2 degree, or unknown")
    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="month of the hire (Asia/Shanghai calendar)")


# --- values ------------------------------------------------------------------------------------------

class SegmentValue(_Strict):
    postings_total: Count
    open_postings: Count
    open_positions: Count


class FunnelValue(_Strict):
    applications: Count = Field(description="distinct applications")
    offers: Count = Field(description="distinct offers: made, answered or hired on")
    accepted: Count = Field(description="offers whose latest answer is an acceptance")
    declined: Count = Field(description="offers whose latest answer is a decline")
    hired: Count = Field(description="distinct job seekers hired for the posting")
    offer_rate: Rate = Field(description="offers / applications (0 without applications)")
    acceptance_rate: Rate = Field(description="accepted / offers (0 without offers)")
    status: Status
    university: str | None = Field(description="the university that posted it (None while pending)")
    positions: int | None


class FairValue(_Strict):
    status: Status
    name: str | None
    host_university: str | None
    city: str | None
    booths: Count = Field(description="registered booths (a check-in naming an unregistered booth adds none)")
    distinct_checkins: Count
    onsite_offers: Count


class MentorValue(_Strict):
    mentors: Count
    sessions: Count
    seekers_assigned: Count
    session_minutes: Count


class TalentFlowValue(_Strict):
    hires: Count = Field(description="hired offers (a student hired on two offers of a posting counts twice), "
                                     "in the month of the newest Hired")
    accepted_offers: Count = Field(description="offers whose newest answer is an acceptance, in the month of it "
                                               "(at the posting's city, degree unknown)")


class SeekerServiceValue(_Strict):
    briefings: Count
    counsellings: Count
    recommended_postings: Count
    programs: Count
    fully_served: bool
    steps_met: Annotated[int, Field(ge=0, le=4)]


class AllianceServiceValue(_Strict):
    seekers: Count
    fully_served: Count
    briefed: Count
    counselled: Count
    recommended_3: Count
    trained: Count


class WindowValue(_Strict):
    events: Count


# --- records -----------------------------------------------------------------------------------------

class _Record(_Strict):
    updated_at: AwareDatetime = Field(description="occurred_at of the newest event behind the value")


class PostingsBySegment(_Record):
    aggregate: Literal["postings-by-segment"]
    key: SegmentKey
    value: SegmentValue


class PostingFunnel(_Record):
    aggregate: Literal["posting-funnel"]
    key: EntityKey
    value: FunnelValue


class Fair(_Record):
    aggregate: Literal["fairs"]
    key: EntityKey
    value: FairValue


class Mentors(_Record):
    aggregate: Literal["mentors"]
    key: MentorKey
    value: MentorValue


class SeekerService(_Record):
    aggregate: Literal["seeker-guarantee"]
    key: EntityKey
    value: SeekerServiceValue


class AllianceService(_Record):
    aggregate: Literal["service-guarantee"]
    key: ScopeKey
    value: AllianceServiceValue


class TalentFlow(_Record):
    aggregate: Literal["talent-flow"]
    key: TalentFlowKey
    value: TalentFlowValue


class Windows(_Record):
    aggregate: Literal["windows"]
    key: WindowKey
    value: WindowValue


AggregateRecord = (PostingsBySegment | PostingFunnel | Fair | Mentors | SeekerService | AllianceService
                   | Windows | TalentFlow)
RECORDS: dict[str, tuple[type[_Record], ...]] = {
    "postings-by-segment": (PostingsBySegment,),
    "posting-funnel": (PostingFunnel,),
    "fairs": (Fair,),
    "mentors": (Mentors,),
    "seeker-guarantee": (SeekerService,),
    "service-guarantee": (AllianceService,),
    "windows": (Windows,),
    "talent-flow": (TalentFlow,),
}
assert RECORDS.keys() == AGGREGATES.keys(), "every aggregate in the topic registry needs a record model"

_ADAPTERS: dict[str, TypeAdapter[Any]] = {name: TypeAdapter(models[0]) for name, models in RECORDS.items()}


def parse_record(aggregate: str, raw: bytes | str) -> AggregateRecord:
    """Validate one aggregate record (JSON) of ``aggregate``; raises EventValidationError naming each bad
    field. Strict: a count is a JSON integer ("3" and 3.0 are not)."""
    adapter = _ADAPTERS.get(aggregate)
    if adapter is None:
        raise EventValidationError([FieldProblem("aggregate", f"unknown aggregate {aggregate!r}")])
    try:
        record: AggregateRecord = adapter.validate_json(raw, strict=True)
    except ValidationError as exc:
        problems = [FieldProblem(".".join(str(p) for p in err["loc"]) or "record", err["msg"])
                    for err in exc.errors(include_url=False)]
        raise EventValidationError(problems) from None
    if record.aggregate != aggregate:  # only reachable if two aggregates ever shared a model
        raise EventValidationError([FieldProblem("aggregate", f"{record.aggregate!r} is not {aggregate!r}")])
    return record


def json_schema(aggregate: str) -> dict[str, Any]:
    """The JSON Schema of one aggregate's records."""
    return _ADAPTERS[aggregate].json_schema()
