"""Video tasks: thin wrappers that validate the payload, call the domain module and report progress.

Each body is one line of glue; the work lives in render.py, preview.py, transcode.py, captions.py,
cleanup.py and resources.py, which can be called and tested without a broker.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from geminivideo.celery_base import GeminiTask
from geminivideo.contracts import (
    CaptionJob,
    CleanupJob,
    PreviewJob,
    RenderJob,
    TaskName,
    TranscodeJob,
    parse_payload,
    utcnow,
)
from geminivideo.storage.outputs import publish_result
from geminivideo.storage.staging import task_media
from geminivideo.video import preview, split_tasks, transcode
from geminivideo.video.captions import pipeline as captions
from geminivideo.video.celery_app import app
from geminivideo.video.housekeeping import fleet, resources
from geminivideo.video.render import pipeline as render


@app.task(name=str(TaskName.RENDER_VIDEO), bind=True, shared=False, records_video_job=True)
def render_video_task(self: GeminiTask, job: dict[str, Any]) -> dict[str, Any]:
    payload = parse_payload(RenderJob, job)
    with task_media(self.request.id, payload.output_url) as media:  # s3:// inputs in, outputs out
        result = render.render_video(payload, self.progress().processing)
        return publish_result(media, result, payload).model_dump(mode="json")


@app.task(name=str(TaskName.GENERATE_PREVIEW), bind=True, shared=False, records_video_job=True)
def generate_preview_task(self: GeminiTask, video_path: str, num_frames: int = 10, **options: Any) -> dict[str, Any]:
    payload = parse_payload(PreviewJob, {"video_path": video_path, "num_frames": num_frames, **options})
    with task_media(self.request.id, payload.output_url) as media:
        result = preview.generate_preview(payload, self.progress().processing)
        return publish_result(media, result, payload).model_dump(mode="json")


@app.task(name=str(TaskName.TRANSCODE), bind=True, shared=False, records_video_job=True)
def transcode_task(
    self: GeminiTask, input_path: str, output_format: dict[str, Any] | None = None, output_url: str | None = None
) -> dict[str, Any]:
    payload = parse_payload(TranscodeJob, {"input_path": input_path, "output_format": output_format or {},
                                           "output_url": output_url})
    with task_media(self.request.id, payload.output_url) as media:
        split_tasks.start_split(self, payload)  # a long input: replaced by a chord of parts (raises Ignore)
        result = transcode.transcode(payload, self.progress().processing)
        return publish_result(media, result, payload).model_dump(mode="json")


@app.task(name=str(TaskName.CAPTION), bind=True, shared=False, records_video_job=True)
def caption_task(
    self: GeminiTask, video_path: str, model: str = "base", language: str | None = None,
    formats: list[str] | None = None, word_timestamps: bool = False, **options: Any,
) -> dict[str, Any]:
    fields = {"video_path": video_path, "model": model, "language": language, "word_timestamps": word_timestamps,
              **({"formats": formats} if formats is not None else {}), **options}
    payload = parse_payload(CaptionJob, fields)
    with task_media(self.request.id, payload.output_url) as media:
        result = captions.caption_video(payload, self.progress().processing)
        return publish_result(media, result, payload).model_dump(mode="json")


@app.task(name=str(TaskName.CLEANUP), bind=True, shared=False)
def cleanup_task(
    self: GeminiTask, max_age_days: float | None = None, max_size_gb: float | None = None, dry_run: bool = False,
    all_hosts: bool = False,
) -> dict[str, Any]:
    payload = parse_payload(CleanupJob, {"max_age_days": max_age_days, "max_size_gb": max_size_gb, "dry_run": dry_run,
                                         "all_hosts": all_hosts})
    return fleet.cleanup_host(self.app, payload).model_dump(mode="json")


@app.task(name=str(TaskName.MONITOR_RESOURCES), bind=True, shared=False, publishes_progress=False)
def monitor_resources_task(self: GeminiTask) -> dict[str, Any]:
    return resources.collect_and_publish()


@app.task(name=str(TaskName.VIDEO_PING), bind=True, shared=False, publishes_progress=False)
def video_ping(self: GeminiTask, echo: str = "pong") -> dict[str, Any]:
    """Round trip through the broker: proves a worker of this app consumes and answers."""
    return {"echo": echo, "app": "video", "hostname": self.request.hostname, "host": socket.gethostname(),
            "pid": os.getpid(), "timestamp": utcnow().isoformat()}
