"""etcd black-box probe: put, get, range, txn (compare-and-swap) and delete on every endpoint.

Talks to etcd's v3 JSON gateway with the standard library only, records each
operation's success and latency per endpoint, and fails on any failed
operation or one slower than its threshold. Keys live under a unique prefix
that is deleted at the end, also after a failure. Resident mode
(`KUBEPROBE_CASE=etcd`) runs the same operations as one sample (`sample()`).

| env | default | meaning |
| --- | --- | --- |
| `ETCD_ENDPOINTS` | (required) | comma-separated `https://host:2379` URLs; each is probed on its own |
| `ETCD_CACERT` | | CA bundle file to verify the servers (https) |
| `ETCD_CERT`, `ETCD_KEY` | | client certificate and key files (TLS client auth) |
| `ETCD_INSECURE_SKIP_VERIFY` | `false` | do not verify server certificates |
| `ETCD_KEY_PREFIX` | `/kubeprobe/` | prefix of the probe's keys |
| `ETCD_OP_THRESHOLD_MS` | `500` | an operation slower than this fails its step |
| `ETCD_TIMEOUT_SECONDS` | `5` | timeout of one request |
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Dict, Optional

from probe_sdk import Probe
from probe_sdk.cases import _env


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with prefix."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode()


class EtcdClient:
    def __init__(self, endpoint: str, context: Optional[ssl.SSLContext], timeout: float) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.context = context
        self.timeout = timeout

    def call(self, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 (etcd URLs from ETCD_ENDPOINTS)
            self.endpoint + "/v3/" + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            opened = urllib.request.urlopen(request, timeout=self.timeout, context=self.context)  # noqa: S310
            with opened as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise RuntimeError("etcd %s: HTTP %s: %s" % (path, exc.code, detail)) from None
        except urllib.error.URLError as exc:
            raise RuntimeError("etcd %s: %s" % (path, exc.reason)) from None


def ssl_context(endpoints: list) -> Optional[ssl.SSLContext]:
    if not any(e.startswith("https://") for e in endpoints):
        return None
    cafile = _env.text("ETCD_CACERT", "") or None
    context = ssl.create_default_context(cafile=cafile)
    if _env.flag("ETCD_INSECURE_SKIP_VERIFY"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert, key = _env.text("ETCD_CERT", ""), _env.text("ETCD_KEY", "")
    if cert:
        context.load_cert_chain(cert, key or None)
    return context


def probe_endpoint(probe: Probe, client: EtcdClient, prefix: str, threshold: float) -> None:
    name = client.endpoint
    key = prefix + "probe"
    value = "v-" + uuid.uuid4().hex

    def step(op: str):  # type: ignore[no-untyped-def]
        return probe.step("%s %s" % (op, name), threshold_ms=threshold)

    started = time.monotonic()
    try:
        with step("put"):
            client.call("kv/put", {"key": _b64(key), "value": _b64(value)})
        with step("get"):
            got = client.call("kv/range", {"key": _b64(key)})
            kvs = got.get("kvs") or []
            if not kvs or _unb64(kvs[0].get("value", "")) != value:
                raise AssertionError("read back a different value than was written")
        with step("range"):
            listed = client.call(
                "kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)}
            )
            if int(listed.get("count", 0)) < 1:
                raise AssertionError("range over the probe prefix found nothing")
        with step("txn"):
            new_value = value + "-swapped"
            answer = client.call(
                "kv/txn",
                {
                    "compare": [
                        {
                            "key": _b64(key),
                            "target": "VALUE",
                            "result": "EQUAL",
                            "value": _b64(value),
                        }
                    ],
                    "success": [{"request_put": {"key": _b64(key), "value": _b64(new_value)}}],
                },
            )
            if not answer.get("succeeded"):
                raise AssertionError("compare-and-swap did not succeed on an unchanged key")
        with step("delete"):
            deleted = client.call("kv/deleterange", {"key": _b64(key)})
            if int(deleted.get("deleted", 0)) != 1:
                raise AssertionError(
                    "delete removed %s keys, expected 1" % deleted.get("deleted", 0)
                )
    finally:
        with contextlib.suppress(RuntimeError):  # whatever happened, leave nothing behind
            client.call("kv/deleterange", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        probe.metric("%s total_ms" % name, round((time.monotonic() - started) * 1000))


_resident: Dict[str, Any] = {}


def sample() -> Dict[str, float]:
    """Resident mode (`KUBEPROBE_CASE=etcd`): one round over every endpoint, raising at
    the first failed operation; the env is read once."""
    from probe_sdk.resident import Steps

    if not _resident:
        endpoints = _env.items("ETCD_ENDPOINTS")
        if not endpoints:
            raise _env.ConfigError("ETCD_ENDPOINTS is required")
        _resident.update(
            endpoints=endpoints,
            threshold=_env.number("ETCD_OP_THRESHOLD_MS", 500),
            timeout=_env.number("ETCD_TIMEOUT_SECONDS", 5),
            context=ssl_context(endpoints),
            base=_env.text("ETCD_KEY_PREFIX", "/kubeprobe/").rstrip("/") + "/",
        )
    steps = Steps()
    for endpoint in _resident["endpoints"]:
        prefix = "%s%s/" % (_resident["base"], uuid.uuid4().hex[:12])
        client = EtcdClient(endpoint, _resident["context"], _resident["timeout"])
        probe_endpoint(steps, client, prefix, _resident["threshold"])  # type: ignore[arg-type]
    return steps.timings


def main() -> None:
    with Probe() as probe:
        endpoints = _env.items("ETCD_ENDPOINTS")
        if not endpoints:
            raise _env.ConfigError("ETCD_ENDPOINTS is required")
        threshold = _env.number("ETCD_OP_THRESHOLD_MS", 500)
        timeout = _env.number("ETCD_TIMEOUT_SECONDS", 5)
        context = ssl_context(endpoints)
        base = _env.text("ETCD_KEY_PREFIX", "/kubeprobe/").rstrip("/") + "/"
        failures = []
        for endpoint in endpoints:
            prefix = "%s%s/" % (base, uuid.uuid4().hex[:12])
            try:
                probe_endpoint(probe, EtcdClient(endpoint, context, timeout), prefix, threshold)
            except Exception as exc:  # keep probing the other endpoints
                failures.append("%s: %s" % (endpoint, exc))
        if failures:
            raise RuntimeError(
                "etcd probe failed on %d of %d endpoints" % (len(failures), len(endpoints))
            )


if __name__ == "__main__":
    main()
