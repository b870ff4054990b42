"""Given a video worker running a render, a transcode and a caption at once, when its whole process group
(main process, pool children, FFmpeg) is killed with ``kill -9``, then each task runs again on a second
worker and completes: its output exists once and is valid media/captions, progress ends ``completed``,
and the killed attempts' partial files and scratch folders are gone after the next cleanup.

On Redis the tasks come back once their leases lapse (LEASE_TIMEOUT_S shortened to 10 s through the settings;
the dead worker no longer renews them); on RabbitMQ as soon as the dead worker's connection drops.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from geminivideo.contracts import TaskStatus
from geminivideo.video.ffmpeg import is_partial
from tests.reliability.conftest import Deployment, MakeDeployment
from tests.support import faults, speech
from tests.support.media import ffprobe, make_video

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

QUEUES = ["maintenance", "render_queue", "transcode_queue", "caption_queue"]
# Long enough for three encodes sharing two busy cores. On Redis each delivery is a lease of LEASE_S that only a
# live worker renews: all three come back LEASE_S (+ a sweep) after the kill, whatever their time limits.
LEASE_S = 10.0
LIMITS = {"RENDER_TIMEOUT": "45", "TRANSCODE_TIMEOUT": "35", "CAPTION_TIMEOUT": "25", "IN_USE_LEASE_S": "6",
          "CLEANUP_PARTIAL_AGE_S": "0", "WHISPER_ALLOW_DOWNLOAD": "false", "LEASE_TIMEOUT_S": str(LEASE_S)}
RESTORE_SLACK_S = 15.0  # sweep interval, the rescuer's start-up and pick-up


def _media(dep: Deployment) -> dict[str, Path]:
    clip = make_video(dep.media_dir / "clip.mp4", duration_s=12, size=(480, 270), source="testsrc2")
    spoken = speech.speech_video(speech.ENGLISH_SENTENCES[:3], dep.media_dir / "spoken.mp4")
    return {"clip": clip, "spoken": spoken}


def _submit(dep: Deployment, media: dict[str, Path]) -> dict[str, Any]:
    render_job = {"scenes": [{"video_path": str(media["clip"])}, {"video_path": str(media["clip"])}],
                  "output_format": {"width": 480, "height": 270, "fps": 25, "preset": "medium"},
                  "output_name": f"killed-{uuid.uuid4().hex[:6]}.mp4"}
    return {
        "render": dep.send("video", "render_video_task", [render_job]),
        "transcode": dep.send("video", "transcode_task", [str(media["clip"]), {"codec": "h265", "preset": "medium"}]),
        "caption": dep.send("video", "caption_task", [str(media["spoken"])], {"model": "tiny.en"}),
    }


def _mid_task(dep: Deployment, results: dict[str, Any]) -> bool:
    statuses = {name: dep.status(r.id) for name, r in results.items()}
    return all(s in (TaskStatus.STARTED, TaskStatus.PROCESSING) for s in statuses.values())


def _into_the_encodes(dep: Deployment) -> bool:
    writing = [p for p in dep.render_dir.rglob("*") if is_partial(p) and p.is_file() and p.stat().st_size > 0]
    return bool(writing) and any(Path(dep.env["TEMP_DIR"]).iterdir())


def _leftovers(dep: Deployment) -> list[str]:
    found = [p for p in dep.render_dir.rglob("*") if is_partial(p)]
    found += list(Path(dep.env["TEMP_DIR"]).iterdir())
    return sorted(str(p) for p in found)


def _outputs(dep: Deployment) -> list[Path]:
    return sorted(p for p in dep.render_dir.iterdir() if not p.name.startswith("."))


def _check_outputs(dep: Deployment, values: dict[str, dict[str, Any]]) -> None:
    render, transcode, caption = values["render"], values["transcode"], values["caption"]
    assert ffprobe(Path(render["output_path"])).duration > 20  # two 12 s scenes less one fade
    assert ffprobe(Path(transcode["output_path"])).video["codec_name"] == "hevc"
    srt_text = Path(caption["srt_path"]).read_text()
    assert "-->" in srt_text and "sale" in srt_text.lower()
    names = [p.name for p in _outputs(dep)]
    # One render, one transcode, one SRT and one VTT: no second copy from the killed attempts.
    assert len(names) == 4, names
    assert Path(render["output_path"]).name in names and Path(transcode["output_path"]).name in names


def _kill_and_recover(dep: Deployment) -> tuple[dict[str, Any], dict[str, dict[str, Any]], float, list[str]]:
    media = _media(dep)
    log = dep.progress_log()
    victim = dep.worker("video", QUEUES, name="victim", concurrency=3)
    results = _submit(dep, media)
    faults.wait_for(lambda: _mid_task(dep, results), 120, "all three tasks running")
    faults.wait_for(lambda: _into_the_encodes(dep), 60, "partial output written and scratch folders in use")
    left_by_kill = _leftovers(dep)
    killed_at = time.time()
    faults.kill9(victim)
    dep.worker("video", QUEUES, name="rescuer", concurrency=3)
    values = {name: r.get(timeout=240) for name, r in results.items()}
    for name, result in results.items():
        faults.wait_for(lambda r=result: dep.status(r.id) is TaskStatus.COMPLETED, 10, f"{name} completed")
    starts = {name: [at for at, _ in log.of(r.id, TaskStatus.STARTED)] for name, r in results.items()}
    return starts, values, killed_at, left_by_kill


def _cleanup_removes_leftovers(dep: Deployment) -> None:
    time.sleep(float(LIMITS["IN_USE_LEASE_S"]) + 1)  # the killed holders' leases have expired by now
    report = dep.send("video", "cleanup_task", [], {"max_age_days": 30}).get(timeout=60)
    assert _leftovers(dep) == [], (_leftovers(dep), report)


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "redis" else request.getfixturevalue("rabbit_url")


def test_killed_video_tasks_complete_once_on_another_worker(deployment: MakeDeployment, broker: str | None) -> None:
    dep = deployment(broker_url=broker, **LIMITS)
    starts, values, killed_at, left_by_kill = _kill_and_recover(dep)
    assert left_by_kill, "the kill came before any partial output existed: not mid-task"
    for name, times in starts.items():
        assert len(times) == 2, f"{name} started {len(times)} times (expected: killed attempt + one rerun)"
        back_after_kill, back_after_delivery = times[1] - killed_at, times[1] - times[0]
        print(f"kill -9 ({'rabbitmq' if broker else 'redis'}) {name}: rerun started {back_after_kill:.1f} s after "
              f"the kill, {back_after_delivery:.1f} s after the first delivery")
        if broker:
            assert back_after_kill < 15  # the rescuer's start-up, not a timeout
        else:  # the lease lapses LEASE_S after the dead worker's last renewal (at most a renewal before the kill)
            assert back_after_kill <= LEASE_S + RESTORE_SLACK_S
    _check_outputs(dep, values)
    _cleanup_removes_leftovers(dep)
    _check_outputs(dep, values)  # the cleanup took only the orphans
