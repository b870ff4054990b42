"""Resource snapshots of this host for ``monitor_resources_task`` (DESIGN.md §4).

A snapshot holds CPU (percent, count, load average), memory, the filesystem of each configured media dir
and the GPUs seen by NVML. Each collector runs on its own: one that fails (NVML broken, a media dir
missing) is named under ``errors`` with its section set to null, and the other figures stay. No GPU (no
NVML library, no driver, no device) is a normal state: ``gpus`` is empty and ``gpu_status`` says why.
Figures above their threshold (RESOURCE_WARN_*_PERCENT) are logged as warnings and listed in the snapshot.

Published as JSON with ``SETEX system_resources`` (300 s, the latest snapshot of any host),
``SETEX system_resources:<host>`` (300 s, one per host: RESOURCE_HOSTNAME or the machine's name) and
``PUBLISH resource_monitor``.

Routing: the task runs on the ``maintenance`` queue, which every video worker lists *first* in its -Q
(``contracts.VIDEO_QUEUE_ORDER`` with ``queue_order_strategy='priority'``). A snapshot takes about half a
second, so the next free pool slot on any worker runs it before the render backlog; its message expires
after one period, so a fleet whose every slot is busy skips a snapshot instead of piling them up.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil
import redis

from geminivideo.config import Settings, get_settings
from geminivideo.contracts import utcnow
from geminivideo.redis_client import get_redis

log = logging.getLogger(__name__)

SNAPSHOT_KEY = "system_resources"
SNAPSHOT_CHANNEL = "resource_monitor"
SNAPSHOT_TTL_S = 300
CPU_SAMPLE_S = 0.5  # psutil needs an interval to measure over; half a second keeps the task short

Section = Any
Collector = Callable[[Settings], Section]


def host_key(hostname: str) -> str:
    return f"{SNAPSHOT_KEY}:{hostname}"


def hostname(settings: Settings) -> str:
    return settings.resource_hostname or socket.gethostname()


# ─── collectors ───────────────────────────────────────────────────────────────────────────────────────
def collect_cpu(settings: Settings) -> dict[str, Any]:
    load_1, load_5, load_15 = os.getloadavg()
    return {
        "percent": psutil.cpu_percent(interval=CPU_SAMPLE_S),
        "count": psutil.cpu_count(logical=True),
        "physical_count": psutil.cpu_count(logical=False),
        "load_average": [round(load_1, 2), round(load_5, 2), round(load_15, 2)],
    }


def collect_memory(settings: Settings) -> dict[str, Any]:
    memory, swap = psutil.virtual_memory(), psutil.swap_memory()
    return {
        "total_bytes": memory.total,
        "available_bytes": memory.available,
        "used_bytes": memory.used,
        "percent": memory.percent,
        "swap_total_bytes": swap.total,
        "swap_used_bytes": swap.used,
        "swap_percent": swap.percent,
    }


def media_dirs(settings: Settings) -> list[Path]:
    return list(dict.fromkeys([*settings.work_dirs, *settings.media_roots]))


def collect_disk(path: Path) -> dict[str, Any]:
    """Usage of the filesystem holding ``path``."""
    usage = psutil.disk_usage(str(path))
    return {
        "mountpoint": str(_mountpoint(path.resolve())),
        "total_bytes": usage.total,
        "used_bytes": usage.used,
        "free_bytes": usage.free,
        "percent": usage.percent,
    }


def _mountpoint(path: Path) -> Path:
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def collect_disks(settings: Settings, errors: dict[str, str]) -> list[dict[str, Any]]:
    """One entry per filesystem, listing the media dirs on it; a dir that fails is named in ``errors``."""
    by_device: dict[int, dict[str, Any]] = {}
    for path in media_dirs(settings):
        try:
            device = path.stat().st_dev
            if device not in by_device:
                by_device[device] = {"paths": [], **collect_disk(path)}
            by_device[device]["paths"].append(str(path))
        except FileNotFoundError:
            errors[f"disk:{path}"] = "folder does not exist"
        except Exception as exc:  # one dir's failure must not hide the others
            errors[f"disk:{path}"] = _describe(exc)
    return list(by_device.values())


# ─── GPUs (NVML, imported and initialised lazily) ────────────────────────────────────────────────────
def collect_gpus(settings: Settings) -> tuple[list[dict[str, Any]], str]:
    """(GPUs, status). No NVML library, no driver or no device is "absent"; other NVML errors raise."""
    try:
        import pynvml  # nvidia-ml-py: only loaded when a snapshot is taken, never at import
    except ImportError:
        return [], "absent: nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError_LibraryNotFound, pynvml.NVMLError_DriverNotLoaded) as exc:
        return [], f"absent: {exc}"
    try:
        count = pynvml.nvmlDeviceGetCount()
        if count == 0:
            return [], "absent: NVML found no GPU"
        return [_gpu(pynvml, index) for index in range(count)], "ok"
    finally:
        pynvml.nvmlShutdown()


def _gpu(pynvml: Any, index: int) -> dict[str, Any]:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    gpu: dict[str, Any] = {
        "index": index,
        "name": _text(pynvml.nvmlDeviceGetName(handle)),
        "memory_total_bytes": int(memory.total),
        "memory_free_bytes": int(memory.free),
        "memory_used_bytes": int(memory.used),
        "memory_percent": round(100.0 * memory.used / memory.total, 1) if memory.total else 0.0,
        "errors": {},
    }
    optional: dict[str, Callable[[], Any]] = {
        "utilization_percent": lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu,
        "temperature_c": lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
        "encoder_utilization_percent": lambda: pynvml.nvmlDeviceGetEncoderUtilization(handle)[0],
    }
    # Some boards do not report every figure (NVML_ERROR_NOT_SUPPORTED): that figure is null, the rest stay.
    for name, read in optional.items():
        try:
            gpu[name] = read()
        except pynvml.NVMLError as exc:
            gpu[name] = None
            gpu["errors"][name] = _describe(exc)
    return gpu


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


# ─── snapshot ─────────────────────────────────────────────────────────────────────────────────────────
def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def default_collectors() -> dict[str, Collector]:
    return {"cpu": collect_cpu, "memory": collect_memory}


def collect_snapshot(
    settings: Settings | None = None,
    *,
    collectors: Mapping[str, Collector] | None = None,
    gpu_collector: Callable[[Settings], tuple[list[dict[str, Any]], str]] = collect_gpus,
) -> dict[str, Any]:
    """Take one snapshot; each collector's failure is reported under ``errors`` and spares the others."""
    settings = settings or get_settings()
    errors: dict[str, str] = {}
    snapshot: dict[str, Any] = {"hostname": hostname(settings), "timestamp": utcnow().isoformat()}
    for name, collect in (collectors or default_collectors()).items():
        try:
            snapshot[name] = collect(settings)
        except Exception as exc:  # isolation is the point: report it, keep the rest
            snapshot[name], errors[name] = None, _describe(exc)
    snapshot["disks"] = collect_disks(settings, errors)
    try:
        snapshot["gpus"], snapshot["gpu_status"] = gpu_collector(settings)
    except Exception as exc:  # a broken NVML is reported, never fatal
        snapshot["gpus"], snapshot["gpu_status"], errors["gpu"] = None, "error", _describe(exc)
    snapshot["errors"] = errors
    snapshot["thresholds"] = thresholds(settings)
    snapshot["warnings"] = warnings_for(snapshot, snapshot["thresholds"])
    return snapshot


