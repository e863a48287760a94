"""Virtual cluster probe: the pod lifecycle inside each virtual cluster.

Virtual clusters (vcluster, Kamaji, Capsule tenants...) have their own API
server but share the host's nodes, so a virtual cluster can be broken while
the host is fine. For each virtual cluster whose kubeconfig it is given, the
case runs the pod lifecycle (create, scheduled, running, ready, delete, gone)
with steps named `<virtual cluster>: <step>`, keeps going after one fails,
and fails naming the virtual clusters that did.

| env | default | meaning |
| --- | --- | --- |
| `VCLUSTER_KUBECONFIG_DIR` | | directory with one kubeconfig file per virtual cluster (e.g. a mounted Secret); file name = virtual cluster name |
| `VCLUSTER_SECRET` | | `namespace/name` of a Secret in the host cluster, one key per virtual cluster holding its kubeconfig |
| `VCLUSTER_NAMESPACE` | `default` | namespace inside each virtual cluster for the probe pod |

At least one of the first two is required. Plus the Kubernetes env shared by
all cases (see `probe_sdk.cases._kube`); `KUBECONFIG` is the host cluster,
used only to read `VCLUSTER_SECRET`.
"""

from __future__ import annotations

from typing import List

from probe_sdk import Probe
from probe_sdk.cases import _env, _kube


def main() -> None:
    with Probe() as probe:
        ns = _env.text("VCLUSTER_NAMESPACE", "default")
        host = _kube.connect() if _env.text("VCLUSTER_SECRET", "") else None
        configs = _kube.kubeconfig_set("VCLUSTER_KUBECONFIG_DIR", "VCLUSTER_SECRET", host)
        probe.metric("virtual_clusters", len(configs))
        failed: List[str] = []
        for name, text in configs.items():
            prefix = "%s: " % name
            try:
                with probe.step(prefix + "connect"):
                    kube = _kube.connect(text, label=name)
                _kube.run_pod_lifecycle(probe, kube, ns, prefix=prefix)
            except Exception:  # recorded by its step; go on with the next virtual cluster
                failed.append(name)
        probe.metric("virtual_clusters_failed", len(failed))
        if failed:
            raise AssertionError(
                "%d of %d virtual clusters failed: %s"
                % (len(failed), len(configs), ", ".join(failed))
            )


if __name__ == "__main__":
    main()
