"""Shared presentation: colours, labels, truncation, and the markdown body of chat robots.

Chat vendors (DingTalk, Feishu, WeCom) accept different markdown subsets, so the
body is built from the message's structure by one function taking a small dialect;
each vendor then caps it to its own size limit. Human texts are gettext'd: callers
render under the channel's language (apps/alerts/sending.py), field names stay English.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from apps.alerts.transports.base import AlertItem, Message

EVENT_LABELS = {
    "firing": gettext_lazy("FIRING"),
    "resolved": gettext_lazy("RESOLVED"),
    "flapping": gettext_lazy("FLAPPING"),
    "acknowledged": gettext_lazy("ACKNOWLEDGED"),
    "escalated": gettext_lazy("ESCALATED"),
    "silenced": gettext_lazy("SILENCED"),
    "test": gettext_lazy("TEST"),
}
# The values in a message's facts line ("Severity: critical", "Event: firing").
SEVERITY_NAMES = {
    "info": pgettext_lazy("severity", "info"),
    "warning": pgettext_lazy("severity", "warning"),
    "critical": pgettext_lazy("severity", "critical"),
}
EVENT_NAMES = {
    "firing": pgettext_lazy("event", "firing"),
    "resolved": pgettext_lazy("event", "resolved"),
    "flapping": pgettext_lazy("event", "flapping"),
    "acknowledged": pgettext_lazy("event", "acknowledged"),
    "escalated": pgettext_lazy("event", "escalated"),
    "silenced": pgettext_lazy("event", "silenced"),
    "test": pgettext_lazy("event", "test"),
}


def event_label(event: str) -> str:
    """The upper-case banner word of an event ("FIRING", "告警中")."""
    return str(EVENT_LABELS.get(event, event.upper()))


def severity_name(severity: str) -> str:
    return str(SEVERITY_NAMES.get(severity, severity))


def event_name(event: str) -> str:
    return str(EVENT_NAMES.get(event, event))


# Semantic colours; each vendor maps them to its own palette.
HEX = {
    "red": "#D32F2F",
    "orange": "#F57C00",
    "yellow": "#FBC02D",
    "green": "#2E7D32",
    "blue": "#1976D2",
    "grey": "#757575",
}


def colour(message: Message) -> str:
    if message.event == "resolved":
        return "green"
    if message.event in ("test", "acknowledged"):
        return "blue" if message.event == "test" else "grey"
    if message.event == "flapping":
        return "yellow"
    return {"critical": "red", "warning": "orange"}.get(message.severity, "blue")


def headline(message: Message) -> str:
    return f"[{event_label(message.event)}] {message.title}"


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending with … when cut."""
    text = text.strip()
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


def truncate_bytes(text: str, limit: int) -> str:
    """At most ``limit`` UTF-8 bytes, cut on a character boundary, ending with … when cut."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    ellipsis = "…".encode()
    cut = raw[: max(limit - len(ellipsis), 0)].decode("utf-8", errors="ignore")
    return cut.rstrip() + "…"


def error_limit(message: Message) -> int:
    # One cluster: room for a useful stack line; many clusters: one line each.
    return 800 if len(message.items) <= 1 else 200


@dataclass(frozen=True)
class Dialect:
    link: Callable[[str, str], str]
    bold: Callable[[str], str]
    code: Callable[[str], str]
    quote: Callable[[str], str]
    escape: Callable[[str], str]


def _md_link(text: str, url: str) -> str:
    return f"[{text}]({url})"


def _identity(text: str) -> str:
    return text


MARKDOWN = Dialect(
    link=_md_link,
    bold=lambda t: f"**{t}**",
    code=lambda t: "`" + t.replace("`", "'") + "`",
    quote=lambda t: "\n".join(f"> {line}" for line in t.splitlines() or [""]),
    escape=_identity,
)


def item_urls(item: AlertItem, labels: tuple[str, str, str] | None = None) -> list[tuple[str, str]]:
    """(label, url) for the item's run page, pod log and pod events: those it has."""
    labels = labels or (_("run"), _("log"), _("events"))
    urls = (item.run_url, item.log_url, item.events_url)
    return [(label, url) for label, url in zip(labels, urls, strict=True) if url]


def message_buttons(message: Message) -> list[tuple[str, str, bool]]:
    """(text, url, primary) of the buttons under a card: the first run, the alerts page."""
    buttons = []
    if message.items and message.items[0].run_url:
        buttons.append((_("Open run"), message.items[0].run_url, True))
    if message.portal_url:
        buttons.append((_("All alerts"), message.portal_url, False))
    return buttons


def item_links(item: AlertItem, dialect: Dialect) -> str:
    return " · ".join(dialect.link(label, url) for label, url in item_urls(item))


def markdown_lines(message: Message, dialect: Dialect = MARKDOWN) -> list[str]:
    """The body as markdown lines: facts, one block per cluster, diagnosis, note, portal link."""
    esc = dialect.escape
    b = dialect.bold
    lines = [
        "  ".join(
            (
                b(_("Case:")) + " " + esc(message.case),
                b(_("Severity:")) + " " + severity_name(message.severity),
                b(_("Event:")) + " " + event_name(message.event),
            )
        ),
    ]
    if message.items:
        lines.append(b(_("Clusters:")) + " " + esc(", ".join(message.clusters)))
    limit = error_limit(message)
    for item in message.items:
        head = f"- {b(esc(item.cluster))}"
        if item.step:
            head += " " + _("step %(step)s") % {"step": dialect.code(item.step)}
        links = item_links(item, dialect)
        if links:
            head += f" ({links})"
        lines.append(head)
        if item.error and message.event != "resolved":
            lines.append(dialect.quote(esc(truncate(item.error, limit))))
    if message.incident:
        lines.append(b(_("Incident:")) + " " + esc(message.incident))
    if message.diagnosis:
        lines.append(b(_("Diagnosis:")) + " " + esc(message.diagnosis))
    if message.note:
        lines.append(b(_("Note:")) + " " + esc(message.note))
    if message.ended_at and message.event == "resolved":
        lines.append(b(_("Resolved at:")) + f" {message.ended_at:%Y-%m-%d %H:%M:%S} UTC")
    if message.portal_url:
        lines.append(dialect.link(_("Open alerts in KubeProbe"), message.portal_url))
    return lines


def capped_markdown(lines: list[str], limit_bytes: int, *, portal_url: str = "") -> str:
    """Join lines, dropping trailing cluster lines (with a note) to fit ``limit_bytes``."""
    text = "\n\n".join(lines)
    if len(text.encode()) <= limit_bytes:
        return text
    tail = _("… more on the portal") + (f": {portal_url}" if portal_url else "")
    kept: list[str] = []
    for line in lines:
        candidate = "\n\n".join([*kept, line, tail])
        if len(candidate.encode()) > limit_bytes:
            break
        kept.append(line)
    return truncate_bytes("\n\n".join([*kept, tail]), limit_bytes)
