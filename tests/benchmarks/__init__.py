"""Benchmarks of workerpool beside plain Celery, in one run: `python -m tests.benchmarks`.

Not part of the test suite's pass/fail (only `tests/integration/test_benchmarks_smoke.py` runs
the `--smoke` mode, to keep the code working). Each scenario family has its own module, the
processes and Redis live in `harness.py`, the table and JSON in `report.py`.
"""
