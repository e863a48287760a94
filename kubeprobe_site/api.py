"""The /api/v1/ router: each app registers its viewsets here."""

from rest_framework.routers import DefaultRouter

from apps.alerts.api.views import AlertRuleViewSet, AlertViewSet, ChannelViewSet, SilenceViewSet
from apps.catalog.api.views import CaseSetViewSet, CaseTemplateViewSet, CaseViewSet
from apps.clusters.api.views import ClusterGroupViewSet, ClusterViewSet
from apps.diagnosis.api.views import IncidentViewSet, RunDiagnosisViewSet
from apps.gating.api.views import GateCheckViewSet, GateDecisionViewSet, GatePolicyViewSet
from apps.resident.api.views import ResidentAlertRuleViewSet, ResidentProbeViewSet
from apps.runs.api.views import ProbeRunViewSet
from apps.scheduling.api.views import BindingViewSet, EventViewSet

router = DefaultRouter()
# Accept both /api/v1/events and /api/v1/events/: clients POST without the slash,
# and a redirect would drop their body.
router.trailing_slash = "/?"
router.register("clusters", ClusterViewSet)
router.register("cluster-groups", ClusterGroupViewSet)
router.register("templates", CaseTemplateViewSet)
router.register("cases", CaseViewSet)
router.register("case-sets", CaseSetViewSet)
router.register("bindings", BindingViewSet)
router.register("runs", ProbeRunViewSet)
router.register("events", EventViewSet)
router.register("alerts", AlertViewSet)
router.register("silences", SilenceViewSet)
router.register("alert-rules", AlertRuleViewSet)
router.register("channels", ChannelViewSet)
router.register("incidents", IncidentViewSet)
router.register("diagnoses", RunDiagnosisViewSet)
router.register("gate/checks", GateCheckViewSet)
router.register("gate/policies", GatePolicyViewSet)
router.register("gate/decisions", GateDecisionViewSet)
router.register("resident", ResidentProbeViewSet)
router.register("resident-alert-rules", ResidentAlertRuleViewSet)
