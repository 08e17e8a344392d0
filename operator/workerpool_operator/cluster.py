"""The only module that talks to the Kubernetes API.

Plain HTTP through urllib3 (thread-safe connection pool), not the `kubernetes` client package:
every call here is a raw path + JSON body anyway, and that package (with its thousands of
generated model classes) cost the operator about 15 MB of RSS for nothing; Kopf, which reads
the same kubeconfig or service account for its own watches, hands over the login
(`Credentials`, built by handlers.py from `kopf.ConnectionInfo`), so both speak with the same
identity. A 401 (an expired, rotated service-account token) logs in again once and retries.

Applies objects with server-side apply (one fixed field manager, force=True), so applying an
unchanged object is a no-op on the server: no write, no resourceVersion bump. Reads, creates
once, deletes with a UID precondition, and writes the WorkerPool's status through the status
subresource. HTTP failures are translated here, once, into the errors of `errors.py`:
`ApiRejected` (the request itself is wrong, or RBAC forbids it) and `ApiUnavailable` (anything
worth retrying as is); only the handlers turn those into kopf's errors. Must not decide what
to apply, must not import kopf, and must never log or put Secret data into an error message.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import urllib3

from workerpool_operator import names
from workerpool_operator.errors import (
    APPLY_REJECTED,
    FORBIDDEN,
    QUOTA_EXCEEDED,
    ApiError,
    ApiRejected,
    ApiUnavailable,
)
from workerpool_operator.model import Json

FIELD_MANAGER: Final = names.OPERATOR
_APPLY: Final = "application/apply-patch+yaml"  # JSON is YAML: the body is sent as JSON
_MERGE_PATCH: Final = "application/merge-patch+json"
# A hung call must not freeze a handler.
_TIMEOUT: Final = urllib3.Timeout(connect=5, read=30)
#: Connections kept open to the API server: one per Kopf handler thread (cli.HANDLER_THREADS),
#: so no thread opens and drops a TLS connection per call.
POOL_SIZE: Final = 16
_PLURALS: Final[dict[tuple[str, str], str]] = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("v1", "Secret"): "secrets",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "Pod"): "pods",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    (names.API_VERSION, names.KIND): names.PLURAL,
}


def path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    collection = f"{prefix}/namespaces/{namespace}/{_PLURALS[(api_version, kind)]}"
    return collection if name is None else f"{collection}/{name}"


def _describe(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}"


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to authenticate to it (TLS context, headers)."""

    server: str  # e.g. https://10.96.0.1:443
    ssl_context: ssl.SSLContext | None
    headers: Mapping[str, str]  # Authorization, if any


