"""The gate API's 400s follow Accept-Language: Chinese for zh-hans, English otherwise."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from apps.gating.models import GateCheck
from tests.factories import ClusterFactory
from tests.gating.helpers import cases, gating_set, policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(api_client_for: Callable[[str], APIClient]) -> APIClient:
    ClusterFactory(name="prod-1")
    ClusterFactory(name="off-1", enabled=False)
    etcd, pods = cases(2)
    gating_set(pods, name="pods")
    policy([("etcd", gating_set(etcd, name="etcd-set"))])
    return api_client_for("operator")


@pytest.mark.parametrize(
    ("body", "field", "english", "chinese"),
    [
        (
            {"cluster": "prod-1", "timeout": 0},
            "timeout",
            "Give between 1 and 900 seconds.",
            "请输入 1 到 900 秒。",
        ),
        ({"cluster": "off-1"}, "cluster", "Cluster 'off-1' is disabled.", "集群“off-1”已停用。"),
        (
            {"cluster": "prod-1", "component": "etcd", "case_set": "pods"},
            "case_set",
            "Give a component or a case set, not both.",
            "请给出组件或用例集，不能同时给出。",
        ),
        (
            {"cluster": "prod-1", "component": "ETCD!"},
            "component",
            "Must be a lowercase word (a-z, 0-9, _ . -), e.g. etcd.",
            "必须是小写单词（a-z、0-9、_ . -），例如 etcd。",
        ),
        (
            {"cluster": "prod-1", "component": "etdc"},
            "component",
            "No gate policy rule or binding event trigger names the component 'etdc'.",
            "没有任何发布闸门策略规则或绑定的事件触发器提到组件“etdc”。",
        ),
    ],
)
def test_a_bad_check_is_refused_in_the_asked_language(
    operator: APIClient, body: dict[str, object], field: str, english: str, chinese: str
) -> None:
    for language, message in (("zh-hans", chinese), ("en", english), ("", english)):
        headers = {"HTTP_ACCEPT_LANGUAGE": language} if language else {}
        answer = operator.post("/api/v1/gate/checks", body, format="json", **headers)
        assert answer.status_code == 400
        assert answer.json()[field] == [message], language
    assert not GateCheck.objects.exists()


def test_the_answer_reasons_follow_the_asked_language(operator: APIClient) -> None:
    asked = {"cluster": "prod-1", "component": "etcd"}
    chinese = operator.get("/api/v1/gate", asked, HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    english = operator.get("/api/v1/gate", asked, HTTP_ACCEPT_LANGUAGE="en").json()
    # The machine-readable parts stay as they are; the human sentence is translated.
    assert chinese["verdict"] == english["verdict"] == "unknown"
    assert [r["kind"] for r in chinese["reasons"]] == [r["kind"] for r in english["reasons"]]
    assert chinese["reasons"][0]["message"].endswith("：该集群上还没有结束的运行。")
    assert english["reasons"][0]["message"].endswith(": no finished run on this cluster yet.")
