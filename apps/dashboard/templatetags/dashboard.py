"""Matrix cells and small formatting helpers for the dashboard templates.

The overview holds up to tens of thousands of cells: Django's template engine
spends ~20 µs per variable, so the matrix body is joined here in plain Python,
with every name escaped once and the few cell variants built once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django import template
from django.conf import settings
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince
from django.utils.translation import get_language, gettext_lazy, ngettext
from django.utils.translation import gettext as _

from apps.core.said import render_field, render_items, render_known
from apps.dashboard.resident_html import column_links, resident_cells_html
from apps.dashboard.selectors.cluster_case import PairLine
from apps.dashboard.selectors.grid import UNSCHEDULED, Grid, GridRow, row_title, section_title
from apps.dashboard.selectors.matrix import Cell
from apps.dashboard.selectors.resident import ResidentMatrix
from apps.dashboard.selectors.stats import WINDOWS, WindowStats
from apps.runs.root_cause import root_cause_text

register = template.Library()

RUN_SYMBOLS = {
    "succeeded": "✓",
    "failed": "✗",
    "error": "!",
    "timed_out": "◔",
    "running": "…",
    "dispatched": "…",
    "pending": "…",
}
# Lowercase words for run states, alert states and severities in running text.
RUN_WORDS = {
    "timed_out": gettext_lazy("timed out"),
    "": gettext_lazy("no result yet"),
    "pending": gettext_lazy("pending"),
    "dispatched": gettext_lazy("dispatched"),
    "running": gettext_lazy("running"),
    "succeeded": gettext_lazy("succeeded"),
    "failed": gettext_lazy("failed"),
    "error": gettext_lazy("error"),
}
STATE_WORDS = {
    "ok": gettext_lazy("ok"),
    "firing": gettext_lazy("firing"),
    "acknowledged": gettext_lazy("acknowledged"),
    "silenced": gettext_lazy("silenced"),
    "resolved": gettext_lazy("resolved"),
    "critical": gettext_lazy("critical"),
    "warning": gettext_lazy("warning"),
    "info": gettext_lazy("info"),
}


def _url_prefix(name: str) -> str:
    # Reverse once per page, not once per cell: "/dashboard/runs/0/" → "/dashboard/runs/".
    return reverse(name, args=["0"])[: -len("0/")]


def _variant(run_state: str, alert_state: str, severity: str) -> tuple[str, str, str, str]:
    return _variant_in(run_state, alert_state, severity, get_language())


@lru_cache(maxsize=256)
def _variant_in(
    run_state: str, alert_state: str, severity: str, language: str | None
) -> tuple[str, str, str, str]:
    """(class, escaped severity, title, symbol) of one cell kind in one language; there are only a few."""
    run = run_state or "none"
    alert = alert_state or "ok"
    words = str(RUN_WORDS.get(run_state, run_state))
    title = (
        words
        if alert == "ok"
        else _("%(run)s; alert %(alert)s (%(severity)s)")
        % {
            "run": words,
            "alert": STATE_WORDS.get(alert, alert),
            "severity": STATE_WORDS.get(severity, severity),
        }
    )
    return (
        escape(f"cell run-{run} alert-{alert}"),
        escape(severity),
        escape(title),
        RUN_SYMBOLS.get(run_state, "·" if alert != "ok" else ""),
    )


def cell_html(
    cell: Cell | None, case_id: int, cluster_id: int, run_prefix: str, scheduled: bool = True
) -> str:
    if cell is None:
        if not scheduled:
            # No enabled binding runs this pair: not a result, so not drawn like one.
            return (
                f'<td id="c-{case_id}-{cluster_id}" class="cell run-unscheduled alert-ok" '
                f'data-severity="" data-run=""><span title="{escape(_("not scheduled here"))}">–</span></td>'
            )
        return (
            f'<td id="c-{case_id}-{cluster_id}" class="cell run-none alert-ok" '
            'data-severity="" data-run=""></td>'
        )
    cls, severity, title, symbol = _variant(cell.run_state, cell.alert_state, cell.severity)
    run = cell.run_id or ""
    if run:
        inner = f'<a href="{run_prefix}{run}/" title="{title}">{symbol}</a>'
    else:
        inner = f'<span title="{title}">{symbol}</span>' if symbol else ""
    return (
        f'<td id="c-{case_id}-{cluster_id}" class="{cls}" data-severity="{severity}" '
        f'data-run="{run}">{inner}</td>'
    )


@register.simple_tag
def matrix_cell(cell: Cell) -> SafeString:
    """One cell of the cluster and case pages (same markup as the overview's)."""
    return mark_safe(  # noqa: S308 - built from escaped parts
        cell_html(cell, cell.case_id, cell.cluster_id, _url_prefix("dashboard:run"))
    )


def _unreachable_html(row: GridRow) -> str:
    """The marker of a cluster whose circuit breaker is open: since when, and why (on hover)."""
    if row.unreachable_since is None:
        return ""
    since = timezone.localtime(row.unreachable_since)
    when = f'<time datetime="{since.isoformat()}">{since:%m-%d %H:%M}</time>'
    return (
        f' <span class="warn unreachable" title="{escape(row.unreachable_error)}">'
        + escape(_("unreachable since %(when)s")) % {"when": when}
        + "</span>"
    )


def clusters_text(count: int) -> str:
    return ngettext("%(count)d cluster", "%(count)d clusters", count) % {"count": count}


@register.simple_tag
def grid_table_body(
    grid: Grid,
    sections: list[tuple[str, list[GridRow], int]],
    resident: ResidentMatrix | None = None,
) -> SafeString:
    """The <tbody>s of the table fallback (?render=table): one page of the grid's rows,
    each cell with the markup of the cluster and case pages; resident columns last."""
    run_prefix = _url_prefix("dashboard:run")
    cluster_prefix = _url_prefix("dashboard:cluster")
    case_ids = [case_id for case_id, _ in grid.cases]
    width = len(case_ids) + 1 + (len(resident.columns) if resident else 0)
    resident_links = column_links(resident) if resident else []
    out: list[str] = []
    for title, rows, total in sections:
        out.append(
            f'<tbody class="section"><tr class="section-head"><th colspan="{width}" scope="rowgroup">'
            f"{escape(section_title(title))} <small>{escape(clusters_text(total))}</small></th></tr>"
        )
        for row in rows:
            name = escape(row.name)
            out.append(
                f'<tr data-cluster="{row.cluster_id}"><th scope="row" class="cluster">'
                f'<a href="{cluster_prefix}{name}/" title="{escape(row_title(row))}">{name}</a>'
                f"{_unreachable_html(row)}</th>"
            )
            for index, case_id in enumerate(case_ids):
                out.append(
                    cell_html(
                        row.cell(index, case_id),
                        case_id,
                        row.cluster_id,
                        run_prefix,
                        row.codes[3 * index] != UNSCHEDULED,
                    )
                )
            if resident:
                out.append(resident_cells_html(resident, row.cluster_id, resident_links))
            out.append("</tr>")
        out.append("</tbody>")
    return mark_safe("".join(out))  # noqa: S308 - built from escaped parts


@register.simple_tag
def optional_static(path: str) -> str:
    """{% static %} that tolerates a file missing from the manifest (live.js ships separately):
    the page still renders, the browser gets a 404 for that one script."""
    try:
        return static(path)
    except ValueError:
        return f"{settings.STATIC_URL}{path}"


@register.filter
def ms(value: float | None) -> str:
    """A duration for people: 840 ms, 12.3 s, 4.1 min."""
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60_000:.1f} min"


