"""A domain's declared contribution fields (``streams.domains.base.Domain.contribution_fields``): the engine does not
compute an entity's contributions again when an event leaves every one of those fields as it was. A declaration
that missed a field the contributions read would leave partials stale, so every declaration is checked against
every state of three simulated days (with revisions; the days share entity ids, so postings gather talent flows
across days), and the engine with the declarations publishes exactly what it publishes without them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from functools import lru_cache
from typing import Any

from events.base import Event
from events.simulator import DEFAULT_DAY, alliance_day
from streams import engine
from streams.contributions import Contributions, State
from streams.domains import Domain, domains

PREFIXES = {"posting": "recruitment", "employer": "recruitment", "fair": "jobfair", "mentor": "mentoring",
            "seeker": "services"}


@lru_cache(maxsize=1)
def _events() -> list[Event]:
    return [r.event for i in range(3)
            for r in alliance_day(seed=20 + i, scale=0.1, day=DEFAULT_DAY - timedelta(days=2 - i), duplicate_rate=0.0,
                                  invalid_rate=0.0, spoofed_rate=0.0, foreign_rate=0.0, revision_rate=0.05)
            if r.kind == "valid" and r.event is not None]


def _counted(doms: Mapping[str, Domain], calls: list[int], declared: bool) -> dict[str, Domain]:
    def counting(contributions: Callable[[State], Contributions]) -> Callable[[State], Contributions]:
        def count(state: State) -> Contributions:
            calls[0] += 1
            return contributions(state)
        return count
    return {f: replace(d, contributions=counting(d.contributions),
                       contribution_fields=d.contribution_fields if declared else None) for f, d in doms.items()}


def _run(doms: Mapping[str, Domain], events: list[Event]) -> tuple[dict[str, Any], list[Any]]:
    table: dict[str, Any] = {}
    published = []
    for start in range(0, len(events), 500):
        out = engine.process([(0, e) for e in events[start:start + 500]], doms, lambda key, _p: table.get(key))
        table.update({k: v for k, (_, v) in out.states.items()})
        table.update({engine.partial_key(pk): v for pk, v in out.partials.items()})
        published.append((out.partials, out.views, out.failed))
    return table, published


def test_the_engine_publishes_the_same_with_the_declarations_and_computes_far_fewer_contributions() -> None:
    events = _events()
    with_calls, without_calls = [0], [0]
    table, published = _run(_counted(domains(), with_calls, True), events)
    assert (table, published) == _run(_counted(domains(), without_calls, False), events)
    assert sum(len(p[0]) for p in published) > 500 and not any(p[2] for p in published)
    assert with_calls[0] < 0.75 * without_calls[0], (with_calls, without_calls)


def test_every_declaration_names_every_field_the_contributions_read() -> None:
    table, _ = _run(domains(), _events())
    doms = domains()
    checked: dict[str, int] = dict.fromkeys(doms, 0)
    flows = 0
    for key, state in table.items():
        family = PREFIXES.get(key.split(":", 1)[0]) if "|" not in key else None
        if family is None or not isinstance(state, dict):
            continue
        domain = doms[family]
        assert domain.contribution_fields is not None, family
        stripped = {f: state[f] for f in domain.contribution_fields if f in state}
        assert domain.contributions(stripped) == domain.contributions(state), key
        checked[family] += 1
        flows += len(state.get("flows") or {}) > 3
    assert min(checked.values()) >= 2 and checked["recruitment"] >= 50 and flows >= 10, (checked, flows)
