"""Pure values and rules of the runtime: settings, queues, Redis key names, the message
envelope, argument checks, retry backoff and cron arithmetic.

Every other room builds on these. Must not do I/O: no Redis, Celery, kombu, clock reads or
files (an import-linter contract forbids the clients); the time is always passed in.
"""
