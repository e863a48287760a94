"""deploy/kubernetes/probe-rbac.yaml against the real API server: every built-in
Kubernetes case passes with the `kubeprobe-probe` service account's token and
exactly the RBAC the file grants, and fails with the API's 403 when one verb
is taken away.

Each test applies the manifest into its own namespace (cluster-wide objects
get a per-test name) and runs the seeded case (apps/catalog/builtin.py) as a
process, as a probe pod would, through a recording pass-through proxy
(tests/kubeproxy.py), so the test also sees which verbs the case really used.
The test plays what kwok cannot: the KubeFed controller that propagates a
FederatedConfigMap to its member (here: the same cluster).
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from kube_local import KubeError, kubeconfig_yaml

from apps.catalog.builtin import BUILTIN_TEMPLATES, BuiltinCase, BuiltinTemplate
from tests.kube import LocalKube
from tests.kubeproxy import FaultProxy
from tests.portal import ROOT, run_case
from tests.utils import wait_for

MANIFEST = ROOT / "deploy" / "kubernetes" / "probe-rbac.yaml"
SA = "kubeprobe-probe"
Grant = tuple[str, str, str]  # API group, resource, verb

SEEDED: dict[str, tuple[BuiltinTemplate, BuiltinCase]] = {
    case.name: (template, case)
    for template in BUILTIN_TEMPLATES
    if template.kubernetes
    for case in template.cases
}


def grants(spec: str) -> set[Grant]:
    """`pods:get,list apps/deployments:get` → {("", "pods", "get"), ...}."""
    out = set()
    for item in spec.split():
        resource, _, verbs = item.partition(":")
        group, _, plural = resource.rpartition("/")
        out |= {(group, plural, verb) for verb in verbs.split(",")}
    return out


# What each seeded case calls, read from its code (probe_sdk/cases/): the manifest must
# grant the union and nothing more. Events are listed only to explain a pod that is
# not there yet, so a fast run may not need them.
NEEDS: dict[str, set[Grant]] = {
    "pod-lifecycle": grants("pods:create,get,delete events:list"),
    "deployment-lifecycle": grants(
        "apps/deployments:create,get,patch,delete pods:list events:list"
    ),
    "statefulset-lifecycle": grants(
        "services:create,delete apps/statefulsets:create,get,patch,delete pods:list events:list"
    ),
    "canary-nginx": grants(
        "services:create,get,delete apps/deployments:create,get,patch,delete "
        "discovery.k8s.io/endpointslices:list "
        "pods:list events:list"
    ),
    "node-probe-all": grants("nodes:list pods:create,list,delete events:list"),
    "etcd-backup-coverage": grants("batch/cronjobs:get"),
    "coredns-replicas-coverage": grants("apps/deployments:get"),
    "vcluster-link": grants("secrets:get pods:create,get,delete events:list"),
    "federation-configmap-link": grants(
        "secrets:get types.kubefed.io/federatedconfigmaps:create,delete configmaps:get"
    ),
}
SOMETIMES = grants("events:list")

FEDERATION_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "federatedconfigmaps.types.kubefed.io"},
    "spec": {
        "group": "types.kubefed.io",
        "scope": "Namespaced",
        "names": {
            "kind": "FederatedConfigMap",
            "plural": "federatedconfigmaps",
            "singular": "federatedconfigmap",
            "listKind": "FederatedConfigMapList",
        },
        "versions": [
            {
                "name": "v1beta1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def manifest() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def granted(docs: list[dict[str, Any]]) -> set[Grant]:
    return {
        (group, resource, verb)
        for doc in docs
        if doc["kind"] in ("Role", "ClusterRole")
        for rule in doc.get("rules") or []
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def without(
    docs: list[dict[str, Any]], group: str, resource: str, verb: str
) -> list[dict[str, Any]]:
    """A copy of the manifest whose roles no longer grant `verb` on `resource`."""
    out = copy.deepcopy(docs)
    for doc in out:
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        rules = []
        for rule in doc.get("rules") or []:
            if (
                group in rule["apiGroups"]
                and resource in rule["resources"]
                and verb in rule["verbs"]
            ):
                others = [r for r in rule["resources"] if r != resource]
                verbs = [v for v in rule["verbs"] if v != verb]
                rules += [{**rule, "resources": others}] if others else []
                rules += [{**rule, "resources": [resource], "verbs": verbs}] if verbs else []
            else:
                rules.append(rule)
        doc["rules"] = rules
    assert (group, resource, verb) not in granted(out) and granted(out) < granted(docs)
    return out


def used_grant(method: str, url: str) -> Grant:
    """The RBAC verb, resource and group a REST request needs."""
    parts = urlsplit(url)
    segments = parts.path.strip("/").split("/")
    group, rest = ("", segments[2:]) if segments[0] == "api" else (segments[1], segments[3:])
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    named = len(rest) > 1
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
    if verb is None:
        watch = parse_qs(parts.query).get("watch") == ["true"]
        verb = "watch" if watch else "get" if named else "list"
    return group, rest[0], verb


@dataclass
class Target:
    """One test's namespace with the probe RBAC applied, and a recording proxy in front."""

    kube: LocalKube
    ns: str
    tmp: Path
    proxy: FaultProxy
    cleanup: ExitStack
    bindings: list[dict[str, Any]] = field(default_factory=list)
    roles: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)  # cluster-wide name → this test's

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.ns}:{SA}"

    def apply(self, doc: dict[str, Any]) -> None:
        meta = doc["metadata"]
        self.kube.apply(doc)
        if doc["kind"] in ("Role", "ClusterRole"):
            self.roles[(doc["kind"], meta["name"])] = doc
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            self.bindings.append(doc)
        if meta.get("namespace") != self.ns:  # the namespace's own objects go with it
            plural, namespaced = self.kube.plural(doc["apiVersion"], doc["kind"])
            group = doc["apiVersion"].rpartition("/")[0]
            base = f"/apis/{doc['apiVersion']}" if group else f"/api/{doc['apiVersion']}"
            where = f"/namespaces/{meta['namespace']}" if namespaced else ""
            object_path = f"{base}{where}/{plural}/{meta['name']}"
            self.cleanup.callback(self.kube.request, "DELETE", object_path)

    def apply_rbac(self, docs: list[dict[str, Any]]) -> None:
        """The manifest with namespace `kubeprobe` made this test's; cluster-wide objects
        renamed so that tests never share (or inherit) a grant."""
        renamed = self.renamed
        for doc in docs:
            if doc["kind"].startswith("Cluster"):
                renamed[doc["metadata"]["name"]] = f"{doc['metadata']['name']}-{self.ns}"
        for original in docs:
            doc = copy.deepcopy(original)
            meta = doc["metadata"]
            if doc["kind"] == "Namespace":
                continue  # kube_ns made it
            if meta.get("namespace") == "kubeprobe":
                meta["namespace"] = self.ns
            if doc["kind"].startswith("Cluster"):
                meta["name"] = renamed[meta["name"]]
            if doc["kind"].endswith("Binding"):
                for subject in doc["subjects"]:
                    subject["namespace"] = self.ns
                if doc["roleRef"]["kind"] == "ClusterRole":
                    doc["roleRef"]["name"] = renamed[doc["roleRef"]["name"]]
            self.apply(doc)

    def bind_kubeconfig_reader(self, namespace: str) -> None:
        """What the manifest asks for where the kubeconfig Secret lives."""
        self.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"kubeprobe-probe-{self.ns}", "namespace": namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": self.renamed["kubeprobe-probe-kubeconfig-reader"],
                },
                "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": self.ns}],
            }
        )

    def allowed(self, namespace: str, grant: Grant, name: str = "") -> bool:
        group, resource, verb = grant
        review = self.kube.api(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": self.user,
                    "groups": [
                        "system:serviceaccounts",
                        f"system:serviceaccounts:{self.ns}",
                        "system:authenticated",
                    ],
                    "resourceAttributes": {
                        "namespace": namespace,
                        "group": group,
                        "resource": resource,
                        "verb": verb,
                        "name": name,
                    },
                },
            },
        )
        return bool(review["status"].get("allowed"))

    def wait_grants_effective(self) -> None:
        """The API server's RBAC cache follows writes a moment later: wait until it
        allows every bound rule, so a case never meets a grant that is not there yet."""
        checks = []
        for binding in self.bindings:
            role = self.roles.get((binding["roleRef"]["kind"], binding["roleRef"]["name"]))
            namespace = binding["metadata"].get("namespace", "")
            for rule in (role or {}).get("rules") or []:
                for grant in granted([{"kind": "Role", "rules": [rule]}]):
                    checks.append((namespace, grant, (rule.get("resourceNames") or [""])[0]))
        wait_for(
            lambda: all(self.allowed(*check) for check in checks),
            timeout=30,
            interval=0.1,
            what="the probe's RBAC to take effect",
        )

    def probe_kubeconfig(self) -> str:
        """The probe account's token (TokenRequest), pointed at the recording proxy."""
        token = yaml.safe_load(self.kube.token_kubeconfig(self.ns, SA))["users"][0]["user"]["token"]
        return kubeconfig_yaml(self.proxy.url, self.kube.ca_path, {"token": token}, "probe")

    def secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        status, _ = self.kube.request(
            "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}}
        )
        assert status in (201, 409), status
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace},
                "stringData": data,
            }
        )

    def used(self) -> set[Grant]:
        return {used_grant(method, url) for method, url, _ in self.proxy.requests}


