"""Unit tests of the benchmark's pure parts: ratios, rates, percentiles, verdicts, table and JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.report import Result, document, format_table, percentile, rate, ratio, write_json


def test_ratio_and_rate() -> None:
    assert ratio(30.0, 100.0) == pytest.approx(0.3)
    assert ratio(5.0, 0.0) is None
    assert ratio(float("nan"), 1.0) is None
    assert rate(1000, 2.0) == 500.0
    assert rate(0, 1.0) == 0.0
    assert rate(10, 0.0) == 0.0


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input


@pytest.mark.parametrize("bad", [-1, 101])
def test_percentile_rejects_bad_input(bad: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], bad)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_verdicts() -> None:
    ok = Result("a", 40.0, "ev/s", baseline=100.0, target=0.30)
    low = Result("b", 20.0, "ev/s", baseline=100.0, target=0.30)
    info = Result("c", 7.0, "ms", direction="info")
    lower = Result("d", 250.0, "ms", target=200.0, direction="lower")
    failed = Result("e", None, "ev/s", target=0.5, error="BenchError: broker down")
    no_baseline = Result("f", 5.0, "ev/s", target=0.5)
    assert ok.ratio == pytest.approx(0.4) and ok.passed is True
    assert low.passed is False
    assert info.passed is None and info.ratio is None
    assert lower.passed is False
    assert failed.passed is False
    assert no_baseline.passed is None


def test_table_has_every_result_and_verdict() -> None:
    results = [
        Result("pipeline events/s", 4321.5, "ev/s", baseline=98765.0, target=0.30),
        Result("publisher events/s", 9000.0, "ev/s", baseline=10000.0, target=0.50),
        Result("latency p99", 123.4, "ms", direction="info", note="20% load"),
        Result("projector rows/s", None, "rows/s", target=0.5, error="BenchError: x"),
    ]
    table = format_table(results)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["measurement", "value"]
    assert set(lines[1]) <= {"-", " "}
    assert "4,322 ev/s" in table and "98,765 ev/s" in table and "0.044" in table
    assert "FAIL" in lines[2] and "PASS" in lines[3] and "info" in lines[4] and "ERROR" in lines[5]
    assert ">= 0.30x" in lines[2]
    assert "latency p99: 20% load" in table and "projector rows/s: BenchError: x" in table
    widths = {len(line) for line in lines[:2]}
    assert len(widths) == 1  # header and rule line up


def test_document_and_json(tmp_path: Path) -> None:
    results = [Result("p", 30.0, "ev/s", baseline=100.0, target=0.3, parameters={"events": 10}),
               Result("q", 1.0, "ms", direction="info")]
    doc = document(results, {"events": 10}, {"profile": {"top": []}},
                   now=datetime(2026, 1, 1, tzinfo=UTC))
    assert doc["summary"] == {"passed": 1, "failed": 0, "info": 1}
    first = doc["results"][0]
    assert first["ratio"] == 0.3 and first["pass"] is True and first["target"] == 0.3
    assert first["value"] == 30.0 and first["baseline"] == 100.0 and first["parameters"] == {"events": 10}
    assert doc["profile"] == {"top": []} and doc["generated_at"].startswith("2026-01-01")
    out = tmp_path / "sub" / "result.json"
    write_json(out, doc)
    assert json.loads(out.read_text())["results"][1]["pass"] is None
