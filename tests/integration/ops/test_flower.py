"""Flower with basic auth, seen by a real headless Chromium (Debian's package, driven by Playwright).

Given Flower started by ``python -m geminivideo.flower`` next to a real worker, when a browser opens it
without credentials it gets 401 (metrics and healthcheck included); with them the workers page lists the
running worker and the tasks it ran. A screenshot is saved under test-artifacts/.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from celery import Celery
from playwright.sync_api import Browser, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from geminivideo import procs
from geminivideo.config import DEFAULT_FLOWER_PASSWORD, Settings
from geminivideo.errors import ConfigError
from geminivideo.flower import basic_auth

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
USER, PASSWORD = "ops", "flower-test-secret"


@pytest.fixture(scope="module")
def flower(ops_env: dict[str, str], ops_logs: Path, ops_video_worker: procs.ManagedProcess) -> Iterator[str]:
    port = procs.free_port()
    env = {**ops_env, "FLOWER_USER": USER, "FLOWER_PASSWORD": PASSWORD, "FLOWER_PORT": str(port)}
    proc = procs.spawn("flower", [sys.executable, "-m", "geminivideo.flower"], env=env,
                       log_path=ops_logs / "flower.log")
    check = [sys.executable, "-m", "geminivideo.flower", "check"]
    try:
        procs.wait_until(
            lambda: not proc.alive() or subprocess.run(check, env=env, capture_output=True).returncode == 0,
            60, interval_s=0.5, what="Flower /healthcheck",
        )
        assert proc.alive(), proc.log_tail()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def test_every_flower_page_needs_credentials(flower: str) -> None:
    for path in ["/", "/workers", "/tasks", "/api/workers", "/metrics", "/healthcheck"]:
        assert httpx.get(flower + path, timeout=10).status_code == 401, path
        assert httpx.get(flower + path, auth=(USER, "wrong"), timeout=10).status_code == 401, path
    assert httpx.get(flower + "/healthcheck", auth=(USER, PASSWORD), timeout=10).text == "OK"
    metrics = httpx.get(flower + "/metrics", auth=(USER, PASSWORD), timeout=10)
    assert metrics.status_code == 200 and "flower_" in metrics.text


def test_browser_sees_401_then_the_workers_and_their_tasks(
    flower: str, ops_env: dict[str, str], ops_video_worker: procs.ManagedProcess
) -> None:
    hostname = str(ops_video_worker.extra["hostname"])
    app = Celery("flower-test", broker=ops_env["REDIS_URL"], backend=ops_env["REDIS_URL"], set_as_current=False)
    task_id = app.send_task("video_ping", args=["seen-by-flower"], queue="maintenance").id
    app.AsyncResult(task_id).get(timeout=30)
    app.close()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            assert _anonymous_status(browser, flower + "/workers") == 401

            page = browser.new_context(http_credentials={"username": USER, "password": PASSWORD}).new_page()
            for _ in range(20):  # Flower refreshes its worker list from inspect replies
                response = page.goto(flower + "/workers")
                assert response is not None and response.status == 200
                if hostname in page.content():
                    break
                page.wait_for_timeout(1000)
            assert hostname in page.content()
            page.screenshot(path=str(ARTIFACTS / "flower-workers.png"), full_page=True)

            page.goto(flower + f"/task/{task_id}")
            page.wait_for_selector("text=video_ping", timeout=20_000)
            assert "SUCCESS" in page.content()
            page.screenshot(path=str(ARTIFACTS / "flower-task.png"), full_page=True)
        finally:
            browser.close()


def _anonymous_status(browser: Browser, url: str) -> int | None:
    """The status a browser without credentials gets; Chromium then aborts the navigation itself."""
    page = browser.new_page()
    seen: list[int] = []
    page.on("response", lambda response: seen.append(response.status) if response.url == url else None)
    try:
        page.goto(url)
    except PlaywrightError as exc:
        assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
    page.close()
    return seen[0] if seen else None


def test_default_password_is_refused_beyond_loopback(ops_env: dict[str, str]) -> None:
    env = {**ops_env, "FLOWER_PASSWORD": DEFAULT_FLOWER_PASSWORD, "FLOWER_ADDRESS": "0.0.0.0",
           "FLOWER_PORT": str(procs.free_port())}
    result = subprocess.run([sys.executable, "-m", "geminivideo.flower"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "FLOWER_PASSWORD" in result.stderr and "127.0.0.1" in result.stderr

    assert basic_auth(Settings(flower_password=DEFAULT_FLOWER_PASSWORD, flower_address="127.0.0.1"))
    assert basic_auth(Settings(flower_password=DEFAULT_FLOWER_PASSWORD, flower_address="::1"))
    with pytest.raises(ConfigError, match="FLOWER_PASSWORD"):
        basic_auth(Settings(flower_password=DEFAULT_FLOWER_PASSWORD, flower_address=""))
    with pytest.raises(ConfigError, match="FLOWER_USER"):
        basic_auth(Settings(flower_user="", flower_password="x"))
