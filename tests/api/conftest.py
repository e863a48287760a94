"""Fixtures for the REST API tests (tests/api only)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import models
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from apps.catalog.models import Case, CaseSet, CaseTemplate, RenderConfig
from apps.clusters.models import Cluster, ClusterGroup
from apps.runs.models import ProbeRun
from apps.scheduling.models import Binding
from tests.factories import (
    BindingFactory,
    CaseFactory,
    CaseSetFactory,
    CaseTemplateFactory,
    ClusterFactory,
    ClusterGroupFactory,
)

WRITTEN_MODELS: tuple[type[models.Model], ...] = (
    Cluster,
    ClusterGroup,
    CaseTemplate,
    Case,
    RenderConfig,
    CaseSet,
    Binding,
    PeriodicTask,
    ProbeRun,
)


def row_counts() -> dict[str, int]:
    """Row counts of everything the API can write, to prove a failure wrote nothing."""
    return {model.__name__: model.objects.count() for model in WRITTEN_MODELS}


@pytest.fixture
def api(admin_api: APIClient) -> APIClient:
    """The admin client, answering 500 as a response instead of raising, so a
    server error shows up as a status code in the assertion."""
    admin_api.raise_request_exception = False
    return admin_api


@pytest.fixture
def client_for(api_client_for: Callable[[str], APIClient]) -> Callable[[str], APIClient]:
    def make(role: str) -> APIClient:
        client = api_client_for(role)
        client.raise_request_exception = False
        return client

    return make


@pytest.fixture
def world(db: None) -> dict[str, models.Model]:
    """One named object of each kind, for payloads that refer to others by name."""
    cluster = ClusterFactory(name="alpha", labels={"team": "a"})
    template = CaseTemplateFactory(name="tmpl")
    case = CaseFactory(name="kase", template=template)
    case_set = CaseSetFactory(name="kset")
    case_set.cases.add(case)
    group = ClusterGroupFactory(name="grp")
    group.members.add(cluster)
    binding = BindingFactory(name="bind")
    binding.clusters.add(cluster)
    binding.cases.add(case)
    return {
        "cluster": cluster,
        "template": template,
        "case": case,
        "case_set": case_set,
        "group": group,
        "binding": binding,
    }
