"""Configuration files of the real node's components, as pure functions of a few paths.

Owns the addresses of the real node (bridge, pod subnet, cluster DNS) and the contents of the
containerd, CNI, kubelet, kube-proxy and CoreDNS configuration and of the cluster objects
that wire host-run add-ons into the cluster. Must not write files or run anything (node.py
does), so the choices below can be read and reviewed in one place.

Why the add-ons (CoreDNS, metrics-server, local-path-provisioner) run as host processes and
not as pods: their images are not reachable (no registry) and building three more images
would cost minutes on a cold run; as processes on the node's bridge address they are reached
through ordinary Services with hand-made EndpointSlices, exactly as pods would be.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = [
    "BRIDGE",
    "CGROUP",
    "DNS_IP",
    "NODE_ADDRESS",
    "NODE_NAME",
    "POD_SUBNET",
    "SMALL_NODE_LABEL",
    "addon_objects",
    "cni_config",
    "containerd_config",
    "corefile",
    "kube_proxy_config",
    "kubelet_config",
]

BRIDGE = "wpnode0"
# Not 10.88.0.0/16 (podman's default network), not the Service range 10.0.0.0/24, not the
# fake (kwok) pod range 10.244.0.0/16.
POD_SUBNET = "10.85.0.0/24"
POD_PREFIX = 24
# The bridge's own address: gateway of the pods, and where the API server, the kubelet and
# the host-run add-ons listen, so pods reach each of them without leaving the host.
NODE_ADDRESS = "10.85.0.1"
DNS_IP = "10.0.0.10"  # the kube-dns Service, the kubelet's clusterDNS
NODE_NAME = "workerpool-node"
CGROUP = "workerpool-node"  # cgroupRoot of the kubelet; containerd and its shims go below
CLUSTER_DOMAIN = "cluster.local"
CNI_BIN = "/usr/lib/cni"  # where Debian's containernetworking-plugins put them
# Namespaces with this label get every container's CPU request set to 10m at pod creation.
# Why: the samples alone request 2.3 CPUs (production: 3 workers x 500m) and CI machines
# have 2; a kubelet cannot be told it has more CPUs than the machine. Limits, memory, probes,
# images and commands stay exactly as the operator made them (only the pods are changed, by
# a MutatingAdmissionPolicy; the Deployments the operator compares stay untouched).
SMALL_NODE_LABEL = "workerpool.test/small-node"


def containerd_config(root: Path, state: Path, socket: Path, cni_conf: Path, pause: str) -> str:
    # containerd 1.6 (Debian) reads version 2 configs.
    return f"""version = 2
root = "{root}"
state = "{state}"
# No optional plugins that touch the host outside root/state.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # Without it every sandbox fails with "can't get final child's PID from pipe: EOF": the
  # VM grants no CAP_SYS_RESOURCE, so a negative oom_score_adj cannot be set.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/bin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
