"""Given a real video worker and media dirs with files of known ages, when cleanup_task runs, then exactly
the right files go, in-use files stay, nothing outside the roots is touched and a dry run only lists."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from geminivideo import procs
from geminivideo.errors import InvalidPayload
from geminivideo.video.housekeeping.inuse import in_use
from geminivideo.video.tasks import cleanup_task, render_video_task
from tests.integration.housekeeping.conftest import HousekeepingWorker

DAY_S = 86_400


def put(path: Path, *, size: int = 1000, age_days: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    stamp = time.time() - age_days * DAY_S
    os.utime(path, (stamp, stamp))
    return path


def run_cleanup(hk: Any, **kwargs: Any) -> dict[str, Any]:
    return cleanup_task.apply_async(kwargs=kwargs, queue=hk.queue).get(timeout=60)


def test_age_limit_deletes_old_files_in_every_root_and_the_folders_it_empties(hk: HousekeepingWorker) -> None:
    old = [put(hk.temp_dir / "job1" / "scratch.wav", age_days=10), put(hk.render_dir / "ad.mp4", size=5000, age_days=8),
           put(hk.preview_dir / "v1" / "frames" / "f1.jpg", size=300, age_days=30)]
    young = [put(hk.render_dir / "fresh.mp4", age_days=6), put(hk.preview_dir / "v2" / "f1.jpg", age_days=1)]
    (hk.temp_dir / "new-empty").mkdir()

    result = run_cleanup(hk, max_age_days=7)

    assert sorted(result["deleted_files"]) == sorted(str(p) for p in old)
    assert result["deleted_count"] == 3
    assert result["freed_space_bytes"] == 6300
    assert result["freed_space_gb"] == pytest.approx(6300 / 1024**3, abs=1e-6)
    assert (result["max_age_days"], result["dry_run"], result["skipped_in_use"]) == (7, False, 0)
    assert result["max_size_gb"] == 50  # MAX_TEMP_SIZE_GB default
    assert not any(p.exists() for p in old) and all(p.exists() for p in young)
    emptied = {hk.temp_dir / "job1", hk.preview_dir / "v1" / "frames", hk.preview_dir / "v1"}
    assert sorted(result["removed_dirs"]) == sorted(str(d) for d in emptied)
    assert not any(d.exists() for d in emptied)
    assert (hk.temp_dir / "new-empty").is_dir()  # empty but young and not emptied by this run
    assert all(root.is_dir() for root in hk.roots.values())


def make_scene(path: Path, seconds: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi",
                    "-i", "sine=frequency=440", "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast",
                    "-c:a", "aac", "-shortest", str(path)], check=True, timeout=60)
    return path


def test_a_render_in_progress_survives_a_cleanup_with_max_age_zero(hk: HousekeepingWorker) -> None:
    scene = make_scene(hk.temp_dir / "inputs" / "scene.mp4", seconds=4)
    os.utime(scene, (time.time() - 30 * DAY_S,) * 2)  # an old input: only its lease protects it
    stale = put(hk.preview_dir / "old" / "frame.jpg", age_days=30)
    job = {"scenes": [{"video_path": str(scene)}], "transitions": False, "normalize_audio": False,
           "output_format": {"width": 1280, "height": 720, "preset": "medium"}}  # slow enough to be caught
    render = render_video_task.apply_async(args=[job], queue=hk.render_queue)
    partials: list[Path] = []

    def partial_output_exists() -> bool:
        partials[:] = hk.render_dir.glob(".*.partial-*")
        return bool(partials)

    procs.wait_until(partial_output_exists, 60, interval_s=0.1, what="the render's partial output")
    scratch = sorted(hk.temp_dir.glob("render-*"))

    result = run_cleanup(hk, max_age_days=0)

    assert not render.ready(), "the render ended before the cleanup: the test proved nothing"
    assert scene.exists() and partials[0].exists() and all(d.is_dir() for d in scratch)
    assert result["deleted_files"] == [str(stale)] and not stale.parent.exists()
    assert result["skipped_in_use"] >= 2  # the input and the partial output (plus the scratch folder's files)
    output = render.get(timeout=180)
    assert Path(output["output_path"]).is_file() and output["duration"] == pytest.approx(4, abs=0.2)


def test_a_lease_held_outside_any_task_protects_files_and_folders(hk: HousekeepingWorker) -> None:
    # The same registry, held from this process: a held file, a held folder with a file and an empty sub-folder.
    working = put(hk.render_dir / "job7" / ".ad.partial-0123456789ab.mp4", size=2000, age_days=3)
    workdir = hk.temp_dir / "job7"
    scratch = put(workdir / "scene1.ts", size=700, age_days=3)
    (workdir / "frames").mkdir()
    other = put(hk.render_dir / "finished.mp4", size=900)

    with in_use(working, workdir):
        result = run_cleanup(hk, max_age_days=0)
        assert working.exists() and scratch.exists() and (workdir / "frames").is_dir()
        assert not other.exists()
        assert result["deleted_files"] == [str(other)]
        assert result["skipped_in_use"] == 3  # the output, the scratch file and the empty frames folder

    after = run_cleanup(hk, max_age_days=0)  # the lease is gone: the same files now go
    assert sorted(after["deleted_files"]) == sorted([str(working), str(scratch)])
    assert not workdir.exists() and not working.parent.exists()


def test_size_cap_deletes_oldest_first_down_to_80_percent(hk: HousekeepingWorker) -> None:
    cap_gb = 0.001  # 1 073 741 bytes; 80 % of it is 858 993
    files = [put(hk.render_dir / f"ad{i}.mp4", size=200_000, age_days=1 + i) for i in range(8)]  # 1.6 MB

    result = run_cleanup(hk, max_age_days=30, max_size_gb=cap_gb)

    oldest_four, youngest_four = files[4:], files[:4]
    assert sorted(result["deleted_files"]) == sorted(str(p) for p in oldest_four)
    assert result["freed_space_bytes"] == 800_000
    assert result["size_before_bytes"] == 1_600_000 and result["size_after_bytes"] == 800_000
    assert all(p.exists() for p in youngest_four) and not any(p.exists() for p in oldest_four)


def test_dry_run_lists_what_would_go_and_deletes_nothing(hk: HousekeepingWorker) -> None:
    old = [put(hk.temp_dir / "a" / "x.bin", age_days=9), put(hk.preview_dir / "y.jpg", size=50, age_days=9)]
    put(hk.render_dir / "keep.mp4", age_days=1)

    dry = run_cleanup(hk, max_age_days=7, dry_run=True)
    assert dry["dry_run"] is True
    assert sorted(dry["deleted_files"]) == sorted(str(p) for p in old)
    assert dry["freed_space_bytes"] == 1050 and dry["removed_dirs"] == [str(hk.temp_dir / "a")]
    assert all(p.exists() for p in old) and (hk.temp_dir / "a").is_dir()

    real = run_cleanup(hk, max_age_days=7)
    assert sorted(real["deleted_files"]) == sorted(dry["deleted_files"])
    assert real["removed_dirs"] == dry["removed_dirs"]


def test_symlinks_are_never_followed_out_of_the_roots(hk: HousekeepingWorker, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    precious = put(outside / "precious.mp4", age_days=100)
    deep = put(outside / "library" / "clip.mp4", age_days=100)
    os.utime(outside / "library", (time.time() - 100 * DAY_S,) * 2)
    (hk.render_dir / "to-file.mp4").symlink_to(precious)
    (hk.render_dir / "to-dir").symlink_to(outside / "library")
    for link in ("to-file.mp4", "to-dir"):
        os.utime(hk.render_dir / link, (time.time() - 100 * DAY_S,) * 2, follow_symlinks=False)

    result = run_cleanup(hk, max_age_days=0)

    assert precious.exists() and deep.exists() and (outside / "library").is_dir()
    links = [hk.render_dir / "to-file.mp4", hk.render_dir / "to-dir"]
    assert sorted(result["deleted_files"]) == sorted(str(link) for link in links)
    assert not (hk.render_dir / "to-file.mp4").is_symlink()  # the links themselves are gone


def test_bad_arguments_fail_at_once_naming_the_field(hk: HousekeepingWorker) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidPayload, match="max_age_days"):
        cleanup_task.apply_async(kwargs={"max_age_days": -1}, queue=hk.queue).get(timeout=30)
    with pytest.raises(InvalidPayload, match="max_size_gb"):
        cleanup_task.apply_async(kwargs={"max_size_gb": 0}, queue=hk.queue).get(timeout=30)
    assert time.monotonic() - started < 20  # not retried
