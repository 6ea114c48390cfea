"""The day: every valid event of an alliance day, and the records in publish order with noise."""


from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date

from events.base import Event
from events.simulator.families import Ctx, job_fair, mentoring, recruitment, services
from events.simulator.noise import insert_noise, later_slot, noise, reorder, valid_record
from events.simulator.revisions import revise_day
from events.simulator.world import (
    DEFAULT_DAY,
    DEFAULT_PSEUDONYM_KEY,
    FAIRS,
    Record,
    make_employers,
    make_students,
    remint_ids,
)

# --------------------------------------------------------------------------------------------------
# the day
# --------------------------------------------------------------------------------------------------


def day_events(*, seed: int = 7, scale: float = 1.0, day: date = DEFAULT_DAY,
               pseudonym_key: str = DEFAULT_PSEUDONYM_KEY) -> tuple[random.Random, list[Event]]:
    """Every valid event of the day in occurred_at order (and the random source, to continue with)."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    rng = random.Random(seed)
    ctx = Ctx(rng, day, scale, make_students(rng, scale, pseudonym_key), make_employers(rng, scale))
    recruiting, postings = recruitment(ctx)
    events = recruiting + [e for plan in FAIRS for e in job_fair(ctx, plan)] + mentoring(ctx)
    events += services(ctx, postings)
    order = sorted(range(len(events)), key=lambda i: (events[i].occurred_at, i))
    return rng, [events[i] for i in order]


def alliance_day(*, seed: int = 7, scale: float = 1.0, day: date = DEFAULT_DAY,
                 pseudonym_key: str = DEFAULT_PSEUDONYM_KEY,
                 duplicate_rate: float = 0.02, invalid_rate: float = 0.01, spoofed_rate: float = 0.005,
                 foreign_rate: float = 0.002, out_of_order_rate: float = 0.02,
                 uuid_versions: Sequence[int] = (4,), revision_rate: float = 0.0) -> list[Record]:
    """The records of one alliance day, in publish order (see the module docstring).

    Deterministic: the same arguments give the same list. ``scale=1`` gives about 20,000 records.
    ``uuid_versions`` other than (4,) re-mint the event ids with those versions in turn (see minted_id).
    ``revision_rate``: the share of events their university retracts or corrects later in the day
    (events.simulator.revisions; each revision is published after its original, with the same key).
    """
    for name, rate in (("revision_rate", revision_rate), ("duplicate_rate", duplicate_rate),
                       ("invalid_rate", invalid_rate), ("spoofed_rate", spoofed_rate), ("foreign_rate", foreign_rate),
                       ("out_of_order_rate", out_of_order_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be within 0..1")
    rng, events = day_events(seed=seed, scale=scale, day=day, pseudonym_key=pseudonym_key)
    if tuple(uuid_versions) != (4,):
        events = remint_ids(events, uuid_versions, seed)
    ordered = reorder(rng, events, out_of_order_rate)
    base = [valid_record(e) for e in ordered]
    if revision_rate:
        slot_of: dict[int, int] = {}  # one slot per original: a correction and its retraction stay in order
        base = insert_noise(rng, base, [(slot_of.setdefault(i, later_slot(rng, i, len(base))), valid_record(revision))
                                        for i, revision in revise_day(rng, ordered, revision_rate)])
    extra = noise(rng, base, day=day, duplicate_rate=duplicate_rate, invalid_rate=invalid_rate,
                  spoofed_rate=spoofed_rate, foreign_rate=foreign_rate)
    return insert_noise(rng, base, extra)
