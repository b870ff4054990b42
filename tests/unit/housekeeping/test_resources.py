"""Resource snapshot collectors: isolation of a failing collector, no GPU as a normal state, warnings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from geminivideo.config import Settings
from geminivideo.video.housekeeping import resources


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    dirs = {name: tmp_path / name for name in ("tmp", "renders", "previews")}
    for folder in dirs.values():
        folder.mkdir()
    return Settings(temp_dir=dirs["tmp"], render_dir=dirs["renders"], preview_dir=dirs["previews"],
                    resource_hostname="unit-host")


def unplugged_sensor(settings: Settings) -> dict[str, float]:
    raise OSError("sensor unplugged")


def broken_nvml(settings: Settings) -> tuple[list[dict[str, object]], str]:
    raise RuntimeError("NVML_ERROR_UNKNOWN: GPU has fallen off the bus")


def test_a_failing_collector_is_reported_and_the_others_figures_stay(settings: Settings) -> None:
    collectors = {"cpu": resources.collect_cpu, "memory": resources.collect_memory, "sensors": unplugged_sensor}
    snapshot = resources.collect_snapshot(settings, collectors=collectors, gpu_collector=broken_nvml)
    assert snapshot["errors"] == {
        "sensors": "OSError: sensor unplugged",
        "gpu": "RuntimeError: NVML_ERROR_UNKNOWN: GPU has fallen off the bus",
    }
    assert snapshot["sensors"] is None and snapshot["gpus"] is None and snapshot["gpu_status"] == "error"
    assert 0 <= snapshot["cpu"]["percent"] <= 100 and snapshot["cpu"]["count"] >= 1
    assert len(snapshot["cpu"]["load_average"]) == 3
    assert snapshot["memory"]["total_bytes"] > snapshot["memory"]["available_bytes"] > 0
    assert snapshot["disks"] and snapshot["disks"][0]["total_bytes"] > 0


def test_disks_are_grouped_per_filesystem_and_a_missing_dir_is_named(settings: Settings, tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    settings = settings.model_copy(update={"media_roots": [*settings.work_dirs, missing]})
    snapshot = resources.collect_snapshot(settings, gpu_collector=lambda s: ([], "absent: test"))
    [disk] = snapshot["disks"]  # the three dirs share one filesystem
    assert sorted(disk["paths"]) == sorted(str(p) for p in settings.work_dirs)
    assert disk["used_bytes"] + disk["free_bytes"] <= disk["total_bytes"]
    assert Path(disk["mountpoint"]).is_mount()
    assert snapshot["errors"] == {f"disk:{missing}": "folder does not exist"}


def test_no_gpu_is_a_normal_state_and_a_present_one_is_described(settings: Settings) -> None:
    gpus, status = resources.collect_gpus(settings)
    if status.startswith("absent"):
        assert gpus == []
    else:  # on a host with an NVIDIA driver
        assert status == "ok" and gpus
        assert {"name", "memory_total_bytes", "memory_free_bytes", "memory_used_bytes", "utilization_percent",
                "temperature_c", "encoder_utilization_percent"} <= set(gpus[0])
    snapshot = resources.collect_snapshot(settings)
    assert "gpu" not in snapshot["errors"]


def test_thresholds_default_to_resource_warn_percent_and_can_be_set_per_resource() -> None:
    assert resources.thresholds(Settings(resource_warn_percent=80)) == {
        "cpu": 80, "memory": 80, "disk": 80, "gpu_memory": 80}
    assert resources.thresholds(Settings(resource_warn_disk_percent=95))["disk"] == 95


def test_figures_above_their_threshold_become_warnings() -> None:
    snapshot = {
        "hostname": "h1", "cpu": {"percent": 97.0}, "memory": {"percent": 50.0},
        "disks": [{"mountpoint": "/data", "percent": 91.5}],
        "gpus": [{"index": 0, "memory_percent": 99.0}],
    }
    found = resources.warnings_for(snapshot, {"cpu": 95, "memory": 90, "disk": 90, "gpu_memory": 99})
    assert [(w["resource"], w["percent"]) for w in found] == [("cpu", 97.0), ("disk", 91.5)]
    assert found[1]["message"] == "disk /data at 91.5 % on h1 (threshold 90 %)"


def test_a_failed_cpu_collector_gives_no_warning_but_an_error(settings: Settings,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    low = settings.model_copy(update={"resource_warn_memory_percent": 0.01})
    caplog.set_level(logging.WARNING)
    snapshot = resources.collect_snapshot(low, collectors={"cpu": unplugged_sensor, "memory": resources.collect_memory})
    assert [w["resource"] for w in snapshot["warnings"]] == ["memory"]
    assert snapshot["cpu"] is None and "cpu" in snapshot["errors"]
