"""FFmpeg and ffprobe run boxed in: a decompression bomb fails as a permanent error inside its limits.

The bomb is a 266-byte PNG (and a 1.4 KB Matroska file of three such frames) whose header declares a
16000x16000 frame: unbounded, FFmpeg allocates about 800 MB for it. With ``FFMPEG_MAX_MEMORY_MB=512`` the
allocation fails, the task ends ``failed`` without a retry, and no FFmpeg child grew past the cap.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import pytest
import redis

from geminivideo.contracts import TaskStatus
from geminivideo.errors import ProcessingFailed
from geminivideo.security import rlimits
from geminivideo.video.tasks import generate_preview_task
from tests.conftest import StartWorker
from tests.integration.video.support import run
from tests.support import env as support_env

CAP_MB = 512  # FFmpeg maps ~300 MB of libraries before it reads a byte: much lower and it cannot start


def write_png_bomb(path: Path, side: int = 16000) -> Path:
    """A valid PNG header for a ``side``² RGB image followed by four rows of pixels: tiny on disk, huge decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x00" * (side * 3) for _ in range(4))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
                     + chunk(b"IEND", b""))
    return path


def test_limits_are_set_in_the_child_before_exec() -> None:
    limits = rlimits.ChildLimits(address_space_bytes=300 * rlimits.MiB, cpu_s=7, file_size_bytes=5 * rlimits.MiB,
                                 open_files=64)
    shown = subprocess.run(["sh", "-c", "ulimit -v; ulimit -t; ulimit -f; ulimit -n"], capture_output=True,
                           text=True, check=True, preexec_fn=rlimits.preexec(limits))
    # ulimit -v and -f count KiB and 512-byte blocks respectively (dash and bash alike).
    assert shown.stdout.split() == [str(300 * 1024), "7", str(5 * 2048), "64"]
    gpu = limits.for_command(["ffmpeg", "-c:v", "h264_nvenc"])
    assert gpu.address_space_bytes is None and gpu.cpu_s == 7


_DIRECT = """
import json, resource, sys
from geminivideo.errors import ProcessingFailed
from geminivideo.video.ffmpeg import input_args, run_ffmpeg
try:
    run_ffmpeg([*input_args(sys.argv[1]), "-f", "null", "-"], what="decode")
    outcome = "completed"
except ProcessingFailed as exc:
    outcome = str(exc)
print(json.dumps({"outcome": outcome, "child_max_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


@pytest.mark.parametrize("cap_mb", [CAP_MB, 0], ids=["capped", "uncapped"])
def test_a_decompression_bomb_stays_inside_the_memory_cap(
    cap_mb: int, tmp_path: Path, test_env: support_env.TestEnv
) -> None:
    bomb = write_png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1024
    # A fresh interpreter, so RUSAGE_CHILDREN measures this FFmpeg alone.
    done = subprocess.run([sys.executable, "-c", _DIRECT, str(bomb)], capture_output=True, text=True, timeout=120,
                          env=test_env.process_env(FFMPEG_MAX_MEMORY_MB=str(cap_mb)), check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    if cap_mb:
        assert "FFMPEG_MAX_MEMORY_MB" in report["outcome"], report
        assert report["child_max_rss_kb"] < cap_mb * 1024
    else:  # the reference: without the cap the same 266 bytes cost hundreds of megabytes
        assert report["child_max_rss_kb"] > CAP_MB * 1024, report


def write_video_bomb(path: Path) -> Path:
    """Three seconds of the PNG bomb as frames of a Matroska file (stream copy: nothing is decoded here)."""
    frame = write_png_bomb(path.with_suffix(".png"))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-framerate", "1", "-loop", "1", "-t", "3", "-i", str(frame),
                    "-c:v", "copy", str(path)], check=True, timeout=60)
    return path


def test_the_video_worker_fails_the_bomb_permanently(
    start_worker: StartWorker, redis_client: redis.Redis, test_env: support_env.TestEnv
) -> None:
    bomb = write_video_bomb(test_env.media_dir / f"bomb-{uuid.uuid4().hex[:8]}.mkv")
    assert bomb.stat().st_size < 4096
    queue = f"bomb-{uuid.uuid4().hex[:8]}"
    start_worker("video", queues=[queue], FFMPEG_MAX_MEMORY_MB=str(CAP_MB))
    outcome = run(redis_client, generate_preview_task, str(bomb), 2, timeout_s=120, queue=queue)
    assert isinstance(outcome.error, ProcessingFailed), repr(outcome.error)
    assert "FFMPEG_MAX_MEMORY_MB" in str(outcome.error)
    assert outcome.statuses[-1] is TaskStatus.FAILED
    assert TaskStatus.RETRYING not in outcome.statuses