@pytest.fixture
def target(kube: LocalKube, kube_ns: str, tmp_path: Path) -> Iterator[Target]:
    proxy = FaultProxy(kube)
    with ExitStack() as cleanup:
        cleanup.callback(proxy.stop)
        yield Target(kube, kube_ns, tmp_path, proxy, cleanup)


@pytest.fixture(scope="module")
def kubefed_crd(kube: LocalKube) -> None:
    """KubeFed's FederatedConfigMap type, as installing KubeFed would create it."""
    kube.apply(FEDERATION_CRD)

    def established() -> bool:
        crd = kube.api(
            "GET",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{FEDERATION_CRD['metadata']['name']}",
        )
        conditions = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, timeout=30, interval=0.1, what="the FederatedConfigMap CRD")


class PlayedKubeFed:
    """The KubeFed sync controller, played by the test: each FederatedConfigMap in the
    namespace gets its ConfigMap in the member (the same cluster), and loses it again."""

    LABEL = "kubeprobe-test/played-by=kubefed"

    def __init__(self, kube: LocalKube, ns: str) -> None:
        self.kube, self.ns = kube, ns
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        feds_path = f"/apis/types.kubefed.io/v1beta1/namespaces/{self.ns}/federatedconfigmaps"
        cms_path = f"/api/v1/namespaces/{self.ns}/configmaps"
        while not self.stop.wait(0.1):
            try:
                feds = {f["metadata"]["name"]: f for f in self.kube.api("GET", feds_path)["items"]}
                cms = self.kube.api("GET", f"{cms_path}?labelSelector={self.LABEL}")["items"]
                synced = {c["metadata"]["name"] for c in cms}
                for name, fed in feds.items():
                    if name not in synced and not fed["metadata"].get("deletionTimestamp"):
                        key, _, value = self.LABEL.partition("=")
                        body = {
                            "metadata": {"name": name, "labels": {key: value}},
                            "data": fed["spec"]["template"]["data"],
                        }
                        self.kube.api("POST", cms_path, body, ok=(201, 409))
                for name in synced - set(feds):
                    self.kube.api("DELETE", f"{cms_path}/{name}", ok=(200, 202, 404))
            except (KubeError, OSError) as exc:
                self.errors.append(str(exc))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def prepare(target: Target, case_name: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The objects a seeded case needs in the cluster, and its env."""
    template, case = SEEDED[case_name]
    kube, ns = target.kube, target.ns
    config = target.tmp / f"kubeconfig-{uuid.uuid4().hex[:6]}"
    config.write_text(target.probe_kubeconfig())
    env = {
        **template.default_env,
        **case.env,
        "KUBECONFIG": str(config),
        "PROBE_NAMESPACE": ns,
        "WAIT_TIMEOUT_SECONDS": "30",
        "REQUEST_TIMEOUT_SECONDS": "10",
    }
    if template.module == "config_coverage":
        # The objects the seeded coverage cases expect, as an operator would have them.
        objects = {
            "cronjobs": {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": "etcd-backup", "namespace": "kube-system"},
                "spec": {
                    "schedule": "0 */6 * * *",
                    "suspend": False,
                    "jobTemplate": {
                        "spec": {
                            "template": {
                                "spec": {
                                    "restartPolicy": "OnFailure",
                                    "containers": [{"name": "backup", "image": "etcd:3.7.0"}],
                                }
                            }
                        }
                    },
                },
            },
            "deployments": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "coredns", "namespace": "kube-system"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    "template": {
                        "metadata": {"labels": {"k8s-app": "kube-dns"}},
                        "spec": {"containers": [{"name": "coredns", "image": "coredns:1.12"}]},
                    },
                },
            },
        }
        target.apply(objects[env["COVERAGE_RESOURCE"].rsplit("/", 1)[1]])
    elif template.module == "vcluster":
        # The "virtual cluster" is this cluster seen through the probe's own token.
        secret_ns, _, secret = env["VCLUSTER_SECRET"].partition("/")
        target.secret(secret_ns, secret, {"vc-a": config.read_text()})
        target.bind_kubeconfig_reader(secret_ns)
        env["VCLUSTER_NAMESPACE"] = ns
    elif template.module == "federation":
        request.getfixturevalue("kubefed_crd")
        secret_ns, _, secret = env["FEDERATION_MEMBER_SECRET"].partition("/")
        target.secret(secret_ns, secret, {"member-a": config.read_text()})
        target.bind_kubeconfig_reader(secret_ns)
        env["FEDERATION_DEADLINE_SECONDS"] = "20"
        played = PlayedKubeFed(kube, ns)
        target.cleanup.callback(played.close)
    return env


def steps(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in body["steps"]}


def test_the_manifest_grants_what_the_cases_call_and_nothing_more() -> None:
    assert set(NEEDS) == set(SEEDED)
    assert granted(manifest()) == set().union(*NEEDS.values())


@pytest.mark.parametrize("case_name", sorted(SEEDED))
def test_every_seeded_kubernetes_case_passes_with_exactly_the_manifest(
    target: Target, case_name: str, request: pytest.FixtureRequest
) -> None:
    target.apply_rbac(manifest())
    env = prepare(target, case_name, request)
    target.wait_grants_effective()
    result, body = run_case(SEEDED[case_name][0].module, env, timeout=120)
    assert body["ok"] is True, body["errors"]
    assert result.returncode == 0, result.stderr
    assert body["steps"] and all(s["ok"] for s in body["steps"])
    # No request was refused, and the verbs used are the ones this case is known to need.
    assert [r for r in target.proxy.requests if r[2] in (401, 403)] == []
    used = target.used()
    assert used <= NEEDS[case_name], used - NEEDS[case_name]
    assert NEEDS[case_name] - SOMETIMES <= used, NEEDS[case_name] - used


# One verb per case family taken away: (case, group, resource, verb, the step that fails).
REMOVED = [
    ("pod-lifecycle", "", "pods", "create", "create"),
    ("deployment-lifecycle", "apps", "deployments", "patch", "update"),
    ("statefulset-lifecycle", "", "services", "create", "create"),
    ("canary-nginx", "discovery.k8s.io", "endpointslices", "list", "endpoints"),
    ("node-probe-all", "", "nodes", "list", "list nodes"),
    ("etcd-backup-coverage", "batch", "cronjobs", "get", "get cronjobs kube-system/etcd-backup"),
    ("vcluster-link", "", "pods", "delete", "vc-a: delete"),
    ("vcluster-link", "", "secrets", "get", None),
    (
        "federation-configmap-link",
        "types.kubefed.io",
        "federatedconfigmaps",
        "create",
        "create federated object",
    ),
]


@pytest.mark.parametrize(
    ("case_name", "group", "resource", "verb", "step"),
    REMOVED,
    ids=[f"{case}-without-{verb}-{resource}" for case, _, resource, verb, _ in REMOVED],
)
def test_without_one_verb_the_case_fails_naming_the_403(
    target: Target,
    case_name: str,
    group: str,
    resource: str,
    verb: str,
    step: str | None,
    request: pytest.FixtureRequest,
) -> None:
    target.apply_rbac(without(manifest(), group, resource, verb))
    env = prepare(target, case_name, request)
    target.wait_grants_effective()
    result, body = run_case(SEEDED[case_name][0].module, env, timeout=120)
    assert result.returncode != 0 and body["ok"] is False
    if step is None:
        # The kubeconfig Secret is read before the first step: the run's error names it.
        [error] = body["errors"]
    else:
        failed = steps(body)[step]
        assert failed["ok"] is False
        error = failed["error"]
    assert "HTTP 403" in error
    assert f'User "{target.user}" cannot {verb} resource "{resource}"' in error
    assert f'in API group "{group}"' in error
