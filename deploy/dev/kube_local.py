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
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = Path(__file__).resolve().parent
FAULT_KEY = "kubeprobe.dev/fault"
FAULT_IMAGE_PREFIX = "fault.kubeprobe.dev/"
TAINT_KEY = "kubeprobe.dev/tainted"
SERVICE_CIDR = "10.96.0.0/16"
# Pod IPs are only data here (nothing connects to them); Endpoints refuse loopback ones.
POD_CIDR = "10.244.0.1/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


class KubeError(Exception):
    """The local control plane could not start or answered an error."""


# --------------------------------------------------------------------------- pki


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Pki:
    """A throwaway CA and the certificates one local cluster needs."""

    directory: Path
    ca_key: ec.EllipticCurvePrivateKey = field(init=False)
    ca_cert: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("kubeprobe-local-kube-ca"))
            .issuer_name(_name("kubeprobe-local-kube-ca"))
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.write("ca.crt", self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def issue(
        self, name: str, cn: str, org: str | None = None, hosts: Iterable[str] = ()
    ) -> tuple[Path, Path]:
        """A leaf certificate: a server one when `hosts` is given, else a client one."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        hosts = list(hosts)
        if hosts:
            sans: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    sans.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            usage = [ExtendedKeyUsageOID.SERVER_AUTH]
        else:
            usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
        cert = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False).sign(
            self.ca_key, hashes.SHA256()
        )
        return (
            self.write(f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            self.write(f"{name}.key", _pem_key(key)),
        )


# ----------------------------------------------------------------------- stages

# Each fault: what kwok writes into the pod's status (a Go template over the pod).
_CONTAINERS_WAITING = """
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: false
        restartCount: {restarts}
        started: false
        state:
          waiting:
            reason: {reason}
            message: {message}
      {{{{ end }}}}
"""
_CONTAINERS_TERMINATED = """
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: {code}
            reason: {reason}
            message: {message}
            startedAt: {{{{ $now | Quote }}}}
            finishedAt: {{{{ $now | Quote }}}}
      {{{{ end }}}}
"""
_CONTAINERS_RUNNING = """
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
"""
_POD_HEAD = """{{ $now := Now }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      startTime: {{ $now | Quote }}
      conditions:
      - type: Initialized
        status: "True"
        lastTransitionTime: {{ $now | Quote }}
      - type: Ready
        status: "False"
        lastTransitionTime: {{ $now | Quote }}
      - type: ContainersReady
        status: "False"
        lastTransitionTime: {{ $now | Quote }}
"""
_IMAGE_MESSAGE = '{{ printf "Back-off pulling image %q" .image | Quote }}'

FAULTS: dict[str, dict[str, Any]] = {
    # The registry refuses the image: waiting ImagePullBackOff, as a kubelet shows it.
    "image-pull": {
        "status": _POD_HEAD
        + "      phase: Pending\n"
        + _CONTAINERS_WAITING.format(restarts=0, reason="ImagePullBackOff", message=_IMAGE_MESSAGE),
        "event": {
            "type": "Warning",
            "reason": "Failed",
            "message": "Failed to pull image: rpc error: code = NotFound desc = failed to pull and unpack image: not found",
        },
    },
    # The process exits non-zero (restartPolicy Never: the pod fails).
    "crash": {
        "status": _POD_HEAD
        + "      phase: Failed\n"
        + _CONTAINERS_TERMINATED.format(code=1, reason="Error", message='""'),
        "restart_policy": ["Never", "OnFailure"],
    },
    # The same crash under a Deployment (restartPolicy Always): CrashLoopBackOff.
    "crash-loop": {
        "status": _POD_HEAD
        + "      phase: Running\n"
        + _CONTAINERS_WAITING.format(
            restarts=3,
            reason="CrashLoopBackOff",
            message='"back-off 40s restarting failed container"',
        ),
        "fault": "crash",
        "restart_policy": ["Always"],
        "event": {
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off restarting failed container",
        },
    },
    # Over its memory limit: the kernel kills it, exit 137.
    "oom": {
        "status": _POD_HEAD
        + "      phase: Failed\n"
        + _CONTAINERS_TERMINATED.format(code=137, reason="OOMKilled", message='""'),
    },
    # The node ran short of memory and the kubelet evicted the pod.
    "evicted": {
        "status": _POD_HEAD
        + "      phase: Failed\n"
        + '      reason: Evicted\n      message: "The node was low on resource: memory. Threshold quantity: 100Mi, available: 42Mi. "\n'
        + _CONTAINERS_TERMINATED.format(
            code=137,
            reason="ContainerStatusUnknown",
            message='"The container could not be located when the pod was terminated"',
        ),
        "event": {
            "type": "Warning",
            "reason": "Evicted",
            "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 42Mi.",
        },
    },
    # The kubelet cannot build the container: its env names a Secret that does not exist.
    "config-error": {
        "status": _POD_HEAD
        + "      phase: Pending\n"
        + _CONTAINERS_WAITING.format(
            restarts=0,
            reason="CreateContainerConfigError",
            message='"secret \\"probe-creds\\" not found"',
        ),
        "event": {
            "type": "Warning",
            "reason": "Failed",
            "message": 'Error: secret "probe-creds" not found',
        },
    },
    # Starts but its readiness probe never passes.
    "not-ready": {"status": _POD_HEAD + "      phase: Running\n" + _CONTAINERS_RUNNING},
}


def _fault_selectors(fault: str) -> list[list[dict[str, Any]]]:
    """Two ways to ask for a fault: the pod's annotation, or its first image."""
    return [
        [{"key": f'.metadata.annotations["{FAULT_KEY}"]', "operator": "In", "values": [fault]}],
        [
            {
                "key": ".spec.containers.[0].image",
                "operator": "In",
                "values": [f"{FAULT_IMAGE_PREFIX}{fault}"],
            }
        ],
    ]


def _no_fault() -> list[dict[str, Any]]:
    images = sorted(
        {f"{FAULT_IMAGE_PREFIX}{spec.get('fault', name)}" for name, spec in FAULTS.items()}
    )
    return [
        {"key": f'.metadata.annotations["{FAULT_KEY}"]', "operator": "DoesNotExist"},
        {"key": ".spec.containers.[0].image", "operator": "NotIn", "values": images},
    ]


def fault_stages() -> list[dict[str, Any]]:
    stages = []
    for name, spec in FAULTS.items():
        fault = spec.get("fault", name)
        for i, selector in enumerate(_fault_selectors(fault)):
            expressions = [
                *selector,
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".spec.nodeName", "operator": "Exists"},
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
            ]
            if "restart_policy" in spec:
                expressions.append(
                    {
                        "key": ".spec.restartPolicy",
                        "operator": "In",
                        "values": spec["restart_policy"],
                    }
                )
            next_: dict[str, Any] = {"statusTemplate": spec["status"]}
            if "event" in spec:
                next_["event"] = spec["event"]
            stages.append(
                {
                    "apiVersion": "kwok.x-k8s.io/v1alpha1",
                    "kind": "Stage",
                    "metadata": {"name": f"kubeprobe-fault-{name}-{i}"},
                    "spec": {
                        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                        "selector": {"matchExpressions": expressions},
                        "next": next_,
                    },
                }
            )
    stages.append(
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": "kubeprobe-fault-node-not-ready"},
            "spec": {
                "resourceRef": {"apiGroup": "v1", "kind": "Node"},
                "selector": {
                    "matchExpressions": [
                        {
                            "key": f'.metadata.labels["{FAULT_KEY}"]',
                            "operator": "In",
                            "values": ["not-ready"],
                        },
                        {
                            "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                            "operator": "NotIn",
                            "values": ["False"],
                        },
                    ]
                },
                "next": {
                    "statusTemplate": """{{ $now := Now }}
      phase: Running
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
        type: {{ .type | Quote }}
      {{ if eq .type "Ready" }}
        status: "False"
        reason: KubeletNotReady
        message: "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady"
      {{ else }}
        status: {{ .status | Quote }}
        reason: {{ .reason | Quote }}
        message: {{ .message | Quote }}
      {{ end }}
      {{ end }}
""",
                    "event": {
                        "type": "Normal",
                        "reason": "NodeNotReady",
                        "message": "Node is not ready",
                    },
                },
            },
        }
    )
    return stages


