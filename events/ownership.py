"""Who may change what: the ownership rule of the contract (docs/events.md, "Ownership").

Postings, job fairs and mentors belong to the member university that created them, and their ids say so:
the id of an owned entity starts with its owner's code and a hyphen (``scu-job-00012``,
``cqu-fair-2026-autumn``, ``uestc-mentor-007``). Every event about such an entity (its creation, updates and
closing; applications, offers and hires on a posting; booths, check-ins and on-site offers at a fair; a
mentor's assignments and sessions) must come from its owner. Anything else is refused at ingest with the
reason ``not_owner`` and kept in the DLQ: a university cannot close, update or inflate another's posting,
fair or mentor, whatever order events arrive in, and the rule needs no state (a replay decides the same).

Shared entities are changed only by the rules stated here:

- employers (``recruitment.employer_flagged``): a flag records the flagging university's own judgement of the
  employer. It never changes another university's postings or flags; the employer's state keeps each
  university's latest flag apart (streams.domains.recruitment), and the alliance-wide view lists them by
  university instead of letting one member suspend an employer for all;
- job seekers (``services.*``, and the seeker named in applications, check-ins, assignments): a seeker is a
  pseudonym minted by the seeker's university with its key (events.privacy); the events about a seeker's
  services come from the university that serves them. Only the university named in the pseudonym
  (``ps.<university>.<key id>.<hex>``) may ask to erase the seeker (``services.seeker_erasure_requested``); a
  pseudonym of the first form (``ps_<hex>``) names no university, so any member may ask to erase it (an
  erasure changes no figure, only removes identifiers; docs/security.md).
"""

from __future__ import annotations

from events.base import Event
from events.corrections import EventCorrected, EventRetracted, entity_probe
from events.privacy import minted_by
from events.reference import UNIVERSITIES
from events.services import SeekerErasureRequested

OWNED_FAMILIES = frozenset({"recruitment", "jobfair", "mentoring"})  # their subject is an owned entity
SHARED_TYPES = frozenset({"recruitment.employer_flagged"})  # about a shared entity (its subject: an employer)


def owner_of(entity_id: str) -> str | None:
    """The university an owned entity's id names (None: the id names none)."""
    code, sep, rest = entity_id.partition("-")
    return code if sep and rest and code in UNIVERSITIES else None


def owned_entity(event: Event) -> str | None:
    """The id of the owned entity ``event`` changes (None: the event is about a shared entity)."""
    if event.family not in OWNED_FAMILIES or event.type in SHARED_TYPES or event.subject is None:
        return None
    return str(event.subject)


def ownership_problem(event: Event) -> str | None:
    """Why ``event``'s source may not change the entity it is about (None: it may). A revision is judged as
    the event it revises (events.corrections)."""
    if isinstance(event, EventCorrected):
        return ownership_problem(event.data.corrected)
    if isinstance(event, EventRetracted):
        return ownership_problem(entity_probe(event.data.type, str(event.subject), event.source))
    if isinstance(event, SeekerErasureRequested):
        minted = minted_by(str(event.subject))
        if minted is None or minted[0] == event.source:
            return None
        return f"job seeker {event.subject!r} belongs to {minted[0]!r}; only it may ask to erase them"
    entity = owned_entity(event)
    if entity is None:
        return None
    owner = owner_of(entity)
    if owner == event.source:
        return None
    if owner is None:
        return (f"{event.family} entity id {entity!r} does not start with its owner's code "
                f"({event.source!r}: '{event.source}-...')")
    return f"{entity!r} belongs to {owner!r}; {event.source!r} may not change it"
