"""The overview matrix's resident cells, joined in plain Python like the case cells
(apps/dashboard/templatetags/dashboard.py) and drawn the same way by live.js."""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from apps.dashboard.selectors.resident import OVERVIEW_MINUTES, ResidentCell, ResidentMatrix

STATE_WORDS = {
    "up": pgettext_lazy("resident state", "up"),
    "down": gettext_lazy("down (the newest window failed)"),
    "firing": gettext_lazy("alert firing"),
    "stale": gettext_lazy("stale: no samples for 5 min"),
    "nodata": gettext_lazy("no samples yet"),
}


def availability_text(value: float | None) -> str:
    """99.95 → "99.9": never rounded up to 100 unless every sample succeeded."""
    if value is None:
        return "–"
    return "100" if value >= 100 else f"{min(value, 99.9):.1f}"


def cell_title(probe: str, cell: ResidentCell) -> str:
    parts = [f"{probe}: {STATE_WORDS.get(cell.state, cell.state)}"]
    if cell.availability is not None:
        parts.append(
            _("%(availability).2f %% ok over %(minutes)d min")
            % {"availability": cell.availability, "minutes": OVERVIEW_MINUTES}
        )
    if cell.p99_ms is not None:
        parts.append(f"p99 {cell.p99_ms:.1f} ms")
    if cell.alert_state not in ("ok", "firing"):
        parts.append(_("alert %(state)s") % {"state": cell.alert_state})
    return " · ".join(parts)


def resident_cells_html(resident: ResidentMatrix, cluster_id: int, links: list[str]) -> str:
    """One matrix row's resident cells; `links` are the columns' page URLs (escaped)."""
    out = []
    for i, column in enumerate(resident.columns):
        first = " res-first" if i == 0 else ""
        cell = resident.cells.get((column.probe_id, cluster_id))
        if cell is None:  # the probe does not run in this cluster
            out.append(f'<td class="rcell res-none{first}"></td>')
            continue
        out.append(
            f'<td id="r-{column.probe_id}-{cluster_id}" class="rcell res-{cell.state}{first}" '
            f'data-alert="{escape(cell.alert_state)}"><a href="{links[i]}" '
            f'title="{escape(cell_title(column.name, cell))}">'
            f"{availability_text(cell.availability)}</a></td>"
        )
    return "".join(out)


def column_links(resident: ResidentMatrix) -> list[str]:
    return [escape(reverse("dashboard:resident", args=[c.name])) for c in resident.columns]
