"""`python -m worker_runtime` is the `workerpool` command."""

from worker_runtime.cli import main

main()
