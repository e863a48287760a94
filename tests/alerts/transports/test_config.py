"""Registry, config validation (each error names its field), redaction and the HTTP helpers."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.exceptions import ValidationError

from apps.alerts import transports
from apps.alerts.transports import get, make_test_message, redact, registry, validate_config
from apps.alerts.transports.http import redact_url, retry_after, scrub

KINDS = {"webhook", "slack", "dingtalk", "feishu", "wecom", "email", "pagerduty", "alertmanager"}
KEY = "R0123456789abcdef0123456789ABCDE"


def errors(kind: str, data: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        validate_config(kind, data)
    detail = caught.value.detail
    assert isinstance(detail, dict)
    # List fields nest their errors by index; the text is what matters here.
    return {name: [str(errs)] for name, errs in detail.items()}


def test_every_kind_is_registered_with_a_label_and_config() -> None:
    assert {kind for kind, _label in transports.choices()} >= KINDS
    assert set(registry) >= KINDS  # filled by choices(), which loads every transport
    for kind in KINDS:
        cls = get(kind)
        assert cls.kind == kind and cls.label
        assert set(cls.secret_fields) <= set(cls.Config().fields)


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(
        KeyError, match="Unknown channel kind 'telegram' \\(known: alertmanager, dingtalk"
    ):
        get("telegram")
    assert (
        "Unknown channel kind 'telegram' (known: alertmanager, dingtalk, email, feishu, inbox, pagerduty, slack, webhook, wecom)."
        in errors("telegram", {})["kind"][0]
    )


@pytest.mark.parametrize(
    ("kind", "data", "field", "text"),
    [
        ("webhook", {"url": "ftp://example.com/x"}, "url", "http:// or https://"),
        ("webhook", {"url": "example.com/x"}, "url", "absolute http:// or https:// URL"),
        ("webhook", {"url": "http:///nohost"}, "url", "no host"),
        ("webhook", {"url": "http://h:99999/"}, "url", "Not a valid URL"),
        ("webhook", {"url": "http://a b/"}, "url", "whitespace"),
        ("webhook", {}, "url", "required"),
        ("webhook", {"url": "http://h/", "method": "DELETE"}, "method", "not a valid choice"),
        ("webhook", {"url": "http://h/", "headers": {"Bad Name": "x"}}, "headers", "header name"),
        ("webhook", {"url": "http://h/", "headers": {"X-A": "a\nb"}}, "headers", "one line"),
        (
            "webhook",
            {"url": "http://h/", "headers": {"Content-Type": "x"}},
            "headers",
            "Content-Type",
        ),
        ("webhook", {"url": "http://h/", "extra": 1}, "extra", "Unknown field"),
        ("slack", {"url": "javascript:alert(1)"}, "url", "http:// or https://"),
        ("dingtalk", {"url": "https://oapi.dingtalk.com/robot/send"}, "url", "access_token"),
        (
            "dingtalk",
            {"url": "https://h/?access_token=t", "at_mobiles": ["abc"]},
            "at_mobiles",
            "abc",
        ),
        ("feishu", {"url": "not a url"}, "url", "whitespace"),
        ("wecom", {"url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"}, "url", "key"),
        ("pagerduty", {}, "routing_key", "required"),
        ("pagerduty", {"routing_key": "short"}, "routing_key", "32-character"),
        ("pagerduty", {"routing_key": KEY, "events_url": "ftp://x/"}, "events_url", "http://"),
        ("email", {"to": []}, "to", "may not be empty"),
        ("email", {}, "to", "required"),
        ("email", {"to": ["not-an-address"]}, "to", "valid email"),
        ("email", {"to": ["a@example.com"], "from_email": "nope"}, "from_email", "valid email"),
        (
            "email",
            {"to": ["a@example.com"], "host": "h", "ssl": True, "starttls": True},
            "ssl",
            "not both",
        ),
        ("email", {"to": ["a@example.com"], "port": 2525}, "host", "Required"),
        (
            "email",
            {"to": ["a@example.com"], "host": "h", "port": 0},
            "port",
            "greater than or equal to 1",
        ),
        ("email", {"to": ["a@example.com"], "host": "smtp://h"}, "host", "without a scheme"),
        (
            "alertmanager",
            {"url": "http://am:9093", "extra_labels": {"1bad": "x"}},
            "extra_labels",
            "1bad",
        ),
        (
            "alertmanager",
            {"url": "http://am:9093", "extra_labels": {"cluster": "x"}},
            "extra_labels",
            "cluster",
        ),
        (
            "alertmanager",
            {"url": "http://am:9093", "bearer_token": "t", "username": "u"},
            "bearer_token",
            "not both",
        ),
        (
            "alertmanager",
            {"url": "http://am:9093", "resend_interval_seconds": 1},
            "resend_interval_seconds",
            "10",
        ),
    ],
)
def test_bad_config_names_the_field(kind: str, data: dict[str, Any], field: str, text: str) -> None:
    found = errors(kind, data)
    assert field in found, found
    assert any(text.lower() in e.lower() for e in found[field]), found


def test_not_an_object() -> None:
    assert errors("slack", ["x"]) == {
        "config": [
            "[ErrorDetail(string='Must be an object of field: value pairs.', code='invalid')]"
        ]
    }


def test_valid_configs_get_their_defaults() -> None:
    assert validate_config("webhook", {"url": "http://alertmanager:9093/hook"}) == {
        "url": "http://alertmanager:9093/hook",
        "method": "POST",
        "secret": "",
        "headers": {},
    }
    assert validate_config("pagerduty", {"routing_key": KEY}) == {
        "routing_key": KEY,
        "events_url": "https://events.pagerduty.com/v2/enqueue",
    }
    email = validate_config("email", {"to": ["a@example.com"]})
    assert email["host"] == "" and email["port"] is None and email["starttls"] is False
    am = validate_config("alertmanager", {"url": "http://am.monitoring.svc:9093"})
    assert am["resend_interval_seconds"] == 180
    assert get("alertmanager")(am).resend_interval() == 180.0
    assert get("slack")({"url": "https://hooks.slack.com/services/x"}).resend_interval() is None


def test_redact_hides_secrets_for_display() -> None:
    assert redact(
        {
            "url": "https://u:p@hooks.example.com/a/b?token=t1",
            "secret": "s",
            "headers": {"Authorization": "Bearer x"},
            "method": "POST",
        },
        "webhook",
    ) == {
        "url": "https://••••@hooks.example.com/a/b?token=••••",
        "secret": "••••",
        "headers": {"Authorization": "••••"},
        "method": "POST",
    }
    assert redact({"url": "https://hooks.slack.com/services/T/B/X"}, "slack") == {"url": "••••"}
    assert redact({"secret": "", "url": "https://h/?access_token=t"}, "dingtalk") == {
        "secret": "",
        "url": "••••",
    }
    assert redact({"routing_key": KEY}, "pagerduty") == {"routing_key": "••••"}
    assert redact({"password": "pw", "to": ["a@example.com"]}, "email") == {
        "password": "••••",
        "to": ["a@example.com"],
    }
    assert redact({"bearer_token": "t", "password": ""}, "alertmanager") == {
        "bearer_token": "••••",
        "password": "",
    }


def test_redact_url_and_scrub() -> None:
    assert (
        redact_url("https://hooks.slack.com/services/T0/B0/XYZ")
        == "https://hooks.slack.com/services/••••"
    )
    assert redact_url("https://oapi.dingtalk.com/robot/send?access_token=abc&x=1") == (
        "https://oapi.dingtalk.com/robot/••••?access_token=••••&x=••••"
    )
    assert redact_url("http://[::1]:8080/hook") == "http://[::1]:8080/hook"
    assert redact_url("http://h:bad/") == "(invalid URL)"
    url = "https://open.feishu.cn/open-apis/bot/v2/hook/0f3c-uuid-secret?k=v4lue"
    assert (
        scrub(f"posted to {url}, token 0f3c-uuid-secret, v4lue", url)
        == "posted to ••••, token ••••, ••••"
    )


def test_retry_after_parses_seconds_and_dates() -> None:
    assert retry_after({"Retry-After": "12"}) == 12.0
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None


def test_make_test_message_has_one_item() -> None:
    msg = make_test_message(portal_url="https://kp.example.com/alerts/")
    assert msg.event == "test" and msg.severity == "info"
    (only,) = msg.items
    assert only.run_url == "https://kp.example.com/alerts/"
    assert only.started_at.tzinfo is not None
