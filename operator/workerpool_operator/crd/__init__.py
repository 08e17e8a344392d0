"""The WorkerPool CRD shipped inside the package (a byte-identical copy of manifests/crd/, kept
so by a test), for `workerpool render`'s offline validation. Reads that one packaged file and
nothing else; must not import kubernetes or kopf.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Any, Final

CRD_FILE: Final = "workerpool.dev_workerpools.yaml"


@functools.cache
def pool_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the WorkerPool's only version (read once; callers must not
    modify it)."""
    import yaml  # the `operator` extra; `render`, the only caller, needs it anyway

    # The C loader when libyaml is there: the pure-Python one takes ~0.2 s for this file.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(files(__name__).joinpath(CRD_FILE).read_text(), Loader=loader)
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema
