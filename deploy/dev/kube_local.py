"""A local Kubernetes control plane on 127.0.0.1, for tests and trials.

Runs the binaries that `deploy/dev/kube-build` builds: etcd, kube-apiserver
(RBAC and service-account tokens on), kube-controller-manager (the real
Deployment, ReplicaSet, StatefulSet, Endpoints, EndpointSlice, garbage
collector and token controllers), kube-scheduler and kwok, which plays the
kubelets of a few fake nodes. kwok pods run nothing: they only move through
the states its Stages describe.

Faults are injected through Stages written here (see FAULTS): a pod whose
annotation `kubeprobe.dev/fault` or whose image (`fault.kubeprobe.dev/<kind>`)
names a fault fails that way; a node labelled `kubeprobe.dev/fault=not-ready`
turns NotReady. A pod that cannot be scheduled needs no Stage: the real
scheduler leaves it Pending with a FailedScheduling event.

    python deploy/dev/kube_local.py up [--nodes 3] [--dir DIR]   (deploy/dev/kube-up)

Only the standard library and `cryptography` are used, so the script runs
from KubeProbe's virtualenv or any Python with that package.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kube_api import AdminApi, KubeError, kubeconfig_yaml, wait_until
from kube_pki import Pki, pem_key
from kube_stages import FAULT_IMAGE_PREFIX, FAULT_KEY, FAULTS, kwok_stages

__all__ = [
    "FAULTS",
    "FAULT_IMAGE_PREFIX",
    "FAULT_KEY",
    "KubeError",
    "LocalKube",
    "Pki",
    "kubeconfig_yaml",
    "wait_until",
]

HERE = Path(__file__).resolve().parent
TAINT_KEY = "kubeprobe.dev/tainted"
SERVICE_CIDR = "10.96.0.0/16"
# Pod IPs are only data here (nothing connects to them); Endpoints refuse loopback ones.
POD_CIDR = "10.244.0.1/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


# -------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bin_dir() -> Path:
    """Where kube-build put the binaries (KUBEPROBE_KUBE_BIN overrides)."""
    if os.environ.get("KUBEPROBE_KUBE_BIN"):
        return Path(os.environ["KUBEPROBE_KUBE_BIN"])
    out = subprocess.run(
        [str(HERE / "kube-build"), "--print"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def _cert_user(cert: Path, key: Path) -> dict[str, str]:
    return {
        "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(key.read_bytes()).decode(),
    }


@dataclass
class LocalKube(AdminApi):
    """One local cluster. `start()` brings everything up; `stop()` ends what it started."""

    workdir: Path
    nodes: int = 3
    binaries: Path | None = None
    name: str = "local"
    verbose: bool = False
    # What runs besides etcd and kube-apiserver. A lighter cluster (e.g. a second API
    # server standing in for a virtual or member cluster) leaves some out; without
    # kwok it has no nodes, without the controller-manager the namespaces' default
    # service accounts are created here (see wait_namespace_ready).
    components: tuple[str, ...] = ("kube-controller-manager", "kube-scheduler", "kwok")
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.bin = Path(self.binaries) if self.binaries else bin_dir()
        self.logs = self.workdir / "logs"
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.etcd_url = f"http://127.0.0.1:{self.etcd_port}"

    # ---- files

    @property
    def kubeconfig_path(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def ca_path(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    def kubeconfig(self) -> str:
        """The admin kubeconfig (client certificate of system:masters), inline."""
        return self.kubeconfig_path.read_text()

    def _write_kubeconfig(self, name: str, cn: str, org: str | None) -> Path:
        cert, key = self.pki.issue(name, cn, org)
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(
            kubeconfig_yaml(self.server, self.ca_path, _cert_user(cert, key), self.name)
        )
        path.chmod(0o600)
        return path

    # ---- lifecycle

    def start(self) -> LocalKube:
        missing = [
            t for t in ("etcd", "kube-apiserver", *self.components) if not (self.bin / t).exists()
        ]
        if missing:
            raise KubeError(
                f"{', '.join(missing)} not found in {self.bin}: run deploy/dev/kube-build"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        started = time.monotonic()
        try:
            self._pki()
            self._start_etcd()
            self._start_apiserver()
            for component in ("kube-controller-manager", "kube-scheduler"):
                if component in self.components:
                    self.start_component(component)
            if "kwok" in self.components:
                self._start_kwok()
                self._create_nodes()
                if "kube-controller-manager" not in self.components:
                    self._lift_not_ready_taints()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        if self.verbose:
            print(
                f"kube-up: ready in {time.monotonic() - started:.1f}s at {self.server}",
                file=sys.stderr,
            )
        return self

    def _pki(self) -> None:
        self.pki = Pki(self.workdir / "pki")
        self.apiserver_cert = self.pki.issue(
            "apiserver",
            "kube-apiserver",
            hosts=[
                "127.0.0.1",
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        )
        self.apiserver_kubelet = self.pki.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "kubeadm:cluster-admins"
        )
        sa_key = ec.generate_private_key(ec.SECP256R1())
        self.sa_key = self.pki.write("sa.key", pem_key(sa_key))
        self.sa_pub = self.pki.write(
            "sa.pub",
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        admin = self._write_kubeconfig("admin", "kubeprobe-admin", "system:masters")
        admin.rename(self.kubeconfig_path) if admin != self.kubeconfig_path else None
        self.cm_kubeconfig = self._write_kubeconfig(
            "controller-manager", "system:kube-controller-manager", None
        )
        self.scheduler_kubeconfig = self._write_kubeconfig(
            "scheduler", "system:kube-scheduler", None
        )
        self.kwok_kubeconfig = self._write_kubeconfig("kwok", "kwok-controller", "system:masters")
        self.admin_cert = (self.pki.directory / "admin.crt", self.pki.directory / "admin.key")

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (kept open for the process)
        self.procs[name] = subprocess.Popen(
            [str(self.bin / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        log.close()

    def _check_alive(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is not None:
            tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
            raise KubeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _start_etcd(self) -> None:
        self._start(
            "etcd",
            [
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-cluster=local=http://127.0.0.1:{self.etcd_peer_port}",
                # Test data: losing it on a power cut is fine, waiting on fsync is not.
                "--unsafe-no-fsync",
                "--quota-backend-bytes=1073741824",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            self._check_alive("etcd")
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as response:
                return bool(json.load(response).get("health") == "true")

        wait_until(healthy, "etcd", timeout=60)

    def _apiserver_args(self) -> list[str]:
        cert, key = self.apiserver_cert
        kcert, kkey = self.apiserver_kubelet
        return [
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={cert}",
            f"--tls-private-key-file={key}",
            f"--client-ca-file={self.ca_path}",
            # Not used, but its absence makes every component log an error each 10 s.
            f"--requestheader-client-ca-file={self.ca_path}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--kubelet-client-certificate={kcert}",
            f"--kubelet-client-key={kkey}",
            "--kubelet-preferred-address-types=InternalIP",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={self.sa_pub}",
            f"--service-account-signing-key-file={self.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # The "kubernetes" Service cannot point at a loopback address.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]

    def _start_apiserver(self) -> None:
        self._start("kube-apiserver", self._apiserver_args())
        wait_until(self._readyz, "kube-apiserver /readyz", timeout=120)

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port: watches drop, its cache starts anew."""
        self._stop_one("kube-apiserver")
        self._start("kube-apiserver", self._apiserver_args())
        wait_until(self._readyz, "kube-apiserver /readyz after a restart", timeout=120)

    def _readyz(self) -> bool:
        self._check_alive("kube-apiserver")
        status, _ = self.request("GET", "/readyz", raw=True)
        return status == 200

    def _controller_manager_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.cm_kubeconfig}",
            f"--authentication-kubeconfig={self.cm_kubeconfig}",
            f"--authorization-kubeconfig={self.cm_kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.sa_key}",
            f"--root-ca-file={self.ca_path}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*",
            "--v=1",
        ]

    def start_component(self, name: str) -> None:
        """Start kube-controller-manager or kube-scheduler (again, after stop_component)."""
        args = {
            "kube-controller-manager": self._controller_manager_args,
            "kube-scheduler": self._scheduler_args,
        }[name]()
        self._start(name, args)

    def stop_component(self, name: str) -> None:
        """Stop one component, e.g. to show what a cluster without its controllers does."""
        self._stop_one(name)

    def _scheduler_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.scheduler_kubeconfig}",
            f"--authentication-kubeconfig={self.scheduler_kubeconfig}",
            f"--authorization-kubeconfig={self.scheduler_kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            "--v=1",
        ]

    def _start_kwok(self) -> None:
        stage_dir = self.bin.parent / "kwok-stages"
        config = self.workdir / "kwok.yaml"
        config.write_text("\n---\n".join(json.dumps(s) for s in kwok_stages(stage_dir)))
        home = self.workdir / "kwok-home"  # so a user's ~/.kwok/kwok.yaml is not read
        home.mkdir(exist_ok=True)
        self._start(
            "kwok",
            [
                f"--kubeconfig={self.kwok_kubeconfig}",
                f"--config={config}",
                "--manage-all-nodes=true",
                # Without node leases the node lifecycle controller hears from a node only
                # through its status (kwok's heartbeat comes every ~10 min), so every 50 s
                # it marks all nodes Unknown and all their pods NotReady for good.
                "--node-lease-duration-seconds=40",
                f"--cidr={POD_CIDR}",
                # Nodes' addresses stay on this machine: anything that dials a "kubelet" hits loopback.
                "--node-ip=127.0.0.1",
            ],
            env={**os.environ, "HOME": str(home)},
        )

    def node_names(self) -> list[str]:
        return [f"kwok-node-{i}" for i in range(self.nodes)]

    def add_node(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                    **(labels or {}),
                },
                "annotations": {"kwok.x-k8s.io/node": "fake"},
            },
            "spec": {"taints": taints or []},
            "status": {
                # Both address kinds from the start: kwok's node-initialize Stage,
                # when it runs again (a node that went NotReady), writes an empty
                # address list over a node that lacks one of them.
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": name},
                ],
                "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "nodeInfo": {"kubeletVersion": "v1.37.2", "kubeProxyVersion": "v1.37.2"},
            },
        }
        return self.api("POST", "/api/v1/nodes", body)

    def _create_nodes(self) -> None:
        for i, name in enumerate(self.node_names()):
            zone = f"zone-{'abc'[i % 3]}"
            taints = (
                [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}]
                if i == self.nodes - 1 and self.nodes > 1
                else []
            )
            self.add_node(name, {"topology.kubernetes.io/zone": zone}, taints)

    def _lift_not_ready_taints(self) -> None:
        """The API server taints new nodes not-ready; the node lifecycle controller (in the
        controller-manager) lifts that once they are Ready. Without it, lift it here."""
        for node in self.api("GET", "/api/v1/nodes")["items"]:
            taints = node["spec"].get("taints") or []
            kept = [t for t in taints if t["key"] != "node.kubernetes.io/not-ready"]
            if kept != taints:
                self.api(
                    "PATCH",
                    f"/api/v1/nodes/{node['metadata']['name']}",
                    {"spec": {"taints": kept}},
                    content_type="application/merge-patch+json",
                )

    def wait_ready(self, timeout: float = 120) -> None:
        def nodes_ready() -> bool:
            for proc in self.procs:
                self._check_alive(proc)
            items = self.api("GET", "/api/v1/nodes")["items"]
            ready = [
                n
                for n in items
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
            ]
            return len(ready) >= self.nodes

        if "kwok" in self.components:
            wait_until(nodes_ready, f"{self.nodes} kwok nodes to be Ready", timeout=timeout)
        self.wait_namespace_ready("default", timeout=timeout)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            self._stop_one(name)

    def _stop_one(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            # kube-apiserver 1.37 can hang after it stops listening (draining
            # watches); test data needs no grace, so it gets 3 s, then SIGKILL.
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def wait_namespace_ready(self, name: str, timeout: float = 60) -> None:
        """Pods need the namespace's `default` service account, made by a controller."""
        if "kube-controller-manager" not in self.components:
            self.request(  # no controller will: a 409 (already there) is fine
                "POST",
                f"/api/v1/namespaces/{name}/serviceaccounts",
                {"metadata": {"name": "default"}},
            )

        def has_sa() -> bool:
            status, _ = self.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
            return status == 200

        wait_until(has_sa, f"the default service account in namespace {name}", timeout=timeout)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kube-up", description="Run a local Kubernetes control plane until interrupted."
    )
    parser.add_argument(
        "--nodes",
        type=int,
        default=int(os.environ.get("KUBE_NODES", "3")),
        help="kwok nodes (the last one is tainted)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="working folder (default: a new temporary one, removed on exit)",
    )
    parser.add_argument(
        "--kubeconfig", type=Path, default=None, help="also copy the admin kubeconfig here"
    )
    parser.add_argument("--name", default="local", help="cluster and context name in kubeconfigs")
    parser.add_argument(
        "--apply",
        type=Path,
        action="append",
        default=[],
        help="a YAML manifest to apply once the cluster is ready (repeatable)",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["up"]:
        argv = argv[1:]
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="kubeprobe-kube-"))
    kube = LocalKube(workdir, nodes=args.nodes, name=args.name, verbose=True)
    stop = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        kube.start()
        for manifest in args.apply:
            for doc in yaml.safe_load_all(manifest.read_text()):
                if doc:
                    kube.apply(doc)
            print(f"kube-up: applied {manifest}", file=sys.stderr)
        if args.kubeconfig:
            shutil.copyfile(kube.kubeconfig_path, args.kubeconfig)
            args.kubeconfig.chmod(0o600)
        print(f"kube-up: API server {kube.server}", file=sys.stderr)
        print(
            f"kube-up: admin kubeconfig {args.kubeconfig or kube.kubeconfig_path}", file=sys.stderr
        )
        print(f"kube-up: logs in {kube.logs}; Ctrl-C stops everything", file=sys.stderr)
        while not stop:
            for name in list(kube.procs):
                kube._check_alive(name)
            time.sleep(0.5)
    except KubeError as exc:
        print(f"kube-up: {exc}", file=sys.stderr)
        return 1
    finally:
        kube.stop()
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
