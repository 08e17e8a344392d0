"""Workers used by the runtime integration tests. Each records what it did in Redis, so a
test can see every run from outside the worker process."""
