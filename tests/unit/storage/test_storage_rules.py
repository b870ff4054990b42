"""Pure rules of the storage package: settings, URIs and the allow-list, output keys, fleet fan-out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from geminivideo.config import Settings, get_settings
from geminivideo.errors import ConfigError, InputNotAllowed, InvalidPayload
from geminivideo.storage.client import _secret
from geminivideo.storage.outputs import destination
from geminivideo.storage.uri import ObjectUri, allowed, parse
from geminivideo.video.housekeeping.fleet import other_hosts
from tests.support.env import applied


def test_output_and_index_urls_must_be_in_an_allowed_bucket() -> None:
    with applied({"STORAGE_BUCKETS": "media", "OUTPUT_URL": "s3://other/out/"}), \
            pytest.raises(ConfigError, match="OUTPUT_URL: bucket 'other' is not in STORAGE_BUCKETS"):
        get_settings()
    settings = Settings(storage_buckets="media,index", output_url="s3://media/out/", index_url="s3://index/w/")
    assert settings.storage_buckets == ["media", "index"]


def test_empty_strings_from_compose_mean_unset() -> None:
    settings = Settings(s3_endpoint_url="", output_url="", index_url="", aws_access_key_id="")
    assert (settings.s3_endpoint_url, settings.output_url, settings.index_url) == (None, None, None)
    assert _secret(settings, "aws_access_key_id") is None


def test_secret_file_forms_are_read_and_a_missing_file_is_named(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    with applied({"AWS_SECRET_ACCESS_KEY_FILE": str(secret)}):
        assert _secret(Settings(), "aws_secret_access_key") == "from-file"
    with applied({"AWS_SECRET_ACCESS_KEY_FILE": str(tmp_path / "nope")}), \
            pytest.raises(ConfigError, match=r"AWS_SECRET_ACCESS_KEY_FILE=.*cannot read"):
        Settings()
    secret.write_text("")
    with applied({"AWS_SECRET_ACCESS_KEY_FILE": str(secret)}):
        assert _secret(Settings(), "aws_secret_access_key") is None  # empty: the default credential chain


@pytest.mark.parametrize("bad", ["s3://", "s3://A_b/k", "http://b/k", "s3://bucket/a/../b", "s3://bucket/x\x00"])
def test_bad_uris_are_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(InvalidPayload, match=r"^video_path: "):
        parse(bad, field="video_path")


def test_allow_list_is_checked_without_a_request() -> None:
    with applied({"STORAGE_BUCKETS": "media"}):
        assert allowed("s3://media/a.mp4") == ObjectUri("media", "a.mp4")
        with pytest.raises(InputNotAllowed, match=r"bucket 'else' of s3://else/a\.mp4 is not in STORAGE_BUCKETS"):
            allowed("s3://else/a.mp4", field="scenes[0].video_path")


def test_output_keys_are_stable_per_task() -> None:
    with applied({"STORAGE_BUCKETS": "media", "OUTPUT_URL": "s3://media/out"}):
        dest = destination("task-1", None)
        assert dest is not None and str(dest.prefix) == "s3://media/out/task-1/" and dest.exact is None
        own = destination("task-1", "s3://media/exact/name.mp4")
        assert own is not None and str(own.exact) == "s3://media/exact/name.mp4"
        assert str(own.prefix) == "s3://media/exact/name.mp4/"
    with applied({"STORAGE_BUCKETS": "media", "OUTPUT_URL": ""}):
        assert destination("task-1", None) is None


def test_fan_out_picks_one_worker_per_other_host() -> None:
    me = {"host": "a", "dirs": ["/t", "/r", "/p"]}
    replies: list[dict[str, Any]] = [{"w1@a": me}, {"w2@a": dict(me)}, {"w3@b": {"host": "b", "dirs": ["/t"]}},
               {"w4@b": {"host": "b", "dirs": ["/t"]}}, {"old@c": {"ok": "pong"}}]
    assert list(other_hosts(replies, me).values()) == ["w3@b"]
