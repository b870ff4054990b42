"""Two hosts: given two video workers on two "hosts" (network namespaces, each with its own veth link to the
machine that runs Redis), when the host running a task loses its link mid-task, then the task completes on
the other host after its queue's visibility timeout: the result backend holds that run's SUCCESS, progress
says ``completed``, the output exists once and whole, nothing stays queued or unacknowledged. When the link
comes back, the cut host's worker answers ping again by itself, and once its blind attempt is over no partial
output remains and the task is not delivered a third time.

What the cut host does is measured, not wished away: Celery does not cancel a task when the broker goes
(``worker_cancel_long_running_tasks_on_connection_loss`` is off), so host A keeps running it blind, stalls on
its progress writes, and finishes after the link returns — a second execution (at-least-once). Its late
result store cannot replace B's SUCCESS; its output replaces B's by an atomic rename of the same name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from geminivideo import procs
from geminivideo.celery_base import build_config
from geminivideo.config import Settings
from geminivideo.contracts import TaskStatus
from geminivideo.video.celery_app import SPEC as VIDEO_SPEC
from geminivideo.video.ffmpeg import is_partial
from tests.reliability.conftest import Deployment, MakeDeployment
from tests.support import faults, netns

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

QUEUE = "render_queue"
IDLE_QUEUE = "maintenance"  # host B's queue until host A holds the task (nothing is sent there)
# render_queue's visibility timeout = RENDER_TIMEOUT + 30 s grace + the suite's 5 s margin = 40 s.
LIMITS = {"RENDER_TIMEOUT": "5"}
PROBE_S = 12.0  # the task's own run time: still running when the link goes, done well before the test's end


def _visibility_s() -> float:
    settings = Settings(render_timeout=int(LIMITS["RENDER_TIMEOUT"]), visibility_margin_s=5)
    return float(build_config(VIDEO_SPEC, settings)["broker_transport_options"]["queue_visibility_timeouts"][QUEUE])


@pytest.fixture
def hosts() -> Iterator[list[netns.Host]]:
    """Two namespaces with a veth each; a machine that cannot make them fails the test (never skips)."""
    try:
        with netns.private_network(2) as made:
            yield made
    except netns.NetnsUnavailable as exc:
        pytest.fail(f"two-hosts scenario needs network namespaces and veth pairs (root, iproute2): {exc}")


def _partials(dep: Deployment) -> list[str]:
    return sorted(p.name for p in dep.render_dir.rglob("*") if is_partial(p))


def _outputs(dep: Deployment) -> list[str]:
    return sorted(p.name for p in dep.render_dir.iterdir() if not p.name.startswith("."))


def _queued(dep: Deployment) -> int:
    client = dep.client()
    return sum(int(client.llen(key)) for key in client.keys(f"{QUEUE}*"))


def _unacked(dep: Deployment) -> int:
    return int(dep.client().zcard("unacked_index:video"))


def _backend_meta(dep: Deployment, task_id: str) -> dict[str, Any]:
    """The result backend's record, read raw (an AsyncResult caches a SUCCESS it has seen)."""
    raw = dep.client().get(f"celery-task-meta-{task_id}")
    return json.loads(raw) if raw else {}


