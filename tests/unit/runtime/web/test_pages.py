"""The job pages' frame without a server: the read-only switch, routes, pager lines."""

from __future__ import annotations

import pytest

from worker_runtime.core.settings import SettingsError
from worker_runtime.web import pages
from worker_runtime.web.paging import shown


@pytest.mark.parametrize(("raw", "expected"), [("", False), ("false", False), ("TRUE", True)])
def test_read_only_mode_is_opt_in(raw: str, expected: bool) -> None:
    assert pages.read_only({pages.READ_ONLY: raw}) is expected


def test_a_read_only_value_that_is_not_a_boolean_is_named() -> None:
    with pytest.raises(SettingsError, match="WORKERPOOL_PAGES_READ_ONLY='maybe'"):
        pages.read_only({pages.READ_ONLY: "maybe"})


def test_a_route_registered_twice_is_an_error() -> None:
    import worker_runtime.web.views.dead  # noqa: F401  (registers /dead)

    with pytest.raises(ValueError, match="registered twice"):
        pages.route(r"/dead", pages.JobPage)


def test_the_pager_says_which_jobs_are_shown() -> None:
    assert shown(50, 50, 100_000) == "51-100 of 100,000 jobs"
    assert shown(0, 0, 0) == "0 jobs"
    assert shown(0, 1, 1, "dead job") == "1-1 of 1 dead job"
