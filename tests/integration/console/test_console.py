"""The operator console on a real API, a real video worker, Redis and SQLite, seen by headless Chromium.

Given proposals made by a real fatigue scan (one campaign whose hourly gate is used up), a signed-in operator
approves and rejects from the page and the decisions carry the key's name; a decision the gates would block
is refused with the gate's reason; a transcode's bar reaches 100 % without a reload; a running job is
cancelled; the fleet page lists the test's worker and its queues. Every page passes axe-core (no serious or
critical violation) at desktop and phone width, and is screenshotted under test-artifacts/console/.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from geminivideo.api.console.sessions import COOKIE, LOGIN_COOKIE
from geminivideo.contracts import VIDEO_QUEUE_ORDER
from geminivideo.db.models.webhooks import EventStatus, WebhookEvent
from geminivideo.db.session import session_scope
from geminivideo.ml.decisions import approvals
from tests.integration.console.conftest import ARTIFACTS, Console, new_context, sign_in
from tests.integration.ops.support import make_video
from tests.support.env import applied
from tests.support.faults import start_beat

if TYPE_CHECKING:
    from tests.support.env import TestEnv

PAGES = ("approvals", "jobs", "fleet", "webhooks")
AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                      nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
}"""


def change(console: Console, change_id: int) -> approvals.ChangeView:
    with applied({"DATABASE_URL": console.db_url}):
        return approvals.show_change(change_id)


def card_ids(page: Page, *, blocked: bool) -> list[int]:
    """Ids of the pending cards on the page that the gates would (or would not) block."""
    ids = []
    for card in page.locator("article.card[data-change-id]").all():
        if (card.locator("[data-testid=gate-block]").count() > 0) == blocked:
            ids.append(int(str(card.get_attribute("data-change-id"))))
    return ids


def flash_text(page: Page) -> str:
    return page.locator(".messages").inner_text()


# ─── Sign-in, session, CSRF ───────────────────────────────────────────────────────────────────────
def test_every_console_url_needs_a_session(console: Console) -> None:
    with httpx.Client(base_url=console.base, timeout=20) as anonymous:
        for path in ["/console", "/console/approvals?tenant=acme", "/console/jobs", "/console/fleet",
                     "/console/webhooks", "/console/approvals/1/evidence", "/console/jobs/x/events"]:
            response = anonymous.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/console/sign-in?next="), path
        refused = anonymous.post("/console/approvals/1/approve", data={"csrf": "x"})
        assert refused.status_code == 303 and "sign-in" in refused.headers["location"]
        assert anonymous.get("/console/static/vendor/uplot/LICENSE").status_code == 200  # no secret in static


