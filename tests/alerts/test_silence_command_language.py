"""`manage.py silence` speaks the language of KUBEPROBE_LANGUAGE or the locale."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.alerts.models import Silence
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("silence", *args, stdout=out)
    return out.getvalue()


def test_add_list_expire_in_chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEPROBE_LANGUAGE", "zh-hans")
    ClusterFactory(name="prod-1")
    out = run("add", "--cluster", "prod-1", "--for", "2h", "--comment", "内核升级")
    silence = Silence.objects.get()
    assert out.startswith(f"静默 {silence.pk}：[生效中]  cluster=prod-1")
    assert out.rstrip().endswith("— 内核升级")
    assert "生效中" in run("list")
    assert run("expire", str(silence.pk)).startswith(f"静默 {silence.pk} 已结束：[已结束]")
    assert run("list").strip() == "没有生效中或待生效的静默。"


def test_errors_in_chinese_and_in_english(monkeypatch: pytest.MonkeyPatch) -> None:
    ClusterFactory(name="prod-1")
    monkeypatch.setenv("KUBEPROBE_LANGUAGE", "zh-hans")
    with pytest.raises(CommandError, match="请给出 --for 时长 或 --until 日期时间 之一。"):
        run("add", "--cluster", "prod-1")
    with pytest.raises(CommandError, match="--for：'soon' 不是时长"):
        run("add", "--cluster", "prod-1", "--for", "soon")
    monkeypatch.setenv("KUBEPROBE_LANGUAGE", "en")
    with pytest.raises(
        CommandError, match=re.escape("Give one of --for DURATION or --until DATETIME.")
    ):
        run("add", "--cluster", "prod-1")
    with pytest.raises(CommandError, match=re.escape("No silence with id 999.")):
        run("expire", "999")
