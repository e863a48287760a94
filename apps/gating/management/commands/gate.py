"""`manage.py gate check CLUSTER [--component C | --case-set S] [--wait] [--timeout S] [--json]`

Without --wait: the gate's answer from what is known now. With --wait: run the
gate's cases on the cluster now and answer when they finish (or at the timeout).
Prints the verdict and its reasons; the exit code is the verdict, for shells and
CI pipelines: 0 allow, 1 deny, 2 unknown, 3 a bad request (unknown cluster,
component or case set, a timeout out of range...). Messages are in the language of
KUBEPROBE_LANGUAGE / the locale (apps/core/i18n.py); --json keys stay English.
"""

from __future__ import annotations

import getpass
import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, pgettext_lazy

from apps.catalog.models import CaseSet
from apps.clusters.models import Cluster
from apps.core.admin_utils import lazy_format
from apps.core.i18n import LocalizedCommand, gettext_lazy
from apps.core.said import render_items
from apps.gating import inputs, services
from apps.gating.models import EXIT_CODES, DecisionSource, GateDecision, Verdict
from apps.gating.scope import UnknownComponent

BAD_REQUEST = 3
# The first word of the answer; scripts should use the exit code (or --json) instead.
VERDICT_WORDS: dict[str, Any] = {
    Verdict.ALLOW: gettext_lazy("ALLOW"),
    Verdict.DENY: gettext_lazy("DENY"),
    Verdict.UNKNOWN: gettext_lazy("UNKNOWN"),
}
CASE_VERDICTS: dict[str, Any] = {
    Verdict.ALLOW: pgettext_lazy("verdict", "allow"),
    Verdict.DENY: pgettext_lazy("verdict", "deny"),
    Verdict.UNKNOWN: pgettext_lazy("verdict", "unknown"),
}


def _refuse(message: str) -> CommandError:
    return CommandError(message, returncode=BAD_REQUEST)


class Command(LocalizedCommand):
    help = gettext_lazy(
        "Ask the release gate about a cluster; exit 0 allow, 1 deny, 2 unknown, 3 bad input."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        # argparse exits 2 on a usage error, which would read as "unknown"; and parsing
        # happens before Django turns a CommandError into an exit code.
        def error(message: str) -> None:
            text = f"{message} (usage: manage.py gate check CLUSTER [options])"
            if getattr(self, "_called_from_command_line", False):
                self.stderr.write(f"CommandError: {text}")
                raise SystemExit(BAD_REQUEST)
            raise _refuse(text)

        parser.error = error  # type: ignore[method-assign,assignment]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["check"])
        parser.add_argument("cluster", help=gettext_lazy("The cluster's name."))
        parser.add_argument("--component", default="", help=gettext_lazy("e.g. etcd"))
        parser.add_argument(
            "--case-set", default="", help=gettext_lazy("Run this case set (with --wait).")
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help=gettext_lazy("Run the gate's cases now and wait for them."),
        )
        parser.add_argument(
            "--timeout",
            type=int,
            default=inputs.CHECK_TIMEOUT_DEFAULT_SECONDS,
            help=lazy_format(
                gettext_noop("Seconds to wait with --wait (%(min)s-%(max)s, default %(default)s)."),
                min=inputs.CHECK_TIMEOUT_MIN_SECONDS,
                max=inputs.CHECK_TIMEOUT_MAX_SECONDS,
                default=inputs.CHECK_TIMEOUT_DEFAULT_SECONDS,
            ),
        )
        parser.add_argument(
            "--json", action="store_true", help=gettext_lazy("Print the answer as JSON.")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = Cluster.objects.filter(name=options["cluster"]).first()
        if cluster is None:
            raise _refuse(_("No cluster named '%(name)s'.") % {"name": options["cluster"]})
        component = options["component"]
        if component and not inputs.COMPONENT_RE.match(component):
            raise _refuse(f"--component: {inputs.COMPONENT_INVALID}")
        case_set = None
        if options["case_set"]:
            case_set = CaseSet.objects.filter(name=options["case_set"]).first()
            if case_set is None:
                raise _refuse(
                    _("--case-set: no case set named '%(name)s'.") % {"name": options["case_set"]}
                )
            if component:
                raise _refuse(_("Give --component or --case-set, not both."))
            if not options["wait"]:
                raise _refuse(_("--case-set runs a check: add --wait."))
        asked_by = f"manage.py gate ({getpass.getuser()})"
        try:
            if options["wait"]:
                decision = self._check(cluster, component, case_set, options["timeout"], asked_by)
            else:
                decision = services.gate_decide(
                    cluster=cluster,
                    component=component,
                    source=DecisionSource.CLI,
                    asked_by=asked_by,
                )
        except UnknownComponent as exc:
            raise _refuse(
                _("--component: no gate policy rule or binding event trigger names '%(name)s'.")
                % {"name": exc}
            ) from exc
        self._print(decision, as_json=options["json"])
        raise SystemExit(EXIT_CODES[Verdict(decision.verdict)])

    def _check(
        self,
        cluster: Cluster,
        component: str,
        case_set: CaseSet | None,
        timeout: int,
        asked_by: str,
    ) -> GateDecision:
        for validator in inputs.check_timeout_validators():
            try:
                validator(timeout)
            except ValidationError as exc:
                raise _refuse(f"--timeout: {exc.messages[0]}") from exc
        if not cluster.enabled:
            raise _refuse(_("Cluster '%(name)s' is disabled.") % {"name": cluster.name})
        check = services.gate_check_start(
            cluster=cluster,
            component=component,
            case_set=case_set,
            timeout_seconds=timeout,
            source=DecisionSource.CLI,
            asked_by=asked_by,
        )
        runs = ", ".join(map(str, check.run_ids)) or _("none")
        self.stderr.write(_("check %(check)s: runs %(runs)s") % {"check": check.pk, "runs": runs})
        check = services.gate_check_wait(check_id=check.pk)
        decision = check.decisions.order_by("-created_at", "-id").first()
        assert decision is not None  # a decided check always has its decision
        return decision

    def _print(self, decision: GateDecision, *, as_json: bool) -> None:
        if as_json:
            from apps.gating.api.serializers import GateDecisionSerializer

            self.stdout.write(json.dumps(GateDecisionSerializer(decision).data, indent=2))
            return
        where = decision.cluster.name + (f" / {decision.component}" if decision.component else "")
        self.stdout.write(
            _("%(verdict)s: %(where)s (policy %(policy)s, decision %(decision)s)")
            % {
                "verdict": VERDICT_WORDS.get(decision.verdict, decision.verdict.upper()),
                "where": where,
                "policy": decision.policy_name,
                "decision": decision.pk,
            }
        )
        for reason in render_items(decision.reasons):
            mark = {"deny": "✗", "unknown": "?"}.get(reason.get("effect", ""), "·")
            self.stdout.write(f"  {mark} {reason['message']}")
        for case in (decision.inputs or {}).get("cases", []):
            run = (
                _("run %(run)s %(state)s") % {"run": case["run"], "state": case["state"]}
                if case.get("run")
                else _("no result")
            )
            verdict = CASE_VERDICTS.get(case["verdict"], case["verdict"])
            self.stdout.write(f"  {case['case']}: {verdict} ({run})")
