"""Probe tasks the reliability workers import with ``-I tests.reliability.probe_tasks``.

A probe is a real task on the real apps (same base class, acks, limits machinery, progress protocol),
whose run time the test chooses and whose every start and completion is counted in Redis, so a test
can measure redelivery after ``kill -9`` and count executions exactly. It writes its output through
``atomic_output`` like the video tasks, so a killed probe also leaves (or not) a partial file. With
``encode=True`` the output is a real FFmpeg encode paced in real time (``-re``), run by ``run_ffmpeg`` as
the video tasks run it, so a test can watch that FFmpeg process (a lost lease must kill it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from geminivideo.celery_base import GeminiTask
from geminivideo.leases import fencing
from geminivideo.ml.celery_app import app as ml_app
from geminivideo.redis_client import get_redis
from geminivideo.video.celery_app import app as video_app
from geminivideo.video.ffmpeg import atomic_output, run_ffmpeg

VIDEO_PROBE = "reliability_probe_video"
ML_PROBE = "reliability_probe_ml"


def starts_key(key: str) -> str:
    return f"probe:{key}:starts"


def done_key(key: str) -> str:
    return f"probe:{key}:done"


def _encode(task: GeminiTask, key: str, seconds: float, output: Path) -> None:
    """A real-time FFmpeg encode of ``seconds`` of a test pattern into ``output`` (atomically)."""
    with atomic_output(output) as temp:
        args = ["-re", "-f", "lavfi", "-i", f"testsrc=size=160x120:rate=10:duration={seconds}", "-c:v", "libx264",
                "-preset", "ultrafast", "-threads", "1", "-metadata", f"comment=probe {key}", "-f", "mp4", str(temp)]
        run_ffmpeg(args, expected_duration_s=seconds, on_progress=task.progress().processing, what=f"probe {key}")


def _run(task: GeminiTask, key: str, seconds: float, output_dir: str | None, encode: bool = False) -> dict[str, Any]:
    client = get_redis()
    started = {"pid": os.getpid(), "hostname": task.request.hostname, "at": time.time(),
               "redelivered": bool((task.request.delivery_info or {}).get("redelivered")),
               "token": attempt.token if (attempt := fencing.current(task.request.id)) else None}
    client.rpush(starts_key(key), json.dumps(started))
    steps = max(1, int(seconds / 0.25))
    output: Path | None = None
    if encode and output_dir:
        output = Path(output_dir) / f"{key}.mp4"
        _encode(task, key, seconds, output)
    elif output_dir:
        output = Path(output_dir) / f"{key}.bin"
        with atomic_output(output) as temp, temp.open("wb") as handle:
            for step in range(steps):
                handle.write(os.urandom(1024))
                handle.flush()
                task.progress().processing(100 * step / steps, f"step {step} of {steps}")
                time.sleep(seconds / steps)
    else:
        for step in range(steps):
            task.progress().processing(100 * step / steps, f"step {step} of {steps}")
            time.sleep(seconds / steps)
    client.rpush(done_key(key), json.dumps({**started, "finished": time.time()}))
    return {"key": key, "hostname": task.request.hostname, "output": str(output) if output else None}


@video_app.task(name=VIDEO_PROBE, bind=True, shared=False)
def reliability_probe_video(
    self: GeminiTask, key: str, seconds: float, output_dir: str | None = None, encode: bool = False
) -> dict[str, Any]:
    return _run(self, key, seconds, output_dir, encode)


@ml_app.task(name=ML_PROBE, bind=True, shared=False)
def reliability_probe_ml(
    self: GeminiTask, key: str, seconds: float, output_dir: str | None = None, encode: bool = False
) -> dict[str, Any]:
    return _run(self, key, seconds, output_dir, encode)
