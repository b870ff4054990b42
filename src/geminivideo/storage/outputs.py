"""Publishing a video task's verified outputs to the object store, and presigning them again later.

Where: the job's ``output_url`` (``s3://bucket/key`` for a single output, ``s3://bucket/prefix/`` for a
folder of them) or else ``OUTPUT_URL`` + ``<task id>/``. Names are fixed per task kind (``render.mp4``,
``captions.srt``, ``frame_001.jpg``…), so a redelivered task writes the same keys: a rerun replaces
rather than duplicates. Local copies are removed once every upload is verified. Without either setting
the result is returned unchanged (local files, the embedded default).

While they go up, the local copies carry FFmpeg's hidden partial names (``.render.partial-….mp4``) and are
held in the in-use registry: cleanup leaves a running upload alone, and the copy a worker killed mid-upload
leaves behind is an orphan that the next cleanup removes once its lease runs out (under its final name it
would stay for CLEANUP_AGE_DAYS, and the retry writes a copy of its own).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from geminivideo.config import get_settings
from geminivideo.contracts import (
    CaptionResult,
    PreviewResult,
    RenderResult,
    StoredObject,
    TranscodeResult,
)
from geminivideo.leases import fencing
from geminivideo.storage import transfer
from geminivideo.storage.staging import TaskMedia
from geminivideo.storage.uri import ObjectUri, allowed, is_uri
from geminivideo.video.ffmpeg import partial_path
from geminivideo.video.housekeeping.inuse import in_use

R = TypeVar("R", bound=BaseModel)
UPLOAD_THREADS = 4  # previews are many small files: a few requests in flight hide the round trips


@dataclass(frozen=True)
class Destination:
    prefix: ObjectUri  # always ends with "/"
    exact: ObjectUri | None  # the job named one object for its single output


def destination(task_id: str, job_output_url: str | None) -> Destination | None:
    if job_output_url:
        base = allowed(job_output_url, field="output_url")
        if base.is_prefix:
            return Destination(base, None)
        return Destination(ObjectUri(base.bucket, base.key + "/"), base)
    if not get_settings().output_url:
        return None
    base = allowed(cast(str, get_settings().output_url), field="OUTPUT_URL")
    return Destination(ObjectUri(base.bucket, base.join(task_id).key + "/"), None)


def store(media: TaskMedia, files: Sequence[tuple[Path, ObjectUri]]) -> list[StoredObject]:
    """Upload every file (verified) under its hidden partial name; the local copies are removed either way."""
    def one(item: tuple[Path, ObjectUri]) -> StoredObject:
        path, uri = item
        done = transfer.upload(path, uri, task_id=media.task_id)
        return StoredObject(name=uri.name, url=str(uri), download_url=transfer.presign(uri), size=done.size,
                            sha256=done.sha256, content_type=done.content_type)

    hidden = [(partial_path(path), uri) for path, uri in files]
    try:
        fencing.check_current()  # only the attempt that holds the task may publish (LeaseLost otherwise)
        with in_use(*(path for path, _ in hidden)):  # held before the rename: cleanup never sees them unheld
            for (path, _), (partial, _) in zip(files, hidden, strict=True):
                path.replace(partial)
            if len(hidden) == 1:
                return [one(hidden[0])]
            with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
                return list(pool.map(one, hidden))
    finally:  # a retry renders again, so a local copy is garbage whether or not the upload worked
        for path, _ in [*files, *hidden]:
            path.unlink(missing_ok=True)


def fresh_links(objects: Iterable[StoredObject]) -> list[StoredObject]:
    """The same objects with newly presigned URLs (for ``GET /api/jobs/{id}/outputs``)."""
    out = []
    for item in objects:
        uri = allowed(item.url, field="url")
        out.append(item.model_copy(update={"download_url": transfer.presign(uri)}))
    return out


def _main(stored: list[StoredObject], **fields: Any) -> dict[str, Any]:
    first = stored[0] if stored else None
    return {"outputs": stored, "output_url": first.url if first else None,
            "download_url": first.download_url if first else None, **fields}


def _render(media: TaskMedia, result: RenderResult, job: Any, dest: Destination) -> RenderResult:
    name = job.output_name or "render"
    name = name if name.lower().endswith(".mp4") else f"{name}.mp4"
    stored = store(media, [(Path(result.output_path), dest.exact or dest.prefix.join(name))])
    return result.model_copy(update=_main(stored, output_path=stored[0].url))


def _transcode(media: TaskMedia, result: TranscodeResult, job: Any, dest: Destination) -> TranscodeResult:
    name = f"transcode-{result.codec}.{result.container}"
    stored = store(media, [(Path(result.output_path), dest.exact or dest.prefix.join(name))])
    return result.model_copy(update=_main(stored, output_path=stored[0].url,
                                          input_path=media.source_of(result.input_path)))


def _preview(media: TaskMedia, result: PreviewResult, job: Any, dest: Destination) -> PreviewResult:
    frames = [Path(p) for p in result.preview_paths]
    extra = [Path(p) for p in (result.sprite_path, result.vtt_path) if p]
    stored = store(media, [(p, dest.prefix.join(p.name)) for p in [*extra, *frames]])
    by_name = {s.name: s.url for s in stored}
    shutil.rmtree(result.preview_dir, ignore_errors=True)
    return result.model_copy(update=_main(
        stored, preview_dir=str(dest.prefix), preview_paths=[by_name[p.name] for p in frames],
        sprite_path=by_name.get(Path(result.sprite_path).name) if result.sprite_path else None,
        vtt_path=by_name.get(Path(result.vtt_path).name) if result.vtt_path else None))


def _captions(media: TaskMedia, result: CaptionResult, job: Any, dest: Destination) -> CaptionResult:
    local = {fmt: Path(p) for fmt, p in (("srt", result.srt_path), ("vtt", result.vtt_path),
                                         ("json", result.json_path)) if p}
    stored = store(media, [(path, dest.prefix.join(f"captions.{fmt}")) for fmt, path in local.items()])
    urls = {fmt: s.url for fmt, s in zip(local, stored, strict=True)}
    return result.model_copy(update=_main(stored, srt_path=urls.get("srt"), vtt_path=urls.get("vtt"),
                                          json_path=urls.get("json")))


_PUBLISHERS: dict[type[BaseModel], Callable[..., Any]] = {
    RenderResult: _render, TranscodeResult: _transcode, PreviewResult: _preview, CaptionResult: _captions,
}


def publish_result(media: TaskMedia, result: R, job: BaseModel) -> R:
    """Upload ``result``'s files when an output URL applies; return the result naming the stored objects."""
    dest = destination(media.task_id, getattr(job, "output_url", None))
    if dest is None:
        return result
    publisher = _PUBLISHERS.get(type(result))
    if publisher is None:
        raise TypeError(f"no object-store publisher for {type(result).__name__}")
    return cast(R, publisher(media, result, job, dest))


def stored_outputs(result: dict[str, Any] | None) -> list[StoredObject]:
    """The stored objects a task's result lists (empty for local-only results)."""
    if not isinstance(result, dict):
        return []
    items = result.get("outputs") or []
    return [StoredObject.model_validate(item) for item in items if isinstance(item, dict) and is_uri(item.get("url"))]
