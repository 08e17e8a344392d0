"""The only module that talks to the Kubernetes API.

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
from collections.abc import Mapping
from typing import Any, Final

import kubernetes.client
import kubernetes.config
import urllib3.exceptions

from workerpool_operator import names
from workerpool_operator.errors import (
    APPLY_REJECTED,
    FORBIDDEN,
    ApiError,
    ApiRejected,
    ApiUnavailable,
)
from workerpool_operator.model import Json

FIELD_MANAGER: Final = names.OPERATOR
_APPLY: Final = "application/apply-patch+yaml"  # JSON is YAML: the body is sent as JSON
_TIMEOUT: Final = (5, 30)  # (connect, read) seconds: a hung call must not freeze a handler
_PLURALS: Final[dict[tuple[str, str], str]] = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("v1", "Secret"): "secrets",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "Pod"): "pods",
    (names.API_VERSION, names.KIND): names.PLURAL,
}


def path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    collection = f"{prefix}/namespaces/{namespace}/{_PLURALS[(api_version, kind)]}"
    return collection if name is None else f"{collection}/{name}"


def _describe(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}"


class Cluster:
    """Thin synchronous API access; thread-safe enough for kopf's handler executor."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self.api = api

    @classmethod
    def from_environment(cls) -> Cluster:
        """In-cluster service account if present, else $KUBECONFIG / ~/.kube/config."""
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(configuration))

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
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            _, url, headers, payload, _ = self.api.param_serialize(
                method=method,
                resource_path=target,
                query_params=query or [],
                header_params=headers,
                body=dict(body) if body is not None else None,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(
                method, url, header_params=headers, body=payload, _request_timeout=_TIMEOUT
            )
            response.read()  # type: ignore[no-untyped-call]
        except (urllib3.exceptions.HTTPError, OSError, kubernetes.client.ApiException) as e:
            unreachable = f"{what}: API unreachable ({type(e).__name__})"
            raise ApiUnavailable("ApiUnreachable", unreachable) from e
        code = int(response.status)
        if 200 <= code < 300:
            return json.loads(response.data) if response.data else {}
        if (code == 404 and missing_ok) or (code == 409 and exists_ok):
            return None
        raise _translate(code, what, _status_message(response.data, what))


def _status_message(data: bytes | None, what: str) -> str:
    """The API server's `Status.message`, but never for a Secret: its validation errors may
    quote values."""
    if what.startswith("Secret ") or not data:
        return ""
    try:
        return str(json.loads(data).get("message", ""))
    except ValueError:
        return ""


def _translate(code: int, what: str, message: str) -> ApiError:
    detail = f": {message}" if message else ""
    if code in (400, 422):
        return ApiRejected(APPLY_REJECTED, f"{what} was rejected by the API server{detail}")
    if code == 403:
        return ApiRejected(
            FORBIDDEN,
            f"the operator may not access {what}{detail}; check its RBAC (manifests/rbac)",
        )
    if code == 409:  # a conflicting concurrent change or a failed UID precondition
        return ApiUnavailable("Conflict", f"{what}: conflict, retrying{detail}", delay=1)
    return ApiUnavailable(f"Http{code}", f"{what}: HTTP {code}{detail}")
