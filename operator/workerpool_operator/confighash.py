"""Content hashes: of a referenced Secret's/ConfigMap's data, and of a pod template.

The pod template carries `workerpool.dev/config-hash` so that a change to the rendered
configuration OR to the data of a Secret it reads (which Kubernetes does not propagate into
running pods' environment) rolls the pods. Digests never contain or log the data itself.
Pure; no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

# Digest of an optional reference that does not exist (its pods start without it).
ABSENT: Final = "absent"
# Digest when the data was not read (`workerpool render` works offline).
UNKNOWN: Final = "unknown"


def _sha256(payload: object) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def digest_data(data: Mapping[str, str]) -> str:
    """Digest of a Secret's `data` (base64 strings) or a ConfigMap's merged data."""
    return _sha256(dict(data))


def config_hash(template: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """Hash of a pod template (without its own hash annotation) plus input digests.

    `inputs` maps "Kind/name" of each referenced object to its digest.
    """
    return _sha256({"template": template, "inputs": dict(inputs)})
