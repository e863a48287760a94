"""Admin changelists cost a fixed number of queries, whatever the table size.

Each test measures the changelist at a small size (10 rows) and again after
growing the table, and asserts the two query counts are equal: a per-row
query would add one query per displayed row (up to list_per_page = 100).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from django.test import Client

from apps.catalog.models import Case, CaseSet, CaseSetMembership, CaseTemplate, RenderConfig
from apps.clusters.models import Cluster, ClusterGroup, Executor
from apps.runs.models import ProbeRun, RunState, Trigger
from apps.scheduling.models import Binding
from tests.admin.helpers import count_queries

BATCH = 5000
MAX_QUERIES = 15
SMALL = 10

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client: Client, make_user: Callable[..., object]) -> Client:
    client.force_login(make_user("admin"))
    return client


def _assert_constant(client: Client, url: str, grow: Callable[[], int], small: int) -> None:
    # Warm up once: first requests fill per-process caches (content types...).
    assert client.get(url).status_code == 200
    resp_small, n_small, _ = count_queries(client, url)
    assert resp_small.status_code == 200
    assert resp_small.context["cl"].result_count == small
    assert len(resp_small.context["cl"].result_list) == small

    total = grow()

    resp_big, n_big, sql_big = count_queries(client, url)
    assert resp_big.status_code == 200
    cl = resp_big.context["cl"]
    assert cl.result_count == total
    assert len(cl.result_list) == min(total, cl.list_per_page)
    assert n_big == n_small, (
        f"{url}: {n_small} queries for {small} rows but {n_big} for {total} rows:\n"
        + "\n".join(sql_big)
    )
    assert n_big <= MAX_QUERIES, "\n".join(sql_big)


def _clusters(start: int, stop: int) -> list[Cluster]:
    envs = ["prod", "staging", "dev"]
    regions = ["eu-1", "us-1", "ap-1", "cn-1"]
    return [
        Cluster(
            name=f"cl-{i:06d}",
            display_name=f"Cluster {i}",
            executor=Executor.LOCAL,
            labels={"env": envs[i % 3], "tier": str(i % 7)},
            environment=envs[i % 3],
            region=regions[i % 4],
            enabled=i % 5 != 0,
            # bulk_create skips save(): a fingerprint alone marks "kubeconfig set".
            kubeconfig_fingerprint=f"sha256:{i:012x}" if i % 2 else "",
        )
        for i in range(start, stop)
    ]


def test_cluster_changelist_5000_rows(admin_client_: Client) -> None:
    Cluster.objects.bulk_create(_clusters(0, SMALL))

    def grow() -> int:
        Cluster.objects.bulk_create(_clusters(SMALL, 5000), batch_size=BATCH)
        return 5000

    _assert_constant(admin_client_, "/admin/clusters/cluster/", grow, SMALL)
    # Filtered and sorted views of the big table are constant too.
    for query in ("?enabled__exact=1&environment=prod", "?o=-7", "?q=Cluster+12"):
        response, n, sql = count_queries(admin_client_, "/admin/clusters/cluster/" + query)
        assert response.status_code == 200
        assert response.context["cl"].result_list, query
        assert n <= MAX_QUERIES, "\n".join(sql)


def _run_rows(
    cases: list[Case], clusters: list[Cluster], count: int, offset: int
) -> list[ProbeRun]:
    states = list(RunState)
    triggers = list(Trigger)
    oks = {RunState.SUCCEEDED: True, RunState.FAILED: False}
    rows = []
    for i in range(offset, offset + count):
        state = states[i % len(states)]
        rows.append(
            ProbeRun(
                case=cases[i % len(cases)],
                cluster=clusters[(i // len(cases)) % len(clusters)],
                trigger=triggers[i % len(triggers)],
                state=state,
                executor="local" if i % 3 == 0 else "kubernetes",
                ok=oks.get(state),
                duration_ms=i % 9000,
                log_tail="x" * 200,
            )
        )
    return rows


def test_proberun_changelist_100000_rows(admin_client_: Client) -> None:
    template = CaseTemplate.objects.create(name="tpl", image="probe:1")
    cases = Case.objects.bulk_create(
        [Case(name=f"case-{i:03d}", template=template) for i in range(50)]
    )
    clusters = Cluster.objects.bulk_create(_clusters(0, 50))
    ProbeRun.objects.bulk_create(_run_rows(cases, clusters, SMALL, 0))

    def grow() -> int:
        remaining = 100_000 - SMALL
        for start in range(0, remaining, BATCH):
            n = min(BATCH, remaining - start)
            ProbeRun.objects.bulk_create(_run_rows(cases, clusters, n, SMALL + start))
        return 100_000

    _assert_constant(admin_client_, "/admin/runs/proberun/", grow, SMALL)
    response, n, sql = count_queries(admin_client_, "/admin/runs/proberun/?state__exact=failed")
    assert response.status_code == 200
    assert {r.state for r in response.context["cl"].result_list} == {RunState.FAILED}
    assert n <= MAX_QUERIES, "\n".join(sql)


def _cases(template_ids: list[int], start: int, stop: int) -> int:
    cases = Case.objects.bulk_create(
        [
            Case(name=f"case-{i:04d}", template_id=template_ids[i % len(template_ids)])
            for i in range(start, stop)
        ]
    )
    # Every other case has a render config; the rest show "—".
    RenderConfig.objects.bulk_create(
        [RenderConfig(case=c, name=f"render-{c.name}", env={"A": "1"}) for c in cases[::2]]
    )
    return stop


def test_case_changelist(admin_client_: Client) -> None:
    templates = CaseTemplate.objects.bulk_create(
        [
            CaseTemplate(name=f"tpl-{i}", image="probe:1", kind=("probe", "inspection")[i % 2])
            for i in range(10)
        ]
    )
    ids = [t.pk for t in templates]
    _cases(ids, 0, SMALL)
    _assert_constant(admin_client_, "/admin/catalog/case/", lambda: _cases(ids, SMALL, 400), SMALL)
    response = admin_client_.get("/admin/catalog/case/")
    html = response.content.decode()
    assert "render-case-0000" in html and "Black-box probe" in html


def test_cluster_group_changelist(admin_client_: Client) -> None:
    clusters = Cluster.objects.bulk_create(_clusters(0, 30))
    through = ClusterGroup.members.through

    def make(start: int, stop: int) -> int:
        groups = ClusterGroup.objects.bulk_create(
            [
                ClusterGroup(name=f"grp-{i:04d}", selector={"env": "prod"} if i % 2 else {})
                for i in range(start, stop)
            ]
        )
        through.objects.bulk_create(
            [
                through(clustergroup_id=g.pk, cluster_id=c.pk)
                for g in groups
                for c in clusters[: g.pk % 5 + 1]
            ]
        )
        return stop

    make(0, SMALL)
    _assert_constant(
        admin_client_, "/admin/clusters/clustergroup/", lambda: make(SMALL, 300), SMALL
    )


def test_case_set_changelist(admin_client_: Client) -> None:
    template = CaseTemplate.objects.create(name="tpl", image="probe:1")
    cases = Case.objects.bulk_create([Case(name=f"case-{i}", template=template) for i in range(20)])

    def make(start: int, stop: int) -> int:
        sets = CaseSet.objects.bulk_create(
            [CaseSet(name=f"set-{i:04d}") for i in range(start, stop)]
        )
        CaseSetMembership.objects.bulk_create(
            [CaseSetMembership(case_set=s, case=c) for s in sets for c in cases[: s.pk % 4 + 1]]
        )
        return stop

    make(0, SMALL)
    _assert_constant(admin_client_, "/admin/catalog/caseset/", lambda: make(SMALL, 300), SMALL)


def test_binding_changelist(admin_client_: Client) -> None:
    triggers = itertools.cycle(
        [[], [{"kind": "component_release", "component": "etcd"}], [{"kind": "upgrade"}]]
    )

    def make(start: int, stop: int) -> int:
        # bulk_create skips Binding.save(), so no PeriodicTask rows: fine for a list.
        Binding.objects.bulk_create(
            [
                Binding(
                    name=f"bind-{i:04d}",
                    interval_seconds=60 if i % 3 == 0 else None,
                    cron="*/5 * * * *" if i % 3 == 1 else "",
                    event_triggers=next(triggers),
                    enabled=i % 4 != 0,
                )
                for i in range(start, stop)
            ]
        )
        return stop

    make(0, SMALL)
    _assert_constant(admin_client_, "/admin/scheduling/binding/", lambda: make(SMALL, 300), SMALL)
    html = admin_client_.get("/admin/scheduling/binding/").content.decode()
    assert "every 60s" in html and "component_release:etcd" in html


def test_alert_changelists_constant(admin_client_: Client) -> None:
    from apps.alerts.channels import channel_save
    from apps.alerts.models import Alert, AlertFlip, Notification

    template = CaseTemplate.objects.create(name="tpl", image="probe:1")
    cases = Case.objects.bulk_create(
        [Case(name=f"case-{i:03d}", template=template) for i in range(40)]
    )
    clusters = Cluster.objects.bulk_create(_clusters(0, 150))
    pairs = itertools.product(cases, clusters)
    channel = channel_save(name="hook", kind="webhook", config={"url": "http://127.0.0.1:9/x"})

    def make(count: int) -> int:
        alerts = Alert.objects.bulk_create(
            [
                Alert(
                    case=case,
                    cluster=cluster,
                    state=("firing", "ok", "acknowledged")[i % 3],
                    error="x" * 300,
                )
                for i, (case, cluster) in zip(range(count), pairs, strict=False)
            ]
        )
        flips = AlertFlip.objects.bulk_create(
            [
                AlertFlip(
                    alert=a, event="firing", old_state="ok", new_state="firing", severity="warning"
                )
                for a in alerts
            ]
        )
        Notification.objects.bulk_create(
            [
                Notification(channel=channel, event="firing", severity="warning", title=f"t{f.pk}")
                for f in flips
            ]
        )
        return Alert.objects.count()

    make(SMALL)
    grow = iter([lambda: make(5000 - SMALL)])
    _assert_constant(admin_client_, "/admin/alerts/alert/", next(grow), SMALL)
    for url in (
        "/admin/alerts/alertflip/",
        "/admin/alerts/notification/",
        "/admin/alerts/alert/?open=yes&severity__exact=warning",
    ):
        response, n, sql = count_queries(admin_client_, url)
        assert response.status_code == 200, url
        assert response.context["cl"].result_list, url
        assert n <= MAX_QUERIES, "\n".join(sql)
