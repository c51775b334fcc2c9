"""Standard Webhooks verification, with signatures computed here independently of the module."""

import base64
import hashlib
import hmac

import pytest

from connectors.push import SignatureError, batch_of, secret_key, to_item, verify
from monitor.errors import ConfigError, DecodeError
from monitor.messages import Deletion, Post

RAW = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(RAW).decode()
BODY = b'{"id":"1","text":"so happy"}'
NOW = 1_800_000_000


def _sig(msg_id="msg_1", ts=str(NOW), body=BODY, key=RAW):
    return (
        "v1,"
        + base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    )


def _h(**over):
    h = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": _sig()}
    h.update(over)
    return h


def test_good_signature_among_several_passes():
    key = secret_key(SECRET)
    assert verify(key, _h(), BODY, now_s=NOW + 299) == "msg_1"
    rotated = f"v1,{base64.b64encode(b'x' * 32).decode()} {_sig()}"  # key rotation: two signatures
    assert verify(key, _h(**{"webhook-signature": rotated}), BODY, now_s=NOW) == "msg_1"


@pytest.mark.parametrize(
    "headers, body, now, status",
    [
        (_h(), BODY + b" ", NOW, 401),  # body changed
        (_h(**{"webhook-signature": _sig(key=b"other")}), BODY, NOW, 401),  # wrong secret
        (_h(**{"webhook-signature": _sig().replace("v1,", "v2,")}), BODY, NOW, 401),
        (_h(**{"webhook-id": "msg_2"}), BODY, NOW, 401),  # id is signed too
        (_h(), BODY, NOW + 301, 401),  # stale
        (_h(), BODY, NOW - 301, 401),  # from the future
        (_h(**{"webhook-timestamp": "soon"}), BODY, NOW, 401),
        ({"webhook-id": "msg_1", "webhook-timestamp": str(NOW)}, BODY, NOW, 400),
    ],
)
def test_bad_or_stale_signatures_are_refused(headers, body, now, status):
    with pytest.raises(SignatureError) as ei:
        verify(secret_key(SECRET), headers, body, now_s=now)
    assert ei.value.status == status


def test_secret_must_be_base64():
    with pytest.raises(ConfigError):
        secret_key("whsec_not*base64!")


def test_items_and_batches():
    assert batch_of(b'[{"id":"a"},{"id":"b"}]') == [{"id": "a"}, {"id": "b"}]
    assert batch_of(b'{"posts":[{"id":"a"}]}') == [{"id": "a"}]
    assert batch_of(BODY) == [{"id": "1", "text": "so happy"}]
    p = to_item({"id": "1", "text": "so happy", "hashtags": ["#PhoneX"], "lang": "en"}, now_ms=5)
    assert isinstance(p, Post) and p.id == "push:1" and p.hashtags == ("phonex",) and p.created_ms == 5
    assert to_item({"kind": "delete", "id": "1"}, now_ms=5) == Deletion("push:1", "push", 5)
    for bad, field in [
        ({"text": "x"}, "id"),
        ({"id": "1"}, "text"),
        ({"id": "1", "text": "x", "created_ms": "1"}, "created_ms"),
        ("x", "item"),
        ({"id": "1", "text": "x", "lang": 5}, "lang/url/author_id"),
    ]:
        with pytest.raises(DecodeError) as ei:
            to_item(bad, now_ms=5)
        assert ei.value.field == field
    with pytest.raises(SignatureError):
        batch_of(b"{nope")
