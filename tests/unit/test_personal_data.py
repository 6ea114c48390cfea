"""Personal data in free text is refused (reason ``personal_data``) and its DLQ copy keeps no value."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from events.codec import decode
from events.errors import EventValidationError
from streams.batch import Raw, Writes
from streams.ingest import Rejected, classify
from tests.unit.test_streams_handlers import posted

NOW = datetime.now(UTC)
CANARIES = {
    "phone": "请联系 138 0013 8000",
    "id card": "身份证 51010419900307123X",
    "e-mail": "write to zhang.san@stu.scu.edu.cn",
    "student number": "学号 2023141460123",
}
HARMLESS = ["Backend engineer 2026", "Positions: 12, salary 8000-14000", "Room 101, Building 3", "Tel. desk"]


def _raw_with_description(text: str) -> bytes:
    obj = json.loads(posted("scu-job-9", at=NOW - timedelta(minutes=1)).to_json())
    obj["data"]["description"] = text
    return json.dumps(obj, ensure_ascii=False).encode()


@pytest.mark.parametrize("text", CANARIES.values(), ids=CANARIES.keys())
def test_personal_data_in_free_text_is_refused_with_its_own_reason(text: str) -> None:
    raw = _raw_with_description(text)
    with pytest.raises(EventValidationError) as info:
        decode(raw)
    assert info.value.reason_code == "personal_data"
    assert "personal data must not leave the university" in str(info.value)
    for part in text.split():  # the message names the kind of data, never the data itself
        assert not (part.isdigit() and part in str(info.value))


@pytest.mark.parametrize("text", HARMLESS)
def test_ordinary_text_passes(text: str) -> None:
    decode(_raw_with_description(text))


def test_the_dlq_copy_of_a_personal_data_reject_keeps_no_value() -> None:
    raw_value = _raw_with_description(CANARIES["id card"])
    result = classify(raw_value, "scu", lambda _k: None, partition=0, offset=3, received_at=NOW)
    assert isinstance(result, Rejected) and result.reason == "personal_data"
    writes = Writes()
    writes.reject("alliance.dlq", Raw("alliance.ingest.scu", 0, 3, None, b"scu-job-9", raw_value), result)
    [(_topic, key, value, headers)] = writes.records
    assert value is None and key is None and len(dict(headers)["x-alliance-key-sha256"]) == 64
    h = dict(headers)
    assert h["x-alliance-reject-reason"] == b"personal_data"
    assert int(h["x-alliance-value-redacted-from"]) == len(raw_value) and len(h["x-alliance-value-sha256"]) == 64
    assert b"51010419900307123X" not in b"".join(v for _, v in headers)


def test_the_cheap_pre_check_never_hides_a_text_a_personal_data_pattern_finds() -> None:
    """events.base runs the four patterns only on texts the one-scan pre-check flags: every text that any
    pattern matches must be flagged (random texts over digits, separators, "@", full-width digits, "X")."""
    import random

    from events import base

    rng = random.Random(20261203)
    alphabet = "0123456789 -+@.abXx８９\u3000"
    matched = 0
    for _ in range(60_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 28)))
        if any(pattern.search(text) for _, pattern in base._PERSONAL):
            matched += 1
            assert base._MAY_BE_PERSONAL.search(text), text
    assert matched > 1_000
    for text in CANARIES.values():
        assert base._MAY_BE_PERSONAL.search(text), text
