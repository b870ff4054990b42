"""Fixtures of the console tests: one deployment (own Redis database, migrated SQLite with sample proposals
made by the real fatigue scan, API, one video worker) and a headless Chromium driven by Playwright."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from geminivideo import procs
from geminivideo.api.console.sample_data import fill_hourly_gate, seed_campaign
from geminivideo.contracts import VIDEO_QUEUE_ORDER, FatigueScanJob
from geminivideo.db.migrate import upgrade
from geminivideo.db.session import session_scope
from geminivideo.ml.decisions.fatigue import scan_all_ads
from tests.support.env import TestEnv, applied

CONSOLE_REDIS_DB = 14  # this module's own broker database: no other test's worker takes its messages
API_KEY = "console-test-key-" + uuid.uuid4().hex
OPERATOR = "console-operator"  # the bootstrap key's name: what decisions record as decided_by
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "console"
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
AS_OF = date(2026, 11, 30)


@dataclass(frozen=True)
class Console:
    base: str
    env: dict[str, str]
    db_url: str
    key: str
    identity: str
    worker: procs.ManagedProcess


def _seed(db_url: str) -> None:
    """Tenants with fatiguing and saturated ads, one campaign whose hourly gate is used up; then a real scan."""
    with applied({"DATABASE_URL": db_url}):
        with session_scope() as session:
            seed_campaign(session, "acme", "acme-spring", 6, as_of=AS_OF, saturated_every=3)
            seed_campaign(session, "globex", "globex-busy", 2, as_of=AS_OF)
            fill_hourly_gate(session, "globex", "globex-busy")
        result = scan_all_ads(FatigueScanJob())
    assert result.proposals_created == 8, result


@pytest.fixture(scope="module")
def console(test_env: TestEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    db_url = f"sqlite:///{root / 'console.db'}"
    upgrade(db_url)
    _seed(db_url)
    redis_url = test_env.redis_url.rsplit("/", 1)[0] + f"/{CONSOLE_REDIS_DB}"
    # RESOURCE_HOSTNAME: the worker's snapshots carry the host name of its Celery hostname (@localhost).
    env = test_env.process_env(REDIS_URL=redis_url, DATABASE_URL=db_url, API_KEYS=f"{OPERATOR}={API_KEY}",
                               RESOURCE_HOSTNAME="localhost")
    hostname = f"console-video-{uuid.uuid4().hex[:6]}@localhost"
    worker = procs.start_worker("video", queues=[str(q) for q in VIDEO_QUEUE_ORDER], hostname=hostname, env=env,
                                log_path=root / "worker.log", concurrency=1)
    try:
        api, base = procs.start_api(env, root / "api.log", ready_path="/health")
        try:
            yield Console(base, env, db_url, API_KEY, OPERATOR, worker)
        finally:
            api.stop()
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def new_context(browser: Browser, *, width: int = 1280, height: int = 900) -> BrowserContext:
    """A fresh browser profile with axe-core injected into every page it opens (init scripts ignore CSP)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_init_script(path=str(AXE))
    context.set_default_timeout(20_000)
    return context


def sign_in(page: Page, console: Console, path: str = "/console/approvals") -> None:
    page.goto(console.base + path)
    assert "/console/sign-in" in page.url
    page.get_by_label("API key").fill(console.key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{path}*")


@pytest.fixture(scope="module")
def signed_in(browser: Browser, console: Console) -> Iterator[Page]:
    """One signed-in desktop page shared by the module's browser tests (as one operator's morning)."""
    context = new_context(browser)
    page = context.new_page()
    sign_in(page, console)
    yield page
    context.close()