def thresholds(settings: Settings) -> dict[str, float]:
    default = settings.resource_warn_percent
    return {
        "cpu": settings.resource_warn_cpu_percent or default,
        "memory": settings.resource_warn_memory_percent or default,
        "disk": settings.resource_warn_disk_percent or default,
        "gpu_memory": settings.resource_warn_gpu_memory_percent or default,
    }


def warnings_for(snapshot: Mapping[str, Any], limits: Mapping[str, float]) -> list[dict[str, Any]]:
    """Every figure above its threshold, as ``{resource, percent, threshold, message}``."""
    figures: list[tuple[str, str, Any]] = [
        ("cpu", "CPU", (snapshot.get("cpu") or {}).get("percent")),
        ("memory", "memory", (snapshot.get("memory") or {}).get("percent")),
    ]
    figures += [("disk", f"disk {d['mountpoint']}", d.get("percent")) for d in snapshot.get("disks") or []]
    figures += [("gpu_memory", f"GPU {g['index']} memory", g.get("memory_percent")) for g in snapshot.get("gpus") or []]
    found = []
    for kind, label, percent in figures:
        if percent is not None and percent > limits[kind]:
            message = f"{label} at {percent:.1f} % on {snapshot['hostname']} (threshold {limits[kind]:g} %)"
            found.append({"resource": kind, "label": label, "percent": percent, "threshold": limits[kind],
                          "message": message})
    return found


def publish(snapshot: dict[str, Any], client: redis.Redis | None = None) -> None:
    """SETEX both keys and PUBLISH in one round trip."""
    client = client or get_redis()
    body = json.dumps(snapshot)
    pipe = client.pipeline(transaction=False)
    pipe.setex(SNAPSHOT_KEY, SNAPSHOT_TTL_S, body)
    pipe.setex(host_key(snapshot["hostname"]), SNAPSHOT_TTL_S, body)
    pipe.publish(SNAPSHOT_CHANNEL, body)
    pipe.execute()


def collect_and_publish() -> dict[str, Any]:
    """Take a snapshot, log its warnings, publish it; return it (``published`` says whether Redis took it)."""
    snapshot = collect_snapshot()
    for warning in snapshot["warnings"]:
        log.warning("resource warning: %s", warning["message"])
    for name, error in snapshot["errors"].items():
        log.warning("resource collector %s failed: %s", name, error)
    try:
        publish(snapshot)
        snapshot["published"] = True
    except redis.RedisError as exc:
        # A stale snapshot retried later is worthless: report and let the next period publish.
        log.warning("resource snapshot not published: %s", exc)
        snapshot["published"], snapshot["errors"]["publish"] = False, _describe(exc)
    return snapshot
