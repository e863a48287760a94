"""Config coverage inspection: a named resource exists and its fields hold the expected values.

For risk controls that must be present on every cluster (a rate-limit or
risk-control configuration such as the KubeDefender global limit, an etcd
backup CronJob, an admission webhook...), the case reads one object and
compares fields chosen by JSONPath with expected values, one step per field,
so drift is reported field by field. Bound to a cluster group, its runs tell
which clusters are not covered yet.

`COVERAGE_EXPECT` holds `path=value` pairs separated by `;` or new lines.
Paths are JSONPath, with or without the leading `$` (kubectl's `{.spec.x}`
works too). Values are compared as JSON when they parse as JSON (`3`,
`false`, `"text"`, `{"a": 1}`), otherwise as text. A path without `=value`
only has to exist. Example:
`.spec.schedule=0 */6 * * *; .spec.suspend=false; .spec.jobTemplate.spec.template.spec.containers[0].image`

| env | default | meaning |
| --- | --- | --- |
| `COVERAGE_RESOURCE` | (required) | `apiVersion/plural`, e.g. `batch/v1/cronjobs`, `v1/configmaps`, `kubedefender.io/v1/globallimits` |
| `COVERAGE_NAMESPACE` | | namespace of the object (empty for cluster-scoped resources) |
| `COVERAGE_NAME` | (required) | name of the object |
| `COVERAGE_EXPECT` | | fields and expected values, as above (empty: the object only has to exist) |

plus `KUBECONFIG`, `STEP_THRESHOLD_MS` / `THRESHOLD_<STEP>_MS` and
`REQUEST_TIMEOUT_SECONDS` (see `probe_sdk.cases._kube`).
"""

from __future__ import annotations

import json
import re
from typing import Any, List, Optional, Tuple

from jsonpath_ng.exceptions import JsonPathParserError
from jsonpath_ng.ext import parse as parse_jsonpath

from probe_sdk import Probe
from probe_sdk.cases import _env, _kube

MISSING = object()


def split_expectation(entry: str) -> Tuple[str, Optional[str]]:
    """`path=value` → (path, value): the first `=` outside brackets that is not a comparison."""
    depth = 0
    for index, char in enumerate(entry):
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "=" and depth == 0:
            before = entry[index - 1] if index else ""
            after = entry[index + 1] if index + 1 < len(entry) else ""
            if after != "=" and before not in "=!<>":
                return entry[:index].strip(), entry[index + 1 :].strip()
    return entry.strip(), None


def expectations(raw: str) -> List[Tuple[str, Optional[str]]]:
    entries = [e for e in re.split(r"[;\n]", raw) if e.strip()]
    return [split_expectation(e) for e in entries]


def compile_path(path: str) -> Any:
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if text.startswith("."):
        text = "$" + text
    try:
        return parse_jsonpath(text)
    except (JsonPathParserError, Exception) as exc:  # the parser raises bare Exceptions too
        raise _env.ConfigError("COVERAGE_EXPECT: bad JSONPath %r: %s" % (path, exc)) from None


def found_value(obj: Any, path: str) -> Any:
    matches = [m.value for m in compile_path(path).find(obj)]
    if not matches:
        return MISSING
    return matches[0] if len(matches) == 1 else matches


def matches(found: Any, expected: str) -> bool:
    try:
        wanted = json.loads(expected)
        # In Python 1 == True: a boolean field must not pass for a number, or back.
        if wanted == found and isinstance(wanted, bool) == isinstance(found, bool):
            return True
    except ValueError:
        pass
    return not isinstance(found, (dict, list)) and str(found) == expected


def show(value: Any) -> str:
    return "(missing)" if value is MISSING else json.dumps(value)[:200]


def main() -> None:
    with Probe() as probe:
        version, plural = _kube.parse_resource(_env.text("COVERAGE_RESOURCE"), "COVERAGE_RESOURCE")
        ns = _env.text("COVERAGE_NAMESPACE", "")
        name = _env.text("COVERAGE_NAME")
        checks = expectations(_env.text("COVERAGE_EXPECT", ""))
        for path, _ in checks:
            compile_path(path)  # a typo in the config fails before touching the cluster
        kube = _kube.connect()
        where = "%s %s%s" % (plural, ns + "/" if ns else "", name)
        with probe.step("get %s" % where, threshold_ms=_kube.threshold("get")):
            obj = kube.get(_kube.path(ns or None, plural, name, version))
            if obj is None:
                raise AssertionError("not covered: %s %s does not exist" % (version, where))
        drifted = 0
        for path, expected in checks:
            try:
                with probe.step("check %s" % path):
                    found = found_value(obj, path)
                    if found is MISSING:
                        raise AssertionError("drift: %s is missing" % path)
                    if expected is not None and not matches(found, expected):
                        raise AssertionError(
                            "drift: %s is %s, expected %s" % (path, show(found), expected)
                        )
            except AssertionError:
                drifted += 1  # recorded by the step; report every field, not just the first
        probe.metric("fields_checked", len(checks))
        probe.metric("fields_drifted", drifted)


if __name__ == "__main__":
    main()