class Cluster:
    """Thin synchronous API access; thread-safe for kopf's handler executor."""

    def __init__(self, login: Callable[[], Credentials]) -> None:
        """`login` is called now and again after a 401 (a token that expired)."""
        self._login = login
        self._lock = threading.Lock()
        self._credentials, self._http = self._connect()

    def _connect(self) -> tuple[Credentials, urllib3.PoolManager]:
        credentials = self._login()
        # Default retries, as the kubernetes client had: reconnects of dropped keep-alive
        # connections; urllib3 retries no read of a non-idempotent method.
        http = urllib3.PoolManager(
            num_pools=1, maxsize=POOL_SIZE, ssl_context=credentials.ssl_context
        )
        return credentials, http

    def _relogin(self, stale: Credentials) -> None:
        with self._lock:
            if self._credentials is stale:  # another thread may have done it already
                self._credentials, self._http = self._connect()

    # -- reads -------------------------------------------------------------------------------

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None:
        """The object, or None if it does not exist."""
        what = _describe(kind, namespace, name)
        return self._call("GET", path(api_version, kind, namespace, name), what, missing_ok=True)

    def list_objects(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[Json]:
        """Objects of one kind in `namespace` matching the label `selector`."""
        what = f"{kind} list in {namespace}"
        found = self._call(
            "GET", path(api_version, kind, namespace), what, query=[("labelSelector", selector)]
        )
        return list((found or {}).get("items") or [])

    def get_pool(self, namespace: str, name: str) -> Json | None:
        return self.get(names.API_VERSION, names.KIND, namespace, name)

    # -- writes ------------------------------------------------------------------------------

    def apply(self, obj: Mapping[str, Any]) -> Json:
        """Server-side apply `obj` as the operator's field manager; returns the live object."""
        api_version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
        target = path(api_version, kind, meta["namespace"], meta["name"])
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        what = _describe(kind, meta["namespace"], meta["name"])
        result = self._call("PATCH", target, what, query=query, body=obj, content_type=_APPLY)
        assert result is not None  # PATCH never answers 404-as-None (missing_ok=False)
        return result

    def create(self, obj: Mapping[str, Any]) -> Json | None:
        """Create `obj`; None if it already exists (someone else won the race)."""
        api_version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
        target = path(api_version, kind, meta["namespace"])
        what = _describe(kind, meta["namespace"], meta["name"])
        query = [("fieldManager", FIELD_MANAGER)]
        return self._call("POST", target, what, query=query, body=obj, exists_ok=True)

    def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str) -> None:
        """Delete one object, only if it is still the one we inspected (UID precondition)."""
        body = {"preconditions": {"uid": uid}, "propagationPolicy": "Background"}
        target = path(api_version, kind, namespace, name)
        what = _describe(kind, namespace, name)
        self._call("DELETE", target, what, body=body, missing_ok=True, exists_ok=True)

    def annotate(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        annotations: Mapping[str, str | None],
    ) -> None:
        """Set annotations on an object the operator does not own by apply (a pod of a
        Deployment, the pool): a JSON merge patch touches only those keys (None removes one);
        an object gone meanwhile is fine."""
        body = {"metadata": {"annotations": dict(annotations)}}
        target = path(api_version, kind, namespace, name)
        what = _describe(kind, namespace, name)
        self._call("PATCH", target, what, body=body, content_type=_MERGE_PATCH, missing_ok=True)

    def scale(self, api_version: str, kind: str, namespace: str, name: str, replicas: int) -> None:
        """Set only spec.replicas (a merge patch): the pool's teardown stops its workers
        without re-applying the whole object; a Deployment gone meanwhile is fine."""
        body = {"spec": {"replicas": replicas}}
        target = path(api_version, kind, namespace, name)
        what = _describe(kind, namespace, name)
        self._call("PATCH", target, what, body=body, content_type=_MERGE_PATCH, missing_ok=True)

    def apply_pool_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Own the whole status via server-side apply on the status subresource: fields we
        stop writing (a disabled component) disappear, and an unchanged status is a no-op."""
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "metadata": {"name": name, "namespace": namespace},
            "status": dict(status),
        }
        target = path(names.API_VERSION, names.KIND, namespace, name) + "/status"
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        what = _describe(names.KIND, namespace, name) + " status"
        self._call("PATCH", target, what, query=query, body=body, content_type=_APPLY)

    # -- the single place where HTTP outcomes become retry semantics ---------------------------

    def _call(
        self,
        method: str,
        target: str,
        what: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
        exists_ok: bool = False,
    ) -> Json | None:
        payload = json.dumps(dict(body)).encode() if body is not None else None
        suffix = f"?{urlencode(query)}" if query else ""
        for attempt in (1, 2):
            credentials, http = self._credentials, self._http
            headers = {
                **credentials.headers,
                "Accept": "application/json",
                "Content-Type": content_type,
            }
            try:
                response = http.request(
                    method,
                    f"{credentials.server.rstrip('/')}{target}{suffix}",
                    body=payload,
                    headers=headers,
                    timeout=_TIMEOUT,
                )
            except (urllib3.exceptions.HTTPError, OSError) as e:
                unreachable = f"{what}: API unreachable ({type(e).__name__})"
                raise ApiUnavailable("ApiUnreachable", unreachable) from e
            if response.status != 401 or attempt == 2:
                break
            self._relogin(credentials)
        code = int(response.status)
        if 200 <= code < 300:
            return json.loads(response.data) if response.data else {}
        if (code == 404 and missing_ok) or (code == 409 and exists_ok):
            return None
        raise _translate(code, what, _status_message(response.data, what))


def _status_message(data: bytes | None, what: str) -> str:
    """The API server's `Status.message`, but for a Secret only a quota refusal (which names
    the quota and counts, never data): its validation errors may quote values."""
    if not data:
        return ""
    try:
        status = json.loads(data)
        message = str(status.get("message", ""))
    except (ValueError, AttributeError):
        return ""
    if what.startswith("Secret "):
        quota = status.get("reason") == "Forbidden" and "exceeded quota" in message
        return message if quota else ""
    return message


def _translate(code: int, what: str, message: str) -> ApiError:
    detail = f": {message}" if message else ""
    if code in (400, 422):
        return ApiRejected(APPLY_REJECTED, f"{what} was rejected by the API server{detail}")
    if code == 403 and "exceeded quota" in message:
        # A ResourceQuota (object counts: Services, Secrets, PVCs), not RBAC: the message names
        # the quota and what it limits.
        return ApiRejected(QUOTA_EXCEEDED, f"{what} was refused by a ResourceQuota{detail}")
    if code == 403:
        return ApiRejected(
            FORBIDDEN,
            f"the operator may not access {what}{detail}; check its RBAC (manifests/rbac)",
        )
    if code == 409:  # a conflicting concurrent change or a failed UID precondition
        return ApiUnavailable("Conflict", f"{what}: conflict, retrying{detail}", delay=1)
    return ApiUnavailable(f"Http{code}", f"{what}: HTTP {code}{detail}")
