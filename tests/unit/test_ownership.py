"""events.ownership: a university changes only the postings, fairs and mentors it owns (their ids name it);
the ingest refuses anything else with ``not_owner``, and so does the publisher, before sending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events import jobfair as j
from events import mentoring as m
from events import recruitment as r
from events.base import Event
from events.codec import encode
from events.errors import REASON_CODES, EventValidationError
from events.ownership import owned_entity, owner_of, ownership_problem
from events.tools.publisher import check_event
from streams.ingest import Accepted, Rejected, classify
from tests.unit.test_streams_handlers import SEEKER, T0, closed, posted

NOW = datetime.now(UTC)


def test_an_owned_id_names_its_owner() -> None:
    assert owner_of("scu-job-00012") == "scu"
    assert owner_of("cqu-fair-2026-autumn") == "cqu"
    assert owner_of("nobody-job-1") is None  # not a member university
    assert owner_of("scu") is None and owner_of("scu-") is None and owner_of("job-1") is None


def _foreign_events() -> list[Event]:
    """SWUPL, on its own ingest topic, about what SCU and CQU own: the attack of issue #14."""
    at = NOW - timedelta(minutes=5)
    return [
        r.JobPostingClosed(source="swupl", occurred_at=at,
                           data=r.JobPostingClosedData(posting_id="scu-job-1", reason=r.CloseReason.WITHDRAWN)),
        r.JobPostingUpdated(source="swupl", occurred_at=at,
                            data=r.JobPostingUpdatedData(posting_id="scu-job-1", positions=9999)),
        r.ApplicationSubmitted(source="swupl", occurred_at=at, data=r.ApplicationSubmittedData(
            posting_id="scu-job-1", application_id="swupl-app-1", seeker_id=SEEKER, degree="bachelor")),
        j.JobFairClosed(source="swupl", occurred_at=at, data=j.JobFairClosedData(fair_id="cqu-fair-1")),
        m.MentoringSessionHeld(source="swupl", occurred_at=at, data=m.MentoringSessionHeldData(
            mentor_id="cqu-mentor-001", session_id="s-1", seeker_ids=[SEEKER], duration_minutes=60,
            topic="career_planning")),
        posted("job-without-owner", source="swupl", at=at),  # an owned id must name its owner
    ]


@pytest.mark.parametrize("event", _foreign_events(), ids=lambda e: e.type)
def test_the_ingest_refuses_changes_to_what_another_university_owns(event: Event) -> None:
    assert ownership_problem(event) is not None
    result = classify(encode(event), "swupl", lambda _k: None, partition=0, offset=7, received_at=NOW)
    assert isinstance(result, Rejected) and result.reason == "not_owner", result
    assert result.event_id == str(event.event_id)  # the DLQ copy says which event
    with pytest.raises(EventValidationError, match="subject"):  # the publisher refuses it before sending
        check_event(event, "swupl")


def test_owners_and_shared_entities_pass() -> None:
    own = posted("swupl-job-1", source="swupl", at=NOW - timedelta(minutes=5))
    assert ownership_problem(own) is None and owned_entity(own) == "swupl-job-1"
    assert isinstance(classify(encode(own), "swupl", lambda _k: None, partition=0, offset=1, received_at=NOW),
                      Accepted)
    flag = r.EmployerFlagged(source="swupl", occurred_at=NOW - timedelta(minutes=5), data=r.EmployerFlaggedData(
        employer_id="emp-1", severity=r.FlagSeverity.SUSPENDED, reason="unpaid wages"))
    assert owned_entity(flag) is None and ownership_problem(flag) is None  # shared: its own rule (below)
    assert closed("scu-job-1", T0).source == "scu" and ownership_problem(closed("scu-job-1", T0)) is None
    assert "not_owner" in REASON_CODES


def test_an_employer_keeps_each_universitys_flag_apart() -> None:
    """The shared-entity rule in the worker's state: one university's suspension is its own judgement."""
    from streams.domains import domains
    from tests.unit.test_streams_handlers import apply_all

    def flag(source: str, severity: r.FlagSeverity, minutes: int) -> r.EmployerFlagged:
        return r.EmployerFlagged(source=source, occurred_at=T0 + timedelta(minutes=minutes),
                                 data=r.EmployerFlaggedData(employer_id="emp-1", severity=severity, reason="x"))

    events = [flag("scu", r.FlagSeverity.WARNING, 1), flag("cqu", r.FlagSeverity.SUSPENDED, 2),
              flag("scu", r.FlagSeverity.SUSPENDED, 3), flag("scu", r.FlagSeverity.WARNING, 0)]  # late, older
    for order in (events, events[::-1]):
        state = apply_all(domains()["recruitment"], order)["employer:emp-1"]
        assert state["by_university"] == {"scu": ["suspended", (T0 + timedelta(minutes=3)).isoformat()],
                                          "cqu": ["suspended", (T0 + timedelta(minutes=2)).isoformat()]}
        assert state["flags"] == 4
