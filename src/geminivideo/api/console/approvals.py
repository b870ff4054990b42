"""The approvals page: pending proposals with their evidence and the gates, approve or reject.

Decisions go through ``ml.approvals`` exactly like the API and the CLI, with ``decided_by`` set to the
signed-in identity's name (never a form field). Approving a change the safety gates would block now is
refused with the gate's reason; rejecting is always possible.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import func, select

from geminivideo.api.console import sessions
from geminivideo.api.console.evidence import ad_evidence
from geminivideo.api.console.gates import CampaignGates, ad_budgets, campaign_gates, decision_block
from geminivideo.api.console.identity import Identity
from geminivideo.api.console.rendering import SECURITY_HEADERS, render
from geminivideo.api.console.sessions import ConsoleSession, require_session
from geminivideo.contracts import utcnow
from geminivideo.db.models.decisions import ChangeSource, ChangeStatus, ChangeType, PendingAdChange
from geminivideo.db.session import session_scope
from geminivideo.errors import InvalidPayload
from geminivideo.ml.decisions import approvals

router = APIRouter()
PAGE_SIZES = (25, 50, 100, 500)
MAX_NOTE = 2000
DECIDE_SCOPE = "approvals:decide"


@dataclass
class Card:
    """One proposal as the page shows it (figures formatted here: 500 cards render faster from plain strings)."""

    change: approvals.ChangeView
    gates: CampaignGates
    blocked_by: str | None

    @property
    def headline(self) -> str:
        c = self.change
        if c.change_type != ChangeType.BUDGET:
            return f"{c.change_type.capitalize()}: {c.current_value} → {c.requested_value}"
        text = f"Budget {_money(c.current_value)} → {_money(c.requested_value)}"
        try:
            return text + f" ({float(c.requested_value) / float(c.current_value) - 1:+.0%})"  # type: ignore[arg-type]
        except (TypeError, ValueError, ZeroDivisionError):
            return text

    @property
    def figures(self) -> list[str]:
        """The monitor's own numbers from the proposal's evidence."""
        ev, out = self.change.evidence, []
        if ev.get("ctr_recent") is not None and ev.get("ctr_baseline") is not None:
            out.append(f"CTR {ev['ctr_recent'] * 100:.2f} % vs baseline {ev['ctr_baseline'] * 100:.2f} %")
        if ev.get("cpm_recent") is not None and ev.get("cpm_baseline") is not None:
            out.append(f"CPM {_money(ev['cpm_recent'])} vs baseline {_money(ev['cpm_baseline'])}")
        if ev.get("frequency") is not None:
            out.append(f"Frequency {ev['frequency']}")
        if ev.get("rules"):
            out.append("Rules: " + ", ".join(map(str, ev["rules"])))
        return out


def _money(value: Any) -> str:
    try:
        return f"${float(value):,.2f}"
    except (TypeError, ValueError):
        return str(value)


@dataclass
class Filters:
    tenant: str = ""
    campaign: str = ""
    ad: str = ""
    change_type: str = ""
    source: str = ""
    limit: int = 50
    offset: int = 0

    def query(self, **override: Any) -> str:
        """These filters as a query string (with ``override`` applied), for links and the way back."""
        values = {"tenant": self.tenant, "campaign": self.campaign, "ad": self.ad, "change_type": self.change_type,
                  "source": self.source, "limit": self.limit, "offset": self.offset, **override}
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 0) or k == "limit"})


def _decidable() -> Any:
    """Pending and not yet past its expiry (the expiry sweep may not have run yet): what a person can decide."""
    expires = PendingAdChange.expires_at
    return (PendingAdChange.status == ChangeStatus.PENDING_APPROVAL) & (expires.is_(None) | (expires > utcnow()))


def pending_by_tenant() -> list[tuple[str, int]]:
    """(tenant, pending proposals) for every tenant with any, most first."""
    with session_scope() as session:
        rows = session.execute(select(PendingAdChange.tenant_id, func.count()).where(_decidable())
                               .group_by(PendingAdChange.tenant_id))
        return sorted(((str(t), int(n)) for t, n in rows), key=lambda r: (-r[1], r[0]))


def recent_decisions(tenant_id: str | None = None, limit: int = 10) -> list[approvals.ChangeView]:
    """The latest decisions (of ``tenant_id``, or all), newest first: who decided what, and when."""
    stmt = (select(PendingAdChange).where(PendingAdChange.decided_at.is_not(None))
            .order_by(PendingAdChange.decided_at.desc(), PendingAdChange.id.desc()).limit(limit))
    if tenant_id is not None:
        stmt = stmt.where(PendingAdChange.tenant_id == tenant_id)
    with session_scope() as session:
        return [approvals.ChangeView.model_validate(r) for r in session.scalars(stmt)]


def load_cards(filters: Filters) -> list[Card]:
    """Pending proposals newest first, filtered, each with its campaign's gate state and gate verdict."""
    # Core rows, not ORM objects: 500 cards skip the identity map and unit-of-work bookkeeping they never use.
    table = PendingAdChange.__table__
    stmt = select(table).where(_decidable())
    for column, value in ((PendingAdChange.tenant_id, filters.tenant), (PendingAdChange.campaign_id, filters.campaign),
                          (PendingAdChange.ad_id, filters.ad), (PendingAdChange.change_type, filters.change_type),
                          (PendingAdChange.source, filters.source)):
        if value:
            stmt = stmt.where(column == value)
    stmt = stmt.order_by(PendingAdChange.created_at.desc(), PendingAdChange.id.desc())
    with session_scope() as session:
        rows = session.execute(stmt.limit(filters.limit).offset(filters.offset)).mappings().all()
        changes = [approvals.ChangeView.model_validate(dict(r)) for r in rows]
        gates = campaign_gates(session, (c.campaign_id for c in changes))
        budgets = ad_budgets(session, (c.ad_id for c in changes if c.change_type == ChangeType.BUDGET))
    return [Card(c, gates[c.campaign_id], gates[c.campaign_id].would_block(c, budgets.get(c.ad_id)))
            for c in changes]


