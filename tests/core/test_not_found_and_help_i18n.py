"""API 404s name what was not found in the request's language, and a management
command's --help is in the command's language (KUBEPROBE_LANGUAGE)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_a_missing_cluster_is_named_in_english_and_in_chinese(admin_api: APIClient) -> None:
    english = admin_api.get("/api/v1/clusters/nope/", HTTP_ACCEPT_LANGUAGE="en")
    chinese = admin_api.get("/api/v1/clusters/nope/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert english.status_code == chinese.status_code == 404
    assert english.json() == {"detail": "Cluster “nope” does not exist."}
    assert chinese.json() == {"detail": "集群“nope”不存在。"}
    missing_alert = admin_api.get("/api/v1/alerts/999999/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert missing_alert.status_code == 404
    assert "999999" in missing_alert.json()["detail"]
    assert "matches the given query" not in missing_alert.json()["detail"]


def help_of(language: str, *command: str) -> str:
    env = {**os.environ, "KUBEPROBE_LANGUAGE": language, "KUBEPROBE_DEBUG": "1"}
    done = subprocess.run(
        [sys.executable, "manage.py", *command, "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_a_commands_help_is_in_the_commands_language() -> None:
    chinese = help_of("zh-hans", "silence", "add")
    assert "集群组名称。" in chinese and "原因：变更、工单。" in chinese
    assert "Cluster group name." not in chinese
    english = help_of("en", "silence", "add")
    assert "Cluster group name." in english and "集群组名称" not in english
    assert "向发布门禁询问一个集群" in help_of("zh-hans", "gate")
