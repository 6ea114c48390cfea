"""Unit tests of the benchmark's pure helpers outside bench.report (no broker, no database, no timing)."""

from __future__ import annotations

from bench.profile import Hotspot, format_hotspots, pure_path
from bench.projector import canonical, with_database
from bench.workload import generate, items
from events.codec import decode
from events.topics import family_topic


def test_generator_is_valid_and_deterministic() -> None:
    evs = generate(300, seed=3)
    assert len(evs) == 300
    assert [e.event_id for e in evs] == [e.event_id for e in generate(300, seed=3)]
    its = items(evs)
    assert all(decode(it.value) == it.event for it in its)
    assert {it.topic for it in its} <= {f"alliance.ingest.{e.source}" for e in evs}
    assert len({e.family for e in evs}) == 4


def test_pure_path_accepts_every_generated_event_once() -> None:
    its = items(generate(200, seed=5))
    assert pure_path(its, batch=64) == 200
    assert pure_path(its + its[:10], batch=64) == 200  # duplicates are rejected


def test_canonical_records_and_dsn() -> None:
    its = items(generate(20, seed=1))
    for c, it in zip(canonical(its), its, strict=True):
        assert c.topic == family_topic(it.event.family) and c.key == it.event.key
    assert with_database("postgresql://u@127.0.0.1:5432/postgres", "bench_x") == "postgresql://u@127.0.0.1:5432/bench_x"


def test_hotspot_format() -> None:
    text = format_hotspots([Hotspot("streams/engine.py:33(process)", 5, 0.5, 1.0, 0.25)])
    assert "25.0%" in text and "streams/engine.py:33(process)" in text
