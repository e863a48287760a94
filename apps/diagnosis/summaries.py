"""The shipped rules' summaries (apps/diagnosis/defaults.py), marked for translation.

A run's or alert's `root_cause_summary` is stored in English as the rule says it;
notifications (apps/alerts/messages.py) show it through gettext, so a channel in
Chinese reads a shipped rule's summary in Chinese, and a summary an operator wrote
as they wrote it. tests/diagnosis/test_language.py keeps this list in step with
the rules.
"""

from __future__ import annotations

from django.utils.translation import gettext_noop

SUMMARIES = (
    gettext_noop(
        "The image cannot be pulled: check the image name and tag, the registry's reachability from the nodes, its rate limits and the pull secrets."
    ),
    gettext_noop(
        "A certificate is expired, about to expire, for another host or not trusted: renew or fix it, and check the CA bundle the client uses."
    ),
    gettext_noop(
        "The pod's network could not be set up: check the node's CNI pods (calico/flannel/cilium…), IP address pools and the CNI configuration."
    ),
    gettext_noop(
        "The container runtime could not create the pod sandbox or start the container: check containerd/CRI-O and runc on the node and their logs."
    ),
    gettext_noop(
        "The probe pod refers to a Secret or ConfigMap that does not exist: fix the case's render config or create the object."
    ),
    gettext_noop("The container was OOM-killed: raise its memory limit or find the leak."),
    gettext_noop(
        "A ResourceQuota or LimitRange refused the object: raise the quota of the probe namespace or lower the case's resources."
    ),
    gettext_noop(
        "An admission webhook or admission policy refused or failed the request: check the webhook's service and pods, its failurePolicy and the policy it enforces."
    ),
    gettext_noop(
        "A volume could not be provisioned, attached or mounted: check the CSI driver, the StorageClass and the PersistentVolumeClaims."
    ),
    gettext_noop(
        "The probe's service account or kubeconfig is not allowed to do this (or its credential is rejected): check its Role/ClusterRole bindings and token."
    ),
    gettext_noop(
        "etcd fails or times out: check member health, leader elections, disk latency and the database size."
    ),
    gettext_noop(
        "A name does not resolve: check CoreDNS (or the host's resolvers) and the name itself."
    ),
    gettext_noop(
        "The probe crashed or lacks a setting: check the case's render config (its env) and the run's log tail."
    ),
    gettext_noop(
        "etcd does not answer (refused, timed out, unreachable): check that the etcd members run, their ports and the network between the probe and them."
    ),
    gettext_noop("etcd answers slowly: check disk fsync latency, leader changes and load."),
    gettext_noop("The etcd probe failed: check the etcd members and the probe's endpoints."),
    gettext_noop("The etcd endpoint whose certificate is inspected does not answer."),
    gettext_noop("The TLS endpoint whose certificate is inspected does not answer."),
    gettext_noop("The expected configuration is missing or has drifted on this cluster."),
    gettext_noop(
        "A node is not ready or evicts pods: check the kubelet, the node's resources (disk, memory, PIDs) and its heartbeat."
    ),
    gettext_noop(
        "No node fits the pod (resources, taints, selectors, affinity): check the scheduler's FailedScheduling events and the cluster's free capacity."
    ),
    gettext_noop(
        "The pod was never scheduled and nothing says why: check that kube-scheduler runs and holds its leader lease."
    ),
    gettext_noop(
        "A controller does not make progress (ReplicaSet, Deployment, StatefulSet, EndpointSlice): check kube-controller-manager and its leader election."
    ),
    gettext_noop(
        "The federation control plane did not propagate (or remove) the object: check its controller and the member cluster's connection."
    ),
    gettext_noop(
        "A workload did not reach its state and nothing else is known: the controllers (or the garbage collector, for 'gone') are the first suspects."
    ),
    gettext_noop(
        "A scheduled pod did not start or become ready and nothing else is known: check the node's kubelet and the pod's events."
    ),
    gettext_noop(
        "The API server answers with errors or sheds load: check kube-apiserver, its load balancer and, behind it, etcd."
    ),
    gettext_noop(
        "The API server is unreachable (refused, timed out): check kube-apiserver and its load balancer."
    ),
    gettext_noop(
        "The probe itself failed (a crash, a missing setting, no report in time): check the case's configuration, its log tail and the portal's workers."
    ),
)