@register.filter
def rate(stats: WindowStats | None) -> str:
    if stats is None or stats.success_rate is None:
        return "—"
    return f"{stats.success_rate:.1f}%"


@register.filter
def get(mapping: dict[Any, Any] | None, key: Any) -> Any:
    return (mapping or {}).get(key)


@register.filter
def run_symbol(state: str) -> str:
    return RUN_SYMBOLS.get(state or "", "")


@register.filter
def words(value: str) -> str:
    return str(RUN_WORDS.get(value or "", value or ""))


@register.filter
def alert_state_label(value: str) -> str:
    """An alert state or a severity in the page's language."""
    return str(STATE_WORDS.get(value or "", value or ""))


def _stats_html(stats: dict[str, WindowStats]) -> str:
    out = []
    of_runs = _("%(succeeded)s of %(runs)s runs")
    for window, _label in WINDOWS:
        s = stats.get(window) or WindowStats()
        rate_ = s.success_rate
        degraded = " degraded" if rate_ is not None and rate_ < 100 else ""
        out.append(
            f'<td class="num{degraded}" title="{escape(of_runs % {"succeeded": s.succeeded, "runs": s.runs})}">{rate(s)}</td>'
            f'<td class="num">{ms(s.p50_ms)}</td><td class="num">{ms(s.p95_ms)}</td>'
        )
    return "".join(out)


