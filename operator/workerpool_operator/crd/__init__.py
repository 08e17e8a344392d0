"""The WorkerPool CRD shipped inside the package (a byte-identical copy of manifests/crd/, kept
so by a test), for `workerpool render`'s offline validation. Reads that one packaged file and
nothing else; must not import kubernetes or kopf.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any, Final

CRD_FILE: Final = "workerpool.dev_workerpools.yaml"


def pool_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the WorkerPool's only version."""
    import yaml  # the `operator` extra; `render`, the only caller, needs it anyway

    crd = yaml.safe_load(files(__name__).joinpath(CRD_FILE).read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema
