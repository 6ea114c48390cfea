"""A realistic, deterministic "alliance day": the records eight member universities publish in one day.

Pure generation, no I/O (publishing lives in events.simulator.publish, the command in
``python -m events.simulator``). ``alliance_day()`` returns the records in
publish order; the same arguments always give the same list (all randomness comes from one seeded
``random.Random``; event ids are drawn from it too).

What the day contains (numbers at ``scale=1``, about 20,000 records; everything scales linearly):

- recruitment at every university, weighted by size: ~1,000 postings with an industry skew per university,
  updates, ~5,000 applications by pseudonymous students, offers, accept/decline, hires, closes
  (filled/expired/withdrawn) and a few employer flags; every event of a posting is published by the
  university that posted it and keyed by ``posting_id``;
- a large job fair hosted by cqu (thousands of check-ins; students check in several times) and a smaller
  one hosted by uestc: scheduled, booths, check-ins, on-site offers, closed;
- the "Double Hundred" mentors: registered, assigned to students, sessions with several seekers;
- the 1-1-3-1 employment services; about a third of the served seekers get the full guarantee;
- noise, marked by ``Record.kind``: byte-identical duplicates, invalid records of many kinds, spoofed
  records (valid events published on another university's ingest topic), foreign records (a university, on
  its own topic and under its own name, closing or updating another's posting or closing its fair: refused
  as ``not_owner``) and out-of-order publication
  of valid records (``kind`` stays "valid"; ``occurred_at`` keeps the true time).

Days of history: the ids of what happens on a day carry the day (``scu-job-20261126-00001``, its applications
and offers, ``cqu-fair-2026-autumn-20261126``, mentoring sessions, counselling sessions, recommendations), so
days simulated one after the other (``--day``, the benchmark's history) are new postings and fairs, not the
same ones posted again with other data; the mentor pool is the same people every day, each with one profile,
and the students, employers, briefings and programs are the same too.

Timestamps lie between 08:00 and 20:00 Asia/Shanghai (stored as aware UTC datetimes) and are strictly
increasing along every entity's causal chain (posted < applied < offered < answered < hired < closed).

Parts: ``world`` (reference data of the day, helpers, event ids, students and employers), ``families`` (the
four event families), ``noise`` (publish order, duplicates, spoofed and invalid records), ``day`` (the day
itself), ``publish`` (sending a day to the ingest topics, and the command line).
"""

from __future__ import annotations

from events.simulator.day import alliance_day, day_events
from events.simulator.noise import MUTATORS, entity_of, invalid_record
from events.simulator.world import (
    DEFAULT_DAY,
    DEFAULT_PSEUDONYM_KEY,
    KINDS,
    LOCAL_TZ,
    UUID_VERSIONS,
    Kind,
    Record,
    minted_id,
    remint_ids,
)

__all__ = [
    "DEFAULT_DAY", "DEFAULT_PSEUDONYM_KEY", "KINDS", "LOCAL_TZ", "MUTATORS", "UUID_VERSIONS", "Kind", "Record",
    "alliance_day", "day_events", "entity_of", "invalid_record", "minted_id", "remint_ids",
]