@register.simple_tag
def stats_rows(lines: list[PairLine], link: str) -> SafeString:
    """Rows of the cluster page (link="case") or the case page (link="cluster").

    The case page may list thousands of clusters: joined here, like the matrix.
    """
    run_prefix = _url_prefix("dashboard:run")
    other_prefix = _url_prefix(f"dashboard:{link}")
    out = []
    ago, step = _("%(when)s ago"), _("step %(step)s")
    ok, no_result = escape(_("ok")), escape(_("no result yet"))
    unscheduled = escape(_("not scheduled"))
    for line in lines:
        name = escape(line.other_name)
        alert = line.alert
        # The case page loads open alerts only: an ok pair has its cell but no alert.
        judged = alert is not None or bool(line.cell.run_id or line.cell.run_state)
        if link == "case":  # cluster page: when the pair last finished
            when = alert.last_finished_at if alert else None
            third = (
                f'<time datetime="{when.isoformat()}">{escape(ago % {"when": timesince(when)})}</time>'
                if when
                else "—"
            )
        else:  # case page: the failing step
            third = escape(step % {"step": alert.step}) if alert and alert.step else "—"
        if alert is not None and alert.state != "ok":
            state, severity = escape(alert.state), escape(alert.severity)
            title = escape(alert.error[:300]) if alert.error else ""
            badge = (
                f'<span class="badge st-{state} sev-{severity}" title="{title}">'
                f"{escape(alert_state_label(alert.state))} · {escape(alert_state_label(alert.severity))}</span>"
            )
        elif judged:
            badge = ok
        else:  # never judged: nothing ran, so nothing is "ok" yet
            badge = (
                f'<span class="muted">{no_result}</span>'
                if line.scheduled
                else (f'<span class="muted unscheduled">{unscheduled}</span>')
            )
        cell = cell_html(
            line.cell if judged else None,
            line.cell.case_id,
            line.cell.cluster_id,
            run_prefix,
            line.scheduled,
        )
        out.append(
            f'<tr><th scope="row"><a href="{other_prefix}{name}/">{name}</a></th>'
            f"{cell}"
            f"<td>{third}</td>{_stats_html(line.stats)}<td>{badge}</td></tr>"
        )
    return mark_safe("".join(out))  # noqa: S308 - built from escaped parts


@register.filter
def diagnosis(obj: Any) -> str:
    """A run's or an alert's root cause in one line (apps/runs/root_cause.py)."""
    return root_cause_text(obj)


@register.filter
def said(obj: Any, field: str) -> str:
    """An event text stored with its message (apps/core/said.py), in the page's language:
    ``{{ alert|said:"reason" }}``."""
    return render_field(obj, field)


@register.filter
def said_items(items: list[Any]) -> list[Any]:
    """A gate decision's reasons with their messages in the page's language."""
    return render_items(items)


@register.filter
def known(text: str) -> str:
    """A stored English sentence of ours (a shipped rule's summary) in the page's language."""
    return render_known(text)


@register.filter
def incident_id(ref: str) -> int:
    """``incident-12`` (Alert.incident_ref) -> 12."""
    return int(ref.rpartition("-")[2] or 0)
