"""The processes the CLI starts and what keeps them honest: the worker's supervisor (its loop,
signals and shutdown), the children it forks (job slots and the pod's duties process: leases,
load report), the slot board they share, the liveness probe file, and beat.

Must not run a job's code itself (a slot hands each message to `execution/`) nor hold job
rules: those live in the rooms below.
"""
