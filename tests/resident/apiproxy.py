"""A recording pass-through proxy to the local API server, watches included.

The operator is pointed at it (plain HTTP on 127.0.0.1, its own bearer token
passed through), so a test sees every request the operator made and derives
the (API group, resource, verb) triples its RBAC must grant. Answers are
streamed chunk by chunk, so long-running watches work as they do direct.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from kube_local import LocalKube

Grant = tuple[str, str, str]  # API group, resource (with /subresource), verb
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def grant_of(method: str, target: str) -> Grant | None:
    """The RBAC triple a request needs; None for discovery and other non-resource paths."""
    parts = urlsplit(target)
    segments = [s for s in parts.path.split("/") if s]
    if segments[:1] == ["api"] and len(segments) >= 3:
        group, rest = "", segments[2:]
    elif segments[:1] == ["apis"] and len(segments) >= 4:
        group, rest = segments[1], segments[3:]
    else:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    resource = rest[0] + ("/" + rest[2] if len(rest) > 2 else "")
    named = len(rest) > 1
    query = parse_qs(parts.query)
    if method == "GET":
        verb = "watch" if query.get("watch") == ["true"] else "get" if named else "list"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, "")
        if method == "DELETE":
            verb = "delete" if named else "deletecollection"
    return group, resource, verb


def grants_of(seen: list[tuple[str, str, int]]) -> set[Grant]:
    """The RBAC triples that requests (method, path?query, status answered) needed."""
    out = set()
    for method, target, status in seen:
        grant = grant_of(method, target)
        if grant:
            out.add(grant)
            if method == "PATCH" and status == 201:
                # A server-side apply that created the object needed `create` too.
                out.add((grant[0], grant[1], "create"))
    return out


class RecordingProxy:
    def __init__(self, kube: LocalKube) -> None:
        upstream = urlsplit(kube.server)
        self.host, self.port = upstream.hostname or "127.0.0.1", upstream.port or 443
        self.context = ssl.create_default_context(cafile=str(kube.ca_path))
        self.seen: list[tuple[str, str, int]] = []  # method, path?query, status
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def kubeconfig(self, kubeconfig: str) -> str:
        """The same credentials, pointed at this proxy."""
        config = json.loads(kubeconfig)
        for cluster in config["clusters"]:
            cluster["cluster"] = {"server": self.url}
        return json.dumps(config)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in HOP_BY_HOP and k.lower() != "accept-encoding"
                }
                upstream = http.client.HTTPSConnection(
                    proxy.host, proxy.port, context=proxy.context, timeout=3600
                )
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    with proxy.lock:
                        proxy.seen.append((self.command, self.path, answer.status))
                    self.send_response(answer.status)
                    for key, value in answer.getheaders():
                        if key.lower() not in HOP_BY_HOP:
                            self.send_header(key, value)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    while True:
                        chunk = answer.read1(65536)
                        if not chunk:
                            break
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (OSError, http.client.HTTPException):
                    self.close_connection = True
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        return Handler
