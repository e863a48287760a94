"""A fault-injecting HTTPS proxy in front of the real kube-apiserver.

A real API server cannot be told to answer the next pod create with a 503, or
to store a pod and then lose the answer on the way back; those are the two
faults dispatch must survive. This proxy passes every request through to the
local control plane (tests/kube.py) unchanged, except the ones a test told it
to fail. It forwards the caller's bearer token, so it is used with a service
account's kubeconfig (`FaultProxy.kubeconfig`). No watches: whole answers only.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from kube_local import LocalKube, kubeconfig_yaml

ADMIN_SA = ("kube-system", "kubeprobe-test-proxy-admin")


@dataclass
class Fault:
    method: str
    path_part: str
    status: int
    forward: bool  # carry the request out first, then answer the error


def _status_body(status: int, message: str) -> bytes:
    reason = http.client.responses.get(status, "Error").replace(" ", "")
    return (
        f'{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure",'
        f'"message":"{message}","reason":"{reason}","code":{status}}}'
    ).encode()


class FaultProxy:
    def __init__(self, kube: LocalKube) -> None:
        self.kube = kube
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int]] = []  # method, path, status answered
        self.lock = threading.Lock()
        cert, key = kube.pki.issue("fault-proxy", "fault-proxy", hosts=["127.0.0.1"])
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(str(cert), str(key))
        self.upstream_ctx = ssl.create_default_context(cafile=str(kube.ca_path))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.httpd.socket = server_ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    # ---- test API

    def fail_next(self, method: str, path_part: str, status: int) -> None:
        """Answer the next `method` request whose path contains `path_part` with `status`."""
        with self.lock:
            self.faults.append(Fault(method, path_part, status, forward=False))

    def lose_next_answer(self, method: str, path_part: str, status: int) -> None:
        """Carry the next matching request out on the API server, then answer `status`."""
        with self.lock:
            self.faults.append(Fault(method, path_part, status, forward=True))

    def kubeconfig(self) -> str:
        """A cluster-admin service account's token, pointed at the proxy."""
        namespace, name = ADMIN_SA
        status, _ = self.kube.request(
            "GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}"
        )
        if status == 404:
            self.kube.service_account_kubeconfig(
                namespace,
                name,
                cluster_rules=[{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
            )
        token_config = self.kube.token_kubeconfig(namespace, name)
        import yaml

        token = yaml.safe_load(token_config)["users"][0]["user"]["token"]
        return kubeconfig_yaml(self.url, self.kube.ca_path, {"token": token}, "proxied")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---- serving

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and fault.path_part in path:
                    self.faults.remove(fault)
                    return fault
        return None

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = urlsplit(self.kube.server)
        conn = http.client.HTTPSConnection(
            upstream.hostname or "127.0.0.1", upstream.port, context=self.upstream_ctx, timeout=30
        )
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in {"authorization", "content-type", "accept", "user-agent"}
                }
                fault = proxy._take_fault(self.command, self.path)
                if fault is not None and fault.forward:
                    proxy._forward(self.command, self.path, headers, body)
                if fault is not None:
                    status, out_headers, payload = (
                        fault.status,
                        [("Content-Type", "application/json")],
                        _status_body(fault.status, "injected by the test's fault proxy"),
                    )
                else:
                    status, out_headers, payload = proxy._forward(
                        self.command, self.path, headers, body
                    )
                with proxy.lock:
                    proxy.requests.append((self.command, self.path, status))
                self.send_response(status)
                for key, value in out_headers:
                    if key.lower() not in {"content-length", "transfer-encoding", "connection"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return Handler
