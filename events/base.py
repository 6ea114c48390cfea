"""The envelope every event carries, and the constrained types used by the payloads."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, ClassVar
from uuid import UUID, uuid4

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from events.reference import UNIVERSITIES

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 16 * 1024

# How far into the future an event's occurred_at may lie, measured against the time its record reached the
# alliance (streams) or the publisher's clock (SDK/CLI). Beyond it the event is rejected (future_timestamp):
# a far-future timestamp would win every "newest wins" merge rule and freeze the entity.
MAX_CLOCK_SKEW = timedelta(minutes=15)

_PHONE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)")
# C0 control characters and DEL, except tab, line feed and carriage return. U+0000 in particular cannot be
# stored in PostgreSQL text: the contract refuses it, so the topics and the read model never disagree.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


PERSONAL_DATA = "personal data must not leave the university"  # the marker of reason code personal_data
# Personal data in free text (docs/security.md, "Personal data"): mainland mobile numbers, resident ID card
# numbers (18 characters: region, birth date, sequence, check digit), e-mail addresses, and any other run of
# 9 or more digits (student numbers are 8 to 13 digits at member universities; no free-text field of the
# contract needs such a number).
_PERSONAL = (
    ("a phone number", _PHONE),
    ("a resident ID card number", re.compile(
        r"(?<![0-9A-Za-z])\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9A-Za-z])")),
    ("an e-mail address", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("a student or ID number (9 or more digits)", re.compile(r"(?<!\d)\d{9,}(?!\d)")),
)


# What every personal-data pattern needs: an "@" (e-mail), or a digit followed by 8 more digits, spaces or
# hyphens (a phone number has 11 digits, an ID card number 18 characters, a student number 9 digits). Most
# texts have neither, and this one scan is far cheaper than the four patterns (they run on every text field
# of every event).
_MAY_BE_PERSONAL = re.compile(r"@|\d[\d -]{8}")


def _clean_text(value: str) -> str:
    if (bad := _CONTROL.search(value)) is not None:
        raise ValueError(f"contains the control character U+{ord(bad.group()):04X}; text must be printable")
    if _MAY_BE_PERSONAL.search(value):
        for what, pattern in _PERSONAL:
            if pattern.search(value):
                raise ValueError(f"looks like {what}; {PERSONAL_DATA}")
    return value


def _known_university(value: str) -> str:
    if value not in UNIVERSITIES:
        raise ValueError(f"unknown university code {value!r}; members: {', '.join(sorted(UNIVERSITIES))}")
    return value


def _minted_by_a_member(value: str) -> str:
    """A pseudonym ps.<university>.<key id>.<hex> names a member university (only it may erase the seeker)."""
    if value.startswith("ps.") and value.split(".")[1] not in UNIVERSITIES:
        raise ValueError(f"the pseudonym names no member university ({value.split('.')[1]!r})")
    return value


def _plausible_date(value: date) -> date:
    if not date(2000, 1, 1) <= value <= date(2100, 1, 1):
        raise ValueError("date outside 2000-01-01 .. 2100-01-01")
    return value


def _plausible_datetime(value: datetime) -> datetime:
    _plausible_date(value.date())
    return value.astimezone(UTC)


EntityId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,79}$", description="stable entity id")]
SeekerId = Annotated[
    str,
    Field(pattern=r"^(ps_[0-9a-f]{32}|ps\.[a-z]+\.[a-z0-9]{1,12}\.[0-9a-f]{32})$",
          description="HMAC pseudonym of a student id, ps.<university>.<key id>.<32 hex> (events.privacy); "
                      "the first form ps_<32 hex> stays valid"),
    AfterValidator(_minted_by_a_member),
]
UniversityCode = Annotated[str, AfterValidator(_known_university)]
ShortText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_clean_text)]
LongText = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_clean_text)]
Timestamp = Annotated[AwareDatetime, AfterValidator(_plausible_datetime)]
Day = Annotated[date, AfterValidator(_plausible_date)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Event(BaseModel):
    """The envelope. Subclasses pin ``type`` to a Literal and give ``data`` a payload model.

    ``subject`` is the partition key: the id of the entity the event is about (``key_field`` of ``data``).
    It may be omitted on input and is then filled from the payload; when given it must match.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    key_field: ClassVar[str]
    family: ClassVar[str]
    version: ClassVar[int] = 1  # the type's newest schema version (docs/events.md, "Schema evolution")

    event_id: UUID = Field(default_factory=uuid4)
    type: str
    source: UniversityCode = Field(description="code of the member university that publishes the event")
    occurred_at: Timestamp
    schema_version: Annotated[int, Field(ge=1, description="the version of its type's schema the event follows "
                                                      "(1 up to the type's newest)")] = 1
    subject: EntityId | None = None
    data: Payload

    @model_validator(mode="after")
    def _known_version(self) -> Event:
        if self.schema_version > self.version:
            raise ValueError(f"schema_version {self.schema_version}: {self.type} has versions 1 to {self.version}")
        return self

    @model_validator(mode="after")
    def _subject_matches(self) -> Event:
        expected = getattr(self.data, self.key_field)
        if self.subject is None:
            object.__setattr__(self, "subject", expected)  # filled once, during validation
        elif self.subject != expected:
            raise ValueError(f"subject {self.subject!r} must equal data.{self.key_field} {expected!r}")
        return self

    @property
    def target_family(self) -> str:
        """The family whose canonical topic carries the event (a revision's: its original's)."""
        return self.family

    @property
    def key(self) -> bytes:
        return str(self.subject).encode()

    def to_json(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self)  # = model_dump_json().encode(), without the copy


def future_problem(event: Event, reference: datetime) -> str | None:
    """Why ``event`` lies too far in the future of ``reference`` (None when it does not)."""
    if event.occurred_at > reference + MAX_CLOCK_SKEW:
        return (f"occurred_at {event.occurred_at.isoformat()} is more than {MAX_CLOCK_SKEW} after "
                f"{reference.astimezone(UTC).isoformat()}")
    return None
