"""The approval queue (the seed's SafeExecutor): proposals, human decisions, gated execution.

Life of a change: ``pending_approval`` -> ``approved`` / ``rejected`` / ``expired``; ``approved`` ->
``executing`` -> ``executed`` / ``blocked`` / ``failed``. Nothing reaches the ad platform unless a person
approved it. Execution claims approved rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (a single
conditional UPDATE on SQLite, whose writers are serialised), so one row never runs twice, then passes the
safety gates of its campaign under a per-campaign lock:

- at most ``max_changes_per_hour`` (15) executed changes per campaign in the last hour;
- cumulative budget movement at most ``max_budget_move`` (20 %) of the campaign's budget per 6 hours.

A change that fails a gate becomes ``blocked`` with the reason.

Plain functions for the CLI and the API: ``list_changes``, ``show_change``, ``approve_change``,
``reject_change``, ``propose_change``; the periodic task calls ``execute_approved_changes``.
"""

from __future__ import annotations

import json
import logging
import uuid
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from geminivideo.contracts import utcnow
from geminivideo.db.dialect import insert_ignoring_conflicts, is_postgresql
from geminivideo.db.models import Ad
from geminivideo.db.models.decisions import (
    OPEN_CHANGE_SQL,
    OPEN_CHANGE_STATUSES,
    OPEN_CHANGE_WHERE,
    ChangeSource,
    ChangeStatus,
    ChangeType,
    PendingAdChange,
)
from geminivideo.db.session import session_scope
from geminivideo.errors import Conflict, InvalidPayload, NotFound, PermanentError, TransientError
from geminivideo.ml.platforms.client import AdPlatformClient, ClientFactory, PlatformAd, recording_client
from geminivideo.telemetry import domain as telemetry

log = logging.getLogger(__name__)

DEFAULT_TTL_HOURS = 72.0
EXECUTING_LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 3
_OPEN = [str(s) for s in OPEN_CHANGE_STATUSES]


class ChangeNotFound(NotFound):
    """No pending ad change has this id."""


class InvalidTransition(Conflict):
    """The change is not in a state that allows the requested decision."""


@dataclass(frozen=True)
class SafetyGates:
    max_changes_per_hour: int = 15
    max_budget_move: float = 0.20
    budget_window: timedelta = timedelta(hours=6)


class Proposal(BaseModel):
    """A change someone (the fatigue monitor, the sampler, a person) wants made to one ad."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=128)
    ad_id: str = Field(min_length=1, max_length=128)
    campaign_id: str = Field(min_length=1, max_length=128)
    change_type: ChangeType
    current_value: float | str | None = None
    requested_value: float | str | None = None
    reason: str = Field(min_length=1, max_length=2000)
    source: ChangeSource
    confidence: float | None = Field(None, ge=0, le=1)
    evidence: dict[str, Any] = Field(default_factory=dict)
    ttl_hours: float = Field(DEFAULT_TTL_HOURS, gt=0, le=24 * 30)

    def row(self, now: datetime) -> dict[str, Any]:
        data = self.model_dump(exclude={"ttl_hours"}, mode="json")
        return {**data, "status": ChangeStatus.PENDING_APPROVAL.value, "created_at": now, "updated_at": now,
                "expires_at": now + timedelta(hours=self.ttl_hours), "attempts": 0}


class ChangeView(BaseModel):
    """One row of ``pending_ad_changes`` as the API and the CLI show it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    tenant_id: str
    ad_id: str
    campaign_id: str
    change_type: str
    current_value: float | str | None
    requested_value: float | str | None
    reason: str
    source: str
    confidence: float | None
    evidence: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    attempts: int
    executed_at: datetime | None
    result: dict[str, Any] | None
    error: str | None


