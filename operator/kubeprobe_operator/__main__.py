"""`python -m kubeprobe_operator`: run the ProbeOperator (kopf) with peering.

Replicas share the cluster-wide ClusterKopfPeering object named by --peering
(deploy/kubernetes/probe-operator.yaml ships it): each starts with a random
priority, only the highest one handles events, the others stand by and take
over when it stops (at once on a clean exit, after its 60 s lease otherwise).
"""

from __future__ import annotations

import argparse
import os
import secrets

import kopf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kubeprobe_operator", description=__doc__)
    parser.add_argument(
        "--peering",
        default=os.environ.get("KUBEPROBE_OPERATOR_PEERING", "kubeprobe-operator"),
        help="the ClusterKopfPeering object replicas coordinate through",
    )
    parser.add_argument(
        "--standalone", action="store_true", help="run without peering (one replica only)"
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=int(os.environ.get("KUBEPROBE_OPERATOR_PRIORITY") or 0)
        or secrets.randbelow(2**31 - 2) + 1,
        help="peering priority; the highest live replica is the active one (default: random)",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    parser.add_argument(
        "--liveness",
        default=os.environ.get("KUBEPROBE_OPERATOR_LIVENESS", ""),
        help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    kopf.configure(verbose=args.verbose)
    from kubeprobe_operator import handlers  # noqa: F401 (registers the handlers)

    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.standalone or None,
        peering_name=None if args.standalone else args.peering,
        priority=args.priority,
        liveness_endpoint=args.liveness or None,
    )


if __name__ == "__main__":
    main()
