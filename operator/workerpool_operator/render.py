"""`workerpool render`: the objects the operator would apply for a WorkerPool document.

Validates like the API server plus the operator: first against the CRD's openAPIV3Schema
(schema.py: unknown fields, types, enums, patterns), then with the operator's own parser (which
mirrors the CRD's CEL rules and adds what only the operator checks, such as time zones). Same
parser and builders as the operator, with what only a cluster knows stood in for: the
pool's UID (kept if the document has one, e.g. from `kubectl get -o yaml`), referenced
Secrets' data (hash inputs become "unknown") and the generated Secrets, rendered with
throwaway passwords from `password` (the operator generates its own, once). Pure apart from
calling `password`; no kubernetes or kopf imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from workerpool_operator import builders, names
from workerpool_operator.confighash import digest_data
from workerpool_operator.errors import SpecError
from workerpool_operator.model import Json, Owner
from workerpool_operator.schema import Schema, validate
from workerpool_operator.spec import parse_pool

# Not a real UID: the garbage collector would delete applied copies of rendered objects
# whose owner does not exist, which is the right fate for a preview applied by mistake.
PLACEHOLDER_UID: Final = "00000000-0000-0000-0000-000000000000"


def render_pool(
    document: Mapping[str, Any], password: Callable[[], str], schema: Schema
) -> list[Json]:
    """Every object for one WorkerPool document; raises SpecError if it is not valid."""
    if document.get("apiVersion") != names.API_VERSION or document.get("kind") != names.KIND:
        raise SpecError("apiVersion/kind", f"expected {names.API_VERSION} {names.KIND}")
    validate(document, schema, "")
    meta = document.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str):
        raise SpecError("metadata.name", "Required value")
    pool = parse_pool(name, str(meta.get("namespace") or "default"), document.get("spec"))
    owner = Owner(name=pool.name, uid=str(meta.get("uid") or PLACEHOLDER_UID))
    generated = [
        builders.build_generated_secret(pool, owner, component, password())
        for component in builders.generated_secret_components(pool)
    ]
    digests = {("Secret", s["metadata"]["name"]): digest_data(s["data"]) for s in generated}
    return [*generated, *builders.build_children(pool, owner, digests)]


def render_documents(
    documents: list[Any], password: Callable[[], str], schema: Schema
) -> list[Json]:
    """Render every WorkerPool in a multi-document stream; other kinds are skipped."""
    for i, document in enumerate(documents):
        if document is not None and not isinstance(document, Mapping):
            raise SpecError(
                f"document {i + 1}", f"must be an object, got {type(document).__name__}"
            )
    pools = [d for d in documents if isinstance(d, Mapping) and d.get("kind") == names.KIND]
    if not pools:
        raise SpecError("input", f"no {names.KIND} document found")
    return [obj for pool in pools for obj in render_pool(pool, password, schema)]
