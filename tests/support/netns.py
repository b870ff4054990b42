"""Test "hosts" as Linux network namespaces, each joined to the machine by its own veth pair.

``private_network(2)`` creates namespaces ``gvt-a-<rand>``, ``gvt-b-<rand>``; each gets a /30 of a random
private 10.x.y.0/29 that no interface or route here uses: ``.1``/``.5`` on the machine's end of the veth,
``.2``/``.6`` inside, plus ``lo`` up. Namespaces get no default route, so their only traffic is to the
machine's end of their own link. ``Host.cut()`` downs the machine's end (the namespace sees its carrier
go), ``Host.restore()`` brings it back. Everything is removed when the context ends, even on failure:
processes still inside a namespace (necessarily ours) are killed by pid, then the veths and namespaces
are deleted and their absence is checked. Needs root and ``ip`` (iproute2).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from geminivideo import procs
from tests.support import leaks
from tests.support.faults import PROBE_MODULE

IP_TIMEOUT_S = 15


class NetnsUnavailable(RuntimeError):
    """Network namespaces or veth pairs cannot be created on this machine."""


def ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip …`` (bounded in time); raise with its stderr when ``check`` and it fails."""
    done = subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def netns_check() -> str | None:
    """None when a namespace and a veth pair can be made here, else the reason (for a clear failure)."""
    name = f"gvt-check-{secrets.token_hex(3)}"
    try:
        done = ip("netns", "add", name, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns add` cannot run: {exc}"
    if done.returncode != 0:
        return f"`ip netns add {name}` failed: {done.stderr.strip()} (needs root/CAP_SYS_ADMIN)"
    try:
        veth = ip("link", "add", f"gvc{secrets.token_hex(3)}", "type", "veth", "peer", "name", "gvcpeer",
                  "netns", name, check=False)
        if veth.returncode != 0:
            return f"cannot create a veth pair: {veth.stderr.strip()} (veth module missing?)"
        return None
    finally:
        ip("netns", "del", name, check=False)  # takes the veth pair with it


@dataclass(frozen=True)
class Host:
    """One namespace and its link: ``host_ip`` is the machine's end (reachable from inside), ``ns_ip`` inside."""

    namespace: str
    host_veth: str
    ns_veth: str
    host_ip: str
    ns_ip: str

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: the pid is the program's own)."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def cut(self) -> None:
        """Pull the cable: down the machine's end; in-flight packets and new connections go nowhere."""
        ip("link", "set", self.host_veth, "down")

    def restore(self) -> None:
        ip("link", "set", self.host_veth, "up")

    def link_up(self) -> bool:
        return "state UP" in ip("-n", self.namespace, "link", "show", self.ns_veth).stdout

    def pids(self) -> list[int]:
        """Processes running inside this namespace."""
        done = ip("netns", "pids", self.namespace, check=False)
        return [int(token) for token in done.stdout.split() if token.isdigit()]


def _used_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    text = ip("-4", "-o", "addr", "show").stdout + "\n" + ip("-4", "route", "show", "table", "all").stdout
    found: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for token in text.split():
        with contextlib.suppress(ValueError):
            if "/" in token or token.count(".") == 3:
                found.append(ipaddress.ip_network(token, strict=False))
    return found


def _free_block() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/29 (two /30s) that overlaps nothing configured here."""
    used = _used_networks()
    for _ in range(200):
        block = ipaddress.IPv4Network(f"10.{200 + secrets.randbelow(55)}.{secrets.randbelow(256)}.0/29")
        if not any(block.overlaps(net) for net in used if net.prefixlen > 0):
            return block
    raise RuntimeError("no free 10.x.y.0/29 for the test hosts")


def _create(host: Host) -> None:
    ip("netns", "add", host.namespace)
    ip("link", "add", host.host_veth, "type", "veth", "peer", "name", host.ns_veth, "netns", host.namespace)
    ip("addr", "add", f"{host.host_ip}/30", "dev", host.host_veth)
    ip("link", "set", host.host_veth, "up")
    ip("-n", host.namespace, "link", "set", "lo", "up")
    ip("-n", host.namespace, "addr", "add", f"{host.ns_ip}/30", "dev", host.ns_veth)
    ip("-n", host.namespace, "link", "set", host.ns_veth, "up")


def _destroy(host: Host) -> list[str]:
    """Kill what still runs inside, delete the veth and the namespace; return what could not be removed."""
    for pid in host.pids():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while host.pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    ip("link", "del", host.host_veth, check=False)  # deletes the peer inside too
    ip("netns", "del", host.namespace, check=False)
    left = []
    if ip("link", "show", host.host_veth, check=False).returncode == 0:
        left.append(f"veth {host.host_veth}")
    if host.namespace in ip("netns", "list").stdout.split():
        left.append(f"netns {host.namespace}")
    return left


@contextlib.contextmanager
def private_network(count: int = 2) -> Iterator[list[Host]]:
    """``count`` (≤ 2) namespaces with a veth link each; all removed on exit. Raises ``NetnsUnavailable``."""
    assert 1 <= count <= 2, "one /29 holds two /30 links"
    reason = netns_check()
    if reason:
        raise NetnsUnavailable(reason)
    tag = secrets.token_hex(3)
    block = list(_free_block().hosts())  # .1 … .6
    hosts = [Host(namespace=f"gvt-{letter}-{tag}", host_veth=f"gvh{tag}{letter}", ns_veth=f"gvn{tag}{letter}",
                  host_ip=str(block[4 * i]), ns_ip=str(block[4 * i + 1]))
             for i, letter in enumerate("ab"[:count])]
    for host in hosts:  # the workers' banners name the broker at the host's end: the suite's own addresses
        leaks.register_own_address(host.host_ip)
        leaks.register_own_address(host.ns_ip)
    made: list[Host] = []
    try:
        for host in hosts:
            made.append(host)
            _create(host)
        yield hosts
    finally:
        leftovers = [item for host in made for item in _destroy(host)]
        if leftovers:
            raise RuntimeError(f"test network not fully removed: {leftovers}")


def start_worker_in(
    host: Host, app: str, *, queues: Sequence[str], env: Mapping[str, str], log_dir: Path, name: str,
    concurrency: int = 1, include: Sequence[str] = (PROBE_MODULE,), ready_timeout_s: float = 90.0,
) -> procs.ManagedProcess:
    """A real Celery worker inside ``host``'s namespace (``env``'s REDIS_URL must name ``host.host_ip``),
    with the probe tasks; ready when it answers a ping (sent from the machine's side)."""
    hostname = f"{name}-{uuid.uuid4().hex[:6]}@{host.namespace}"
    return procs.start_worker(app, queues=queues, hostname=hostname, env=env, log_path=log_dir / f"{hostname}.log",
                              concurrency=concurrency, ready_timeout_s=ready_timeout_s, include=include,
                              wrap=host.exec_argv)
