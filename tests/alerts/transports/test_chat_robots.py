"""DingTalk, Feishu/Lark and WeCom robots against a real HTTP receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

import pytest
import time_machine

from apps.alerts.transports import PermanentError, TransientError, get, validate_config
from tests.alerts.transports.helpers import Receiver, message

NOW = "2025-03-04T05:10:00Z"
NOW_S = 1741065000
RUN = "https://kubeprobe.example.com/runs/prod-1-42/"
TITLE = "statefulset-lifecycle failed on prod-1: Failed to create pod sandbox"
BODY_LINES = [
    "**Case:** statefulset-lifecycle  **Severity:** critical  **Event:** firing",
    "**Clusters:** prod-1",
    f"- **prod-1** step `create-pod` ([run]({RUN}) · [log]({RUN}#log) · [events]({RUN}#events))",
]
TAIL_LINES = [
    "**Diagnosis:** Container runtime on the node is unhealthy",
    "**Note:** dependency etcd-blackbox is firing on prod-1",
    "[Open alerts in KubeProbe](https://kubeprobe.example.com/alerts/)",
]
ERROR = "Failed to create pod sandbox: rpc error: code = Unknown"
NOTE = "dependency etcd-blackbox is firing on prod-1"


def transport(kind: str, **config):  # type: ignore[no-untyped-def]
    return get(kind)(validate_config(kind, config))


# -- DingTalk -------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_dingtalk_signed_markdown_with_mentions(receiver: Receiver) -> None:
    receiver.respond(200, {"errcode": 0, "errmsg": "ok"})
    secret = "SECabc123"
    transport(
        "dingtalk",
        url=receiver.url("/robot/send?access_token=tok123"),
        secret=secret,
        at_mobiles=["13800001111"],
    ).send(message(note=NOTE))

    got = receiver.last
    assert (got.method, got.path) == ("POST", "/robot/send")
    timestamp = str(NOW_S * 1000)
    expected_sign = base64.b64encode(
        hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert got.query == {
        "access_token": ["tok123"],
        "timestamp": [timestamp],
        "sign": [expected_sign],
    }
    # DingTalk wants the base64 signature URL-encoded in the query.
    assert f"sign={quote_plus(expected_sign)}" in got.raw_query
    text = "\n\n".join(
        [
            f'#### <font color="#D32F2F">[FIRING]</font> {TITLE}',
            *BODY_LINES,
            f"> {ERROR}",
            *TAIL_LINES,
            "@13800001111",
        ]
    )
    assert got.json() == {
        "msgtype": "markdown",
        "markdown": {"title": f"[FIRING] {TITLE}", "text": text},
        "at": {"atMobiles": ["13800001111"], "isAtAll": False},
    }


def test_dingtalk_unsigned_has_only_the_token(receiver: Receiver) -> None:
    receiver.respond(200, {"errcode": 0, "errmsg": "ok"})
    transport("dingtalk", url=receiver.url("/robot/send?access_token=tok123")).send(
        message(event="resolved")
    )
    assert receiver.last.query == {"access_token": ["tok123"]}
    assert '<font color="#2E7D32">[RESOLVED]</font>' in receiver.last.json()["markdown"]["text"]
    assert "> Failed" not in receiver.last.json()["markdown"]["text"]


@pytest.mark.parametrize(
    ("errcode", "errmsg", "error"),
    [
        (310000, "sign not match, more: [https://ding-doc...]", PermanentError),
        (300001, "token is not exist", PermanentError),
        (400102, "robot is disabled", PermanentError),
        (130101, "send too fast, exceed 20 times per minute", TransientError),
        (410100, "rate limited", TransientError),
        (-1, "system busy", TransientError),
    ],
)
def test_dingtalk_errcodes_in_200_answers(
    receiver: Receiver, errcode: int, errmsg: str, error: type[Exception]
) -> None:
    receiver.respond(200, {"errcode": errcode, "errmsg": errmsg})
    with pytest.raises(error) as caught:
        transport("dingtalk", url=receiver.url("/robot/send?access_token=tok123456")).send(
            message()
        )
    text = str(caught.value)
    assert text.startswith(
        f"DingTalk error {errcode} from http://127.0.0.1:{receiver.port}/robot/••••?access_token=••••: {errmsg}"
    )
    assert "tok123456" not in text


def test_dingtalk_http_errors(receiver: Receiver) -> None:
    receiver.respond(503)
    with pytest.raises(TransientError):
        transport("dingtalk", url=receiver.url("/robot/send?access_token=t")).send(message())
    receiver.respond(404)
    with pytest.raises(PermanentError, match="HTTP 404"):
        transport("dingtalk", url=receiver.url("/robot/send?access_token=t")).send(message())


# -- Feishu / Lark ----------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_feishu_signed_interactive_card(receiver: Receiver) -> None:
    receiver.respond(200, {"code": 0, "msg": "success", "data": {}})
    secret = "feishu-secret"
    transport("feishu", url=receiver.url("/open-apis/bot/v2/hook/0000-uuid"), secret=secret).send(
        message(note=NOTE)
    )

    got = receiver.last
    assert (got.method, got.path, got.raw_query) == ("POST", "/open-apis/bot/v2/hook/0000-uuid", "")
    expected_sign = base64.b64encode(
        hmac.new(f"{NOW_S}\n{secret}".encode(), b"", hashlib.sha256).digest()
    ).decode()
    content = "\n\n".join([*BODY_LINES, f"    {ERROR}", *TAIL_LINES])
    assert got.json() == {
        "timestamp": str(NOW_S),
        "sign": expected_sign,
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": f"[FIRING] {TITLE}"},
                "template": "red",
            },
            "elements": [
                {"tag": "div", "text": {"tag": "lark_md", "content": content}},
                {
                    "tag": "action",
                    "actions": [
                        {
                            "tag": "button",
                            "text": {"tag": "plain_text", "content": "Open run"},
                            "type": "primary",
                            "url": RUN,
                        },
                        {
                            "tag": "button",
                            "text": {"tag": "plain_text", "content": "All alerts"},
                            "type": "default",
                            "url": "https://kubeprobe.example.com/alerts/",
                        },
                    ],
                },
            ],
        },
    }


def test_feishu_unsigned_escapes_tags(receiver: Receiver) -> None:
    receiver.respond(200, {"code": 0, "msg": "success"})
    transport("feishu", url=receiver.url("/open-apis/bot/v2/hook/x")).send(
        message(severity="warning", diagnosis="check <at id=all></at> & co")
    )
    body = receiver.last.json()
    assert "sign" not in body and "timestamp" not in body
    assert body["card"]["header"]["template"] == "orange"
    assert (
        "check &lt;at id=all&gt;&lt;/at&gt; &amp; co"
        in body["card"]["elements"][0]["text"]["content"]
    )


@pytest.mark.parametrize(
    ("code", "msg", "error"),
    [
        (
            19021,
            "sign match fail or timestamp is not within one hour from current time",
            PermanentError,
        ),
        (19024, "Key Words Not Found", PermanentError),
        (19001, "param invalid: incoming webhook access token invalid", PermanentError),
        (9499, "Bad Request", PermanentError),
        (11232, "frequency limited psm[lark.oapi.app_platform_runtime]", TransientError),
    ],
)
def test_feishu_codes_in_200_answers(
    receiver: Receiver, code: int, msg: str, error: type[Exception]
) -> None:
    receiver.respond(200, {"code": code, "msg": msg, "data": {}})
    with pytest.raises(error) as caught:
        transport("feishu", url=receiver.url("/open-apis/bot/v2/hook/secret-uuid-1234")).send(
            message()
        )
    assert str(caught.value).startswith(
        f"Feishu error {code} from http://127.0.0.1:{receiver.port}/open-apis/••••: "
    )
    assert "secret-uuid-1234" not in str(caught.value)


# -- WeCom ------------------------------------------------------------------------------


def test_wecom_markdown(receiver: Receiver) -> None:
    receiver.respond(200, {"errcode": 0, "errmsg": "ok"})
    transport("wecom", url=receiver.url("/cgi-bin/webhook/send?key=693a91f6")).send(
        message(note=NOTE)
    )
    got = receiver.last
    assert (got.method, got.path, got.query) == (
        "POST",
        "/cgi-bin/webhook/send",
        {"key": ["693a91f6"]},
    )
    content = "\n\n".join(
        [
            f'### <font color="warning">[FIRING]</font> {TITLE}',
            *BODY_LINES,
            f"> {ERROR}",
            *TAIL_LINES,
        ]
    )
    assert got.json() == {"msgtype": "markdown", "markdown": {"content": content}}


def test_wecom_caps_content_at_4096_bytes(receiver: Receiver) -> None:
    receiver.respond(200, {"errcode": 0, "errmsg": "ok"})
    clusters = [f"集群-{i}" for i in range(80)]
    transport("wecom", url=receiver.url("/cgi-bin/webhook/send?key=k")).send(message(*clusters))
    content = receiver.last.json()["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert content.endswith("… more on the portal: https://kubeprobe.example.com/alerts/")


@pytest.mark.parametrize(
    ("errcode", "error"),
    [
        (93000, PermanentError),
        (40058, PermanentError),
        (45009, TransientError),
        (-1, TransientError),
    ],
)
def test_wecom_errcodes(receiver: Receiver, errcode: int, error: type[Exception]) -> None:
    receiver.respond(200, {"errcode": errcode, "errmsg": "invalid webhook url, hint: [x]"})
    with pytest.raises(error, match=f"WeCom error {errcode} from .*key=••••"):
        transport("wecom", url=receiver.url("/cgi-bin/webhook/send?key=secretkey")).send(message())


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("dingtalk", "/robot/send?access_token=t"),
        ("wecom", "/cgi-bin/webhook/send?key=k"),
        ("feishu", "/open-apis/bot/v2/hook/x"),
    ],
)
def test_a_200_that_is_not_the_robot_is_permanent(receiver: Receiver, kind: str, path: str) -> None:
    receiver.respond(200, "<html>Welcome to the proxy</html>")
    with pytest.raises(PermanentError, match=r"HTTP 200 from .* without .*Welcome to the proxy"):
        transport(kind, url=receiver.url(path)).send(message())
