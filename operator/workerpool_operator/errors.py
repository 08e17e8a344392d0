"""Every error the operator raises, as plain exceptions that carry their retry meaning.

One place for the vocabulary: `SpecError` (the spec is wrong; only its author can fix it),
`ApiRejected` (the API server refused a request: a child it will not accept, or RBAC forbids
it) and `ApiUnavailable` (worth retrying as is). Raised by the pure core and by `cluster.py`;
only `handlers.py` turns them into kopf's PermanentError/TemporaryError. Pure: must not import
kopf or kubernetes.
"""

from __future__ import annotations

from typing import Final

#: Seconds before retrying a request that failed for a reason that may pass by itself.
DEFAULT_RETRY_SECONDS: Final = 10.0


class SpecError(ValueError):
    """A WorkerPool spec the operator cannot run; the message says which field and why."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


#: The API server's answer to a request RBAC does not allow. Treated alike wherever it occurs:
#: not permanent, because the fix (the operator's Role) lies outside the pool.
FORBIDDEN: Final = "Forbidden"
#: A ResourceQuota of the pool's namespace refuses an object or a pod; the fix is the quota
#: (or fewer objects), outside the pool's spec, so it is retried.
QUOTA_EXCEEDED: Final = "QuotaExceeded"
#: A child object the API server refuses (400/422): only a spec change can fix it.
APPLY_REJECTED: Final = "ApplyRejected"


class ApiError(Exception):
    """A request to the Kubernetes API failed; `reason` is a CamelCase status reason."""

    #: True when only an edit of the WorkerPool can help (no retry until it changes).
    permanent = False

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ApiRejected(ApiError):
    """The API server refused the request itself (400/422: `ApplyRejected`; 403: `Forbidden`):
    sending it again unchanged cannot help, but a fix outside the pool (RBAC) may."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.permanent = reason not in (FORBIDDEN, QUOTA_EXCEEDED)


class ApiUnavailable(ApiError):
    """The request may succeed if sent again: unreachable API, conflict, 5xx, throttling."""

    def __init__(self, reason: str, message: str, delay: float = DEFAULT_RETRY_SECONDS) -> None:
        super().__init__(reason, message)
        self.delay = delay
