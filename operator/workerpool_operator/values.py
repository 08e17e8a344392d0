"""Rules for single values that another program parses: the kubelet (image references) and
the workerpool runtime (queues, time zones, the Redis URL of an external Secret). A value these
programs would refuse must be refused here first, so a bad spec stalls the pool instead of
crash-looping its pods.

The CRD carries the same rules as schema patterns/enums where a schema can express them (a
test keeps the two in step); a time zone needs the zone database, so only this module checks
it. Pure; must not import kubernetes, kopf or the runtime (a contract test compares them).
"""

from __future__ import annotations

import re
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workerpool_operator import profiles
from workerpool_operator.errors import SpecError

# distribution/reference's grammar (the one the kubelet and containerd parse), written out:
# [host[:port]/]path[:tag][@digest]. Hand-written because no well-kept Python package exposes
# it (docker-py's `parse_repository_tag` splits without validating).
_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_PART: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN: Final = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_TAG: Final = r"[\w][\w.-]{0,127}"
_DIGEST: Final = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_PATTERN: Final = (
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$"
)
_IMAGE: Final = re.compile(IMAGE_PATTERN)
MAX_IMAGE_LENGTH: Final = 512


def check_image(path: str, value: str) -> str:
    """An image reference the kubelet can pull, e.g. registry.example:5000/team/app:1.2."""
    if len(value) > MAX_IMAGE_LENGTH or not _IMAGE.match(value):
        raise SpecError(
            path,
            f"{value!r} is not an image reference (expected [registry/]name[:tag][@digest], "
            "lower-case name, no spaces)",
        )
    return value


def check_timezone(path: str, value: str) -> str:
    """An IANA zone the runtime accepts for WORKERPOOL_TIMEZONE (it refuses others at start)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpecError(
            path, f"{value!r} is not an IANA time zone (examples: UTC, Europe/Berlin)"
        ) from None
    return value


def check_queues(path: str, values: tuple[str, ...]) -> tuple[str, ...]:
    """Queues `workerpool worker --queues` accepts: a non-empty subset of the runtime's."""
    if not values:
        raise SpecError(path, "needs at least one entry")
    for i, queue in enumerate(values):
        if queue not in profiles.DEFAULT_QUEUES:
            allowed = ", ".join(profiles.DEFAULT_QUEUES)
            raise SpecError(f"{path}[{i}]", f"{queue!r} is not one of {allowed}")
    return values


#: What the runtime accepts in CELERY_BROKER_URL / CELERY_RESULT_BACKEND.
REDIS_URL_SCHEMES: Final = ("redis://", "rediss://", "unix://")


def is_redis_url(value: str) -> bool:
    """Whether the runtime would accept `value` as its broker URL."""
    return value.startswith(REDIS_URL_SCHEMES)
