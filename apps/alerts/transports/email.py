"""Email over SMTP through Django's mail API: subject = title, a plain-text body and an
HTML alternative.

The channel names its own SMTP server, or leaves ``host`` empty to use the portal's
``EMAIL_*`` settings. Errors follow SMTP's reply classes: 4xx replies, dropped and
refused connections and timeouts are transient; 5xx replies (authentication failed,
recipient or sender refused), a server without STARTTLS or AUTH when the channel needs
them, and TLS failures (certificate, SSL on a plain port) are permanent.
"""

from __future__ import annotations

import smtplib
import ssl
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from rest_framework import serializers

from apps.alerts.transports.base import (
    Message,
    PermanentError,
    TransientError,
    Transport,
    TransportConfig,
    optional_text,
    register,
    require_username_with_password,
)
from apps.alerts.transports.http import timeout_seconds
from apps.alerts.transports.render import (
    HEX,
    colour,
    error_limit,
    event_name,
    headline,
    item_urls,
    severity_name,
    truncate,
)

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def subject(message: Message) -> str:
    # Header values must be one line; the title is meant to be one but may not be.
    return truncate(" ".join(headline(message).split()), 250)


def text_body(message: Message) -> str:
    body = message.text.rstrip()
    if message.portal_url and message.portal_url not in body:
        body += "\n\n" + _("Alerts: %(url)s") % {"url": message.portal_url}
    return body + "\n\n-- \nKubeProbe\n"


def html_body(message: Message) -> str:
    limit = error_limit(message)
    rows = format_html_join(
        "",
        '<tr><td style="padding:4px 8px"><b>{}</b></td><td style="padding:4px 8px">{}</td>'
        '<td style="padding:4px 8px"><pre style="margin:0;white-space:pre-wrap">{}</pre></td>'
        '<td style="padding:4px 8px">{}</td></tr>',
        (
            (
                item.cluster,
                item.step or "-",
                truncate(item.error, limit) if message.event != "resolved" else "",
                format_html_join(
                    " · ", '<a href="{}">{}</a>', ((url, text) for text, url in item_urls(item))
                ),
            )
            for item in message.items
        ),
    )
    parts = [
        format_html(
            '<h2 style="color:{};font-family:sans-serif">{}</h2>',
            HEX[colour(message)],
            headline(message),
        ),
        format_html(
            "<p><b>{}</b> {} &nbsp; <b>{}</b> {} &nbsp; <b>{}</b> {}</p>",
            _("Case:"),
            message.case,
            _("Severity:"),
            severity_name(message.severity),
            _("Event:"),
            event_name(message.event),
        ),
    ]
    if message.items:
        parts.append(
            format_html(
                '<table style="border-collapse:collapse" border="1"><tr><th>{}</th>'
                "<th>{}</th><th>{}</th><th>{}</th></tr>{}</table>",
                _("Cluster"),
                _("Step"),
                _("Error"),
                _("Links"),
                rows,
            )
        )
    if message.incident:
        parts.append(format_html("<p><b>{}</b> {}</p>", _("Incident:"), message.incident))
    if message.diagnosis:
        parts.append(format_html("<p><b>{}</b> {}</p>", _("Diagnosis:"), message.diagnosis))
    if message.note:
        parts.append(format_html("<p><i>{}</i></p>", message.note))
    if message.portal_url:
        parts.append(
            format_html(
                '<p><a href="{}">{}</a></p>', message.portal_url, _("Open alerts in KubeProbe")
            )
        )
    return "<!DOCTYPE html><html><body>" + "".join(parts) + "</body></html>"


