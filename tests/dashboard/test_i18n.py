"""Pages, the admin, the API and commands in Simplified Chinese and in English: chosen by
the browser's Accept-Language, or by the language switch (a cookie) over it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import translation
from rest_framework.test import APIClient

from tests.dashboard.conftest import World
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db

Login = Callable[[User], Client]
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9,en;q=0.5"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}


def page(client: Client, url: str, **headers: str) -> str:
    response = client.get(url, **headers)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def test_overview_follows_the_browser_language(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    client = login(make_user("viewer"))
    zh = page(client, "/dashboard/", **ZH)
    assert '<html lang="zh-hans">' in zh
    for text in ("总览", "告警", "收件箱", "退出登录", "正在加载矩阵…", "以表格查看"):
        assert text in zh, text
    assert ">Overview<" not in zh and "log out" not in zh and "Loading the matrix" not in zh
    # The table fallback: the matrix cells, joined in Python, speak it too.
    table = page(client, "/dashboard/?render=table", **ZH)
    for text in ("3 个集群", "成功", "暂无结果", "失败；告警告警中（严重）"):
        assert text in table, text
    en = page(client, "/dashboard/?render=table", **EN)
    assert '<html lang="en">' in en
    for text in (">Overview<", "log out", "3 clusters", "failed; alert firing (critical)"):
        assert text in en, text
    assert "总览" not in en


def test_the_grid_words_are_in_the_javascript_catalog(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    """grid.js draws the overview's cells with gettext/ngettext from /jsi18n/."""
    client = login(make_user("viewer"))
    catalog = page(client, "/jsi18n/", **ZH)
    for text in (
        "%(clusters)s \\u4e2a\\u96c6\\u7fa4",  # "%(clusters)s 个集群", as the catalog escapes it
        "not scheduled here",
        "%(run)s; alert %(alert)s (%(severity)s)",
        "resident probe %(name)s: availability over the last 5 minutes per cluster",
        "The matrix could not be loaded (%(error)s); reload the page.",
    ):
        assert text in catalog, text
    assert "\\u6b64\\u5904\\u672a\\u8c03\\u5ea6" in catalog  # 此处未调度
    # The words grid.json itself carries (a section without a region) follow the language.
    ClusterFactory(name="no-region", region="")
    body = client.get("/dashboard/grid.json", **ZH).json()
    assert "（无地域）" in [title for title, _rows in body["sections"]]


def test_cluster_page_in_chinese_and_english(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    client = login(make_user("viewer"))
    zh = page(client, "/dashboard/clusters/prod-a1/", **ZH)
    for text in ("集群 prod-a1", "用例", "未关闭的告警", "发布门禁", "时间线", "地域"):
        assert text in zh, text
    en = page(client, "/dashboard/clusters/prod-a1/", **EN)
    for text in ("Cluster prod-a1", "Open alerts", "Release gate", "Timeline", "region"):
        assert text in en, text
    assert "集群" not in en.replace("简体中文", "")


def test_the_switch_cookie_wins_over_the_browser(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    client = login(make_user("viewer"))
    # The top bar's switch posts to set_language, which remembers the choice in a cookie.
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/dashboard/"})
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard/"
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    zh = page(client, "/dashboard/", **EN)
    assert "总览" in zh and ">Overview<" not in zh
    # The switch offers the other language, and marks the current one.
    assert 'data-language="en"' in zh and 'data-language="zh-hans"' not in zh
    client.post("/i18n/setlang/", {"language": "en", "next": "/dashboard/"})
    assert ">Overview<" in page(client, "/dashboard/", **ZH)


def test_admin_index_and_change_list(client: Client, make_user: Callable[..., User]) -> None:
    client.force_login(User.objects.create_superuser("root", password="pw-For-tests-1"))
    zh = page(client, "/admin/", **ZH)
    # Django's own strings, our app and model names, and the language switch.
    for text in (
        "最近动作",
        "注销",
        "集群、探测与运行",
        "集群组",
        "用例模版",
        "渲染配置",
        "用例集",
    ):
        assert text in zh, text
    assert 'id="language-switch"' in zh and 'data-language="en"' in zh
    en = page(client, "/admin/", **EN)
    for text in ("Recent actions", "Log out", "Clusters, probes and runs", "Cluster groups"):
        assert text in en, text
    assert "Case templates" in en and "Render configs" in en
    # Column headers, filters and actions of a change list (actions show when it has rows).
    ClusterFactory(name="c1")
    changelist = page(client, "/admin/clusters/cluster/", **ZH)
    for text in ("执行器", "可达", "立即检查 API", "启用所选集群"):
        assert text in changelist, text
    login_page = Client().get("/admin/login/", **ZH).content.decode()
    assert 'id="language-switch"' in login_page  # before logging in, too


def test_api_errors_in_the_request_language() -> None:
    api = APIClient()
    api.force_authenticate(User.objects.create_superuser("root", password="pw-For-tests-1"))
    body = {"name": "bad-labels", "labels": "not-an-object", "executor": "local"}
    zh = api.post("/api/v1/clusters/", body, format="json", **ZH)
    assert zh.status_code == 400
    assert zh.json()["labels"] == ["标签必须是 key: value 键值对组成的对象。"]
    missing = api.post("/api/v1/clusters/", {}, format="json", **ZH)
    assert missing.status_code == 400 and missing.json()["name"] == ["该字段是必填项。"]
    en = api.post("/api/v1/clusters/", body, format="json", **EN)
    assert en.status_code == 400
    assert en.json()["labels"] == ["Labels must be an object of key: value pairs."]
    assert api.post("/api/v1/clusters/", {}, format="json")
    assert api.post("/api/v1/clusters/", {}, format="json").json()["name"] == [
        "This field is required."
    ]


def test_the_scripts_catalog(client: Client) -> None:
    zh = client.get("/jsi18n/", **ZH).content.decode()
    assert "\\u91cd\\u65b0\\u8fde\\u63a5\\u4e2d" in zh or "重新连接中" in zh  # "reconnecting"
    assert "reconnecting" not in client.get("/jsi18n/", **EN).content.decode()


def test_command_output_in_the_configured_language(tmp_path: object) -> None:
    """Commands speak LANGUAGE_CODE (LANGUAGE_CODE=zh-hans python manage.py ...)."""
    with translation.override("zh-hans"), pytest.raises(CommandError, match="没有 kubeconfig 文件"):
        call_command("import_kubeconfig", "/nonexistent/kubeconfig")
    with translation.override("en"), pytest.raises(CommandError, match="No kubeconfig file at"):
        call_command("import_kubeconfig", "/nonexistent/kubeconfig")
