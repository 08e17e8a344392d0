"""The Redis structures that hold jobs outside a queue: the schedule set (scheduled jobs and
retries), the dead set, results and their job counters, and the enqueue step itself.

Owns the keys and the Lua scripts that change them, so every caller (`perform_*`, a job slot,
the CLI, the pages) moves a job by the same atomic step. Must not import Celery's worker
machinery or know which process calls it.
"""
