"""``python -m bench``: throughput and latency ratios against baselines measured in the same run.

Every result compares the project's code with a bare baseline measured on the same broker/database in the
same run (see docs/benchmarks.md). Pure helpers (ratios, percentiles, the table, the JSON) live in
``bench.report``; the measurements in ``bench.pipeline``, ``bench.publisher``, ``bench.projector``.
"""
