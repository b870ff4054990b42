"""Cleanup planning on real files in a temp folder: what the age, size and empty-folder passes choose.

Planning touches no file, so these tests need no broker; deletion itself is exercised by the
integration tests on a real worker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geminivideo.errors import ConfigError
from geminivideo.video.housekeeping.cleanup import (
    DAY_S,
    FileEntry,
    Limits,
    Tree,
    checked_roots,
    plan_cleanup,
    scan,
)

NOW = time.time()


def make_file(path: Path, *, size: int = 100, age_days: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = NOW - age_days * DAY_S
    os.utime(path, (stamp, stamp))
    return path


def age_dir(path: Path, age_days: float) -> None:
    stamp = NOW - age_days * DAY_S
    os.utime(path, (stamp, stamp))


def limits(
    max_age_days: float = 7, max_bytes: float = 1e12, partial_age_s: float = 3600, now: float | None = None
) -> Limits:
    return Limits(max_age_days * DAY_S, max_bytes, partial_age_s, time.time() if now is None else now)


def planned(root: Path, held: set[Path] | None = None, **kw: float) -> tuple[set[Path], list[Path], int]:
    plan = plan_cleanup(scan([root]), held or set(), limits(**kw))
    return {f.path for f in plan.files}, plan.dirs, plan.skipped_in_use


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "renders"
    folder.mkdir()
    return folder.resolve()


def test_age_pass_takes_only_files_older_than_the_limit(root: Path) -> None:
    old = make_file(root / "old.mp4", age_days=8)
    young = make_file(root / "young.mp4", age_days=6)
    deep_old = make_file(root / "a" / "b" / "old.jpg", age_days=30)
    files, _, _ = planned(root, max_age_days=7)
    assert files == {old, deep_old}
    assert young not in files


def test_size_pass_deletes_oldest_first_down_to_80_percent_of_the_cap(root: Path) -> None:
    ten = [make_file(root / f"f{i}.bin", size=1000, age_days=1 + i / 10) for i in range(10)]
    files, _, _ = planned(root, max_age_days=30, max_bytes=5000)
    # 10 000 bytes against a 5 000-byte cap: keep at most 4 000, the four youngest.
    assert files == set(ten[4:])


def test_under_the_cap_the_size_pass_deletes_nothing(root: Path) -> None:
    for i in range(3):
        make_file(root / f"f{i}.bin", size=1000, age_days=1)
    files, _, _ = planned(root, max_age_days=30, max_bytes=3000)
    assert files == set()


def test_held_files_and_everything_in_held_folders_are_skipped(root: Path) -> None:
    held_file = make_file(root / "job1" / "render.mp4", age_days=30)
    make_file(root / "job2" / "frame.jpg", age_days=30)
    free = make_file(root / "job3" / "old.mp4", age_days=30)
    files, dirs, skipped = planned(root, {held_file, root / "job2"}, max_age_days=0)
    assert files == {free}
    assert skipped == 2
    assert dirs == [root / "job3"]  # job1 and job2 keep their content, so they stay


def test_an_empty_held_folder_and_folders_above_a_held_path_stay(root: Path) -> None:
    (root / "work" / "job").mkdir(parents=True)
    (root / "empty-held").mkdir()
    _, dirs, skipped = planned(root, {root / "work" / "job" / "out.mp4", root / "empty-held"}, max_age_days=0)
    assert dirs == []
    assert skipped == 2  # work/job (above a held path) and empty-held; work still holds work/job


def test_empty_folders_go_when_old_or_emptied_never_the_root(root: Path) -> None:
    (root / "fresh-empty").mkdir()
    (root / "old-empty" / "nested").mkdir(parents=True)
    age_dir(root / "old-empty" / "nested", 10)
    age_dir(root / "old-empty", 10)
    make_file(root / "emptied" / "old.mp4", age_days=10)
    age_dir(root / "emptied", 0)
    _, dirs, _ = planned(root, max_age_days=7)
    assert set(dirs) == {root / "old-empty" / "nested", root / "old-empty", root / "emptied"}
    assert dirs.index(root / "old-empty" / "nested") < dirs.index(root / "old-empty")  # deepest first


def test_an_old_empty_root_is_never_removed(root: Path) -> None:
    age_dir(root, 100)
    _, dirs, _ = planned(root, max_age_days=0)
    assert dirs == []


def test_nested_roots_are_scanned_once_and_never_removed(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    inner = outer / "previews"
    make_file(inner / "old.jpg", size=10, age_days=10)
    tree = scan(checked_roots({"TEMP_DIR": outer, "PREVIEW_DIR": inner}))
    plan = plan_cleanup(tree, set(), limits(max_age_days=1))
    assert [f.path.name for f in plan.files] == ["old.jpg"]
    assert inner.resolve() not in plan.dirs and outer.resolve() not in plan.dirs


def test_symlinks_are_planned_as_links_and_never_followed(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    victim = make_file(outside / "precious.mp4", age_days=100)
    make_file(outside / "sub" / "deep.mp4", age_days=100)
    age_dir(outside / "sub", 100)
    (root / "link-to-file").symlink_to(victim)
    (root / "link-to-dir").symlink_to(outside / "sub")
    os.utime(root / "link-to-file", (NOW - 100 * DAY_S,) * 2, follow_symlinks=False)
    os.utime(root / "link-to-dir", (NOW, NOW), follow_symlinks=False)
    tree = scan([root])
    assert all(f.path.parent == root for f in tree.files)  # nothing from behind the links was listed
    plan = plan_cleanup(tree, set(), limits(max_age_days=7))
    assert [f.path for f in plan.files] == [root / "link-to-file"]
    assert plan.files[0].is_link


def test_partial_outputs_fresh_ones_stay_orphans_go(root: Path) -> None:
    live = make_file(root / ".ad.partial-0123456789ab.mp4", age_days=0)
    orphan = make_file(root / ".ad.partial-ba9876543210.mp4", age_days=0.5)
    files, _, _ = planned(root, max_age_days=0, partial_age_s=3600)
    assert files == {orphan}  # max_age_days=0 takes everything but the file FFmpeg is writing now
    files, _, _ = planned(root, max_age_days=7, partial_age_s=3600)
    assert files == {orphan}  # an orphan goes long before the age limit
    assert live.exists()


@pytest.mark.parametrize("bad", ["/", "/tmp", "/usr", "/var", "/home"])
def test_system_roots_are_refused_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match="RENDER_DIR"):
        checked_roots({"RENDER_DIR": Path(bad)})


def test_home_and_folders_above_it_are_refused() -> None:
    home = Path.home().resolve()
    for candidate in (home, *home.parents):
        with pytest.raises(ConfigError, match="TEMP_DIR"):
            checked_roots({"TEMP_DIR": candidate})


def test_a_root_that_is_a_link_to_home_is_refused_at_run_time(tmp_path: Path) -> None:
    link = tmp_path / "renders"
    link.symlink_to(Path.home())
    with pytest.raises(ConfigError, match=r"PREVIEW_DIR.*resolves to"):
        checked_roots({"PREVIEW_DIR": link})


def test_relative_roots_are_refused() -> None:
    with pytest.raises(ConfigError, match="absolute"):
        checked_roots({"TEMP_DIR": Path("renders")})


# ─── property: whatever the tree, the plan keeps its promises ─────────────────────────────────────────
ROOT = Path("/srv/media/renders")
_files = st.lists(
    st.tuples(st.sampled_from(["a", "b", "a/c"]), st.integers(0, 5000), st.floats(0, 20), st.booleans()),
    min_size=1, max_size=25,
)


def _tree(spec: list[tuple[str, int, float, bool]]) -> tuple[Tree, set[Path]]:
    tree = Tree(roots=[ROOT])
    held: set[Path] = set()
    for i, (folder, size, age_days, is_held) in enumerate(spec):
        path = ROOT / folder / f"f{i}.bin"
        tree.files.append(FileEntry(path, size, NOW - age_days * DAY_S, i, 0))
        if is_held:
            held.add(path)
    for folder in ("a", "b", "a/c"):
        tree.dirs[ROOT / folder] = NOW
    for directory in (ROOT, ROOT / "a", ROOT / "b", ROOT / "a/c"):
        tree.entry_counts[directory] = sum(1 for f in tree.files if f.path.parent == directory)
    tree.entry_counts[ROOT] += 2
    tree.entry_counts[ROOT / "a"] += 1
    return tree, held


@settings(max_examples=200, deadline=None)
@given(_files, st.floats(0, 10), st.integers(1, 60_000))
def test_plan_never_takes_held_files_and_meets_the_cap_when_it_can(
    spec: list[tuple[str, int, float, bool]], max_age_days: float, cap: int
) -> None:
    tree, held = _tree(spec)
    # Planned at NOW, the instant the tree's mtimes are measured from: a later clock would age every file
    # by however long the session has run and move some across the age boundary the checks below assume.
    plan = plan_cleanup(tree, held, limits(max_age_days=max_age_days, max_bytes=cap, now=NOW))
    chosen = {f.path for f in plan.files}
    assert not chosen & held
    assert len(chosen) == len(plan.files)  # nothing planned twice
    assert ROOT not in plan.dirs
    remaining = tree.total_bytes - plan.freed_bytes
    free_left = [f for f in tree.files if f.path not in chosen and f.path not in held]
    if tree.total_bytes - sum(f.size for f in tree.files if NOW - f.mtime >= max_age_days * DAY_S
                              and f.path not in held) > cap:
        assert remaining <= 0.8 * cap or not free_left
    too_young = [f for f in plan.files if NOW - f.mtime < max_age_days * DAY_S]
    if too_young:  # the size pass ran: everything free and older than its youngest pick went too
        youngest = max(f.mtime for f in too_young)
        assert all(f.mtime >= youngest for f in free_left)