def kwok_stages(stage_dir: Path) -> list[dict[str, Any]]:
    """kwok's own default Stages (copied by kube-build), kept off faulted objects, plus ours."""
    import yaml

    stages = []
    for path in sorted(stage_dir.glob("*.yaml")):
        stage = yaml.safe_load(path.read_text())
        expressions = stage["spec"].setdefault("selector", {}).setdefault("matchExpressions", [])
        kind = stage["spec"]["resourceRef"]["kind"]
        if kind == "Pod" and not stage["spec"]["next"].get("delete"):
            expressions.extend(_no_fault())
        elif kind == "Node":
            expressions.append(
                {"key": f'.metadata.labels["{FAULT_KEY}"]', "operator": "DoesNotExist"}
            )
        stages.append(stage)
    return stages + fault_stages()


# -------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll `check` until it returns something truthy; raise KubeError naming `what`."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, KubeError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(0.2)
    raise KubeError(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f": {last}" if last else "")
    )


def bin_dir() -> Path:
    """Where kube-build put the binaries (KUBEPROBE_KUBE_BIN overrides)."""
    if os.environ.get("KUBEPROBE_KUBE_BIN"):
        return Path(os.environ["KUBEPROBE_KUBE_BIN"])
    out = subprocess.run(
        [str(HERE / "kube-build"), "--print"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def kubeconfig_yaml(server: str, ca: Path, user: dict[str, str], name: str = "local") -> str:
    """A kubeconfig with everything inline (data, not file paths), as users paste them."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {
                        "server": server,
                        "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        },
        indent=2,
    )


def _cert_user(cert: Path, key: Path) -> dict[str, str]:
    return {
        "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(key.read_bytes()).decode(),
    }


@dataclass
class LocalKube:
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
        self.sa_key = self.pki.write("sa.key", _pem_key(sa_key))
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

    # ---- API

    def _ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        context.load_cert_chain(*map(str, self.admin_cert))
        return context

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bool = False,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.server + path, data=data, method=method, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=30) as response:
                payload = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            status = exc.code
        if raw:
            return status, payload
        return status, json.loads(payload) if payload else None

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ok: Iterable[int] = (200, 201, 202),
        content_type: str = "application/json",
    ) -> Any:
        """Call the API as cluster admin; raise KubeError on an unexpected status."""
        status, payload = self.request(method, path, body, content_type=content_type)
        if status not in ok:
            message = payload.get("message") if isinstance(payload, dict) else payload
            raise KubeError(f"{method} {path}: HTTP {status}: {message}")
        return payload

    def apply(self, manifest: dict[str, Any], namespace: str | None = None) -> Any:
        """Server-side apply of one object (as `kubectl apply --server-side` would)."""
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        meta = manifest["metadata"]
        plural, namespaced = self.plural(api_version, kind)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        ns = meta.get("namespace") or namespace
        if namespaced:
            if not ns:
                raise KubeError(f"{kind} {meta['name']} needs a namespace")
            path = f"{base}/namespaces/{ns}/{plural}/{meta['name']}"
        else:
            path = f"{base}/{plural}/{meta['name']}"
        return self.api(
            "PATCH",
            path + "?fieldManager=kubeprobe-tests&force=true",
            manifest,
            content_type="application/apply-patch+yaml",
        )

    def plural(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural resource name, namespaced) of a kind, from API discovery."""
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        for resource in self.api("GET", base)["resources"]:
            if resource["kind"] == kind and "/" not in resource["name"]:
                return resource["name"], bool(resource["namespaced"])
        raise KubeError(f"{api_version} {kind} is not served")

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.api("POST", "/api/v1/namespaces", {"metadata": {"name": name, "labels": labels or {}}})
        self.wait_namespace_ready(name)

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

    def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        rules: list[dict[str, Any]] | None = None,
        *,
        cluster_rules: list[dict[str, Any]] | None = None,
        expiration_seconds: int = 86400,
    ) -> str:
        """Create a service account (with a Role/ClusterRole of `rules` bound to it) and a kubeconfig with its token."""
        status, _ = self.request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}}
        )
        if status not in (201, 409):
            raise KubeError(f"create service account {namespace}/{name}: HTTP {status}")
        subject = [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
        if rules is not None:
            self.apply(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "Role",
                    "metadata": {"name": name, "namespace": namespace},
                    "rules": rules,
                }
            )
            self.apply(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": name, "namespace": namespace},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": name,
                    },
                    "subjects": subject,
                }
            )
        if cluster_rules is not None:
            cluster_name = f"{namespace}-{name}"
            self.apply(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": cluster_name},
                    "rules": cluster_rules,
                }
            )
            self.apply(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": cluster_name},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": cluster_name,
                    },
                    "subjects": subject,
                }
            )
        return self.token_kubeconfig(namespace, name, expiration_seconds)

    def token_kubeconfig(self, namespace: str, name: str, expiration_seconds: int = 86400) -> str:
        """A kubeconfig carrying a fresh token (TokenRequest API) of an existing service account."""
        token = self.api(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )["status"]["token"]
        return kubeconfig_yaml(self.server, self.ca_path, {"token": token}, self.name)


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
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["up"]:
        argv = argv[1:]
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="kubeprobe-kube-"))
    kube = LocalKube(workdir, nodes=args.nodes, verbose=True)
    stop = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        kube.start()
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