# ─── Proposals ──────────────────────────────────────────────────────────────────────────────────────
def propose_changes(session: Session, proposals: Sequence[Proposal], *, now: datetime | None = None) -> list[int]:
    """Queue proposals for approval in ``session``; an ad with an open proposal keeps it (ids of new rows)."""
    if not proposals:
        return []
    now = now or utcnow()
    ad_ids = list({p.ad_id for p in proposals})
    busy = set(session.scalars(select(PendingAdChange.ad_id).where(
        PendingAdChange.ad_id.in_(ad_ids), PendingAdChange.status.in_(_OPEN))))
    rows: dict[str, dict[str, Any]] = {}
    for proposal in proposals:
        if proposal.ad_id not in busy:
            rows.setdefault(proposal.ad_id, proposal.row(now))
    if not rows:
        return []
    # The partial unique index settles a race with a concurrent proposer: the loser inserts nothing.
    if is_postgresql(session):
        return _insert_proposals_pg(session, list(rows.values()), now)
    # Core (not ORM) insert: one multi-row statement per 1,000 proposals instead of one per row.
    table = PendingAdChange.__table__
    stmt = insert_ignoring_conflicts(session, table, ["ad_id"], index_where=OPEN_CHANGE_WHERE)
    return list(session.connection().execute(stmt.returning(table.c.id), list(rows.values())).scalars())


_PROPOSAL_COLUMNS = {  # column -> PostgreSQL array element type
    "tenant_id": "text", "ad_id": "text", "campaign_id": "text", "change_type": "text", "current_value": "json",
    "requested_value": "json", "reason": "text", "source": "text", "confidence": "float8", "evidence": "json",
    "expires_at": "timestamptz",
}
_PG_PROPOSE = (
    "INSERT INTO pending_ad_changes ({cols}, status, created_at, updated_at, attempts) "
    "SELECT {cols}, %(status)s, %(now)s, %(now)s, 0 FROM unnest({arrays}) AS t({cols}) "
    "ON CONFLICT (ad_id) WHERE " + OPEN_CHANGE_SQL + " DO NOTHING RETURNING id"
).format(cols=", ".join(_PROPOSAL_COLUMNS),
         arrays=", ".join(f"%({c})b::{t}[]" for c, t in _PROPOSAL_COLUMNS.items()))  # binary: no quoting


def _insert_proposals_pg(session: Session, rows: list[dict[str, Any]], now: datetime) -> list[int]:
    """One INSERT ... SELECT FROM unnest(column arrays): a scan's 20,000 proposals in one round trip."""
    params: dict[str, Any] = {
        column: [json.dumps(r[column]) if kind == "json" else r[column] for r in rows]  # json sent as text
        for column, kind in _PROPOSAL_COLUMNS.items()
    }
    params.update(status=ChangeStatus.PENDING_APPROVAL.value, now=now)
    raw: Any = session.connection().connection.driver_connection
    with raw.cursor() as cursor:
        cursor.execute(_PG_PROPOSE, params)
        return [int(r[0]) for r in cursor.fetchall()]


def propose_change(
    ad_id: str, change_type: ChangeType | str, requested_value: float | str | None, *, reason: str,
    source: ChangeSource | str = ChangeSource.MANUAL, confidence: float | None = None,
    evidence: dict[str, Any] | None = None,
) -> ChangeView | None:
    """Queue one change for an ad in the database; None when the ad already has an open proposal."""
    kind: ChangeType = _enum(ChangeType, change_type, "change_type")
    with session_scope() as session:
        ad = session.get(Ad, ad_id)
        if ad is None:
            raise InvalidPayload(f"ad_id: no ad {ad_id!r} in the database")
        requested_value = _requested(kind, requested_value)
        current = ad.daily_budget if kind is ChangeType.BUDGET else ad.status
        proposal = Proposal(
            tenant_id=ad.tenant_id, ad_id=ad.id, campaign_id=ad.campaign_id, change_type=kind,
            current_value=current, requested_value=requested_value, reason=reason,
            source=_enum(ChangeSource, source, "source"), confidence=confidence, evidence=evidence or {},
        )
        ids = propose_changes(session, [proposal])
        return ChangeView.model_validate(session.get(PendingAdChange, ids[0])) if ids else None


def _requested(change_type: ChangeType, value: float | str | None) -> float | str:
    if change_type is ChangeType.PAUSE:
        return "paused"
    if change_type is ChangeType.RESUME:
        return "active"
    try:
        amount = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidPayload(f"requested_value: a budget change needs a daily budget >= 0, got {value!r}") from None
    if amount < 0 or amount != amount:
        raise InvalidPayload(f"requested_value: a budget change needs a daily budget >= 0, got {value!r}")
    return round(amount, 2)