def _filters(tenant: str, campaign: str, ad: str, change_type: str, source: str, limit: int, offset: int) -> Filters:
    if change_type and change_type not in {t.value for t in ChangeType}:
        change_type = ""
    if source and source not in {s.value for s in ChangeSource}:
        source = ""
    return Filters(tenant.strip()[:128], campaign.strip()[:128], ad.strip()[:128], change_type, source,
                   limit if limit in PAGE_SIZES else 50, max(offset, 0))


@router.get("/console/approvals", include_in_schema=False)
async def approvals_page(
    request: Request, session: Annotated[ConsoleSession, Depends(require_session)],
    tenant: str = "", campaign: str = "", ad: str = "", change_type: str = "", source: str = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    filters = _filters(tenant, campaign, ad, change_type, source, limit, offset)
    if session.identity.tenant_id is not None:  # a tenant's key sees only its tenant, whatever the URL says
        filters.tenant = session.identity.tenant_id
    # Reading and rendering 500 cards is tens of milliseconds of CPU: off the event loop, so webhook ingest
    # and progress streams served by the same process are not held up meanwhile.
    return await run_in_threadpool(_approvals_page, request, session, filters)


def _approvals_page(request: Request, session: ConsoleSession, filters: Filters) -> Response:
    started, cpu_started = time.perf_counter(), time.thread_time()
    cards = load_cards(filters)
    tenants = [t for t in pending_by_tenant() if session.identity.sees(t[0])]
    decided = recent_decisions(session.identity.tenant_id)
    response = render(request, "approvals.html", session, page="approvals", cards=cards, tenants=tenants,
                      decided=decided, filters=filters, page_sizes=PAGE_SIZES,
                      change_types=[t.value for t in ChangeType], sources=[s.value for s in ChangeSource])
    # Wall time, and this thread's CPU time (what the page costs, whatever else the machine is running).
    wall_ms, cpu_ms = (time.perf_counter() - started) * 1000, (time.thread_time() - cpu_started) * 1000
    response.headers["Server-Timing"] = f"app;dur={wall_ms:.1f}, cpu;dur={cpu_ms:.1f}"
    return response


def _evidence(change_id: int, who: Identity) -> dict[str, Any] | None:
    with session_scope() as session:
        row = session.get(PendingAdChange, change_id)
        if row is None or not who.sees(row.tenant_id):
            return None
        return ad_evidence(session, row.ad_id, row.evidence)


@router.get("/console/approvals/{change_id}/evidence", include_in_schema=False)
async def evidence_json(change_id: int, session: Annotated[ConsoleSession, Depends(require_session)]) -> Response:
    """The chart data of one proposal's ad (the page fetches it when the card scrolls into view)."""
    data = await run_in_threadpool(_evidence, change_id, session.identity)
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evidence for change {change_id}")
    return JSONResponse(data, headers=SECURITY_HEADERS)


def decide(change_id: int, verdict: str, who: Identity, note: str | None) -> tuple[str, str]:
    """Apply one decision by ``who``; (flash kind, message). A gate that would block an approval refuses it."""
    if not who.can(DECIDE_SCOPE):
        return "error", f"Change {change_id} was not decided: the key {who.name} lacks the {DECIDE_SCOPE} scope"
    try:
        with session_scope() as session:
            row = session.get(PendingAdChange, change_id)
            if row is not None and not who.sees(row.tenant_id):
                raise approvals.ChangeNotFound(f"no pending ad change with id {change_id}")
            blocked = decision_block(session, change_id) if verdict == "approve" else None
        if verdict == "approve":
            if blocked:
                return "error", f"Change {change_id} was not approved: the safety gates would block it: {blocked}"
            view = approvals.approve_change(change_id, who.name, note)
        else:
            view = approvals.reject_change(change_id, who.name, note)
    except (approvals.ChangeNotFound, approvals.InvalidTransition, InvalidPayload) as exc:
        return "error", f"Change {change_id}: {exc}"
    return "ok", f"Change {change_id} ({view.ad_id}) {view.status} by {view.decided_by}."


@router.post("/console/approvals/{change_id}/{verdict}", include_in_schema=False)
async def decide_change(
    change_id: int, verdict: str, request: Request, session: Annotated[ConsoleSession, Depends(require_session)],
) -> Response:
    if verdict not in ("approve", "reject"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown decision {verdict!r}: approve or reject")
    form = await sessions.read_form(request)
    sessions.check_csrf(request, session, form)
    note = (form.get("note") or "").strip()[:MAX_NOTE] or None
    kind, text = await run_in_threadpool(decide, change_id, verdict, session.identity, note)
    sessions.flash(session, kind, text)
    back = form.get("back") or ""
    location = "/console/approvals" + (f"?{back}" if back and "\n" not in back and "//" not in back else "")
    return RedirectResponse(location, status.HTTP_303_SEE_OTHER, headers=SECURITY_HEADERS)
