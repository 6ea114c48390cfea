"""Work-arounds for two defects of the topic-suffix support (commit 1e3e133) that stop a suffixed worker
from processing anything. Both are detected, never assumed; when neither is present the benchmark runs the
plain ``python -m streams worker``. Remove this module once streams/ and infra/settings.py are fixed.

1. ``Settings.topic`` is a @property that takes a name: ``streams.create_app`` raises TypeError.
2. ``streams.ingest.university_of`` does not strip the suffix: with ``ALLIANCE_TOPIC_SUFFIX`` set every
   event's university is ``<code><suffix>`` and the whole input goes to the DLQ as ``spoofed_source``.
"""

from __future__ import annotations

import inspect

from infra.settings import Settings

PROBE_SUFFIX = ".bench-probe"


def settings_topic_is_broken() -> bool:
    return isinstance(inspect.getattr_static(Settings, "topic"), property)


def ingest_ignores_suffix() -> bool:
    from streams import ingest

    university_of = getattr(ingest, "university_of", None)
    if university_of is None:  # fixed upstream: classify() is given the university, not the topic
        return False
    try:
        return bool(university_of("alliance.ingest.scu" + PROBE_SUFFIX) != "scu")
    except ValueError:
        return True


def defects() -> list[str]:
    found = []
    if settings_topic_is_broken():
        found.append("infra.settings.Settings.topic is a @property taking a name (create_app raises TypeError)")
    if ingest_ignores_suffix():
        found.append("streams.ingest.university_of keeps ALLIANCE_TOPIC_SUFFIX in the university code "
                     "(every suffixed event is rejected as spoofed_source)")
    return found


def apply(suffix: str) -> list[str]:
    """Repair both defects in this process (the worker's); returns what was repaired."""
    repaired = []
    if settings_topic_is_broken():
        def topic(self: Settings, name: str) -> str:
            return f"{name}{self.topic_suffix}"

        Settings.topic = topic  # type: ignore[method-assign]
        repaired.append("Settings.topic")
    if suffix and ingest_ignores_suffix():
        from streams import ingest

        original = ingest.__dict__["university_of"]

        def university_of(topic: str) -> str:
            return str(original(topic.removesuffix(suffix)))

        setattr(ingest, "university_of", university_of)  # noqa: B010
        repaired.append("streams.ingest.university_of")
    return repaired
