"""The fair board's pure part (consumers.board): what a board shows of the fairs' aggregated topic."""

from __future__ import annotations

import json

from consumers.board import HISTORY, Boards


def _record(fair: str, at: str, booths: int, checkins: int, offers: int, status: str = "open") -> bytes:
    return json.dumps({"aggregate": "fairs", "key": {"id": fair}, "updated_at": at, "value": {
        "status": status, "name": "CQU autumn fair", "host_university": "cqu", "city": "chongqing",
        "booths": booths, "distinct_checkins": checkins, "onsite_offers": offers}}).encode()


def test_newest_figures_history_tombstones_and_bad_records() -> None:
    boards = Boards()
    assert boards.apply(b"f1", _record("f1", "2026-11-26T09:00:00+08:00", 2, 5, 0)) == "f1"
    assert boards.apply(b"f1", _record("f1", "2026-11-26T10:00:00+08:00", 3, 9, 1)) == "f1"
    # an older record arriving late does not move the board back
    assert boards.apply(b"f1", _record("f1", "2026-11-26T09:30:00+08:00", 2, 7, 0)) is None
    # the same figures again add no point to the history
    assert boards.apply(b"f1", _record("f1", "2026-11-26T10:05:00+08:00", 3, 9, 1)) == "f1"
    figures = boards.fairs["f1"]
    assert figures.value["distinct_checkins"] == 9 and figures.updated_at.startswith("2026-11-26T02:05")
    assert [p[1:] for p in figures.history] == [(2, 5, 0), (3, 9, 1)]
    message = json.loads(boards.message("f1", {"university": "cqu", "seekers": 4}) or "")
    assert message["fair"]["onsite_offers"] == 1 and message["host"]["seekers"] == 4 and len(message["history"]) == 2
    # not a fair record (a forged or broken one): counted, never shown
    assert boards.apply(b"f2", b'{"aggregate": "fairs", "key": {"id": "f2"}}') is None
    assert boards.apply(None, _record("f3", "2026-11-26T10:00:00+08:00", 1, 1, 1)) is None
    assert boards.rejected == 2 and boards.message("f2", None) is None
    # a tombstone removes the fair
    assert boards.apply(b"f1", None) == "f1" and boards.message("f1", None) is None


def test_history_is_bounded() -> None:
    boards = Boards()
    for i in range(HISTORY + 50):
        boards.apply(b"f", _record("f", f"2026-11-26T10:{i // 60:02d}:{i % 60:02d}+08:00", 1, i, 0))
    history = boards.fairs["f"].history
    assert len(history) == HISTORY and history[-1][2] == HISTORY + 49 and history[0][2] == 50
