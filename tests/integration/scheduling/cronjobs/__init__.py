"""Cron workers for the scheduling tests, one module per scenario.

They live outside `tests.integration.runtime.jobs` because a beat fires every cron worker of
the packages it loads: each test points WORKER_PACKAGES at just the module it needs.
"""