class EmailConfig(TransportConfig):
    to = serializers.ListField(
        child=serializers.EmailField(), allow_empty=False, max_length=100, help_text="Recipients."
    )
    from_email = serializers.EmailField(
        required=False, default="", allow_blank=True, help_text="Empty: DEFAULT_FROM_EMAIL."
    )
    host = optional_text(255, help_text="SMTP server; empty uses the portal's EMAIL_* settings.")
    port = serializers.IntegerField(
        required=False, default=None, allow_null=True, min_value=1, max_value=65535
    )
    username = optional_text(255)
    password = optional_text(1024)
    starttls = serializers.BooleanField(required=False, default=False)
    ssl = serializers.BooleanField(required=False, default=False)

    def validate_host(self, value: str) -> str:
        if any(ch.isspace() for ch in value) or "/" in value:
            raise serializers.ValidationError("A host name or address, without a scheme or port.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("starttls") and attrs.get("ssl"):
            raise serializers.ValidationError(
                {"ssl": "Choose STARTTLS or implicit TLS (ssl), not both."}
            )
        require_username_with_password(attrs)
        if not attrs.get("host") and any(
            attrs.get(f) for f in ("port", "username", "password", "starttls", "ssl")
        ):
            raise serializers.ValidationError(
                {"host": "Required when setting the port, credentials or TLS of the server."}
            )
        return attrs


@register
class EmailTransport(Transport):
    kind = "email"
    label = "Email (SMTP)"
    Config = EmailConfig
    secret_fields = ("password",)

    def _connection_kwargs(self) -> dict[str, Any]:
        cfg = self.config
        if not cfg["host"]:
            return {"timeout": timeout_seconds()}  # the backend reads EMAIL_* itself
        return {
            "host": cfg["host"],
            "port": cfg["port"] or (465 if cfg["ssl"] else 587 if cfg["starttls"] else 25),
            # Explicit empties, so the portal's own credentials never go to another server.
            "username": cfg["username"],
            "password": cfg["password"],
            "use_tls": cfg["starttls"],
            "use_ssl": cfg["ssl"],
            "timeout": timeout_seconds(),
        }

    def _server(self) -> str:
        if self.config["host"]:
            kwargs = self._connection_kwargs()
            return f"{kwargs['host']}:{kwargs['port']}"
        return f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"

    def send(self, message: Message) -> None:
        email = EmailMultiAlternatives(
            subject=subject(message),
            body=text_body(message),
            from_email=self.config["from_email"] or None,
            to=list(self.config["to"]),
            headers={
                "X-KubeProbe-Event": message.event,
                "X-KubeProbe-Severity": message.severity,
                "X-KubeProbe-Case": " ".join(message.case.split()),
            },
        )
        email.attach_alternative(html_body(message), "text/html")
        server = self._server()
        try:
            connection = get_connection(
                SMTP_BACKEND, fail_silently=False, **self._connection_kwargs()
            )
            connection.send_messages([email])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {addr: code for addr, (code, _msg) in exc.recipients.items()}
            refused = ", ".join(f"{addr} ({code})" for addr, code in sorted(codes.items()))
            text = f"{server} refused the recipients: {refused}"
            if any(400 <= code < 500 for code in codes.values()):
                raise TransientError(text) from None
            raise PermanentError(text) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentError(
                f"{server} does not support what the channel needs: {exc}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _by_reply(server, exc.smtp_code, exc.smtp_error, type(exc).__name__) from None
        except smtplib.SMTPServerDisconnected:
            raise TransientError(f"{server} closed the connection.") from None
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(
                f"TLS certificate of {server} does not verify: {exc.verify_message}."
            ) from None
        except ssl.SSLError as exc:
            raise PermanentError(
                f"TLS with {server} failed ({exc.reason or exc}); check the ssl/starttls setting and port."
            ) from None
        except TimeoutError:
            raise TransientError(
                f"No answer from {server} within {timeout_seconds():g}s."
            ) from None
        except OSError as exc:
            raise TransientError(
                f"Could not connect to {server}: {exc.strerror or type(exc).__name__}."
            ) from None
        except smtplib.SMTPException as exc:
            raise TransientError(f"SMTP error from {server}: {type(exc).__name__}.") from None


def _by_reply(server: str, code: int, error: bytes | str, what: str) -> Exception:
    reply = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    text = f"{server} answered {code} {' '.join(reply.split())[:200]} ({what})"
    if 400 <= code < 500 or code < 0:
        return TransientError(text)
    return PermanentError(text)
