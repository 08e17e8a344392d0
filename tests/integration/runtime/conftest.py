"""The runtime fixtures live in tests/integration/conftest.py; these names are re-exported for
the test modules that import the helper types from here."""

from tests.integration.conftest import JOBS, Proc, Spawn, ran

__all__ = ["JOBS", "Proc", "Spawn", "ran"]
