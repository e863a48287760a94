"""`manage.py silence add|list|expire`."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.alerts.management.commands.silence import parse_duration
from apps.alerts.models import Silence
from tests.factories import CaseFactory, CaseSetFactory, ClusterFactory, ClusterGroupFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("silence", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def names(db: None) -> None:
    ClusterFactory(name="prod-1")
    ClusterGroupFactory(name="prod")
    CaseFactory(name="etcd-meta")
    CaseSetFactory(name="builtin-probes")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("45s", 45), ("1w", 604800)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_add_for_a_duration(names: None) -> None:
    out = run("add", "--cluster", "prod-1", "--for", "2h", "--comment", "kernel upgrade")
    silence = Silence.objects.get()
    assert out.startswith(f"Silence {silence.pk}: [active]  cluster=prod-1")
    assert "kernel upgrade" in out
    assert silence.matchers == [{"name": "cluster", "value": "prod-1"}]
    assert silence.comment == "kernel upgrade" and silence.created_by is None
    assert abs(silence.ends_at - timezone.now() - timedelta(hours=2)) < timedelta(minutes=1)
    assert silence.is_active


def test_add_with_every_matcher_until_a_moment(names: None) -> None:
    until = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    run(
        "add",
        "--cluster", "prod-1",
        "--case", "etcd-meta",
        "--group", "prod",
        "--case-set", "builtin-probes",
        "--label", "env=prod",
        "--label", "team=core",
        "--until", until.isoformat(),
    )  # fmt: skip
    silence = Silence.objects.get()
    assert silence.matchers == [
        {"name": "cluster", "value": "prod-1"},
        {"name": "group", "value": "prod"},
        {"name": "case", "value": "etcd-meta"},
        {"name": "case_set", "value": "builtin-probes"},
        {"name": "label", "value": "env=prod"},
        {"name": "label", "value": "team=core"},
    ]
    assert silence.ends_at == until


def test_add_starting_later_is_pending(names: None) -> None:
    starts = (timezone.now() + timedelta(hours=3)).replace(microsecond=0)
    out = run("add", "--label", "env=prod", "--starts", starts.isoformat(), "--for", "30m")
    silence = Silence.objects.get()
    assert "[pending]" in out
    assert silence.starts_at == starts and silence.ends_at == starts + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cluster", "prod-1", "--for", "2 hours"], "--for: '2 hours' is not a duration"),
        (["--cluster", "prod-1", "--for", "2x"], "--for: '2x' is not a duration"),
        (["--cluster", "prod-1", "--for", "0m"], "--for: the duration must be longer than zero"),
        (["--for", "2h"], "Give at least one matcher"),
        (["--comment", "x", "--for", "2h"], "Give at least one matcher"),
        (["--cluster", "prod-1"], "Give one of --for DURATION or --until DATETIME"),
        (
            ["--cluster", "prod-1", "--for", "2h", "--until", "2999-01-01T00:00"],
            "Give one of --for DURATION or --until DATETIME",
        ),
        (["--cluster", "nope", "--for", "2h"], "--cluster: no cluster named 'nope'"),
        (["--group", "nope", "--for", "2h"], "--group: no cluster group named 'nope'"),
        (["--case", "nope", "--for", "2h"], "--case: no case named 'nope'"),
        (["--case-set", "nope", "--for", "2h"], "--case-set: no case set named 'nope'"),
        (["--label", "prod", "--for", "2h"], "--label: 'prod' is not key=value"),
        (["--label", "=prod", "--for", "2h"], "--label: '=prod' is not key=value"),
        (["--cluster", "prod-1", "--until", "friday"], "--until: 'friday' is not an ISO date-time"),
        (
            ["--cluster", "prod-1", "--until", "2001-01-01T00:00"],
            "--until: the silence would end in the past",
        ),
        (
            ["--cluster", "prod-1", "--starts", "2001-01-01T00:00", "--for", "1h"],
            "--for: the silence would end in the past",
        ),
        (["--cluster", "prod-1", "--starts", "soon", "--for", "1h"], "--starts: 'soon' is not"),
    ],
)
def test_add_refuses_bad_options(names: None, args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as caught:
        run("add", *args)
    assert message in str(caught.value)
    assert not Silence.objects.exists()


@pytest.fixture
def windows(db: None) -> dict[str, Silence]:
    now = timezone.now()
    matchers = [{"name": "cluster", "value": "prod-1"}]
    return {
        "active": Silence.objects.create(
            matchers=matchers, ends_at=now + timedelta(hours=1), comment="upgrade"
        ),
        "pending": Silence.objects.create(
            matchers=[{"name": "label", "value": "env=prod"}],
            starts_at=now + timedelta(hours=1),
            ends_at=now + timedelta(hours=2),
        ),
        "ended": Silence.objects.create(
            matchers=[{"name": "case", "value": "old"}],
            starts_at=now - timedelta(hours=2),
            ends_at=now - timedelta(hours=1),
        ),
    }


def test_list_shows_active_and_pending(windows: dict[str, Silence]) -> None:
    out = run("list")
    assert f"{windows['active'].pk:>6}  [active]  cluster=prod-1" in out and "upgrade" in out
    assert f"{windows['pending'].pk:>6}  [pending]  label=env=prod" in out
    assert "case=old" not in out
    everything = run("list", "--all")
    assert f"{windows['ended'].pk:>6}  [ended]  case=old" in everything


def test_list_when_there_is_none(db: None) -> None:
    assert run("list") == "No active or pending silences.\n"
    assert run("list", "--all") == "No silences.\n"


def test_expire(windows: dict[str, Silence]) -> None:
    pk = windows["active"].pk
    out = run("expire", str(pk))
    assert out.startswith(f"Silence {pk} expired: [ended]")
    assert not Silence.objects.get(pk=pk).is_active
    with pytest.raises(CommandError, match=f"silence {pk} already ended"):
        run("expire", str(pk))


def test_expire_unknown_id(db: None) -> None:
    with pytest.raises(CommandError, match="No silence with id 424242"):
        run("expire", "424242")
