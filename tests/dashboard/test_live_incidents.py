"""Incident pages are live: a changed incident reaches the incidents list and its own
page over the websocket; users who do not see every cluster cannot subscribe."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from apps.dashboard import push
from apps.diagnosis.models import Incident
from tests.dashboard.test_live import connect, drain, limited, live_layer, run_async, subscribe
from tests.dashboard.test_live import superuser as superuser
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["limited", "live_layer"]  # fixtures


def test_an_incident_change_reaches_list_and_page_subscribers(superuser: User) -> None:
    incident = Incident.objects.create(
        scope="cluster",
        key="cluster:x",
        title="3 cases failing on x: etcd",
        cluster=ClusterFactory(),
    )
    other = Incident.objects.create(
        scope="cluster", key="cluster:y", title="other", cluster=ClusterFactory()
    )

    async def scenario() -> None:
        listing, page = await connect(superuser), await connect(superuser)
        assert (await subscribe(listing, "incidents"))["type"] == "subscribed"
        assert (await subscribe(page, f"incident:{incident.pk}"))["type"] == "subscribed"
        await sync_to_async(push.push_incidents)([incident.pk, other.pk])
        listed = await drain(listing)
        assert {f["incident_id"] for f in listed} == {incident.pk, other.pk}
        assert all(f["type"] == "incident" for f in listed)
        own = await drain(page)
        assert [(f["incident_id"], f["state"], f["members"]) for f in own] == [
            (incident.pk, "open", 0)
        ]
        await listing.disconnect()
        await page.disconnect()

    run_async(scenario)


def test_a_user_limited_to_some_clusters_cannot_watch_incidents(
    limited: tuple[User, int, int],
) -> None:
    user = limited[0]

    async def scenario() -> None:
        communicator = await connect(user)
        answer = await subscribe(communicator, "incidents")
        assert answer["type"] == "error" and "incidents" in answer["detail"]
        await communicator.disconnect()

    run_async(scenario)
