"""cluster_check_api against the real API server (tests/kube.py): /version and
/readyz through the cluster's own client, stored with one UPDATE, shown in the
admin and the REST API, and checked periodically."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from django.test import Client
from kube_local import Pki, kubeconfig_yaml
from kubernetes.client.exceptions import ApiException
from rest_framework.test import APIClient

from apps.clusters.k8s import clear_client_cache, cluster_client
from apps.clusters.models import ApiStatus, Cluster, Executor
from apps.clusters.services import cluster_check_api
from apps.clusters.tasks import check_cluster_apis
from tests.admin.helpers import messages_of
from tests.kube import LocalKube
from tests.utils import wait_for

pytestmark = pytest.mark.django_db

CLUSTERS = "/admin/clusters/cluster/"


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    yield
    clear_client_cache()


def make_cluster(kubeconfig: str, name: str = "real", **fields: Any) -> Cluster:
    return Cluster.objects.create(
        name=name, executor=Executor.KUBERNETES, kubeconfig=kubeconfig, **fields
    )


def pointed_at(kubeconfig: str, server: str) -> str:
    doc = yaml.safe_load(kubeconfig)
    doc["clusters"][0]["cluster"]["server"] = server
    return yaml.safe_dump(doc)


def with_token(kube: LocalKube, token: str) -> str:
    return kubeconfig_yaml(kube.server, kube.ca_path, {"token": token})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def stored(cluster: Cluster) -> Cluster:
    return Cluster.objects.get(pk=cluster.pk)


def test_a_working_cluster_is_ok_with_its_real_version_in_one_update(
    kube: LocalKube, django_assert_num_queries: Callable[..., Any]
) -> None:
    cluster = make_cluster(kube.kubeconfig())
    updated_at = cluster.updated_at
    with django_assert_num_queries(1) as captured:
        check = cluster_check_api(cluster=cluster)
    assert captured.captured_queries[0]["sql"].startswith("UPDATE")
    assert (check.status, check.version, check.error) == (ApiStatus.OK, "v1.37.2", "")
    row = stored(cluster)
    assert (row.api_status, row.api_version, row.api_error) == ("ok", "v1.37.2", "")
    assert row.api_checked_at == check.checked_at
    assert row.updated_at == updated_at  # a check is not an edit


def test_a_closed_port_is_unreachable_with_the_reason_and_keeps_the_last_version(
    kube: LocalKube,
) -> None:
    cluster = make_cluster(kube.kubeconfig())
    assert cluster_check_api(cluster=cluster).status == ApiStatus.OK
    cluster.kubeconfig = pointed_at(kube.kubeconfig(), f"https://127.0.0.1:{closed_port()}")
    cluster.save()
    check = cluster_check_api(cluster=cluster)
    assert check.status == ApiStatus.UNREACHABLE
    assert "Connection refused" in check.error
    row = stored(cluster)
    assert row.api_status == "unreachable" and "Connection refused" in row.api_error
    assert row.api_version == "v1.37.2"  # the last version the server told


def test_a_silent_server_is_unreachable_within_the_clusters_timeout() -> None:
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        server = f"https://127.0.0.1:{silent.getsockname()[1]}"
        kubeconfig = yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
        cluster = make_cluster(kubeconfig, api_timeout_seconds=1)
        started = time.monotonic()
        check = cluster_check_api(cluster=cluster)
        elapsed = time.monotonic() - started
    assert check.status == ApiStatus.UNREACHABLE
    assert "timed out" in check.error
    assert elapsed < 5


def test_a_server_certificate_from_another_ca_is_unreachable_naming_tls(
    kube: LocalKube, tmp_path: Any
) -> None:
    other_ca = Pki(tmp_path / "other").directory / "ca.crt"
    kubeconfig = kubeconfig_yaml(kube.server, other_ca, {"token": "whatever"})
    check = cluster_check_api(cluster=make_cluster(kubeconfig))
    assert check.status == ApiStatus.UNREACHABLE
    assert "CERTIFICATE_VERIFY_FAILED" in check.error
    assert "\n" not in check.error


def test_an_account_without_rights_still_reads_version_and_readyz(
    kube: LocalKube, kube_ns: str
) -> None:
    # RBAC's system:public-info-viewer opens /version, /readyz, /livez and /healthz
    # to every authenticated (and anonymous) user.
    kubeconfig = kube.service_account_kubeconfig(kube_ns, "nobody")
    cluster = make_cluster(kubeconfig)
    client = cluster_client(cluster)
    with pytest.raises(ApiException) as denied:
        client.call(client.core.list_namespaced_pod, kube_ns)
    assert denied.value.status == 403
    check = cluster_check_api(cluster=cluster)
    assert (check.status, check.version) == (ApiStatus.OK, "v1.37.2")


def expired_copy(kube: LocalKube, token: str) -> str:
    """The same service-account token, expired an hour ago, signed with the cluster's
    own service-account key: what a client holds once its token's time is up."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    now = int(time.time())
    claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    signed = f"{header}.{b64(json.dumps(claims).encode())}"
    key = serialization.load_pem_private_key(kube.sa_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    r, s = decode_dss_signature(key.sign(signed.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signed}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def test_an_invalid_or_expired_token_is_unauthorized(kube: LocalKube, kube_ns: str) -> None:
    garbled = make_cluster(with_token(kube, "not-a-token"), name="garbled")
    check = cluster_check_api(cluster=garbled)
    assert (check.status, check.version) == (ApiStatus.UNAUTHORIZED, "")
    assert check.error == "GET /version: HTTP 401: Unauthorized"

    token = yaml.safe_load(kube.service_account_kubeconfig(kube_ns, "late"))["users"][0]["user"]
    assert cluster_check_api(cluster=make_cluster(with_token(kube, token["token"]))).status == "ok"
    expired = make_cluster(with_token(kube, expired_copy(kube, token["token"])), name="expired")
    check = cluster_check_api(cluster=expired)
    assert check.status == ApiStatus.UNAUTHORIZED
    assert check.error == "GET /version: HTTP 401: Unauthorized"
    assert stored(expired).api_error == check.error  # no token in what is stored


def test_an_api_server_that_lost_etcd_is_not_ready_naming_the_check(kube: LocalKube) -> None:
    cluster = make_cluster(kube.kubeconfig(), api_timeout_seconds=15)
    etcd = kube.procs["etcd"]
    os.kill(etcd.pid, signal.SIGSTOP)  # etcd hangs; the API server still answers /version
    try:
        # The API server watches etcd's health in the background: not ready a moment later.
        check = wait_for(
            lambda: (c := cluster_check_api(cluster=cluster)).status != ApiStatus.OK and c,
            timeout=60,
            interval=0.5,
            what="/readyz to notice that etcd hangs",
        )
    finally:
        os.kill(etcd.pid, signal.SIGCONT)
    assert (check.status, check.version) == (ApiStatus.NOT_READY, "v1.37.2")
    assert check.error.startswith("GET /readyz: HTTP 500: [-]etcd")
    assert "failed" in check.error and "\n" not in check.error
    assert stored(cluster).api_status == "not-ready"
    wait_for(
        lambda: cluster_check_api(cluster=cluster).status == ApiStatus.OK,
        timeout=60,
        interval=0.5,
        what="the API server to be ready again",
    )


def test_the_check_waits_for_the_clusters_qps_limit(kube: LocalKube) -> None:
    cluster = make_cluster(kube.kubeconfig(), api_qps=0.5)  # a burst of 1, then one per 2 s
    started = time.monotonic()
    assert cluster_check_api(cluster=cluster).status == ApiStatus.OK
    assert time.monotonic() - started >= 1.5  # /readyz waited for its token


# ------------------------------------------------------------------ admin, API, periodic


@pytest.fixture
def operator_client(client: Client, make_user: Callable[..., object]) -> Client:
    client.force_login(make_user("operator"))
    return client


def _check_now(client: Client, pks: list[int]) -> list[str]:
    response = client.post(
        CLUSTERS,
        {"action": "check_api_now", "_selected_action": pks, "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    return [m for m in messages_of(response) if not m.startswith("Local clusters will not run")]


def test_operators_check_the_api_now_from_the_admin(
    kube: LocalKube, operator_client: Client
) -> None:
    real = make_cluster(kube.kubeconfig(), name="real")
    down = make_cluster(
        pointed_at(kube.kubeconfig(), f"https://127.0.0.1:{closed_port()}"), name="down"
    )
    local = Cluster.objects.create(name="local", executor=Executor.LOCAL)
    said = _check_now(operator_client, [real.pk, down.pk, local.pk])
    assert said[0] == "Skipped 1 cluster(s) without a kubeconfig."
    assert said[1].startswith("down: unreachable: ") and "Connection refused" in said[1]
    assert said[2] == "real: ok, v1.37.2"
    assert stored(local).api_status == ApiStatus.NOT_CHECKED

    page = operator_client.get(CLUSTERS, {"api_status__exact": "unreachable"})
    assert [c.name for c in page.context["cl"].result_list] == ["down"]
    page = operator_client.get(CLUSTERS, {"api_version": "v1.37.2"})
    assert [c.name for c in page.context["cl"].result_list] == ["real"]
    html = page.content.decode()
    assert "v1.37.2" in html and ">ok<" in html

    form = operator_client.get(f"{CLUSTERS}{real.pk}/change/").content.decode()
    assert "v1.37.2" in form and 'name="api_version"' not in form  # shown, never edited


def test_a_large_selection_is_checked_by_the_workers(
    operator_client: Client, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    from tests.factories import ClusterFactory

    clusters = [ClusterFactory() for _ in range(7)]
    with django_capture_on_commit_callbacks() as queued:
        said = _check_now(operator_client, [c.pk for c in clusters])
    assert said == ["Queued API checks of 7 clusters; reload the page to see them."]
    assert len(queued) == 7


def test_viewers_cannot_check(make_user: Callable[..., object], client: Client) -> None:
    client.force_login(make_user("viewer"))
    html = client.get(CLUSTERS).content.decode()
    assert "check_api_now" not in html


def test_the_rest_api_shows_the_check_read_only_and_filters_on_it(
    kube: LocalKube, admin_api: APIClient
) -> None:
    cluster = make_cluster(kube.kubeconfig())
    cluster_check_api(cluster=cluster)
    body = admin_api.get("/api/v1/clusters/real/").json()
    assert body["api_status"] == "ok" and body["api_version"] == "v1.37.2"
    assert body["api_error"] == "" and body["api_checked_at"]
    changed = admin_api.patch(
        "/api/v1/clusters/real/",
        {"api_status": "unreachable", "api_version": "v0", "description": "edited"},
        format="json",
    )
    assert changed.status_code == 200
    row = stored(cluster)
    assert (row.api_status, row.api_version, row.description) == ("ok", "v1.37.2", "edited")
    names = [c["name"] for c in admin_api.get("/api/v1/clusters/?api_status=ok").json()["results"]]
    assert names == ["real"]
    assert admin_api.get("/api/v1/clusters/?api_status=unreachable").json()["results"] == []


def test_the_periodic_check_covers_enabled_clusters_with_a_kubeconfig(kube: LocalKube) -> None:
    from kubeprobe_site.celery import app

    real = make_cluster(kube.kubeconfig(), name="real")
    down = make_cluster(
        pointed_at(kube.kubeconfig(), f"https://127.0.0.1:{closed_port()}"), name="down"
    )
    disabled = make_cluster(kube.kubeconfig(), name="disabled", enabled=False)
    local = Cluster.objects.create(name="local", executor=Executor.LOCAL)
    app.conf.task_always_eager = True
    try:
        assert check_cluster_apis.apply().get() == 2
    finally:
        app.conf.task_always_eager = False
    assert stored(real).api_status == ApiStatus.OK
    assert stored(down).api_status == ApiStatus.UNREACHABLE
    assert stored(disabled).api_status == stored(local).api_status == ApiStatus.NOT_CHECKED