def _login_form(client: httpx.Client) -> str:
    page = client.get("/console/sign-in")
    assert page.status_code == 200
    return str(re.search(r'name="csrf" value="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]


def test_sign_in_sets_a_strict_cookie_and_checks_csrf(console: Console) -> None:
    with httpx.Client(base_url=console.base, timeout=20) as client:
        token = _login_form(client)
        wrong = client.post("/console/sign-in", data={"csrf": token, "api_key": "not-a-key"})
        assert wrong.status_code == 401 and "not accepted" in wrong.text
        assert client.post("/console/sign-in", data={"csrf": "forged", "api_key": console.key}).status_code == 403

        signed = client.post("/console/sign-in", data={"csrf": token, "api_key": console.key, "next": "//evil.example"})
        assert signed.status_code == 303 and signed.headers["location"] == "/console/approvals"
        cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith(COOKIE + "="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        page = client.get("/console/approvals")
        assert page.status_code == 200 and console.identity in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]

        # A decision without the session's CSRF token is refused and changes nothing.
        change_id = int(re.search(r'data-change-id="(\d+)"', page.text).group(1))  # type: ignore[union-attr]
        assert client.post(f"/console/approvals/{change_id}/approve", data={"csrf": "forged"}).status_code == 403
        assert change(console, change_id).status == "pending_approval"

        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        out = client.post("/console/sign-out", data={"csrf": csrf})
        assert out.status_code == 303
        assert client.get("/console/approvals").status_code == 303  # the session is gone server-side too

    # Behind a TLS-terminating proxy on a trusted address every cookie is Secure (sent back here by hand,
    # since this client speaks plain HTTP to the proxy's upstream).
    tls = {"X-Forwarded-Proto": "https"}
    form = httpx.get(f"{console.base}/console/sign-in", headers=tls, timeout=20)
    login = _cookie_value(form, LOGIN_COOKIE)
    assert all("Secure" in c for c in form.headers.get_list("set-cookie"))
    token = str(re.search(r'name="csrf" value="([^"]+)"', form.text).group(1))  # type: ignore[union-attr]
    signed = httpx.post(f"{console.base}/console/sign-in", data={"csrf": token, "api_key": console.key},
                        headers={**tls, "Cookie": f"{LOGIN_COOKIE}={login}"}, timeout=20)
    assert signed.status_code == 303, signed.text
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith(COOKIE + "="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_repeated_failed_sign_ins_are_throttled_per_address(console: Console) -> None:
    guesser = {"X-Forwarded-For": "203.0.113.9"}  # uvicorn trusts the forwarded address from loopback
    with httpx.Client(base_url=console.base, timeout=20, headers=guesser) as client:
        token = _login_form(client)
        for _ in range(10):
            assert client.post("/console/sign-in", data={"csrf": token, "api_key": "guess"}).status_code == 401
        blocked = client.post("/console/sign-in", data={"csrf": token, "api_key": console.key})
        assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.text
    with httpx.Client(base_url=console.base, timeout=20) as other:  # another address signs in as usual
        token = _login_form(other)
        assert other.post("/console/sign-in", data={"csrf": token, "api_key": console.key}).status_code == 303


def _cookie_value(response: httpx.Response, name: str) -> str:
    header = next(c for c in response.headers.get_list("set-cookie") if c.startswith(name + "="))
    return header.split(";", 1)[0].split("=", 1)[1]


# ─── Approvals ────────────────────────────────────────────────────────────────────────────────────
def test_approve_and_reject_from_the_page_record_the_signed_in_identity(signed_in: Page, console: Console) -> None:
    page = signed_in
    page.goto(console.base + "/console/approvals?tenant=acme")
    assert page.locator("article.card").count() == 6
    first = page.locator("article.card").first
    first.scroll_into_view_if_needed()
    page.wait_for_selector("article.card >> nth=0 >> .charts[data-drawn='4']")
    assert first.locator("figure.chart canvas").count() == 4
    assert "change point" in first.locator(".charts").inner_text()
    assert "changes used this hour" in first.locator(".gates").inner_text()

    to_approve, to_reject = card_ids(page, blocked=False)[:2]
    card = page.locator(f"#change-{to_approve}")
    card.get_by_label("Comment (optional)").fill("CTR halved; pausing")
    card.get_by_role("button", name="Approve").click()
    page.wait_for_url("**/console/approvals?*")
    assert f"Change {to_approve}" in flash_text(page) and console.identity in flash_text(page)
    approved = change(console, to_approve)
    assert (approved.status, approved.decided_by, approved.decision_note) == (
        "approved", console.identity, "CTR halved; pausing")
    assert page.locator(f"tr[data-change-id='{to_approve}'] .decided-by").inner_text() == console.identity

    card = page.locator(f"#change-{to_reject}")
    card.get_by_label("Comment (optional)").fill("seasonal dip, keep it running")
    card.get_by_role("button", name="Reject").click()
    page.wait_for_url("**/console/approvals?*")
    rejected = change(console, to_reject)
    assert (rejected.status, rejected.decided_by, rejected.decision_note) == (
        "rejected", console.identity, "seasonal dip, keep it running")
    assert page.locator(f"#change-{to_reject}").count() == 0


def test_a_decision_the_gates_would_block_is_refused_with_the_reason(signed_in: Page, console: Console) -> None:
    page = signed_in
    page.goto(console.base + "/console/approvals?tenant=globex")
    blocked = card_ids(page, blocked=True)
    assert len(blocked) == 2, "both globex-busy proposals should be flagged before any decision"
    card = page.locator(f"#change-{blocked[0]}")
    warning = card.locator("[data-testid=gate-block]").inner_text()
    assert "already had 15 changes executed in the last hour" in warning
    assert "15 of 15" in card.locator(".gates").inner_text()

    card.get_by_role("button", name="Approve").click()
    page.wait_for_url("**/console/approvals?*")
    message = page.locator(".flash-error").inner_text()
    assert "not approved" in message and "already had 15 changes executed in the last hour" in message
    assert change(console, blocked[0]).status == "pending_approval"


# ─── Jobs ─────────────────────────────────────────────────────────────────────────────────────────
def _submit(console: Console, body: dict[str, Any]) -> str:
    response = httpx.post(f"{console.base}/api/video/transcode", json=body, headers={"X-API-Key": console.key},
                          timeout=20)
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def test_a_transcode_bar_reaches_100_without_reload(signed_in: Page, console: Console, test_env: TestEnv) -> None:
    # Given the jobs page open, when a transcode is submitted (through the API, as a client would), then its
    # row appears in the same document and its bar follows the job's progress stream to 100 %.
    # veryslow x264 on 16 s of 640x360: long enough (~10 s on an idle 2-core machine) for the row to appear
    # (the page polls every 3 s) while the job still runs.
    video = make_video(test_env.media_dir / "console-progress.mp4", seconds=16, size="640x360")
    page = signed_in
    page.goto(console.base + "/console/jobs")
    page.evaluate("window.__sameDocument = true")
    task_id = _submit(console, {"input_path": str(video), "output_format": {"codec": "h264", "preset": "veryslow"}})
    row = page.locator(f"#job-{task_id}")
    page.wait_for_selector(f"#job-{task_id}", timeout=30_000)
    page.wait_for_selector(f"#job-{task_id}[data-final='completed']", timeout=300_000)
    assert row.get_attribute("data-live") == "1", "the row should have followed the job's SSE stream"
    assert row.locator("progress").evaluate("bar => bar.value") == 100
    assert row.locator("[data-role=status]").inner_text() == "completed"
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    page.reload()
    output = page.locator(f"#job-{task_id} .outputs a").first
    response = page.request.get(console.base + str(output.get_attribute("href")))
    assert response.status == 200 and len(response.body()) > 1000


def test_cancel_a_running_job_from_the_page(signed_in: Page, console: Console, test_env: TestEnv) -> None:
    video = make_video(test_env.media_dir / "console-long.mp4", seconds=60, size="640x360")
    task_id = _submit(console, {"input_path": str(video), "output_format": {"codec": "h265", "preset": "veryslow"}})
    page = signed_in
    page.goto(console.base + "/console/jobs?kind=transcode")
    status = page.locator(f"#job-{task_id} [data-role=status]")
    deadline = time.monotonic() + 120
    while status.inner_text() != "processing" and time.monotonic() < deadline:
        page.wait_for_timeout(300)
    assert status.inner_text() == "processing"
    page.get_by_role("button", name=f"Cancel transcode job {task_id}").click()
    page.wait_for_url("**/console/jobs?*")
    assert f"Job {task_id} cancelled" in flash_text(page)
    assert page.locator(f"#job-{task_id} [data-role=status]").inner_text() == "cancelled"
    state = httpx.get(f"{console.base}/api/jobs/{task_id}", headers={"X-API-Key": console.key}, timeout=20).json()
    assert state["status"] == "cancelled"


# ─── Fleet and webhooks ───────────────────────────────────────────────────────────────────────────
def test_fleet_lists_the_worker_its_queues_beats_and_refreshes(
    signed_in: Page, console: Console, tmp_path: Path
) -> None:
    page = signed_in
    page.goto(console.base + "/console/fleet")
    hostname = str(console.worker.extra["hostname"])
    worker = page.locator(f"tr[data-worker='{hostname}']")
    assert worker.count() == 1, page.content()
    # Its queues most urgent first, then its own direct queue (<hostname>.dq2: per-host cleanup is sent there).
    assert worker.locator(".queues").inner_text() == ", ".join([*map(str, VIDEO_QUEUE_ORDER), f"{hostname}.dq2"])
    assert page.locator("tr[data-queue]").count() >= len(VIDEO_QUEUE_ORDER)
    host = page.locator("article.host[data-host='localhost']")
    snapshot = host.locator("dl.facts").text_content() or ""
    assert "CPU" in snapshot and "Memory" in snapshot  # the worker's resource snapshot (dt text, not its CSS case)
    assert "not running" in page.locator("[data-beat='video']").inner_text()

    # When the video beat starts, the page (refreshing by itself, no navigation) shows it holding its lock
    # and when its resource schedule last fired.
    beat = start_beat("video", env=console.env, log_path=tmp_path / "beat.log")
    try:
        page.wait_for_function(
            """() => {
                const b = document.querySelector("[data-beat='video']");
                const row = document.querySelector("[data-beat='video'] ~ div tr[data-entry='monitor-resources']");
                return b && b.textContent.includes("running (lock held")
                       && row && row.querySelector(".last-run").textContent.includes("UTC");
            }""",
            timeout=60_000,
        )
    finally:
        beat.stop()
    assert page.locator("#fleet-live[data-refreshed]").count() == 1
    assert page.locator(f"tr[data-worker='{hostname}']").count() == 1


def test_webhooks_page_shows_states_failures_and_lag(signed_in: Page, console: Console) -> None:
    from datetime import timedelta

    from geminivideo.contracts import utcnow

    now = utcnow()
    rows = [
        WebhookEvent(idempotency_key="console-ok", source="hubspot", event_type="deal.propertyChange",
                     object_id="deal-1", received_at=now - timedelta(seconds=3), payload={},
                     status=EventStatus.PROCESSED, processed_at=now - timedelta(seconds=2)),
        WebhookEvent(idempotency_key="console-bad", source="hubspot", event_type="deal.propertyChange",
                     object_id="deal-2", received_at=now, payload={}, status=EventStatus.FAILED, attempts=1,
                     error="InvalidPayload: stageTo: unknown stage 'nope'"),
    ]
    with applied({"DATABASE_URL": console.db_url}), session_scope() as session:
        session.add_all(rows)
    page = signed_in
    page.goto(console.base + "/console/webhooks")
    text = page.locator("main").inner_text()
    assert "unknown stage 'nope'" in text and "processed" in text
    assert re.search(r"p50 1\.\d\d s", text), text


# ─── Every page: screenshots, axe-core, small screens, keyboard ───────────────────────────────────
@pytest.mark.parametrize(("label", "width", "height"), [("desktop", 1280, 900), ("phone", 390, 844),
                                                       ("zoom200", 640, 450)])
def test_every_page_is_accessible_and_fits(browser: Browser, console: Console, label: str, width: int,
                                           height: int) -> None:
    # 200 % zoom of a 1280×900 window is a 640×450 CSS-pixel viewport.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = new_context(browser, width=width, height=height)
    page = context.new_page()
    try:
        page.goto(console.base + "/console/sign-in")
        _check_page(page, f"sign-in-{label}", width)
        sign_in(page, console)
        for name in PAGES:
            page.goto(f"{console.base}/console/{name}")
            if name == "approvals":  # charts draw when their card scrolls into view
                page.locator(".charts").first.scroll_into_view_if_needed()
                page.wait_for_selector(".charts[data-drawn='4']")
            _check_page(page, f"{name}-{label}", width)
    finally:
        context.close()


def _check_page(page: Page, shot: str, width: int) -> None:
    violations = [v for v in page.evaluate(AXE_RUN) if v["impact"] in ("serious", "critical")]
    assert violations == [], (shot, violations)
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"{shot}: page is {overflow} px wide in a {width} px viewport"
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=shot.startswith(("sign-in", "fleet", "webhooks")))


def test_keyboard_reaches_the_content_and_every_control_is_labelled(signed_in: Page, console: Console) -> None:
    page = signed_in
    page.goto(console.base + "/console/approvals")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(el => !el.labels || el.labels.length === 0).map(el => el.outerHTML)""")
    assert unlabelled == []
    for _ in range(30):  # Tab order walks through the filters and into the first decision form
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('form.decide') !== null"):
            break
    assert page.evaluate("document.activeElement.closest('form.decide') !== null")
