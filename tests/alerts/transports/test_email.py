from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from apps.alerts.transports import PermanentError, TransientError, get, validate_config
from tests.alerts.transports.helpers import PORTAL, message


@dataclass
class Sink:
    """An SMTP handler that keeps what it receives and refuses chosen recipients."""

    received: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"kp",
        b"pw",
    )
    return AuthResult(success=ok, handled=False)


class _Controller(Controller):
    """aiosmtpd's controller on a socket already bound to a free 127.0.0.1 port."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self._sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


@pytest.fixture
def smtp() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    controller = _Controller(sink, authenticator=_authenticate, auth_require_tls=False)
    controller.start()
    yield sink, controller.port
    controller.stop()
    asyncio.set_event_loop(None)


def transport(port: int, **config: Any):  # type: ignore[no-untyped-def]
    base = {
        "host": "127.0.0.1",
        "port": port,
        "from_email": "kubeprobe@example.com",
        "to": ["oncall@example.com", "sre@example.com"],
    }
    return get("email")(validate_config("email", {**base, **config}))


def test_sends_text_and_html_to_all_recipients(smtp: tuple[Sink, int]) -> None:
    sink, port = smtp
    transport(port, username="kp", password="pw").send(
        message("prod-1", "prod-2", diagnosis="look at <containerd> & co")
    )

    ((mail_from, rcpt_tos, mail),) = sink.received
    assert mail_from == "kubeprobe@example.com"
    assert rcpt_tos == ["oncall@example.com", "sre@example.com"]
    assert (
        mail["Subject"]
        == "[FIRING] statefulset-lifecycle failed on prod-1: Failed to create pod sandbox"
    )
    assert mail["From"] == "kubeprobe@example.com"
    assert mail["To"] == "oncall@example.com, sre@example.com"
    assert mail["X-KubeProbe-Event"] == "firing"
    assert mail["X-KubeProbe-Severity"] == "critical"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().replace("\r\n", "\n") == (
        "statefulset-lifecycle failed on prod-1\nstep: create-pod\n\n"
        f"Alerts: {PORTAL}\n\n-- \nKubeProbe\n"
    )
    body = html.get_content()
    assert '<h2 style="color:#D32F2F;font-family:sans-serif">[FIRING] statefulset-lifecycle' in body
    assert "<b>prod-1</b>" in body and "<b>prod-2</b>" in body
    assert '<a href="https://kubeprobe.example.com/runs/prod-2-42/#log">log</a>' in body
    assert "look at &lt;containerd&gt; &amp; co" in body
    assert f'<a href="{PORTAL}">Open alerts in KubeProbe</a>' in body


def test_wrong_password_is_permanent(smtp: tuple[Sink, int]) -> None:
    _sink, port = smtp
    with pytest.raises(PermanentError, match=f"127.0.0.1:{port} answered 535") as caught:
        transport(port, username="kp", password="wrong-secret").send(message())
    assert "wrong-secret" not in str(caught.value)


def test_refused_recipients(smtp: tuple[Sink, int]) -> None:
    sink, port = smtp
    sink.refuse = {
        "oncall@example.com": "550 5.1.1 no such user",
        "sre@example.com": "550 5.1.1 no such user",
    }
    with pytest.raises(
        PermanentError,
        match=r"refused the recipients: oncall@example.com \(550\), sre@example.com \(550\)",
    ):
        transport(port).send(message())
    sink.refuse = {"oncall@example.com": "451 4.3.0 try again", "sre@example.com": "550 no"}
    with pytest.raises(TransientError, match="refused the recipients"):
        transport(port).send(message())
    # One refused recipient of two: the other still gets the message.
    sink.refuse = {"sre@example.com": "550 no"}
    transport(port).send(message())
    assert [r for _f, r, _m in sink.received] == [["oncall@example.com"]]


def test_starttls_not_offered_is_permanent(smtp: tuple[Sink, int]) -> None:
    _sink, port = smtp
    with pytest.raises(PermanentError, match="STARTTLS"):
        transport(port, starttls=True).send(message())


def test_no_server_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientError, match=f"Could not connect to 127.0.0.1:{port}"):
        transport(port).send(message())


def test_portal_settings_are_the_default(smtp: tuple[Sink, int], settings: Any) -> None:
    sink, port = smtp
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.DEFAULT_FROM_EMAIL = "portal@example.com"
    get("email")(validate_config("email", {"to": ["a@example.com"]})).send(
        message(event="resolved")
    )
    ((mail_from, rcpt_tos, mail),) = sink.received
    assert (mail_from, rcpt_tos) == ("portal@example.com", ["a@example.com"])
    assert mail["Subject"].startswith("[RESOLVED] ")
