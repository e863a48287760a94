"""Play the probe pods of a local kwok cluster: run each one's command on this host.

kwok pods run nothing, so in `make run KUBE=1` a probe pod that KubeProbe's
kubernetes executor created would never report and its run would time out.
This player watches the probe namespace for such pods (label
`kubeprobe.io/run-id`, set only by the executor) and, once a pod is Running,
starts its container's command here with the pod's own env, the way the
container would: `python -m probe_sdk.cases.lifecycle` then creates real
objects in the local cluster through KUBECONFIG and reports to the portal.
Pods the cases create themselves are left alone (they carry no run id).

    python deploy/dev/kube_player.py --kubeconfig var/kube/admin.kubeconfig [--namespace kubeprobe]

Trials only: commands run as this user, like the local executor's.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

RUN_LABEL = "kubeprobe.io/run-id"
KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV")


class Api:
    """GETs against the API server named by a kubeconfig (its first context)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context = next(
            c["context"] for c in config["contexts"] if c["name"] == config["current-context"]
        )
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        self.server = cluster["server"]
        self.headers = {"Accept": "application/json"}
        self.folder = Path(tempfile.mkdtemp(prefix="kube-player-"))
        ca = self.folder / "ca.crt"
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        self.ssl = ssl.create_default_context(cafile=str(ca))
        if "token" in user:
            self.headers["Authorization"] = f"Bearer {user['token']}"
        else:
            cert, key = self.folder / "client.crt", self.folder / "client.key"
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            self.ssl.load_cert_chain(str(cert), str(key))

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.server + path, headers=self.headers)
        with urllib.request.urlopen(request, context=self.ssl, timeout=10) as response:
            return json.load(response)


def command_of(container: dict[str, Any]) -> list[str]:
    """The container's command and args, with `python` meaning this Python."""
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return argv


def env_of(container: dict[str, Any], kubeconfig: Path, namespace: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
    env.update({e["name"]: e.get("value", "") for e in container.get("env") or []})
    # What a pod gets from its service account and namespace, given here instead.
    env["KUBECONFIG"] = str(kubeconfig)
    env.setdefault("PROBE_NAMESPACE", namespace)
    return env


def play(api: Api, kubeconfig: Path, namespace: str, log: Path) -> None:
    started: dict[str, subprocess.Popen[bytes]] = {}
    while True:
        try:
            pods = api.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector={RUN_LABEL}")[
                "items"
            ]
        except (OSError, urllib.error.URLError, ValueError) as exc:
            print(f"kube-player: cannot list pods: {exc}", file=sys.stderr)
            time.sleep(2)
            continue
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if uid in started or (pod.get("status") or {}).get("phase") != "Running":
                continue
            container = pod["spec"]["containers"][0]
            argv = command_of(container)
            if not argv:
                continue
            name = pod["metadata"]["name"]
            print(f"kube-player: playing {namespace}/{name}: {' '.join(argv)}", file=sys.stderr)
            with log.open("ab") as out:
                started[uid] = subprocess.Popen(
                    argv,
                    env=env_of(container, kubeconfig, namespace),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
        for uid, proc in list(started.items()):
            if proc.poll() is not None and uid not in {p["metadata"]["uid"] for p in pods}:
                del started[uid]  # its pod is gone: forget it
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kube-player", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--namespace", default="kubeprobe")
    parser.add_argument("--log", type=Path, default=Path("var/log/kube-probes.log"))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        play(Api(args.kubeconfig.resolve()), args.kubeconfig.resolve(), args.namespace, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
