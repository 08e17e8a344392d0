"""An in-memory stand-in for `cluster.Cluster`, just faithful enough for the reconciler:
objects get UIDs and generations, apply replaces content, create refuses duplicates."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from typing import Any

from workerpool_operator import names

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.applied: list[Key] = []
        self.created: list[Key] = []
        self.deleted: list[Key] = []
        self.status_writes = 0
        self.annotated: list[tuple[str, dict[str, str | None]]] = []
        self.scaled: list[tuple[str, int]] = []
        self.reject: dict[str, Exception] = {}  # kind -> error raised by apply
        self._uids = itertools.count(1)

    # -- test helpers --
    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta.setdefault("generation", 1)
        self.objects[self._key(stored)] = stored
        return stored

    def add_pool(self, spec: Mapping[str, Any], name: str = "shop", uid: str = "pool-uid") -> None:
        self.put({
            "apiVersion": names.API_VERSION, "kind": names.KIND,
            "metadata": {"name": name, "namespace": "apps", "uid": uid, "generation": 1},
            "spec": dict(spec),
        })  # fmt: skip

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        for key, obj in self.objects.items():
            if key[1] == kind and key[3] == name:
                return obj
        return None

    @property
    def pool(self) -> dict[str, Any]:
        found = self.find(names.KIND, "shop")
        assert found is not None
        return found

    @staticmethod
    def _key(obj: Mapping[str, Any]) -> Key:
        meta = obj["metadata"]
        return (obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])

    # -- the Cluster protocol --
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def get_pool(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(names.API_VERSION, names.KIND, namespace, name)

    def list_objects(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        wanted = dict(term.split("=", 1) for term in selector.split(","))
        return [
            copy.deepcopy(obj)
            for (version, k, ns, _), obj in self.objects.items()
            if (version, k, ns) == (api_version, kind, namespace)
            and wanted.items() <= (obj["metadata"].get("labels") or {}).items()
        ]

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        if obj["kind"] in self.reject:
            raise self.reject[obj["kind"]]
        key = self._key(obj)
        self.applied.append(key)
        live = self.objects.get(key)
        new = copy.deepcopy(dict(obj))
        if live is None:
            return copy.deepcopy(self.put(new))
        new["metadata"]["uid"] = live["metadata"]["uid"]
        changed = new.get("spec") != live.get("spec")
        new["metadata"]["generation"] = live["metadata"]["generation"] + int(changed)
        if "status" in live:
            new["status"] = live["status"]
        self.objects[key] = new
        return copy.deepcopy(new)

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        key = self._key(obj)
        if key in self.objects:
            return None
        self.created.append(key)
        return copy.deepcopy(self.put(obj))

    def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str) -> None:
        key = (api_version, kind, namespace, name)
        if key in self.objects and self.objects[key]["metadata"]["uid"] == uid:
            del self.objects[key]
            self.deleted.append(key)

    def annotate(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        annotations: Mapping[str, str | None],
    ) -> None:
        self.annotated.append((name, dict(annotations)))
        live = self.objects.get((api_version, kind, namespace, name))
        if live is not None:
            current = live["metadata"].setdefault("annotations", {})
            for key, value in annotations.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value

    def scale(self, api_version: str, kind: str, namespace: str, name: str, replicas: int) -> None:
        live = self.objects.get((api_version, kind, namespace, name))
        if live is not None:
            live["spec"]["replicas"] = replicas
            self.scaled.append((name, replicas))

    def apply_pool_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.status_writes += 1
        self.objects[(names.API_VERSION, names.KIND, namespace, name)]["status"] = copy.deepcopy(
            dict(status)
        )