@pytest.mark.timeout(300)
def test_a_task_cut_off_with_its_host_completes_on_the_other(hosts: list[netns.Host],
                                                             deployment: MakeDeployment) -> None:
    host_a, host_b = hosts
    dep = deployment(**LIMITS)
    # The deployment's Redis listens on loopback; let the hosts reach it at the machine's end of their links
    # (private addresses that only our two namespaces can reach: protected mode would refuse them).
    client = dep.client()
    client.config_set("bind", f"127.0.0.1 {host_a.host_ip} {host_b.host_ip}")
    client.config_set("protected-mode", "no")
    visibility = _visibility_s()

    def env_for(host: netns.Host) -> dict[str, str]:
        return {**dep.env, "REDIS_URL": f"redis://{host.host_ip}:{dep.redis.port}/0"}

    def start(host: netns.Host, name: str, queue: str) -> str:
        proc = dep.track(netns.start_worker_in(host, "video", queues=[queue], env=env_for(host),
                                               log_dir=dep.log_dir, name=name))
        return str(proc.extra["hostname"])

    log = dep.progress_log()
    name_a = start(host_a, "host-a", QUEUE)
    name_b = start(host_b, "host-b", IDLE_QUEUE)  # up and connected, but the task must go to A first
    key = "cut"
    result = dep.probe("video", key, PROBE_S, queue=QUEUE, output_dir=dep.render_dir)
    faults.wait_for(lambda: dep.starts(key), 60, "host A started the task")
    replies = dep.app("video").control.add_consumer(QUEUE, destination=[name_b], reply=True, timeout=10)
    assert any(name_b in reply for reply in replies), f"host B did not take {QUEUE}: {replies}"
    first = dep.starts(key)[0]
    assert first["hostname"] == name_a, first
    faults.wait_for(lambda: _partials(dep), 30, "host A writing its output (mid-task)")

    cut_at = time.time()
    host_a.cut()
    assert time.time() - first["at"] < PROBE_S - 2, "the task was nearly done before the cut"
    assert not host_a.link_up()
    assert not procs.ping_worker("video", name_a, dep.env), "host A still answers with its link down"

    # B gets it after render_queue's visibility timeout and its run is the one the backend records.
    value = result.get(timeout=visibility + PROBE_S + 60)
    done_at = time.time()
    starts = dep.starts(key)
    assert [s["hostname"] for s in starts] == [name_a, name_b]
    back_after = starts[1]["at"] - first["at"]
    assert visibility - 1 <= back_after <= visibility + 8, back_after
    assert value["hostname"] == name_b
    assert [d["hostname"] for d in dep.done(key)] == [name_b]  # A cannot report anything while cut off
    assert dep.status(result.id) is TaskStatus.COMPLETED
    output = dep.render_dir / f"{key}.bin"
    assert _outputs(dep) == [output.name] and output.stat().st_size == int(PROBE_S / 0.25) * 1024
    assert (_queued(dep), _unacked(dep)) == (0, 0), "B's run left the message queued or unacknowledged"
    a_partial_during_cut = bool(_partials(dep))

    restored_at = time.time()
    host_a.restore()
    pinged = faults.wait_for(lambda: procs.ping_worker("video", name_a, dep.env), 60, "host A answers ping", 0.5)
    # A's blind attempt ends by itself once it can talk to Redis again; then nothing of it may remain.
    faults.wait_for(lambda: not _partials(dep), 60, "host A's attempt over (its partial output renamed or removed)")
    a_over = time.time() - restored_at
    time.sleep(5)  # several restore sweeps: a third delivery would start now
    done = [d["hostname"] for d in dep.done(key)]
    late = [e.status.value for at, e in log.of(result.id) if at > done_at and e.status is not TaskStatus.COMPLETED]

    assert len(dep.starts(key)) == 2, "the task was delivered a third time after the link came back"
    assert done.count(name_b) == 1 and set(done) <= {name_a, name_b}, done
    meta = _backend_meta(dep, result.id)
    assert meta.get("status") == "SUCCESS" and meta.get("result", {}).get("hostname") == name_b, meta
    faults.wait_for(lambda: dep.status(result.id) is TaskStatus.COMPLETED, 30, "progress final again")
    assert _outputs(dep) == [output.name] and output.stat().st_size == int(PROBE_S / 0.25) * 1024
    assert (_partials(dep), _queued(dep), _unacked(dep)) == ([], 0, 0)
    print(f"two hosts: cut {cut_at - first['at']:.1f} s into the task; B started it {back_after:.1f} s after A "
          f"(visibility {visibility:.0f} s), result {done_at - cut_at:.1f} s after the cut; A's partial still "
          f"there during the cut: {a_partial_during_cut}; A answered ping {pinged:.1f} s after the link came back, "
          f"its attempt was over {a_over:.1f} s after; completions recorded {done} (A ran to the end: "
          f"{name_a in done}); backend SUCCESS by B; progress events after B's completion not 'completed': "
          f"{len(late)} {sorted(set(late))}")
