"""Moving files between a host's disk and the object store, verified at both ends.

- ``download``: HEAD first (size against MAX_INPUT_BYTES before a byte is read), then a streamed,
  parallel ranged download into a temporary name (s3transfer pins its ranged GETs to one ETag, so an object
  replaced mid-way fails instead of mixing two versions), then length and — for single-part ETags — MD5.
- ``upload``: stale multipart uploads of the same key aborted first (a killed attempt leaves one),
  SHA-256 and task id in the object's metadata, multipart with parallel parts above the threshold, then a
  HEAD to check the stored length and checksum. A multipart upload is invisible until completed, so a
  killed upload never leaves a partial object.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import RetriesExceededError, S3UploadFailedError

from geminivideo.config import get_settings
from geminivideo.storage.client import s3_client
from geminivideo.storage.errors import InputTooLarge, ObjectMissing, TransferCorrupt, storage_error
from geminivideo.storage.uri import ObjectUri

MiB = 1024 * 1024
HASH_CHUNK = 4 * MiB
# 16 MiB parts, 8 at a time: bench/storage.py measured this against boto3's defaults (8 MiB, 10 threads).
TRANSFER = TransferConfig(multipart_threshold=16 * MiB, multipart_chunksize=16 * MiB, max_concurrency=8,
                          use_threads=True)
TRANSFER_ERRORS = (ClientError, BotoCoreError, Boto3Error, RetriesExceededError, S3UploadFailedError, OSError)

mimetypes.add_type("text/vtt", ".vtt")
mimetypes.add_type("application/x-subrip", ".srt")
mimetypes.add_type("image/webp", ".webp")


@dataclass(frozen=True)
class ObjectHead:
    size: int
    etag: str
    content_type: str | None
    metadata: dict[str, str]


def head(uri: ObjectUri) -> ObjectHead:
    try:
        reply = s3_client().head_object(Bucket=uri.bucket, Key=uri.key)
    except TRANSFER_ERRORS as exc:
        raise storage_error(exc, uri=str(uri), action="read") from None
    return ObjectHead(int(reply["ContentLength"]), str(reply.get("ETag", "")).strip('"'), reply.get("ContentType"),
                      dict(reply.get("Metadata") or {}))


def file_digest(path: Path, algorithm: str) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def download(uri: ObjectUri, dest: Path, *, field: str, max_bytes: int | None = None) -> Path:
    """Fetch ``uri`` into ``dest`` (a file in the task's scratch folder); raise naming ``field``."""
    limit = max_bytes if max_bytes is not None else get_settings().max_input_bytes
    meta = head(uri)
    if meta.size > limit:
        raise InputTooLarge(f"{field}: {uri} is {meta.size} bytes, above MAX_INPUT_BYTES={limit}; "
                            "nothing was downloaded")
    if meta.size == 0:
        raise ObjectMissing(f"{field}: {uri} is an empty object")
    try:
        s3_client().download_file(uri.bucket, uri.key, str(dest), Config=TRANSFER)
    except TRANSFER_ERRORS as exc:
        dest.unlink(missing_ok=True)
        raise storage_error(exc, uri=str(uri), action="download") from None
    verify_download(uri, dest, meta)
    return dest


def verify_download(uri: ObjectUri, dest: Path, meta: ObjectHead) -> None:
    size = dest.stat().st_size
    problem = None
    if size != meta.size:
        problem = f"got {size} bytes, the object has {meta.size}"
    elif "-" not in meta.etag and len(meta.etag) == 32 and file_digest(dest, "md5") != meta.etag:
        problem = "its MD5 does not match the object's ETag"
    if problem:
        dest.unlink(missing_ok=True)
        raise TransferCorrupt(f"download of {uri} was incomplete or corrupt ({problem}); retrying")


@dataclass(frozen=True)
class Uploaded:
    uri: ObjectUri
    size: int
    sha256: str
    content_type: str


def content_type_of(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def upload(path: Path, uri: ObjectUri, *, task_id: str) -> Uploaded:
    """Store ``path`` at ``uri`` (replacing what a previous attempt of the same task stored there)."""
    abort_multipart_uploads(uri.bucket, uri.key, exact=True)
    sha256 = file_digest(path, "sha256")
    ctype = content_type_of(path)
    extra = {"ContentType": ctype, "Metadata": {"task-id": task_id, "sha256": sha256}}
    try:
        s3_client().upload_file(str(path), uri.bucket, uri.key, ExtraArgs=extra, Config=TRANSFER)
    except TRANSFER_ERRORS as exc:
        raise storage_error(exc, uri=str(uri), action="upload to") from None
    stored = head(uri)
    if stored.size != path.stat().st_size or stored.metadata.get("sha256") != sha256:
        raise TransferCorrupt(f"upload to {uri} stored {stored.size} bytes / sha256 "
                              f"{stored.metadata.get('sha256')!r}, expected {path.stat().st_size} / {sha256}")
    return Uploaded(uri, stored.size, sha256, ctype)


def abort_multipart_uploads(bucket: str, prefix: str, *, exact: bool = False, older_than_s: float = 0.0) -> int:
    """Abort unfinished multipart uploads under ``prefix`` (only the key itself when ``exact``)."""
    client = s3_client()
    now = datetime.now(UTC)
    aborted = 0
    where = f"s3://{bucket}/{prefix}"
    try:
        pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for upload_ in page.get("Uploads", []):
                if exact and upload_["Key"] != prefix:
                    continue
                # Swift rounds Initiated up to the next second: with no age limit, never compare.
                if older_than_s > 0 and (now - upload_["Initiated"]).total_seconds() < older_than_s:
                    continue
                client.abort_multipart_upload(Bucket=bucket, Key=upload_["Key"], UploadId=upload_["UploadId"])
                aborted += 1
    except TRANSFER_ERRORS as exc:
        raise storage_error(exc, uri=where, action="list or abort multipart uploads under") from None
    return aborted


def presign(uri: ObjectUri, expiry_s: int | None = None) -> str:
    """A presigned HTTPS (or the endpoint's scheme) GET URL; signing is local, no request is sent."""
    seconds = expiry_s or get_settings().presign_expiry_s
    return str(s3_client().generate_presigned_url(
        "get_object", Params={"Bucket": uri.bucket, "Key": uri.key}, ExpiresIn=seconds))


def delete(uri: ObjectUri) -> None:
    try:
        s3_client().delete_object(Bucket=uri.bucket, Key=uri.key)
    except TRANSFER_ERRORS as exc:
        raise storage_error(exc, uri=str(uri), action="delete") from None


def delete_prefix(prefix: ObjectUri) -> int:
    """Delete every object under ``prefix`` (a key ending in ``/``) and its unfinished uploads; return how many."""
    if not prefix.is_prefix or not prefix.key:
        raise ValueError(f"{prefix} is not a prefix below the bucket's root (its key must end with '/')")
    client = s3_client()
    deleted = 0
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=prefix.bucket, Prefix=prefix.key):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:  # a listing page holds at most 1000 keys, DeleteObjects' own limit
                client.delete_objects(Bucket=prefix.bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
    except TRANSFER_ERRORS as exc:
        raise storage_error(exc, uri=str(prefix), action="delete the objects under") from None
    abort_multipart_uploads(prefix.bucket, prefix.key)
    return deleted


def put_bytes(uri: ObjectUri, data: bytes, *, content_type: str = "application/octet-stream") -> None:
    try:
        s3_client().put_object(Bucket=uri.bucket, Key=uri.key, Body=data, ContentType=content_type)
    except TRANSFER_ERRORS as exc:
        raise storage_error(exc, uri=str(uri), action="write") from None


def get_bytes(uri: ObjectUri, *, max_bytes: int = 1 * MiB) -> bytes:
    try:
        reply = s3_client().get_object(Bucket=uri.bucket, Key=uri.key, Range=f"bytes=0-{max_bytes - 1}")
        return bytes(reply["Body"].read())
    except TRANSFER_ERRORS as exc:
        raise storage_error(exc, uri=str(uri), action="read") from None
