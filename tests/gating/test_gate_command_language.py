"""`manage.py gate check` speaks the language of KUBEPROBE_LANGUAGE or the locale."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.core.i18n import command_language
from apps.runs.models import RunState
from tests.factories import ClusterFactory
from tests.gating.helpers import cases, finished, gating_set, policy


def gate(*args: str) -> tuple[int, str]:
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("gate", "check", *args, stdout=out, stderr=StringIO())
    return int(exited.value.code or 0), out.getvalue()


@pytest.fixture
def denied_etcd(db: None) -> str:
    cluster = ClusterFactory(name="prod-1")
    [etcd] = cases(1)
    policy([("etcd", gating_set(etcd))])
    finished(etcd, cluster, RunState.FAILED, step="put", error="context deadline exceeded")
    return etcd.name


@pytest.mark.django_db
def test_the_verdict_and_reasons_in_chinese(
    denied_etcd: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEPROBE_LANGUAGE", "zh-hans")
    code, out = gate("prod-1", "--component", "etcd")
    assert code == 1  # the exit code does not depend on the language
    first, reason, case = out.splitlines()
    assert first.startswith("拒绝：prod-1 / etcd（策略 p，决定 ")
    # The run's state reads in Chinese too; the probe's error stays as it reported it.
    assert reason == f"  ✗ {denied_etcd}：失败 于步骤“put”：context deadline exceeded"
    assert case.startswith(f"  {denied_etcd}: 拒绝 (运行 ")


@pytest.mark.django_db
def test_english_from_the_locale_and_by_default(
    denied_etcd: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBEPROBE_LANGUAGE")
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    code, out = gate("prod-1", "--component", "etcd")
    assert code == 1 and out.startswith("DENY: prod-1 / etcd (policy p, decision ")
    assert f"✗ {denied_etcd}: failed at step 'put': context deadline exceeded" in out
    assert f"  {denied_etcd}: deny (run " in out


@pytest.mark.django_db
def test_bad_input_in_the_locale_language(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEPROBE_LANGUAGE")
    monkeypatch.setenv("LC_ALL", "zh_CN.UTF-8")
    with pytest.raises(CommandError, match="没有名为“nope”的集群。") as refused:
        call_command("gate", "check", "nope", stdout=StringIO())
    assert refused.value.returncode == 3
    ClusterFactory(name="prod-1")
    with pytest.raises(CommandError, match="--timeout: 请输入 1 到 900 秒。"):
        call_command("gate", "check", "prod-1", "--wait", "--timeout", "0", stdout=StringIO())


@pytest.mark.parametrize(
    ("environ", "language"),
    [
        ({}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LANG": "zh_CN.UTF-8"}, "zh-hans"),
        ({"LC_ALL": "zh_SG"}, "zh-hans"),
        ({"LANGUAGE": "de_DE:zh_CN", "LANG": "en_US.UTF-8"}, "zh-hans"),
        ({"LANGUAGE": "fr", "LANG": "de_DE.UTF-8"}, "en"),
        ({"KUBEPROBE_LANGUAGE": "en", "LC_ALL": "zh_CN.UTF-8"}, "en"),
        ({"KUBEPROBE_LANGUAGE": "zh-hans", "LANG": "en_US"}, "zh-hans"),
        # No Traditional catalog: Simplified, as Django's Accept-Language negotiation does.
        ({"LANG": "zh_TW.UTF-8"}, "zh-hans"),
    ],
)
def test_the_command_language_from_the_environment(environ: dict[str, str], language: str) -> None:
    assert command_language(environ) == language
