"""The session's leak scan (tests/support/leaks.py) can fail: planted secrets, addresses and user agents are
found with file:line and kind (never the secret), clean lines and version strings are not, and a pytest
session whose log holds a leak exits with a failure."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.support import leaks
from tests.support.leaks import TEST_USER_AGENT, LeakScanner, addresses

SECRET = "s3cret-Planted-" + "9f8e7d6c"


@pytest.fixture
def scanner() -> LeakScanner:
    scanner = LeakScanner()
    scanner.add_env({"HUBSPOT_CLIENT_SECRET": SECRET, "REDIS_URL": "redis://api:redis-pass-1234@127.0.0.1:6379/0",
                     "API_KEYS": "short,gv_key_0123456789", "RENDER_DIR": "/tmp/renders-not-a-secret"})
    return scanner


def test_planted_secrets_are_found_by_kind(scanner: LeakScanner, tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_text("clean start\n"
                   f"connecting with {SECRET}\n"
                   "broker redis://api:redis-pass-1234@127.0.0.1:6379/0\n"
                   "X-API-Key gv_key_0123456789 refused\n"
                   "only short here\n")
    hits = sorted(map(str, scanner.scan_file(log, final=True)))
    assert hits == [f"{log}:2: HUBSPOT_CLIENT_SECRET", f"{log}:3: password in REDIS_URL",
                    f"{log}:4: API_KEYS entry"]
    assert not any(SECRET in h or "redis-pass" in h for h in hits)  # the report names kinds, not values


def test_addresses_and_user_agents_are_found(scanner: LeakScanner) -> None:
    scanner.add_agent("GV-Secret-Agent/7.7")
    assert scanner.kinds("request from 203.0.113.7 done") == ["IP address"]
    assert scanner.kinds("client=[2001:db8::1:2]:443") == ["IP address"]
    assert scanner.kinds("forwarded for=10.1.2.3;proto=https") == ["IP address"]
    assert scanner.kinds(f"ua={TEST_USER_AGENT}") == ["user agent"]
    assert scanner.kinds("ua=GV-Secret-Agent/7.7 (x)") == ["user agent"]
    assert scanner.kinds("User-Agent: python-httpx/0.28.1") == ["user agent"]


def test_the_suites_own_network_addresses_are_infrastructure(scanner: LeakScanner) -> None:
    banner = "transport:   redis://:**@10.254.77.5:52925/0"
    assert scanner.kinds(banner) == ["IP address"]  # before the test network registers it
    leaks.register_own_address("10.254.77.5")
    try:
        assert scanner.kinds(banner) == []
        assert scanner.kinds("forwarded for=10.254.77.6") == ["IP address"]  # its neighbour is still someone's
    finally:
        leaks._OWN_ADDRESSES.discard("10.254.77.5")


@pytest.mark.parametrize("line", [
    "Uvicorn running on http://127.0.0.1:8123 (Press CTRL+C to quit)",
    "bind notes: 0.0.0.0 would publish on every interface; [::] too; ::1 is loopback",
    "installed pkg-1.2.3.4 and torch==2.1.0.1, cuda v12.4.1.0, build 1.2.3.4.5",
    "[2026-12-06 17:40:01,123: INFO/MainProcess] task 1f2e3d4c-0000-4000-8000-00000000abcd at 12:30:45",
    "password in DATABASE_URL=postgresql://u:***@127.0.0.1/db; key prefix gv_abc",
])
def test_clean_lines_pass(scanner: LeakScanner, line: str) -> None:
    assert scanner.kinds(line) == [], list(addresses(line))


SESSION = """
from pathlib import Path

from tests.support import leaks


def test_writes_a_log(tmp_path: Path) -> None:
    leaks.register_secret("METRICS_TOKEN", "metrics-token-planted-123")
    (tmp_path / "worker.log").write_text("ready\\n" + {line!r} + "\\n")
"""


@pytest.mark.parametrize(("line", "fails"), [("token metrics-token-planted-123 sent", True),
                                             ("client 198.51.100.4 connected", True),
                                             ("ready on 127.0.0.1", False)])
def test_a_session_whose_log_leaks_fails(line: str, fails: bool) -> None:
    # Outside this session's temp directory: its own scan must not read the inner session's planted log.
    with tempfile.TemporaryDirectory(prefix="gv-leak-scan-") as inner:
        root = Path(inner)
        (root / "test_inner.py").write_text(textwrap.dedent(SESSION.format(line=line)))
        repo = Path(__file__).resolve().parents[3]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo / "src"), str(repo)])}
        run = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.support.leaks", "-p", "no:cacheprovider",
                              "-q", f"--basetemp={root / 'tmp'}", str(root / "test_inner.py")],
                             cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert "1 passed" in run.stdout, run.stdout + run.stderr
    if fails:
        assert run.returncode == 1, run.stdout
        assert "worker.log:2: " in run.stdout and "metrics-token-planted" not in run.stdout
    else:
        assert run.returncode == 0, run.stdout
        assert "leak scan: " in run.stdout and "no secret" in run.stdout
