from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from apps.clusters.models import Cluster, Executor
from tests.factories import ClusterFactory, make_kubeconfig

SECRET = "very-secret-bearer-token-123"


@pytest.mark.django_db
def test_kubeconfig_is_encrypted_at_rest_and_decrypted_on_read() -> None:
    text = make_kubeconfig(token=SECRET, server="https://api.prod.example:6443")
    cluster = ClusterFactory(name="prod", kubeconfig=text)
    with connection.cursor() as cursor:
        cursor.execute("SELECT kubeconfig FROM clusters_cluster WHERE id = %s", [cluster.pk])
        (stored,) = cursor.fetchone()
    assert stored and stored != text
    assert SECRET not in stored
    assert "api.prod.example" not in stored
    assert Cluster.objects.get(pk=cluster.pk).kubeconfig == text
    assert cluster.kubeconfig_fingerprint.startswith("sha256:")
    assert SECRET not in cluster.kubeconfig_fingerprint


@pytest.mark.django_db
def test_empty_kubeconfig_is_stored_empty_for_local_clusters() -> None:
    cluster = ClusterFactory(executor=Executor.LOCAL, kubeconfig="")
    assert not Cluster.objects.get(pk=cluster.pk).has_kubeconfig
    assert Cluster.objects.filter(kubeconfig="").count() == 1


@pytest.mark.parametrize(
    ("text", "context", "field", "fragment"),
    [
        ("clusters: [unclosed", "", "kubeconfig", "not valid YAML"),
        ("- just\n- a list\n", "", "kubeconfig", "YAML mapping"),
        (make_kubeconfig(context="a"), "b", "context", "Context 'b' is not in the kubeconfig"),
        (
            make_kubeconfig(context="a").replace("current-context: a\n", ""),
            "",
            "context",
            "no current-context",
        ),
        (
            make_kubeconfig(server="ftp://x").replace(
                "server: ftp://x", "insecure-skip-tls-verify: true"
            ),
            "",
            "kubeconfig",
            "no server URL",
        ),
    ],
)
@pytest.mark.django_db
def test_invalid_kubeconfigs_are_rejected_on_save_naming_the_field(
    text: str, context: str, field: str, fragment: str
) -> None:
    cluster = Cluster(name="bad", executor=Executor.KUBERNETES, kubeconfig=text, context=context)
    with pytest.raises(ValidationError) as info:
        cluster.save()
    assert field in info.value.message_dict
    assert any(fragment in m for m in info.value.message_dict[field])
    assert not Cluster.objects.exists()


@pytest.mark.django_db
def test_kubernetes_executor_requires_a_kubeconfig() -> None:
    with pytest.raises(ValidationError) as info:
        Cluster(name="nokc", executor=Executor.KUBERNETES).save()
    assert "required" in info.value.message_dict["kubeconfig"][0]


@pytest.mark.django_db
def test_named_context_is_used_when_present() -> None:
    cluster = ClusterFactory(kubeconfig=make_kubeconfig(context="blue"), context="blue")
    assert cluster.context == "blue"