def _enum(kind: type[Any], value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InvalidPayload(f"{name}: {value!r} is not one of {allowed}") from None


# ─── Reading and deciding ───────────────────────────────────────────────────────────────────────────
def list_changes(
    status: str | None = ChangeStatus.PENDING_APPROVAL, *, tenant_id: str | None = None,
    campaign_id: str | None = None, ad_id: str | None = None, limit: int = 50, offset: int = 0,
) -> list[ChangeView]:
    """Changes newest first, filtered; ``status=None`` lists every status."""
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidPayload(f"limit must be 1..1000 and offset >= 0, got limit={limit} offset={offset}")
    stmt = select(PendingAdChange)
    if status is not None:
        stmt = stmt.where(PendingAdChange.status == _enum(ChangeStatus, status, "status").value)
    for column, value in ((PendingAdChange.tenant_id, tenant_id), (PendingAdChange.campaign_id, campaign_id),
                          (PendingAdChange.ad_id, ad_id)):
        if value:
            stmt = stmt.where(column == value)
    with session_scope() as session:
        rows = session.scalars(stmt.order_by(PendingAdChange.id.desc()).limit(limit).offset(offset))
        return [ChangeView.model_validate(r) for r in rows]


def show_change(change_id: int) -> ChangeView:
    with session_scope() as session:
        row = session.get(PendingAdChange, change_id)
        if row is None:
            raise ChangeNotFound(f"no pending ad change with id {change_id}")
        return ChangeView.model_validate(row)


def approve_change(change_id: int, decided_by: str, note: str | None = None) -> ChangeView:
    """pending_approval -> approved (the executor picks it up on its next run)."""
    return _decide(change_id, ChangeStatus.APPROVED, decided_by, note)


def reject_change(change_id: int, decided_by: str, note: str | None = None) -> ChangeView:
    """pending_approval -> rejected; nothing is executed."""
    return _decide(change_id, ChangeStatus.REJECTED, decided_by, note)


def _decide(change_id: int, to: ChangeStatus, decided_by: str, note: str | None) -> ChangeView:
    decided_by = (decided_by or "").strip()
    if not decided_by:
        raise InvalidPayload("decided_by: say who decides (a user name or e-mail)")
    now = utcnow()
    with session_scope() as session:
        # A conditional UPDATE: two people deciding at once cannot both win.
        result = session.execute(update(PendingAdChange).where(
            PendingAdChange.id == change_id, PendingAdChange.status == ChangeStatus.PENDING_APPROVAL,
            (PendingAdChange.expires_at.is_(None)) | (PendingAdChange.expires_at > now),
        ).values(status=to.value, decided_by=decided_by[:128], decided_at=now, decision_note=note, updated_at=now))
        if getattr(result, "rowcount", 0) != 1:
            _explain_refusal(session, change_id, to, now)
    return show_change(change_id)


def _explain_refusal(session: Session, change_id: int, to: ChangeStatus, now: datetime) -> None:
    row = session.get(PendingAdChange, change_id)
    if row is None:
        raise ChangeNotFound(f"no pending ad change with id {change_id}")
    if row.status == ChangeStatus.PENDING_APPROVAL and row.expires_at is not None and row.expires_at <= now:
        row.status, row.updated_at = ChangeStatus.EXPIRED.value, now
        session.commit()
        raise InvalidTransition(f"change {change_id} expired at {row.expires_at.isoformat()}; propose it again")
    verb = "approved" if to is ChangeStatus.APPROVED else "rejected"
    raise InvalidTransition(f"change {change_id} is {row.status}; only pending_approval changes can be {verb}")


def expire_stale_changes(now: datetime | None = None) -> int:
    """pending_approval rows past their expiry become expired."""
    now = now or utcnow()
    with session_scope() as session:
        result = session.execute(update(PendingAdChange).where(
            PendingAdChange.status == ChangeStatus.PENDING_APPROVAL, PendingAdChange.expires_at <= now,
        ).values(status=ChangeStatus.EXPIRED.value, updated_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def _fail_interrupted(now: datetime) -> int:
    """Rows left ``executing`` by a lost worker: the platform state is unknown, so never run them again."""
    with session_scope() as session:
        result = session.execute(update(PendingAdChange).where(
            PendingAdChange.status == ChangeStatus.EXECUTING, PendingAdChange.claimed_at < now - EXECUTING_LEASE,
        ).values(status=ChangeStatus.FAILED.value, updated_at=now,
                 error="execution interrupted (worker lost); check the ad on the platform before proposing again"))
    return int(getattr(result, "rowcount", 0) or 0)


# ─── Execution ──────────────────────────────────────────────────────────────────────────────────────
def claim_approved(session: Session, limit: int, owner: str, now: datetime) -> list[int]:
    """Mark up to ``limit`` approved rows ``executing`` for ``owner``; concurrent claimers get disjoint rows."""
    pending = (select(PendingAdChange.id).where(PendingAdChange.status == ChangeStatus.APPROVED)
               .order_by(PendingAdChange.decided_at, PendingAdChange.id).limit(limit))
    if is_postgresql(session):
        ids = list(session.scalars(pending.with_for_update(skip_locked=True)))
        target = PendingAdChange.id.in_(ids) if ids else None
    else:
        target = PendingAdChange.id.in_(pending.scalar_subquery())
    if target is not None:
        session.execute(update(PendingAdChange).where(target, PendingAdChange.status == ChangeStatus.APPROVED).values(
            status=ChangeStatus.EXECUTING.value, claimed_by=owner, claimed_at=now, updated_at=now,
            attempts=PendingAdChange.attempts + 1), execution_options={"synchronize_session": False})
    # Rows this owner claimed earlier and still holds: a redelivered execution takes its own rows back.
    return list(session.scalars(select(PendingAdChange.id).where(
        PendingAdChange.claimed_by == owner, PendingAdChange.status == ChangeStatus.EXECUTING)
        .order_by(PendingAdChange.id)))


def execute_approved_changes(
    limit: int = 100, *, client_factory: ClientFactory = recording_client, gates: SafetyGates | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """Run approved changes through the safety gates and the ad-platform client; return what happened.

    ``owner`` (the task id) claims the rows: a redelivered execution (its worker killed mid-call) finds the rows
    it had claimed still ``executing`` and runs them again; the client reads before it writes, so nothing is
    applied twice.
    """
    if not 1 <= limit <= 10_000:
        raise InvalidPayload(f"limit must be 1..10000, got {limit}")
    gates = gates or SafetyGates()
    now = utcnow()
    expired, interrupted = expire_stale_changes(now), _fail_interrupted(now)
    owner = owner or uuid.uuid4().hex
    with session_scope() as session:
        claimed = claim_approved(session, limit, owner, now)
    outcomes: Counter[str] = Counter()
    for change_id in claimed:
        outcomes[_execute_one(change_id, client_factory, gates)] += 1
    telemetry.approvals_executed(outcomes)
    return {"claimed": len(claimed), "executed": outcomes["executed"], "blocked": outcomes["blocked"],
            "failed": outcomes["failed"], "retry": outcomes["approved"], "expired": expired,
            "interrupted": interrupted, "change_ids": claimed}


def _execute_one(change_id: int, client_factory: ClientFactory, gates: SafetyGates) -> str:
    try:
        with session_scope() as session:
            return _run_change(session, change_id, client_factory(session), gates)
    except TransientError as exc:
        return _after_transient(change_id, exc)
    except PermanentError as exc:
        _finish(change_id, ChangeStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return ChangeStatus.FAILED.value


def _lock_campaign(session: Session, change_id: int) -> PendingAdChange:
    now = utcnow()
    # First statement a write: on SQLite it takes the database write lock before any read (no stale snapshot).
    session.execute(update(PendingAdChange).where(PendingAdChange.id == change_id).values(updated_at=now))
    change = session.get(PendingAdChange, change_id)
    assert change is not None
    if is_postgresql(session):
        # Gates read then write per campaign: one executor per campaign at a time.
        key = zlib.crc32(change.campaign_id.encode()) - 2**31
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    return change


def _run_change(session: Session, change_id: int, client: AdPlatformClient, gates: SafetyGates) -> str:
    change = _lock_campaign(session, change_id)
    if change.status != ChangeStatus.EXECUTING:
        return str(change.status)
    ad = session.get(Ad, change.ad_id)
    if ad is None:
        return _set(change, ChangeStatus.FAILED, error=f"ad {change.ad_id} no longer exists")
    reason = gate_violation(session, change, ad, gates, utcnow())
    if reason:
        return _set(change, ChangeStatus.BLOCKED, error=reason, result={"gate": reason})
    platform_ad = PlatformAd(ad.id, ad.tenant_id, ad.campaign_id, ad.status, float(ad.daily_budget))
    previous = {"status": ad.status, "daily_budget": ad.daily_budget}
    response = _apply(client, change, platform_ad, ad)
    change.executed_at = utcnow()
    applied = {"status": ad.status, "daily_budget": ad.daily_budget}
    return _set(change, ChangeStatus.EXECUTED,
                result={"client": client.name, "previous": previous, "applied": applied, "response": response})


def _apply(client: AdPlatformClient, change: PendingAdChange, platform_ad: PlatformAd, ad: Ad) -> dict[str, Any]:
    kind = ChangeType(change.change_type)
    if kind is ChangeType.PAUSE:
        response = client.pause_ad(platform_ad, change_id=change.id)
        ad.status = "paused"
    elif kind is ChangeType.RESUME:
        response = client.resume_ad(platform_ad, change_id=change.id)
        ad.status = "active"
    else:
        amount = float(change.requested_value)
        response = client.set_daily_budget(platform_ad, amount, change_id=change.id)
        ad.daily_budget = amount
    return response


def gate_violation(session: Session, change: PendingAdChange, ad: Ad, gates: SafetyGates, now: datetime) -> str | None:
    """Why ``change`` may not run now, or None. Counts only changes already executed in the windows."""
    campaign = change.campaign_id
    recent = session.scalar(select(func.count()).where(
        PendingAdChange.campaign_id == campaign, PendingAdChange.status == ChangeStatus.EXECUTED,
        PendingAdChange.executed_at > now - timedelta(hours=1)))
    if (recent or 0) >= gates.max_changes_per_hour:
        return (f"campaign {campaign} already had {recent} changes executed in the last hour "
                f"(limit {gates.max_changes_per_hour}); propose again later")
    if change.change_type != ChangeType.BUDGET:
        return None
    return _budget_gate(session, change, ad, gates, now)


def _budget_gate(session: Session, change: PendingAdChange, ad: Ad, gates: SafetyGates, now: datetime) -> str | None:
    campaign = change.campaign_id
    moves = session.execute(select(PendingAdChange.result).where(
        PendingAdChange.campaign_id == campaign, PendingAdChange.status == ChangeStatus.EXECUTED,
        PendingAdChange.change_type == ChangeType.BUDGET, PendingAdChange.executed_at > now - gates.budget_window,
    )).scalars().all()
    deltas = [_budget_delta(r) for r in moves]
    total_now = float(session.scalar(select(func.coalesce(func.sum(Ad.daily_budget), 0.0)).where(
        Ad.campaign_id == campaign, Ad.status != "archived")) or 0.0)
    base = total_now - sum(deltas)  # the campaign's budget when the window opened
    this_move = abs(float(change.requested_value) - float(ad.daily_budget))
    moved = sum(abs(d) for d in deltas) + this_move
    if this_move == 0:
        return None
    share = moved / base if base > 0 else float("inf")
    if share > gates.max_budget_move + 1e-9:
        hours = gates.budget_window.total_seconds() / 3600
        return (f"budget movement in campaign {campaign} would reach {share:.1%} of its ${base:,.2f} daily budget "
                f"within {hours:g} h (limit {gates.max_budget_move:.0%}): ${moved:,.2f} moved")
    return None


def _budget_delta(result: dict[str, Any] | None) -> float:
    if not result:
        return 0.0
    before = float((result.get("previous") or {}).get("daily_budget") or 0.0)
    after = float((result.get("applied") or {}).get("daily_budget") or 0.0)
    return after - before


def _set(change: PendingAdChange, status: ChangeStatus, *, error: str | None = None,
         result: dict[str, Any] | None = None) -> str:
    change.status, change.error, change.updated_at = status.value, error, utcnow()
    if result is not None:
        change.result = result
    return status.value


def _finish(change_id: int, status: ChangeStatus, *, error: str) -> None:
    with session_scope() as session:
        session.execute(update(PendingAdChange).where(PendingAdChange.id == change_id).values(
            status=status.value, error=error, updated_at=utcnow()))


def _after_transient(change_id: int, exc: Exception) -> str:
    """A timeout or rate limit: back to ``approved`` for the next run, ``failed`` after MAX_ATTEMPTS."""
    with session_scope() as session:
        change = session.get(PendingAdChange, change_id)
        if change is None:
            return ChangeStatus.FAILED.value
        status = ChangeStatus.APPROVED if change.attempts < MAX_ATTEMPTS else ChangeStatus.FAILED
        log.warning("change %s: transient platform error (attempt %s): %s", change_id, change.attempts, exc)
        return _set(change, status, error=f"{type(exc).__name__}: {exc}")
