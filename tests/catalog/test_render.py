from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.catalog.models import Case
from tests.factories import CaseFactory, CaseTemplateFactory, RenderConfigFactory


@pytest.mark.django_db
def test_render_config_env_is_merged_over_template_defaults() -> None:
    template = CaseTemplateFactory(default_env={"TIMEOUT": "60", "NAMESPACE": "kubeprobe"})
    render = RenderConfigFactory(
        case__template=template, env={"TIMEOUT": "5", "ETCD_ENDPOINTS": "https://etcd:2379"}
    )
    case = Case.objects.select_related("template", "render_config").get(pk=render.case_id)
    assert case.effective_env == {
        "TIMEOUT": "5",
        "NAMESPACE": "kubeprobe",
        "ETCD_ENDPOINTS": "https://etcd:2379",
    }


@pytest.mark.django_db
def test_one_template_yields_many_cases_with_their_own_env() -> None:
    template = CaseTemplateFactory(default_env={"TARGET": "default"})
    meta = RenderConfigFactory(
        case__template=template, case__name="etcd-meta", env={"TARGET": "meta"}
    )
    events = RenderConfigFactory(
        case__template=template, case__name="etcd-events", env={"TARGET": "events"}
    )
    bare = CaseFactory(template=template, name="etcd-bare")
    assert Case.objects.get(pk=meta.case_id).effective_env == {"TARGET": "meta"}
    assert Case.objects.get(pk=events.case_id).effective_env == {"TARGET": "events"}
    assert Case.objects.get(pk=bare.pk).effective_env == {"TARGET": "default"}
    assert template.cases.count() == 3


@pytest.mark.django_db
def test_args_resources_and_timeout_overrides() -> None:
    template = CaseTemplateFactory(
        args=["--a"], resources={"limits": {"memory": "128Mi"}}, timeout_seconds=300
    )
    case = CaseFactory(template=template)
    assert case.effective_args == ["--a"]
    assert case.effective_resources == {"limits": {"memory": "128Mi"}}
    assert case.effective_timeout == 300
    RenderConfigFactory(case=case, args=[], resources={"requests": {"cpu": "50m"}})
    case = Case.objects.get(pk=case.pk)
    case.timeout_seconds = 30
    assert case.effective_args == []  # an empty override is still an override
    assert case.effective_resources == {"requests": {"cpu": "50m"}}
    assert case.effective_timeout == 30


@pytest.mark.parametrize("env", [{"1BAD": "x"}, {"has-dash": "x"}, {"OK": 5}, ["NOT", "A", "DICT"]])
@pytest.mark.django_db
def test_invalid_env_is_rejected_by_full_clean(env: object) -> None:
    render = RenderConfigFactory.build(case=CaseFactory(), env=env)
    with pytest.raises(ValidationError) as info:
        render.full_clean()
    assert "env" in info.value.message_dict
