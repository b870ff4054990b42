"""HubSpot request signatures (v1, v2, v3), checked on the raw request bytes before anything is parsed.

- v3 (``X-HubSpot-Signature-v3``): base64 HMAC-SHA256, keyed with the app's client secret, over
  method + URI + body + ``X-HubSpot-Request-Timestamp`` (epoch ms); requests older than 5 minutes are
  refused, so a captured request cannot be replayed later.
- v2 (``X-HubSpot-Signature`` with ``X-HubSpot-Signature-Version: v2``): hex SHA-256 of
  secret + method + URI + body.
- v1 (same headers, version ``v1``): hex SHA-256 of secret + body.

When a v3 signature is present it is the one checked (no fallback to the weaker legacy forms, which
would let an attacker strip the v3 header and replay). Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Collection, Mapping

from geminivideo.errors import PermanentError

MAX_TIMESTAMP_AGE_MS = 5 * 60 * 1000
HEADER_V3 = "x-hubspot-signature-v3"
HEADER_TIMESTAMP = "x-hubspot-request-timestamp"
HEADER_LEGACY = "x-hubspot-signature"
HEADER_VERSION = "x-hubspot-signature-version"

# HubSpot signs the URI with these escapes decoded (its v3 validation guide lists exactly these).
_V3_URI_DECODES = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
    "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}


class SignatureRejected(PermanentError):
    """The request's HubSpot signature is missing, malformed, stale or wrong; the message says which."""


def v1_signature(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def v2_signature(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256((secret + method.upper() + uri).encode() + body).hexdigest()


def v3_uri(uri: str) -> str:
    """The URI form HubSpot's v3 signature covers: the listed percent-escapes decoded, case-insensitively."""
    out = []
    i = 0
    while i < len(uri):
        escape = uri[i : i + 3].upper()
        if uri[i] == "%" and escape in _V3_URI_DECODES:
            out.append(_V3_URI_DECODES[escape])
            i += 3
        else:
            out.append(uri[i])
            i += 1
    return "".join(out)


def v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + v3_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.strip().encode())


def _check_timestamp(raw: str | None, now_ms: int) -> str:
    if not raw:
        raise SignatureRejected("X-HubSpot-Signature-v3 needs the X-HubSpot-Request-Timestamp header (epoch ms)")
    try:
        stamp = int(raw.strip())
    except ValueError:
        raise SignatureRejected(f"X-HubSpot-Request-Timestamp must be epoch milliseconds, got {raw[:40]!r}") from None
    age_ms = now_ms - stamp
    if age_ms > MAX_TIMESTAMP_AGE_MS:
        raise SignatureRejected(f"request timestamp is {age_ms / 1000:.0f} s old (at most 300 s allowed)")
    if age_ms < -MAX_TIMESTAMP_AGE_MS:
        raise SignatureRejected(f"request timestamp is {-age_ms / 1000:.0f} s in the future (clock skew over 300 s)")
    return raw.strip()


def verify(
    secret: str, *, method: str, uri: str, body: bytes, headers: Mapping[str, str], now_ms: int | None = None,
    versions: Collection[str] = ("v1", "v2", "v3"),
) -> str:
    """Check the request's signature; return the version that passed, or raise SignatureRejected.

    ``versions`` are the ones accepted (``HUBSPOT_SIGNATURE_VERSIONS``): ``("v3",)`` refuses the legacy
    signatures, which cover no timestamp and so can be replayed forever.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if given := lowered.get(HEADER_V3):
        if "v3" not in versions:
            raise SignatureRejected(f"signature version v3 is not accepted here (HUBSPOT_SIGNATURE_VERSIONS: "
                                    f"{', '.join(versions)})")
        timestamp = _check_timestamp(lowered.get(HEADER_TIMESTAMP), now_ms)
        if not _same(v3_signature(secret, method, uri, body, timestamp), given):
            raise SignatureRejected("X-HubSpot-Signature-v3 does not match the request (method, URI, body, timestamp)")
        return "v3"
    given = lowered.get(HEADER_LEGACY)
    if not given:
        raise SignatureRejected("missing X-HubSpot-Signature-v3 (or legacy X-HubSpot-Signature) header")
    version = lowered.get(HEADER_VERSION, "v1").strip().lower()
    if version in ("v1", "v2") and version not in versions:
        raise SignatureRejected(f"signature version {version} is not accepted here (HUBSPOT_SIGNATURE_VERSIONS: "
                                f"{', '.join(versions)}); send X-HubSpot-Signature-v3")
    if version == "v1":
        expected = v1_signature(secret, body)
    elif version == "v2":
        expected = v2_signature(secret, method, uri, body)
    else:
        raise SignatureRejected(f"X-HubSpot-Signature-Version {version!r} is not supported (v1, v2; or send v3)")
    if not _same(expected, given):
        raise SignatureRejected(f"X-HubSpot-Signature ({version}) does not match the request body")
    return version
