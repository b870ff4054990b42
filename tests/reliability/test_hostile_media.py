"""Hostile paths and media on a real video worker: refused before FFmpeg runs, or failed cleanly within limits.

Traps make "FFmpeg never touched it" observable: a FIFO (inside or outside the roots) blocks whoever opens it,
``/dev/zero`` never ends, and a loopback HTTP server counts every request a playlist could make. A task that
opened any of them would hang until its time limit or leave a hit; each must instead fail within seconds
with a permanent error. Output folders stay free of partial files.

The named bad-input cases (missing, truncated, audio-only, HLS/concat disguised, outside roots, symlink out,
100000-pixel sizes, times past the end) are tests/integration/video/test_bad_inputs.py; overlay and subtitle
text with filter syntax drawn literally is tests/integration/video/test_filtergraph_ffmpeg.py.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from geminivideo.contracts import TaskStatus
from geminivideo.video.ffmpeg import is_partial
from tests.reliability.conftest import Deployment, MakeDeployment
from tests.support.media import make_video

pytestmark = [pytest.mark.reliability]

REFUSED = {"InputNotAllowed", "MediaUnreadable", "InvalidPayload", "ProcessingFailed"}


@pytest.fixture
def traps(tmp_path: Path) -> Iterator[dict[str, Any]]:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    outside = tmp_path / "outside"
    outside.mkdir()
    fifo = outside / "secret.fifo"
    os.mkfifo(fifo)
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "hits": hits, "outside_fifo": fifo,
               "outside": outside}
    finally:
        server.shutdown()
        server.server_close()


def _inputs(dep: Deployment, traps: dict[str, Any]) -> dict[str, str]:
    media = dep.media_dir
    os.mkfifo(media / "inside.fifo")
    os.mknod(media / "zero-device.mp4", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # a /dev/zero inside the roots
    (media / "zero-bytes.mp4").touch()
    (media / "a-folder.mp4").mkdir()
    (media / "notes.mp4").write_text("just some text, not a video\n" * 50)
    (media / "link-to-zero.mp4").symlink_to("/dev/zero")
    (media / "hls-http.mp4").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{traps['url']}/segment.ts\n#EXT-X-ENDLIST\n")
    (media / "hls-fifo.mp4").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile://{traps['outside_fifo']}\n#EXT-X-ENDLIST\n")
    (media / "concat-fifo.mp4").write_text(f"ffconcat version 1.0\nfile '{traps['outside_fifo']}'\n")
    (media / "concat-http.mp4").write_text(f"ffconcat version 1.0\nfile '{traps['url']}/clip.mp4'\n")
    truncated = make_video(media / "whole.mp4", duration_s=2, size=(160, 120), faststart=False)
    (media / "truncated.mp4").write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    return {
        "fifo inside roots": str(media / "inside.fifo"),
        "char device inside roots": str(media / "zero-device.mp4"),
        "symlink to /dev/zero": str(media / "link-to-zero.mp4"),
        "/dev/zero": "/dev/zero",
        "fifo outside roots": str(traps["outside_fifo"]),
        "dot-dot traversal": f"{media}/../../outside/secret.fifo",
        "relative path": "media/whole.mp4",
        "directory": str(media / "a-folder.mp4"),
        "zero-byte file": str(media / "zero-bytes.mp4"),
        "text file": str(media / "notes.mp4"),
        "truncated mp4": str(media / "truncated.mp4"),
        "hls playlist to http": str(media / "hls-http.mp4"),
        "hls playlist to fifo": str(media / "hls-fifo.mp4"),
        "concat list to fifo": str(media / "concat-fifo.mp4"),
        "concat list to http": str(media / "concat-http.mp4"),
    }


def _calls(path: str) -> list[tuple[str, list[Any], dict[str, Any]]]:
    small = {"width": 160, "height": 120, "fps": 10, "preset": "ultrafast"}
    return [
        ("render_video_task", [{"scenes": [{"video_path": path}], "output_format": small}], {}),
        ("transcode_task", [path, {"codec": "h264"}], {}),
        ("generate_preview_task", [path, 2], {}),
        ("caption_task", [path], {"model": "tiny.en"}),
    ]


def test_hostile_paths_and_media_are_refused_before_ffmpeg_reads_them(deployment: MakeDeployment,
                                                                     traps: dict[str, Any]) -> None:
    dep = deployment(RENDER_TIMEOUT="20", PREVIEW_TIMEOUT="20", TRANSCODE_TIMEOUT="20", CAPTION_TIMEOUT="20",
                     WHISPER_ALLOW_DOWNLOAD="false")
    dep.worker("video", ["render_queue", "preview_queue", "transcode_queue", "caption_queue"], name="hostile",
               concurrency=2)
    outcomes: dict[str, str] = {}
    for case, path in _inputs(dep, traps).items():
        for task, args, kwargs in _calls(path):
            started = time.monotonic()
            result = dep.send("video", task, args, kwargs)
            result.get(timeout=60, propagate=False)
            elapsed = time.monotonic() - started
            name = type(result.result).__name__
            outcomes[f"{case} / {task}"] = name
            assert result.state == "FAILURE", f"{case} / {task}: {result.state} {result.result}"
            assert name in REFUSED, f"{case} / {task}: {name}: {result.result}"
            assert elapsed < 15, f"{case} / {task} took {elapsed:.1f} s: something opened a trap"
            assert dep.status(result.id) is TaskStatus.FAILED
    assert traps["hits"] == [], f"network requests were made: {traps['hits']}"
    leftovers = [p for d in (dep.render_dir, Path(dep.env["PREVIEW_DIR"])) for p in d.rglob("*") if is_partial(p)]
    assert leftovers == []
    assert not list(Path(dep.env["TEMP_DIR"]).iterdir()), "scratch folders left behind"
    refused_early = sum(1 for name in outcomes.values() if name == "InputNotAllowed")
    print(f"hostile media: {len(outcomes)} task calls refused ({refused_early} before any probe), 0 network "
          "requests, 0 partial files")


def test_a_ten_hour_input_fails_within_the_time_limit(deployment: MakeDeployment) -> None:
    dep = deployment(TRANSCODE_TIMEOUT="2")
    clip = make_video(dep.media_dir / "ten-hours.mkv", duration_s=36_000, size=(16, 16), fps=1, audio=False,
                      source="color")
    dep.worker("video", ["transcode_queue"], name="long-input")
    started = time.monotonic()
    result = dep.send("video", "transcode_task", [str(clip), {"codec": "vp9"}])
    result.get(timeout=120, propagate=False)
    elapsed = time.monotonic() - started
    message = str(result.result)
    # Whichever fires first, the task's own FFmpeg deadline or Celery's soft limit (both TRANSCODE_TIMEOUT).
    limited = "TRANSCODE_TIMEOUT" in message or "time limit" in message or type(result.result).__name__ == \
        "SoftTimeLimitExceeded"
    assert result.state == "FAILURE" and limited, repr(result.result)
    assert elapsed < 40
    assert [p for p in dep.render_dir.rglob("*") if is_partial(p)] == []
    print(f"10-hour input: transcode stopped by its 2 s limit after {elapsed:.1f} s, no partial file")
