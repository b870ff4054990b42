"""HubSpot signatures against HubSpot's published v1/v2 examples and v3 values computed with openssl."""

from __future__ import annotations

import pytest

from geminivideo.ml.webhooks.signature import (
    SignatureRejected,
    v1_signature,
    v2_signature,
    v3_signature,
    v3_uri,
    verify,
)

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
# The request body of HubSpot's "Validating the v1 request signature" example, byte for byte.
V1_BODY = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
    b'"changeFlag":"NEW","appId":54321}]'
)
V1_DOCUMENTED = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
V2_URI = "https://www.example.com/webhook_uri"
V2_GET_DOCUMENTED = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
V2_POST_DOCUMENTED = "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
TS = "1564113600000"
NOW_MS = int(TS) + 60_000
# printf '%s' "POST${V2_URI}${V1_BODY}${TS}" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64
V3_OPENSSL = "DxmVAjFNa2xfF3YgQjdZP6TNcok9k1oaH7UXombPtvw="


def test_v1_matches_hubspots_documented_example() -> None:
    assert v1_signature(SECRET, V1_BODY) == V1_DOCUMENTED


def test_v2_matches_hubspots_documented_examples() -> None:
    assert v2_signature(SECRET, "GET", V2_URI, b"") == V2_GET_DOCUMENTED
    assert v2_signature(SECRET, "POST", V2_URI, b'{"example_field":"example_value"}') == V2_POST_DOCUMENTED


def test_v3_matches_an_independent_openssl_hmac() -> None:
    assert v3_signature(SECRET, "POST", V2_URI, V1_BODY, TS) == V3_OPENSSL


def test_v3_uri_decodes_only_the_documented_escapes() -> None:
    assert v3_uri("https://x.test/hook?name=a%3Ab%2fc%40d%20e") == "https://x.test/hook?name=a:b/c@d%20e"
    # openssl over the decoded form: printf '%s' 'POSThttps://www.example.com/webhook_uri?name=a:b/c@d{}1564113600000'
    signed = v3_signature(SECRET, "POST", "https://www.example.com/webhook_uri?name=a%3Ab%2Fc%40d", b"{}", TS)
    assert signed == "fbmzBKAHYxFkg5TQnRCMeN4NFqM8YEmLyGSUjhsZpq4="


def _headers_v3(signature: str, timestamp: str = TS) -> dict[str, str]:
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp}


def test_verify_accepts_each_version() -> None:
    def check(headers: dict[str, str]) -> str:
        return verify(SECRET, method="POST", uri=V2_URI, body=V1_BODY, headers=headers, now_ms=NOW_MS)

    assert check(_headers_v3(V3_OPENSSL)) == "v3"
    assert check({"X-HubSpot-Signature": V1_DOCUMENTED}) == "v1"
    v2 = v2_signature(SECRET, "POST", V2_URI, V1_BODY)
    assert check({"X-HubSpot-Signature": v2, "X-HubSpot-Signature-Version": "v2"}) == "v2"


@pytest.mark.parametrize(
    ("headers", "now_ms", "reason"),
    [
        ({}, NOW_MS, "missing"),
        (_headers_v3(V3_OPENSSL), int(TS) + 301_000, "301 s old"),
        (_headers_v3(V3_OPENSSL), int(TS) - 400_000, "in the future"),
        (_headers_v3(V3_OPENSSL, timestamp="yesterday"), NOW_MS, "epoch milliseconds"),
        ({"X-HubSpot-Signature-v3": V3_OPENSSL}, NOW_MS, "X-HubSpot-Request-Timestamp"),
        (_headers_v3("A" + V3_OPENSSL[1:]), NOW_MS, "does not match"),
        ({"X-HubSpot-Signature": "0" * 64}, NOW_MS, "does not match"),
        ({"X-HubSpot-Signature": V1_DOCUMENTED, "X-HubSpot-Signature-Version": "v9"}, NOW_MS, "not supported"),
    ],
)
def test_verify_refuses_with_a_reason(headers: dict[str, str], now_ms: int, reason: str) -> None:
    with pytest.raises(SignatureRejected, match=reason):
        verify(SECRET, method="POST", uri=V2_URI, body=V1_BODY, headers=headers, now_ms=now_ms)


def test_a_valid_legacy_signature_does_not_rescue_a_wrong_v3() -> None:
    headers = {**_headers_v3("A" + V3_OPENSSL[1:]), "X-HubSpot-Signature": V1_DOCUMENTED}
    with pytest.raises(SignatureRejected, match="v3"):
        verify(SECRET, method="POST", uri=V2_URI, body=V1_BODY, headers=headers, now_ms=NOW_MS)


def test_a_changed_body_or_uri_fails_v3() -> None:
    for body, uri in ((V1_BODY + b" ", V2_URI), (V1_BODY, V2_URI + "?x=1")):
        with pytest.raises(SignatureRejected):
            verify(SECRET, method="POST", uri=uri, body=body, headers=_headers_v3(V3_OPENSSL), now_ms=NOW_MS)
