"""The table of bad WorkerPools that `workerpool render` and a cluster (API server + operator)
must both refuse, naming the same field. Unit tests run it through `render`; the integration
test tests/integration/operator/test_invalid.py runs it against a real kube-apiserver with the
operator, so the offline checks cannot drift from the cluster's.

`by` says who refuses it in a cluster: "schema" (openAPIV3Schema), "cel" (a CRD
x-kubernetes-validations rule, mirrored in Python by spec.parse_pool) or "operator" (the API
server accepts it; the operator stalls the pool with reason InvalidSpec before rolling out).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

Who = Literal["schema", "cel", "operator"]
QUANTITY_RULE = "quantity(string(self.requests.{0})).compareTo(quantity(string(self.limits.{0})))"


@dataclass(frozen=True)
class BadSpec:
    id: str
    spec: dict[str, Any]  # merged over a valid spec; None removes a field
    field: str  # the field path both render and the cluster name
    by: Who
    api: str = ""  # what the API server's answer contains (schema/cel rows)
    name: str = "bad"
    whole_spec: Any = None  # replaces spec entirely when set
    cel: str = ""  # for cel rows: a fragment of the CRD rule it exercises

    def manifest(self) -> dict[str, Any]:
        spec: Any = {"image": "shop:1.0", "workerPackages": ["shop.jobs"]}
        for key, value in self.spec.items():
            if value is None:
                spec.pop(key)
            else:
                spec[key] = copy.deepcopy(value)
        if self.whole_spec is not None:
            spec = copy.deepcopy(self.whole_spec)
        return {
            "apiVersion": "workerpool.dev/v1alpha1",
            "kind": "WorkerPool",
            "metadata": {"name": self.name},
            "spec": spec,
        }


def _secret_env(name: str) -> dict[str, Any]:
    return {"name": name, "value": "redis://x"}


BAD_SPECS: list[BadSpec] = [
    # -- refused by the CRD's openAPIV3Schema ------------------------------------------------
    BadSpec("zero time limit", {"jobLimits": {"timeLimitSeconds": 0}},
            "spec.jobLimits.timeLimitSeconds", "schema",
            "spec.jobLimits.timeLimitSeconds in body should be greater than or equal to 1"),
    BadSpec("no image", {"image": None}, "spec.image", "schema", "spec.image: Required value"),
    BadSpec("no packages", {"workerPackages": None}, "spec.workerPackages", "schema",
            "spec.workerPackages: Required value"),
    BadSpec("bad package", {"workerPackages": ["my-app"]}, "spec.workerPackages[0]", "schema",
            "spec.workerPackages[0]: Invalid value"),
    BadSpec("unknown environment", {"environment": "staging"}, "spec.environment", "schema",
            'spec.environment: Unsupported value: "staging"'),
    BadSpec("negative replicas", {"replicas": -1}, "spec.replicas", "schema",
            "spec.replicas in body should be greater than or equal to 0"),
    BadSpec("string replicas", {"replicas": "3"}, "spec.replicas", "schema",
            "spec.replicas in body must be of type integer"),
    BadSpec("zero concurrency", {"concurrency": 0}, "spec.concurrency", "schema",
            "spec.concurrency in body should be greater than or equal to 1"),
    BadSpec("huge concurrency", {"concurrency": 1000}, "spec.concurrency", "schema",
            "spec.concurrency in body should be less than or equal to 256"),
    BadSpec("no queues", {"queues": []}, "spec.queues", "schema",
            "spec.queues in body should have at least 1 items"),
    BadSpec("duplicate queues", {"queues": ["low", "low"]}, "spec.queues[1]", "schema",
            'spec.queues[1]: Duplicate value: "low"'),
    BadSpec("unknown queue", {"queues": ["urgent"]}, "spec.queues[0]", "schema",
            'spec.queues[0]: Unsupported value: "urgent"'),
    BadSpec("autoscaling without maxReplicas", {"autoscaling": {"minReplicas": 1}},
            "spec.autoscaling.maxReplicas", "schema",
            "spec.autoscaling.maxReplicas: Required value"),
    BadSpec("autoscaling to zero maxReplicas", {"autoscaling": {"maxReplicas": 0}},
            "spec.autoscaling.maxReplicas", "schema",
            "spec.autoscaling.maxReplicas in body should be greater than or equal to 1"),
    BadSpec("unknown field", {"replica": 3}, "spec.replica", "schema",
            'unknown field "spec.replica"'),
    BadSpec("unknown nested field", {"redis": {"persistance": {"enabled": True}}},
            "spec.redis.persistance", "schema", 'unknown field "spec.redis.persistance"'),
    BadSpec("unknown log format", {"logFormat": "xml"}, "spec.logFormat", "schema",
            'spec.logFormat: Unsupported value: "xml"'),
    BadSpec("time zone with spaces", {"timezone": "Not A Zone!"}, "spec.timezone", "schema",
            "spec.timezone in body should match"),
    BadSpec("root user", {"securityContext": {"runAsUser": 0}},
            "spec.securityContext.runAsUser", "schema",
            "spec.securityContext.runAsUser in body should be greater than or equal to 1"),
    BadSpec("bad secret name", {"flower": {"credentialsSecret": "Bad_Name"}},
            "spec.flower.credentialsSecret", "schema",
            "spec.flower.credentialsSecret in body should match"),
    BadSpec("negative grace period", {"terminationGracePeriodSeconds": -5},
            "spec.terminationGracePeriodSeconds", "schema",
            "spec.terminationGracePeriodSeconds in body should be greater than or equal to 0"),
    BadSpec("image with a space", {"image": "my image:1.0"}, "spec.image", "schema",
            "spec.image in body should match"),
    BadSpec("upper-case redis image", {"redis": {"image": "Redis:7"}}, "spec.redis.image",
            "schema", "spec.redis.image in body should match"),
    BadSpec("beat not an object", {"beat": True}, "spec.beat", "schema",
            "spec.beat in body must be of type object"),
    BadSpec("spec is a list", {}, "spec", "schema", "spec in body must be of type object",
            whole_spec=[1, 2]),
    BadSpec("external redis without secret", {"redis": {"external": {}}},
            "spec.redis.external.secretName", "schema",
            "spec.redis.external.secretName: Required value"),
    BadSpec("name starting with a digit", {}, "metadata.name", "schema",
            "metadata.name in body should match", name="9lives"),
    BadSpec("name too long", {}, "metadata.name", "schema",
            "metadata.name: Too long: may not be more than 50", name="a" * 51),
    # -- refused by a CEL rule of the CRD (mirrored by spec.parse_pool) ------------------------
    BadSpec("reserved env", {"env": [_secret_env("CELERY_BROKER_URL")]}, "spec.env[0]", "cel",
            "env CELERY_BROKER_URL is set by the operator",
            cel="self.name in ['CELERY_BROKER_URL'"),
    BadSpec("valueFrom with two sources",
            {"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"},
                                                 "secretKeyRef": {"name": "s", "key": "k"}}}]},
            "spec.env[0]", "cel", "env: valueFrom needs exactly one of secretKeyRef",
            cel="filter(x, x).size() == 1"),
    BadSpec("value and valueFrom",
            {"env": [{"name": "A", "value": "1",
                      "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
            "spec.env[0]", "cel", "env: value and valueFrom are mutually exclusive",
            cel="!has(self.valueFrom) || !has(self.value)"),
    BadSpec("envFrom with two sources",
            {"envFrom": [{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}]},
            "spec.envFrom[0]", "cel", "each entry needs exactly one of secretRef or configMapRef",
            cel="has(self.secretRef) != has(self.configMapRef)"),
    BadSpec("replicas and autoscaling",
            {"replicas": 2, "autoscaling": {"maxReplicas": 4}},
            "spec.autoscaling", "cel",
            "spec.replicas and spec.autoscaling are mutually exclusive",
            cel="!has(self.replicas) || !has(self.autoscaling)"),
    BadSpec("autoscaling min above max",
            {"autoscaling": {"minReplicas": 5, "maxReplicas": 4}},
            "spec.autoscaling.minReplicas", "cel",
            "spec.autoscaling.minReplicas must not exceed maxReplicas",
            cel="self.minReplicas <= self.maxReplicas"),
    BadSpec("cpu request above limit",
            {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
            "spec.resources", "cel", "resources.requests.cpu must not exceed resources.limits.cpu",
            cel=QUANTITY_RULE.format("cpu")),
    BadSpec("memory request above limit",
            {"beat": {"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "1Mi"}}}},
            "spec.beat.resources", "cel",
            "resources.requests.memory must not exceed resources.limits.memory",
            cel=QUANTITY_RULE.format("memory")),
    BadSpec("ephemeral storage request above limit",
            {"flower": {"resources": {"requests": {"ephemeral-storage": "2Gi"},
                                      "limits": {"ephemeral-storage": "1Gi"}}}},
            "spec.flower.resources", "cel",
            "resources.requests.ephemeral-storage must not exceed",
            cel=QUANTITY_RULE.format("ephemeral__dash__storage")),
    BadSpec("external redis with persistence",
            {"redis": {"external": {"secretName": "u"}, "persistence": {"enabled": True}}},
            "spec.redis", "cel", "spec.redis.external cannot be combined",
            cel="!has(self.external) ||"),
    BadSpec("zero storage size", {"redis": {"persistence": {"size": "0"}}},
            "spec.redis.persistence.size", "cel",
            "spec.redis.persistence.size must be greater than zero", cel="isGreaterThan"),
    BadSpec("soft time limit not below the hard one",
            {"jobLimits": {"timeLimitSeconds": 10, "softTimeLimitSeconds": 10}},
            "spec.jobLimits", "cel",
            "spec.jobLimits.softTimeLimitSeconds must be below timeLimitSeconds",
            cel="self.softTimeLimitSeconds < self.timeLimitSeconds"),
    # Issue 24: refused at admission, not by the operator after the API server took them.
    BadSpec("negative request", {"flower": {"resources": {"requests": {"cpu": "-1"}}}},
            "spec.flower.resources.requests.cpu", "cel",
            "resources.requests.cpu must be greater than zero", cel="isGreaterThan(quantity"),
    BadSpec("zero memory limit", {"redis": {"resources": {"limits": {"memory": 0}}}},
            "spec.redis.resources.limits.memory", "cel",
            "resources.limits.memory must be greater than zero", cel="isGreaterThan(quantity"),
    BadSpec("concurrency beyond the profile's memory", {"concurrency": 256},
            "spec.concurrency", "cel", "spec.concurrency does not fit the worker's memory limit",
            cel="self.concurrency : 8) * 32"),
    BadSpec("concurrency beyond an explicit memory limit",
            {"concurrency": 64, "environment": "production",
             "resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}},
            "spec.concurrency", "cel", "spec.concurrency does not fit the worker's memory limit",
            cel="asApproximateFloat() >= double(has(self.concurrency)"),
    # -- accepted by the API server, refused by the operator before anything rolls out ---------
    BadSpec("memory ceiling not below the memory limit",
            {"jobLimits": {"maxMemoryPerChild": "512Mi"}},
            "spec.jobLimits.maxMemoryPerChild", "operator"),
    BadSpec("memory ceiling below 1Mi", {"jobLimits": {"maxMemoryPerChild": "1000Ki"}},
            "spec.jobLimits.maxMemoryPerChild", "operator"),
    BadSpec("not an IANA time zone", {"timezone": "Mars/Olympus"}, "spec.timezone", "operator"),
    BadSpec("request above the profile's limit", {"resources": {"requests": {"memory": "2Gi"}}},
            "spec.resources.requests.memory", "operator"),
    BadSpec("limit below the profile's request", {"resources": {"limits": {"cpu": "100m"}}},
            "spec.resources.limits.cpu", "operator"),
    BadSpec("redis too small for a queue",
            {"redis": {"resources": {"requests": {"memory": "16Mi"},
                                     "limits": {"memory": "16Mi"}}}},
            "spec.redis.resources.limits.memory", "operator"),
]  # fmt: skip
