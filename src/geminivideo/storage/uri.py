"""``s3://bucket/key`` URIs: parsing, the STORAGE_BUCKETS allow-list, and joining keys under a prefix.

Every check here runs before a request is sent, so a refused bucket never reaches the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from geminivideo.config import get_settings
from geminivideo.errors import InputNotAllowed, InvalidPayload

SCHEME = "s3://"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024  # S3's limit on a key's UTF-8 length


def is_uri(value: object) -> bool:
    """True for anything written as ``s3://…`` (case-insensitive scheme)."""
    return isinstance(value, str) and value[:5].lower() == SCHEME


@dataclass(frozen=True)
class ObjectUri:
    """One object (or, when the key ends in ``/``, a prefix) in one bucket."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    @property
    def name(self) -> str:
        return self.key.rstrip("/").rsplit("/", 1)[-1]

    def join(self, *parts: str) -> ObjectUri:
        """A key below this prefix (``s3://b/out/`` + ``task/render.mp4``)."""
        base = self.key if self.is_prefix else self.key + "/"
        return ObjectUri(self.bucket, base + "/".join(p.strip("/") for p in parts if p.strip("/")))


def parse(value: str, *, field: str = "url") -> ObjectUri:
    """Parse ``s3://bucket/key``; the message names ``field`` and the expected shape."""
    if not is_uri(value):
        raise InvalidPayload(f"{field}: {value!r} is not an s3://bucket/key URI")
    rest = value[len(SCHEME):]
    bucket, _, key = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise InvalidPayload(f"{field}: {bucket!r} in {value!r} is not a valid bucket name "
                             "(3-63 lower-case letters, digits, dots and hyphens)")
    if "\x00" in key or len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidPayload(f"{field}: the key of {value!r} has a NUL byte or is longer than {MAX_KEY_BYTES} bytes")
    if any(part in (".", "..") for part in key.split("/")):
        raise InvalidPayload(f"{field}: {value!r} has a '.' or '..' path segment; give the object's plain key")
    return ObjectUri(bucket, key)


def allowed(value: str | ObjectUri, *, field: str = "url") -> ObjectUri:
    """Parse and check the bucket against STORAGE_BUCKETS (refused before any request is sent)."""
    uri = value if isinstance(value, ObjectUri) else parse(value, field=field)
    buckets = get_settings().storage_buckets
    if uri.bucket not in buckets:
        shown = ", ".join(buckets) if buckets else "none: STORAGE_BUCKETS is empty"
        raise InputNotAllowed(f"{field}: bucket {uri.bucket!r} of {uri} is not in STORAGE_BUCKETS ({shown})")
    return uri


def object_uri(value: str, *, field: str) -> ObjectUri:
    """An allowed URI that names an object, not a prefix."""
    uri = allowed(value, field=field)
    if uri.is_prefix:
        raise InvalidPayload(f"{field}: {uri} names a prefix (ends with '/'); give an object's key")
    return uri
