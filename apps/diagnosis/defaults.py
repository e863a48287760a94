"""The shipped rule tree (loaded by a data migration; editable in the admin).

Order matters: the first rule whose conditions all hold wins. Specific
signatures first (certificates, image pulls, CNI, sandbox, OOM, quota,
webhooks, storage, RBAC), then case-kind rules (an etcd or certificates case
failing to connect is about etcd or the endpoint, not the API server), then
step-based rules (a pod never scheduled with no reason: the scheduler), then
the catch-alls (API server), then the probe's own crashes. Each rule carries
an `example`: tests/diagnosis/test_shipped_rules.py checks that the example
reaches exactly that rule through the whole tree.
"""

from __future__ import annotations

from typing import Any

from apps.diagnosis.rules import Evidence, RuleSpec

_CERT = (
    r"x509|certificate (has )?expired|certificate verify failed|CERTIFICATE_VERIFY_FAILED|"
    r"certificate is not valid|not valid for|hostname mismatch|self[- ]signed certificate|"
    r"unknown authority|certificate signed by unknown|tls: bad certificate|"
    r"expires in -?\d+ days?|days? left|certificate required"
)
_UNREACHABLE = (
    r"refused|timed out|timeout|deadline exceeded|unreachable|no route to host|"
    r"reset by peer|EOF|unavailable|Max retries exceeded|cannot connect|failed to connect"
)

