"""storage.transfer and storage.errors against the real Swift + s3api store on loopback.

Given a fresh bucket, when objects move in and out through the workers' code, then they arrive whole
(length, ETag/MD5, SHA-256 metadata), presigned URLs work and a tampered one is refused, and every fault
the issue lists maps to the right error: missing key and refused access permanent (naming the URI or
the bucket, never a credential), a bucket outside STORAGE_BUCKETS refused before any request, an
oversized object refused from its HEAD, an unreachable store transient, and a killed multipart upload
invisible and aborted by the next attempt.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx
import pytest
from botocore.client import BaseClient

from geminivideo.errors import InputNotAllowed, PermanentError, TransientError
from geminivideo.storage import transfer
from geminivideo.storage.client import reset_client
from geminivideo.storage.errors import InputTooLarge, ObjectMissing, StorageAccessDenied, StorageUnavailable
from geminivideo.storage.staging import task_media
from geminivideo.storage.uri import ObjectUri, object_uri
from tests.support.env import applied
from tests.support.objectstore import READER_KEY, READER_SECRET, SECRET_KEY, StoreHandle


def _blob(size: int) -> bytes:
    return os.urandom(size)


def test_upload_then_download_round_trip_is_verified(bucket: str, s3: BaseClient, tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    source.write_bytes(_blob(40 * transfer.MiB + 123))  # above the multipart threshold: parts in parallel
    uri = ObjectUri(bucket, "jobs/t1/clip.mp4")

    done = transfer.upload(source, uri, task_id="t1")

    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    assert (done.size, done.sha256, done.content_type) == (source.stat().st_size, sha, "video/mp4")
    stored = s3.head_object(Bucket=bucket, Key=uri.key)
    assert stored["Metadata"] == {"task-id": "t1", "sha256": sha} and stored["ContentType"] == "video/mp4"
    assert "-" in stored["ETag"]  # it really went as a multipart upload
    back = transfer.download(uri, tmp_path / "back.mp4", field="video_path")
    assert back.read_bytes() == source.read_bytes()


def test_single_part_download_checks_md5(bucket: str, s3: BaseClient, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="small.bin", Body=b"x" * 1000)
    path = transfer.download(ObjectUri(bucket, "small.bin"), tmp_path / "small.bin", field="f")
    assert path.read_bytes() == b"x" * 1000


def test_presigned_get_works_and_tampered_is_refused(bucket: str, s3: BaseClient) -> None:
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
    url = transfer.presign(ObjectUri(bucket, "a/b.txt"), expiry_s=60)
    assert "X-Amz-Signature=" in url and SECRET_KEY not in url
    assert httpx.get(url, timeout=10).content == b"hello"
    tampered = url.replace("a/b.txt", "a/c.txt")
    assert httpx.get(tampered, timeout=10).status_code == 403


def test_missing_key_is_permanent_and_names_the_uri(bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ObjectMissing) as caught:
        transfer.download(ObjectUri(bucket, "no/such.mp4"), tmp_path / "x.mp4", field="scenes[0].video_path")
    assert isinstance(caught.value, PermanentError)
    assert f"s3://{bucket}/no/such.mp4" in str(caught.value)
    assert not (tmp_path / "x.mp4").exists()


def test_access_denied_is_permanent_names_the_bucket_and_no_secret(
    bucket: str, s3: BaseClient, object_store: StoreHandle, store_env: dict[str, str], tmp_path: Path
) -> None:
    s3.put_object(Bucket=bucket, Key="private.mp4", Body=b"data")
    upload = tmp_path / "up.bin"
    upload.write_bytes(b"1")
    with applied({**store_env, "AWS_ACCESS_KEY_ID": READER_KEY, "AWS_SECRET_ACCESS_KEY": READER_SECRET}):
        reset_client()
        with pytest.raises(StorageAccessDenied) as caught:
            transfer.download(ObjectUri(bucket, "private.mp4"), tmp_path / "p.mp4", field="video_path")
        with pytest.raises(StorageAccessDenied):
            transfer.upload(upload, ObjectUri(bucket, "up.bin"), task_id="t")
    reset_client()
    message = str(caught.value)
    assert isinstance(caught.value, PermanentError) and repr(bucket) in message
    assert READER_SECRET not in message and READER_KEY not in message


def test_wrong_secret_is_refused(bucket: str, store_env: dict[str, str], tmp_path: Path) -> None:
    with applied({**store_env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}):
        reset_client()
        with pytest.raises(StorageAccessDenied) as caught:
            transfer.head(ObjectUri(bucket, "anything"))
    reset_client()
    assert "not-the-secret" not in str(caught.value)


def test_bucket_outside_the_allow_list_is_refused_before_any_request(store_env: dict[str, str]) -> None:
    # The endpoint is a closed port: any request would fail as unreachable, not as "not allowed".
    with applied({**store_env, "S3_ENDPOINT_URL": "http://127.0.0.1:9"}):
        reset_client()
        started = time.monotonic()
        with pytest.raises(InputNotAllowed, match="not in STORAGE_BUCKETS"):
            object_uri("s3://someone-elses-bucket/video.mp4", field="video_path")
        with task_media("t-refused") as media, pytest.raises(InputNotAllowed, match="someone-elses-bucket"):
            media.fetch("s3://someone-elses-bucket/video.mp4", "video_path")
        assert media.folder is None  # nothing was staged
        assert time.monotonic() - started < 1
    reset_client()


def test_object_above_the_limit_is_refused_from_its_head(bucket: str, s3: BaseClient, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="big.mp4", Body=b"y" * 5000)
    with pytest.raises(InputTooLarge, match="MAX_INPUT_BYTES=4096"):
        transfer.download(ObjectUri(bucket, "big.mp4"), tmp_path / "big.mp4", field="video_path", max_bytes=4096)
    assert not (tmp_path / "big.mp4").exists()


def test_unreachable_store_is_transient(bucket: str, store_env: dict[str, str], tmp_path: Path) -> None:
    with applied({**store_env, "S3_ENDPOINT_URL": "http://127.0.0.1:9"}):
        reset_client()
        with pytest.raises(StorageUnavailable) as caught:
            transfer.download(ObjectUri(bucket, "x.mp4"), tmp_path / "x.mp4", field="video_path")
    reset_client()
    assert isinstance(caught.value, TransientError)


def test_killed_multipart_upload_is_invisible_and_aborted_by_the_next_attempt(
    bucket: str, s3: BaseClient, tmp_path: Path
) -> None:
    # What a worker killed mid-upload leaves: an upload started, one part sent, never completed.
    key = "jobs/t9/render.mp4"
    started = s3.create_multipart_upload(Bucket=bucket, Key=key)
    s3.upload_part(Bucket=bucket, Key=key, UploadId=started["UploadId"], PartNumber=1, Body=_blob(5 * transfer.MiB))
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="jobs/")  # nothing visible

    source = tmp_path / "render.mp4"
    source.write_bytes(_blob(1000))
    transfer.upload(source, ObjectUri(bucket, key), task_id="t9")

    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == source.read_bytes()


def test_stale_uploads_are_aborted_by_age(bucket: str, s3: BaseClient) -> None:
    s3.create_multipart_upload(Bucket=bucket, Key="out/a.mp4")
    assert transfer.abort_multipart_uploads(bucket, "out/", older_than_s=3600) == 0
    assert transfer.abort_multipart_uploads(bucket, "out/", older_than_s=0) == 1
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_delete_objects_works_through_our_client(bucket: str, s3: BaseClient) -> None:
    # Swift's s3api wants a Content-MD5 on DeleteObjects; botocore sends only a CRC32 unless our hook adds it.
    from geminivideo.storage.client import s3_client

    for key in ("d/1", "d/2"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    reply = s3_client().delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d/1"}, {"Key": "d/2"}]})
    assert sorted(d["Key"] for d in reply["Deleted"]) == ["d/1", "d/2"] and not reply.get("Errors")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="d/")
