"""One message to one attempt: the registry of worker classes and the Celery task each one
becomes (attempt.py: run, retry with backoff, or declare dead), lost-process accounting
(an attempt whose process died counts), and time limits.

Runs inside a job slot. Must not fetch messages or manage processes: the broker and the
supervisor do.
"""
