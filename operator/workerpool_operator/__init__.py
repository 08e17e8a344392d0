"""The workerpool Kubernetes operator: turns WorkerPool objects into running worker pools.

`workerpool operator` (cli.py) runs it: importing this package registers the event handlers,
and the command adds the periodic resync with its interval. The runtime image installs the
package without the `operator` extra (no kopf); the `workerpool` CLI still loads
`render`/`operator` from here, so the handlers are registered only when kopf is importable.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("kopf") is not None:
    from workerpool_operator import handlers as handlers