"""


def cni_config(ipam_dir: Path) -> str:
    config = {
        "cniVersion": "1.0.0",
        "name": "workerpool-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # No masquerading: pods talk only to each other and to the node's address.
                "ipMasq": False,
                # A pod reaching itself through a Service (kube-proxy masquerades it).
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_ADDRESS}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    # Default /var/lib/cni/networks would outlive the node.
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "loopback"},
        ],
    }
    return json.dumps(config, indent=2)


def kubelet_config(
    *,
    socket: Path,
    ca: Path,
    tls: tuple[Path, Path],
    port: int,
    healthz_port: int,
    resolv_conf: Path,
    pod_logs: Path,
) -> str:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # v1.35+ refuse cgroup v1 by default; these VMs have a hybrid v1 layout only.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",  # no systemd
        "cgroupRoot": f"/{CGROUP}",
        # Default -999 needs CAP_SYS_RESOURCE, which the VM does not grant.
        "oomScoreAdj": 0,
        "containerRuntimeEndpoint": f"unix://{socket}",
        "address": NODE_ADDRESS,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(tls[0]),
        "tlsPrivateKeyFile": str(tls[1]),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(resolv_conf),
        "podLogsDir": str(pod_logs),
        "failSwapOn": False,
        # Quick status updates: pods become Ready as soon as probes pass.
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "0s",
        # Host disks of CI machines are often >85% full; images here cannot be pulled back.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        "serializeImagePulls": False,
        "protectKernelDefaults": False,
    }
    return json.dumps(config, indent=2)


def kube_proxy_config(kubeconfig: Path, metrics_port: int, healthz_port: int) -> str:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        # iptables: there is no IPVS in these kernels; nft-backed iptables works everywhere.
        "mode": "iptables",
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_ADDRESS,
        "clusterCIDR": POD_SUBNET,
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "iptables": {
            # Replies of a Service backend on the same bridge must come back through the
            # host to be un-NATed; masquerading does that without br_netfilter.
            "masqueradeAll": True,
            "syncPeriod": "10s",
            "minSyncPeriod": "0s",
        },
        # 0 = leave the host's conntrack table size and timeouts alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "nodePortAddresses": [f"{NODE_ADDRESS}/32"],
    }
    return json.dumps(config, indent=2)


def corefile(kubeconfig: Path, ready_port: int, port: int = 53) -> str:
    # Only the cluster's names: pods have no route out of the host, so nothing is forwarded.
    return f""".:{port} {{
    bind {NODE_ADDRESS}
    errors
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa
        ttl 5
    }}
    cache 5
}}
"""


def _host_service(
    namespace: str,
    name: str,
    ip: str | None,
    ports: list[dict[str, object]],
    labels: dict[str, str],
) -> list[dict[str, object]]:
    """A selector-less Service and the EndpointSlice pointing it at the node's address."""
    spec: dict[str, object] = {"ports": ports}
    if ip:
        spec["clusterIP"] = ip
    service: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }
    slice_: dict[str, object] = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-host",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": name, **labels},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [NODE_ADDRESS], "conditions": {"ready": True}}],
        "ports": [
            {"name": p["name"], "port": p["targetPort"], "protocol": p["protocol"]} for p in ports
        ],
    }
    return [service, slice_]


def addon_objects(
    *, dns_port: int, metrics_port: int, ca_bundle: str, helper_image: str, storage: Path
) -> list[dict[str, object]]:
    """Cluster objects that make the host-run add-ons look like in-cluster ones."""
    labels = {"app.kubernetes.io/part-of": "workerpool-test-node"}
    dns_ports = [
        {"name": "dns", "port": 53, "targetPort": dns_port, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "targetPort": dns_port, "protocol": "TCP"},
    ]
    metrics_ports = [{"name": "https", "port": 443, "targetPort": metrics_port, "protocol": "TCP"}]
    local_path_config = {
        "nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(storage)]}]
    }
    helper_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "containers": [
                {"name": "helper-pod", "image": helper_image, "imagePullPolicy": "Never"}
            ]
        },
    }
    return [
        *small_cpu_policy(labels),
        *_host_service("kube-system", "kube-dns", DNS_IP, dns_ports, labels),
        *_host_service("kube-system", "metrics-server", None, metrics_ports, labels),
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io", "labels": labels},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
                "service": {"name": "metrics-server", "namespace": "kube-system", "port": 443},
                "caBundle": ca_bundle,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "local-path-storage", "labels": labels},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "local-path-provisioner", "namespace": "local-path-storage"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "local-path-config", "namespace": "local-path-storage"},
            "data": {
                "config.json": json.dumps(local_path_config),
                "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
                "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
                "helperPod.yaml": json.dumps(helper_pod),
            },
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "local-path",
                # The default class: the production profile's PVC names none.
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                "labels": labels,
            },
            "provisioner": "rancher.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        },
    ]


def small_cpu_policy(labels: dict[str, str]) -> list[dict[str, object]]:
    """Set CPU requests to 10m in namespaces labelled SMALL_NODE_LABEL (see its comment)."""
    name = "workerpool-test-small-node-cpu"
    expression = (
        "Object{spec: Object.spec{containers: object.spec.containers"
        ".filter(c, has(c.resources) && has(c.resources.requests)"
        " && 'cpu' in c.resources.requests)"
        ".map(c, Object.spec.containers{name: c.name,"
        " resources: Object.spec.containers.resources{requests: {'cpu': '10m'}}})}}"
    )
    policy: dict[str, object] = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {SMALL_NODE_LABEL: "true"}},
            },
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "mutations": [
                {
                    "patchType": "ApplyConfiguration",
                    "applyConfiguration": {"expression": expression},
                }
            ],
        },
    }
    binding: dict[str, object] = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": labels},
        "spec": {"policyName": name},
    }
    return [policy, binding]
