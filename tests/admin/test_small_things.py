"""Small things a newcomer notices: the favicon, and the case form's empty overrides."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.test import Client

from apps.catalog.models import RenderConfig
from tests.admin.helpers import form_data
from tests.factories import RenderConfigFactory

pytestmark = pytest.mark.django_db


def test_favicon_is_served(client: Client) -> None:
    answer = client.get("/favicon.ico")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/static/favicon.svg"
    found = finders.find("favicon.svg")
    assert found and "<svg" in Path(str(found)).read_text()


def test_case_form_shows_unset_args_and_resources_empty_and_keeps_them_unset(
    client: Client, make_user: Callable[..., User]
) -> None:
    config = RenderConfigFactory(env={"A": "1"}, args=None, resources=None)
    client.force_login(make_user("admin"))
    url = f"/admin/catalog/case/{config.case.pk}/change/"
    page = client.get(url)
    html = page.content.decode()
    for field in ("args", "resources"):
        area = re.search(
            rf'<textarea name="render_config-0-{field}"[^>]*>(.*?)</textarea>', html, re.S
        )
        assert area is not None and area.group(1).strip() == "", (field, area)
    data = form_data(page)
    answer = client.post(url, data)
    assert answer.status_code == 302, answer.content.decode()[-2000:]
    config = RenderConfig.objects.get(pk=config.pk)
    assert config.args is None and config.resources is None and config.env == {"A": "1"}
    data["render_config-0-args"] = '["--fast"]'
    client.post(url, data)
    assert RenderConfig.objects.get(pk=config.pk).args == ["--fast"]