RULES: tuple[dict[str, Any], ...] = (
    {
        "name": "image-pull-failed",
        "category": "image",
        "component": "image registry",
        "confidence": 0.95,
        "error_pattern": r"ImagePullBackOff|ErrImagePull|Failed to pull image|pull access denied|"
        r"manifest unknown|InvalidImageName|ErrImageNeverPull|repository does not exist|"
        r"toomanyrequests|failed to resolve reference|pulling image|not found: manifest",
        "summary": "The image cannot be pulled: check the image name and tag, the registry's "
        "reachability from the nodes, its rate limits and the pull secrets.",
        "example": {
            "step": "running",
            "error": "last seen: phase Pending; ImagePullBackOff "
            'Back-off pulling image "registry.example.com/app:1.2"',
        },
    },
    {
        "name": "certificate-invalid",
        "category": "certificates",
        "component": "",
        "confidence": 0.92,
        "error_pattern": _CERT,
        "summary": "A certificate is expired, about to expire, for another host or not "
        "trusted: renew or fix it, and check the CA bundle the client uses.",
        "example": {
            "case_kind": "etcd",
            "step": "put https://10.0.0.5:2379",
            "error": "[SSL: "
            "CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired",
        },
    },
    {
        "name": "cni-network-setup",
        "category": "network",
        "component": "CNI plugin",
        "confidence": 0.9,
        "error_pattern": r"failed to (setup|set up) network|\bCNI\b|cni plugin|network plugin|"
        r"NetworkPluginNotReady|failed to allocate|no IP addresses available|\bipam\b|"
        r"calico|flannel|cilium|weave|failed to set bridge",
        "summary": "The pod's network could not be set up: check the node's CNI pods "
        "(calico/flannel/cilium…), IP address pools and the CNI configuration.",
        "example": {
            "step": "ready",
            "error": "Warning FailedCreatePodSandBox: Failed to create "
            'pod sandbox: rpc error: plugin type="calico" failed (add): failed to set up '
            "network",
        },
    },
    {
        "name": "sandbox-runtime",
        "category": "runtime",
        "component": "container runtime",
        "confidence": 0.88,
        "error_pattern": r"FailedCreatePodSandBox|Failed to create pod sandbox|RunContainerError|"
        r"CreateContainerError|containerd|\brunc\b|OCI runtime|container runtime|"
        r"ContainerCannotRun|StartError|failed to start container|PLEG|dockershim|cri-o",
        "summary": "The container runtime could not create the pod sandbox or start the "
        "container: check containerd/CRI-O and runc on the node and their logs.",
        "example": {
            "step": "running",
            "error": "Warning FailedCreatePodSandBox: Failed to "
            "create pod sandbox: rpc error: code = Unknown desc = failed to reserve "
            "sandbox name",
        },
    },
    {
        "name": "container-config-missing",
        "category": "probe",
        "component": "probe pod configuration",
        "confidence": 0.85,
        "error_pattern": r"CreateContainerConfigError|(secret|configmap) \"?[\w.-]+\"? not found",
        "summary": "The probe pod refers to a Secret or ConfigMap that does not exist: "
        "fix the case's render config or create the object.",
        "example": {
            "step": "running",
            "error": 'CreateContainerConfigError: secret "probe-etcd-client" not found',
        },
    },
    {
        "name": "oom-killed",
        "category": "quota",
        "component": "memory limit",
        "confidence": 0.9,
        "error_pattern": r"OOMKilled|out of memory|oom[- ]kill|memory limit",
        "summary": "The container was OOM-killed: raise its memory limit or find the leak.",
        "example": {"step": "ready", "error": "pod ended: OOMKilled (exit code 137)"},
    },
    {
        "name": "quota-exceeded",
        "category": "quota",
        "component": "ResourceQuota / LimitRange",
        "confidence": 0.92,
        "error_pattern": r"exceeded quota|ResourceQuota|LimitRange|must specify (limits|requests)|"
        r"maximum (cpu|memory) usage|minimum (cpu|memory) usage|quota exceeded|"
        r"Insufficient quota|object-counts",
        "summary": "A ResourceQuota or LimitRange refused the object: raise the quota of the "
        "probe namespace or lower the case's resources.",
        "example": {
            "step": "create",
            "error": 'HTTP 403: pods "kubeprobe-pod-x1" is forbidden: '
            "exceeded quota: compute, requested: cpu=100m, used: cpu=2, limited: cpu=2",
        },
    },
    {
        "name": "admission-webhook",
        "category": "webhook",
        "component": "admission webhook",
        "confidence": 0.9,
        "error_pattern": r"admission webhook|failed calling webhook|webhook .*denied|"
        r"denied the request|violates PodSecurity|admission plugin|mutatingwebhook|"
        r"validatingwebhook",
        "summary": "An admission webhook or admission policy refused or failed the request: "
        "check the webhook's service and pods, its failurePolicy and the policy it enforces.",
        "example": {
            "step": "create",
            "error": "HTTP 500: Internal error occurred: failed calling "
            'webhook "validate.kyverno.svc": context deadline exceeded',
        },
    },
    {
        "name": "storage-volume",
        "category": "storage",
        "component": "volumes / CSI",
        "confidence": 0.88,
        "error_pattern": r"FailedMount|FailedAttachVolume|MountVolume|unbound immediate "
        r"PersistentVolumeClaim|persistentvolumeclaim|\bPVC\b|\bCSI\b|csi driver|"
        r"ProvisioningFailed|StorageClass|volume attachment|failed to provision|"
        r"read-only file system|Multi-Attach error",
        "summary": "A volume could not be provisioned, attached or mounted: check the CSI "
        "driver, the StorageClass and the PersistentVolumeClaims.",
        "example": {
            "step": "ready",
            "error": "Warning FailedScheduling: 0/3 nodes are available: "
            "pod has unbound immediate PersistentVolumeClaims",
        },
    },
    {
        "name": "rbac-denied",
        "category": "rbac",
        "component": "RBAC / credentials",
        "confidence": 0.92,
        "error_pattern": r"\bforbidden\b|cannot (create|get|list|watch|delete|patch|update) |"
        r"HTTP 40[13]\b|Unauthorized|invalid bearer token|token has expired|"
        r"RBAC|no RBAC policy matched|not authorized",
        "summary": "The probe's service account or kubeconfig is not allowed to do this "
        "(or its credential is rejected): check its Role/ClusterRole bindings and token.",
        "example": {
            "step": "create",
            "error": 'HTTP 403: pods is forbidden: User "system:'
            'serviceaccount:kubeprobe:kubeprobe-probe" cannot create resource "pods"',
        },
    },
    {
        "name": "etcd-server-error",
        "category": "etcd",
        "component": "etcd",
        "confidence": 0.9,
        "error_pattern": r"etcdserver|etcd cluster is unavailable|database space exceeded|"
        r"NOSPACE|mvcc:|leader changed|no leader|raft|etcd-\w+ .*(unhealthy|failed)|"
        r"\[-\]etcd",
        "summary": "etcd fails or times out: check member health, leader elections, disk "
        "latency and the database size.",
        "example": {"step": "create", "error": "HTTP 500: etcdserver: request timed out"},
    },
    {
        "name": "dns-resolution",
        "category": "dns",
        "component": "DNS",
        "confidence": 0.88,
        "error_pattern": r"no such host|Name or service not known|Temporary failure in name "
        r"resolution|NXDOMAIN|could not resolve|getaddrinfo failed|server misbehaving|"
        r"nodename nor servname|lookup \S+ on \S+:53|CoreDNS|kube-dns|i/o timeout.*:53",
        "summary": "A name does not resolve: check CoreDNS (or the host's resolvers) and the "
        "name itself.",
        "example": {
            "case_kind": "etcd",
            "step": "put https://etcd-0.internal:2379",
            "error": "<urlopen error [Errno -2] Name or service not known>",
        },
    },
    {
        "name": "probe-misconfigured",
        "category": "probe",
        "component": "probe",
        "confidence": 0.9,
        "error_pattern": r"\b[A-Z][A-Z0-9_]{3,}\b (or [A-Z0-9_]+ )?(is required|must be set|is not "
        r"set|must be a number)|Traceback \(most recent call last\)|ModuleNotFoundError|panic:",
        "summary": "The probe crashed or lacks a setting: check the case's render config "
        "(its env) and the run's log tail.",
        "example": {"case_kind": "etcd", "step": "", "error": "ETCD_ENDPOINTS is required"},
    },
    {
        "name": "etcd-case-unreachable",
        "category": "etcd",
        "component": "etcd",
        "confidence": 0.9,
        "case_kinds": ["etcd"],
        "error_pattern": _UNREACHABLE,
        "summary": "etcd does not answer (refused, timed out, unreachable): check that the "
        "etcd members run, their ports and the network between the probe and them.",
        "example": {
            "case_kind": "etcd",
            "step": "put https://127.0.0.1:2379",
            "error": "<urlopen error [Errno 111] Connection refused>",
        },
    },
    {
        "name": "etcd-case-slow",
        "category": "etcd",
        "component": "etcd",
        "confidence": 0.85,
        "case_kinds": ["etcd"],
        "error_pattern": r"took \d+ ?ms|over (the )?\d+ ?ms|slower than",
        "summary": "etcd answers slowly: check disk fsync latency, leader changes and load.",
        "example": {
            "case_kind": "etcd",
            "step": "txn https://10.0.0.5:2379",
            "error": "took 1712 ms, over the 500 ms limit",
        },
    },
    {
        "name": "etcd-case-other",
        "category": "etcd",
        "component": "etcd",
        "confidence": 0.75,
        "case_kinds": ["etcd"],
        "error_pattern": r".",
        "summary": "The etcd probe failed: check the etcd members and the probe's endpoints.",
        "example": {
            "case_kind": "etcd",
            "step": "get https://10.0.0.5:2379",
            "error": "HTTP 400: value mismatch",
        },
    },
    {
        "name": "certificates-case-etcd-endpoint",
        "category": "etcd",
        "component": "etcd",
        "confidence": 0.8,
        "case_kinds": ["certificates"],
        "step_pattern": r":2379|etcd",
        "error_pattern": _UNREACHABLE,
        "summary": "The etcd endpoint whose certificate is inspected does not answer.",
        "example": {
            "case_kind": "certificates",
            "step": "10.0.0.5:2379",
            "error": "[Errno 111] Connection refused",
        },
    },
    {
        "name": "certificates-case-unreachable",
        "category": "apiserver",
        "component": "kube-apiserver",
        "confidence": 0.6,
        "case_kinds": ["certificates"],
        "error_pattern": _UNREACHABLE,
        "summary": "The TLS endpoint whose certificate is inspected does not answer.",
        "example": {
            "case_kind": "certificates",
            "step": "kubernetes.default.svc:443",
            "error": "timed out",
        },
    },
    {
        "name": "config-drift",
        "category": "config",
        "component": "",
        "confidence": 0.9,
        "error_pattern": r"not covered|drift:",
        "summary": "The expected configuration is missing or has drifted on this cluster.",
        "example": {
            "case_kind": "config_coverage",
            "template_kind": "inspection",
            "step": ".spec.suspend",
            "error": "drift: .spec.suspend is true, expected false",
        },
    },
    {
        "name": "node-not-ready",
        "category": "node",
        "component": "kubelet",
        "confidence": 0.88,
        # Not "NotReady:": that is the lifecycle case's own error for any wait.
        "error_pattern": r"NodeNotReady|node(s)? (is |are )?not ready|\bNotReady\b(?!:)|Evicted|"
        r"node\.kubernetes\.io/(not-ready|unreachable)|DiskPressure|MemoryPressure|PIDPressure|"
        r"kubelet stopped posting|NodeLost|kubelet (is )?(down|not running)|"
        r"no (Ready|ready|schedulable) nodes?|PLEG is not healthy|NodeHasDiskPressure",
        "summary": "A node is not ready or evicts pods: check the kubelet, the node's "
        "resources (disk, memory, PIDs) and its heartbeat.",
        "example": {
            "step": "scheduled",
            "error": "Warning FailedScheduling: 0/3 nodes are "
            "available: 3 node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
        },
    },
    {
        "name": "unschedulable",
        "category": "scheduler",
        "component": "kube-scheduler",
        "confidence": 0.85,
        "error_pattern": r"FailedScheduling|Unschedulable|Insufficient (cpu|memory|pods|"
        r"ephemeral-storage|nvidia)|nodes are available|didn't match|node affinity|"
        r"untolerated taint|not scheduled",
        "summary": "No node fits the pod (resources, taints, selectors, affinity): check the "
        "scheduler's FailedScheduling events and the cluster's free capacity.",
        "example": {
            "step": "scheduled",
            "error": "Warning FailedScheduling: 0/3 nodes are available: 3 Insufficient cpu",
        },
    },
    {
        "name": "never-scheduled",
        "category": "scheduler",
        "component": "kube-scheduler",
        "confidence": 0.7,
        "step_pattern": r"^scheduled$",
        "error_pattern": r"not reached|timed out|waiting",
        "summary": "The pod was never scheduled and nothing says why: check that "
        "kube-scheduler runs and holds its leader lease.",
        "example": {
            "step": "scheduled",
            "error": "not reached after 120 s; last seen: phase Pending",
        },
    },
    {
        "name": "rollout-stuck",
        "category": "controller",
        "component": "kube-controller-manager",
        "confidence": 0.85,
        "error_pattern": r"ProgressDeadlineExceeded|FailedCreate\b|rollout (stuck|did not)|"
        r"replica ?set|controller|ReplicaFailure|updatedReplicas|availableReplicas|"
        r"endpoints? (differ|mismatch)|EndpointSlice",
        "summary": "A controller does not make progress (ReplicaSet, Deployment, StatefulSet, "
        "EndpointSlice): check kube-controller-manager and its leader election.",
        "example": {
            "step": "available",
            "error": "Deployment kubeprobe-deploy-abc: ProgressDeadlineExceeded",
        },
    },
    {
        "name": "federation-propagation",
        "category": "controller",
        "component": "federation controller",
        "confidence": 0.75,
        "case_kinds": ["federation"],
        "step_pattern": r"propagated to|removed from",
        "summary": "The federation control plane did not propagate (or remove) the object: "
        "check its controller and the member cluster's connection.",
        "example": {
            "case_kind": "federation",
            "step": "propagated to member-2",
            "error": "not reached after 60 s",
        },
    },
    {
        "name": "workload-step-stuck",
        "category": "controller",
        "component": "kube-controller-manager",
        "confidence": 0.65,
        "step_pattern": r"^(available|update|scale|scale up|scale down|rollout|gone|"
        r"endpoints.*)$",
        "error_pattern": r"not reached|timed out|still|waiting",
        "summary": "A workload did not reach its state and nothing else is known: the "
        "controllers (or the garbage collector, for 'gone') are the first suspects.",
        "example": {"step": "gone", "error": "not reached after 120 s; still exists"},
    },
    {
        "name": "pod-not-ready",
        "category": "node",
        "component": "kubelet",
        "confidence": 0.6,
        "step_pattern": r"^(running|ready)$|^node ",
        "error_pattern": r"not reached|timed out|waiting",
        "summary": "A scheduled pod did not start or become ready and nothing else is known: "
        "check the node's kubelet and the pod's events.",
        "example": {"step": "ready", "error": "not reached after 120 s; last seen: phase Pending"},
    },
    {
        "name": "apiserver-errors",
        "category": "apiserver",
        "component": "kube-apiserver",
        "confidence": 0.85,
        "error_pattern": r"HTTP 5\d\d|Internal Server Error|Service Unavailable|"
        r"the server is currently unable|the server has received too many|HTTP 429|"
        r"TLS handshake timeout|apiserver|Too many requests|the server was unable",
        "summary": "The API server answers with errors or sheds load: check kube-apiserver, its "
        "load balancer and, behind it, etcd.",
        "example": {
            "step": "create",
            "error": "HTTP 503: the server is currently unable to handle the request",
        },
    },
    {
        "name": "apiserver-unreachable",
        "category": "apiserver",
        "component": "kube-apiserver",
        "confidence": 0.7,
        "error_pattern": _UNREACHABLE,
        "summary": "The API server is unreachable (refused, timed out): check kube-apiserver "
        "and its load balancer.",
        "example": {
            "step": "create",
            "error": "HTTPSConnectionPool(host='10.0.0.1', port=6443): "
            "Max retries exceeded (Caused by NewConnectionError: Connection refused)",
        },
    },
    {
        "name": "probe-crashed",
        "category": "probe",
        "component": "probe",
        "confidence": 0.85,
        "error_pattern": r"Traceback|ModuleNotFoundError|ImportError|KeyError|TypeError|"
        r"AttributeError|NameError|missing (required )?(env|variable|setting)|is required|"
        r"KUBEPROBE_|stopped running|no result for|exited with|exit code|panic:|"
        r"DeadlineExceeded|killed at its deadline",
        "summary": "The probe itself failed (a crash, a missing setting, no report in time): "
        "check the case's configuration, its log tail and the portal's workers.",
        "example": {"step": "", "error": "pod failed: Error (exit code 1); KeyError: 'items'"},
    },
)


def rule_specs() -> list[RuleSpec]:
    """The shipped rules as the engine sees them, in order (the benchmark uses these)."""
    specs = []
    for i, rule in enumerate(RULES):
        fields: dict[str, Any] = {k: v for k, v in rule.items() if k != "example"}
        fields["case_kinds"] = tuple(fields.get("case_kinds", ()))
        specs.append(RuleSpec(order=(i + 1) * 10, **fields))
    return specs


def example_of(rule: dict[str, Any]) -> Evidence:
    return Evidence(**rule["example"])
