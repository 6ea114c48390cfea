"""The DLQ census behind `dlq watch` (events.tools.dlq.Census): counts per reason and university, ages, and
what retention deleted."""

from __future__ import annotations

from events.tools.dlq import Census, Reject


def _reject(partition: int, offset: int, ts: int, reason: str, university: str = "scu") -> Reject:
    return Reject(partition, offset, ts, university, reason, "", None, "t[0]@0", None)


def test_counts_ages_and_retention() -> None:
    census = Census()
    for offset, (ts, reason) in enumerate([(1_000, "invalid"), (5_000, "invalid"), (2_000, "unprocessable")]):
        census.add(_reject(0, offset, ts, reason))
    census.add(_reject(1, 40, 3_000, "invalid", "cqu"))
    counts, oldest, newest = census.figures(now_ms=11_000)
    assert counts == {("invalid", "scu"): 2, ("unprocessable", "scu"): 1, ("invalid", "cqu"): 1}
    assert oldest == {"invalid": 10.0, "unprocessable": 9.0} and newest == {"invalid": 6.0, "unprocessable": 9.0}
    assert census.forget_before(0, 2) == 2  # retention deleted partition 0's first two records
    assert census.forget_before(1, 0) == 0 and census.forget_before(7, 10) == 0
    counts, oldest, _ = census.figures(now_ms=11_000)
    assert counts == {("unprocessable", "scu"): 1, ("invalid", "cqu"): 1} and oldest["invalid"] == 8.0
