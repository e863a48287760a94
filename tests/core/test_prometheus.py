"""A real Prometheus (Debian's package) scrapes a live portal with the bearer
token; its HTTP API then answers with the portal's metrics, and the shipped
alert rules load and evaluate against them. The shipped Grafana dashboard and
rules only name metrics the portal exposes."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
import yaml
from django.utils import timezone

from apps.alerts.models import Alert, AlertState
from tests.factories import CaseFactory, ClusterFactory
from tests.utils import wait_for

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/kubeprobe-rules.yaml"
DASHBOARD = ROOT / "deploy/grafana/kubeprobe-dashboard.json"
TOKEN = "prometheus-scrape-" + "t" * 24

pytestmark = pytest.mark.skipif(
    not shutil.which("prometheus") or not shutil.which("promtool"),
    reason="needs Debian's prometheus package (apt-get install prometheus; .ci/run does)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rules_file(tmp_path: Path) -> Path:
    """The PrometheusRule's groups as a plain Prometheus rules file."""
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": yaml.safe_load(RULES.read_text())["spec"]["groups"]}))
    return path


@pytest.fixture
def prometheus(live_server: Any, tmp_path: Path, settings: Any) -> Iterator[str]:  # type: ignore[misc]
    settings.KUBEPROBE_METRICS_TOKEN = TOKEN
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_file(tmp_path))],
        "scrape_configs": [
            {
                "job_name": "kubeprobe",
                "metrics_path": "/metrics",
                "authorization": {"credentials": TOKEN},
                "static_configs": [{"targets": [urlsplit(live_server.url).netloc]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        print((tmp_path / "prometheus.log").read_text()[-3000:])


def query(base: str, expr: str) -> list[dict[str, Any]]:
    try:
        answer = requests.get(f"{base}/api/v1/query?{urlencode({'query': expr})}", timeout=5)
    except requests.ConnectionError:
        return []  # not listening yet
    return answer.json()["data"]["result"] if answer.status_code == 200 else []


@pytest.mark.django_db(transaction=True)
def test_prometheus_scrapes_the_portal_and_evaluates_the_shipped_rules(
    prometheus: str,
) -> None:
    east = ClusterFactory(name="east", breaker_open_since=timezone.now(), breaker_failures=3)
    Alert.objects.create(
        case=CaseFactory(name="etcd"),
        cluster=east,
        state=AlertState.FIRING,
        latest_state="failed",
        latest_duration_ms=2500,
    )

    result = wait_for(
        lambda: query(prometheus, 'kubeprobe_probe_duration_seconds{case="etcd"}'),
        timeout=60,
        interval=0.5,
        what="Prometheus to scrape the portal",
    )
    (series,) = result
    assert series["metric"]["cluster"] == "east" and series["metric"]["job"] == "kubeprobe"
    assert float(series["value"][1]) == 2.5
    (up,) = query(prometheus, 'up{job="kubeprobe"}')
    assert up["value"][1] == "1"  # scraped with the token (401 would be up 0)
    (firing,) = query(prometheus, "kubeprobe_alert_state == 1")
    assert firing["metric"]["case"] == "etcd"

    def rules_evaluated() -> list[dict[str, Any]] | None:
        groups = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = all(rule.get("lastEvaluation", "").startswith("2") for rule in rules)
        return rules if rules and evaluated and all("health" in r for r in rules) else None

    rules = wait_for(rules_evaluated, timeout=30, interval=0.5, what="the rules to evaluate")
    assert {rule["name"]: rule["health"] for rule in rules} == {
        rule["alert"]: "ok"
        for group in yaml.safe_load(RULES.read_text())["spec"]["groups"]
        for rule in group["rules"]
    }
    # The firing pair and the open breaker are pending or firing alerts already.
    alerts = wait_for(
        lambda: (
            {
                alert["labels"]["alertname"]
                for alert in requests.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"][
                    "alerts"
                ]
            }
            >= {"KubeProbeProbeFailing", "KubeProbeClusterUnreachable"}
        ),
        timeout=30,
        interval=0.5,
        what="the shipped rules to see the failing pair and the open breaker",
    )
    assert alerts


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", str(rules_file(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout


@pytest.mark.django_db
def test_promtool_accepts_the_exposition_and_the_shipped_files_name_real_metrics(
    client: Any,
) -> None:
    Alert.objects.create(
        case=CaseFactory(name="etcd"), cluster=ClusterFactory(name="east"), latest_state="failed"
    )
    exposition = client.get("/metrics").content
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    exposed = set(re.findall(rb"^# TYPE (\w+) (\w+)", exposition, re.M))
    names = set()
    for name, kind in exposed:
        names.add(name.decode())
        if kind == b"histogram":
            names |= {f"{name.decode()}_{part}" for part in ("bucket", "sum", "count")}
        if kind == b"counter":
            names.add(f"{name.decode()}_total")
    used = set(re.findall(r"\bkubeprobe_\w+", RULES.read_text() + DASHBOARD.read_text()))
    assert used and used <= names, used - names
    dashboard = json.loads(DASHBOARD.read_text())
    assert all(panel["targets"] for panel in dashboard["panels"])
