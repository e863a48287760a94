"""The inbox channel: what a chat channel would receive, kept in the portal and shown on
/dashboard/inbox/; `manage.py demo_inbox` creates it once (the quick start's demo channel)."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from apps.alerts.inbox import INBOX_KEEP, inbox_message_create
from apps.alerts.models import Channel, InboxMessage
from apps.alerts.sending import channel_send_test
from apps.alerts.transports.base import make_test_message

pytestmark = pytest.mark.django_db


def test_demo_inbox_creates_the_channel_once_and_keeps_it_as_set() -> None:
    out = StringIO()
    call_command("demo_inbox", stdout=out)
    assert "Channel inbox (inbox): created" in out.getvalue()
    channel = Channel.objects.get(name="inbox")
    assert channel.kind == "inbox" and channel.enabled and channel.send_resolved
    Channel.objects.filter(pk=channel.pk).update(enabled=False)
    out = StringIO()
    call_command("demo_inbox", stdout=out)
    assert "kept (disabled)" in out.getvalue()
    assert Channel.objects.filter(kind="inbox").count() == 1


def test_a_sent_notification_is_kept_and_shown_on_the_inbox_page(
    client: Client, make_user: Callable[..., User]
) -> None:
    call_command("demo_inbox", stdout=StringIO())
    notification = channel_send_test(channel_id=Channel.objects.get(name="inbox").pk)
    assert notification.status == "sent", notification.error
    kept = InboxMessage.objects.get()
    assert kept.event == "test" and kept.clusters == ["test-cluster"]
    assert "If you can read it" in kept.text

    client.force_login(make_user("viewer"))
    html = client.get("/dashboard/inbox/").content.decode()
    assert f'id="inbox-{kept.pk}"' in html and "this channel works" in html
    assert "<b>inbox</b>" in html  # the channel is named
    assert 'href="/dashboard/inbox/" aria-current="page"' in html
    fragment = client.get("/dashboard/inbox/?fragment=1").content.decode()
    assert "<body" not in fragment and f'id="inbox-{kept.pk}"' in fragment
    assert "data-fragment-counts" in fragment


def test_the_inbox_keeps_the_newest_messages_only() -> None:
    for i in range(INBOX_KEEP + 3):
        inbox_message_create(message=make_test_message(case=f"case-{i}"))
    assert InboxMessage.objects.count() == INBOX_KEEP
    assert not InboxMessage.objects.filter(case="case-0").exists()
    assert InboxMessage.objects.filter(case=f"case-{INBOX_KEEP + 2}").exists()


def test_without_an_inbox_channel_the_page_says_how_to_add_one(
    client: Client, make_user: Callable[..., User]
) -> None:
    client.force_login(make_user("viewer"))
    html = client.get("/dashboard/inbox/").content.decode()
    assert "No inbox channel" in html and "manage.py demo_inbox" in html


def test_alerts_page_fragment_for_the_live_script(
    client: Client, make_user: Callable[..., User]
) -> None:
    client.force_login(make_user("viewer"))
    fragment = client.get("/dashboard/alerts/?fragment=1").content.decode()
    assert "<body" not in fragment and 'id="alerts-firing"' in fragment
    assert 'data-critical="0"' in fragment
    page = client.get("/dashboard/alerts/").content.decode()
    assert '<div id="alerts-live">' in page
