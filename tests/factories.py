"""factory-boy factories for the domain models."""

from __future__ import annotations

import factory
import yaml

from apps.catalog.models import Case, CaseSet, CaseTemplate, RenderConfig
from apps.clusters.models import Cluster, ClusterGroup, Executor
from apps.runs.models import ProbeRun, Trigger
from apps.scheduling.models import Binding


def make_kubeconfig(
    context: str = "ctx", server: str = "https://10.0.0.1:6443", token: str = "s3cr3t-token-value"
) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": [{"name": f"{context}-cluster", "cluster": {"server": server}}],
            "users": [{"name": f"{context}-user", "user": {"token": token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": f"{context}-cluster", "user": f"{context}-user"},
                }
            ],
        }
    )


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster

    name = factory.Sequence(lambda n: f"cluster-{n}")
    executor = Executor.KUBERNETES
    kubeconfig = factory.LazyFunction(make_kubeconfig)
    environment = "prod"
    region = "eu-1"


class ClusterGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ClusterGroup

    name = factory.Sequence(lambda n: f"group-{n}")


class CaseTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CaseTemplate

    name = factory.Sequence(lambda n: f"template-{n}")
    image = "ghcr.io/kubeprobe/probes:latest"
    command = ["python", "-m", "probe_sdk.cases.pod_lifecycle"]
    default_env = {"TIMEOUT": "60", "NAMESPACE": "kubeprobe"}


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    name = factory.Sequence(lambda n: f"case-{n}")
    template = factory.SubFactory(CaseTemplateFactory)


class RenderConfigFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RenderConfig

    case = factory.SubFactory(CaseFactory)
    name = factory.Sequence(lambda n: f"render-{n}")


class CaseSetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CaseSet

    name = factory.Sequence(lambda n: f"caseset-{n}")


class BindingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Binding
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"binding-{n}")
    interval_seconds = 60


class ProbeRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProbeRun

    case = factory.SubFactory(CaseFactory)
    cluster = factory.SubFactory(ClusterFactory)
    trigger = Trigger.MANUAL
