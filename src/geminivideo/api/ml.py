"""Budget sampler, fatigue and approval endpoints.

The sampler endpoints take either ad ids (state read from the database) or explicit ad states; budget
recommendations can be queued for approval in the same call. Approvals are listed, shown, approved and
rejected here exactly as the CLI does, through ``geminivideo.ml.decisions.approvals``. (The sampler's feedback
endpoint lives with the webhook pipeline.)
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from geminivideo.api.auth import (
    AdsRead,
    AdsWrite,
    ApprovalsDecide,
    ApprovalsRead,
    Principal,
    Scope,
    ads_or_404,
    not_found,
    tenant_or_404,
)
from geminivideo.api.limits import RATE_LIMIT_RESPONSES, rate_limit
from geminivideo.contracts import FatigueScanJob
from geminivideo.db.models.decisions import ChangeType
from geminivideo.db.session import session_scope
from geminivideo.ml.decisions import approvals, fatigue
from geminivideo.ml.decisions.sampler import (
    AdState,
    BattleHardenedSampler,
    SamplerConfig,
    SamplerMode,
    load_states,
    submit_for_approval,
)

router = APIRouter()
ChangeId = Annotated[int, Path(ge=1, le=2**63 - 1, description="a pending ad change id")]  # fits BIGINT/SQLite
ML_LIMITED: dict[str, Any] = {"dependencies": [rate_limit("ml")], "responses": RATE_LIMIT_RESPONSES}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplerRequest(_Strict):
    ad_ids: list[str] | None = Field(None, min_length=1, max_length=10_000)
    ads: list[AdState] | None = Field(None, min_length=1, max_length=10_000)
    tenant_id: str | None = Field(None, min_length=1, max_length=128)
    mode: SamplerMode = SamplerMode.PIPELINE
    n_draws: int = Field(2000, ge=1000, le=100_000)
    seed: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> SamplerRequest:
        given = sum(x is not None for x in (self.ad_ids, self.ads, self.tenant_id))
        if given != 1:
            raise ValueError("give exactly one of ad_ids, ads (explicit states) or tenant_id")
        return self


class AllocateRequest(SamplerRequest):
    total_budget: float = Field(ge=0, le=1e9)
    exploration_floor: float = Field(0.05, ge=0, lt=1)
    max_change: float = Field(0.5, gt=0, le=10)
    submit_for_approval: bool = False
    min_change_pct: float = Field(5.0, ge=0, le=1000)


class DecisionRequest(_Strict):
    # Who decided is the calling key's name, never a field the caller fills in.
    note: str | None = Field(None, max_length=2000)


class ManualProposal(_Strict):
    ad_id: str = Field(min_length=1, max_length=128)
    change_type: ChangeType
    requested_value: float | None = Field(None, ge=0)
    reason: str = Field(min_length=1, max_length=2000)


def _states(req: SamplerRequest, principal: Principal) -> list[AdState]:
    if req.ads is not None:  # explicit numbers: nothing stored is read
        return list(req.ads)
    tenant_id = tenant_or_404(principal, req.tenant_id) if req.tenant_id is not None else None
    ads_or_404(principal, req.ad_ids or [])
    with session_scope() as session:
        return load_states(session, ad_ids=req.ad_ids, tenant_id=tenant_id)


def _sampler(req: SamplerRequest, **extra: Any) -> BattleHardenedSampler:
    return BattleHardenedSampler(SamplerConfig(mode=req.mode, n_draws=req.n_draws, seed=req.seed, **extra))


# ─── Sampler ────────────────────────────────────────────────────────────────────────────────────────
@router.post("/api/ml/battle-hardened/select", tags=["sampler"], **ML_LIMITED)
def sampler_select(req: SamplerRequest, principal: AdsRead) -> dict[str, Any]:
    """Thompson-sample the ad to serve next, with every ad's probability of being best and its metrics."""
    return _sampler(req).select(_states(req, principal))


@router.post("/api/ml/battle-hardened/allocate", tags=["sampler"], **ML_LIMITED)
def sampler_allocate(req: AllocateRequest, principal: AdsRead) -> dict[str, Any]:
    """Split ``total_budget`` by probability of being best (floor, capped changes, total conserved);
    with ``submit_for_approval`` the kills and budget moves become pending changes."""
    if req.submit_for_approval and not principal.allows(Scope.APPROVALS_DECIDE):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"key {principal.name!r} lacks scope approvals:decide")
    states = _states(req, principal)
    allocation = _sampler(req, exploration_floor=req.exploration_floor, max_change=req.max_change).allocate(
        states, req.total_budget)
    if req.submit_for_approval:
        with session_scope() as session:
            allocation["approval"] = submit_for_approval(session, allocation, states,
                                                         min_change_pct=req.min_change_pct)
    return allocation


# ─── Fatigue ────────────────────────────────────────────────────────────────────────────────────────
@router.get("/api/ml/fatigue/report", tags=["fatigue"])
def fatigue_report(
    principal: AdsRead, tenant_id: str | None = None, scan_id: int | None = None,
    status_: Annotated[str | None, Query(alias="status", pattern=r"^[A-Z_]{1,32}$")] = None,
    severity: Annotated[str | None, Query(pattern=r"^(ok|warning|critical)$")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """The latest completed scan (or ``scan_id``): its summary and per-ad reports, filterable."""
    tenant_id = tenant_or_404(principal, tenant_id)
    report = fatigue.fatigue_report(tenant_id=tenant_id, scan_id=scan_id, status=status_, severity=severity,
                                    limit=limit, offset=offset)
    if report is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no completed fatigue scan yet")
    if not principal.sees_tenant(report["scan"].get("tenant_id")):  # another tenant's scan reads as missing
        raise not_found(f"fatigue scan {scan_id}")
    return report


@router.get("/api/ml/fatigue/ads/{ad_id}", tags=["fatigue"])
def fatigue_ad(ad_id: str, principal: AdsRead, limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:
    """One ad's latest fatigue reports, newest first."""
    ads_or_404(principal, [ad_id])
    reports = fatigue.ad_reports(ad_id, limit=limit)
    if not reports:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no fatigue report for ad {ad_id!r}")
    return {"ad_id": ad_id, "reports": reports}


@router.post("/api/ml/fatigue/scan", tags=["fatigue"], status_code=status.HTTP_202_ACCEPTED, **ML_LIMITED)
def fatigue_scan(job: FatigueScanJob, principal: AdsWrite) -> dict[str, Any]:
    """Queue a fatigue scan now (it also runs every 6 hours); follow it with the returned task id."""
    from geminivideo.ml.tasks import monitor_all_ads_fatigue  # the Celery app is only needed here

    job = job.model_copy(update={"tenant_id": tenant_or_404(principal, job.tenant_id)})
    result = monitor_all_ads_fatigue.apply_async(kwargs=job.model_dump(mode="json", exclude_none=True))
    return {"task_id": result.id, "status_url": f"/api/jobs/{result.id}"}


@router.put("/api/ml/fatigue/thresholds/{tenant_id}", tags=["fatigue"])
def fatigue_thresholds(tenant_id: str, overrides: dict[str, Any], principal: AdsWrite) -> dict[str, Any]:
    """Override a tenant's fatigue thresholds by name (e.g. ``{"frequency_saturated": 4.0}``)."""
    tenant_or_404(principal, tenant_id)
    return {"tenant_id": tenant_id, "thresholds": fatigue.set_thresholds(tenant_id, overrides).model_dump()}


# ─── Approvals ──────────────────────────────────────────────────────────────────────────────────────
@router.get("/api/ml/approvals", tags=["approvals"])
def approvals_list(
    principal: ApprovalsRead,
    status_: Annotated[str | None, Query(alias="status")] = "pending_approval", tenant_id: str | None = None,
    campaign_id: str | None = None, ad_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50, offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Pending changes by default; ``?status=all`` lists every status, newest first."""
    rows = approvals.list_changes(None if status_ == "all" else status_, tenant_id=tenant_or_404(principal, tenant_id),
                                  campaign_id=campaign_id, ad_id=ad_id, limit=limit, offset=offset)
    return {"changes": [r.model_dump(mode="json") for r in rows], "count": len(rows)}


@router.post("/api/ml/approvals", tags=["approvals"], status_code=status.HTTP_201_CREATED)
def approvals_propose(proposal: ManualProposal, principal: ApprovalsDecide) -> dict[str, Any]:
    """Propose a manual change (pause, resume, budget) for an ad; it waits for approval like any other."""
    ads_or_404(principal, [proposal.ad_id])
    view = approvals.propose_change(proposal.ad_id, proposal.change_type, proposal.requested_value,
                                    reason=proposal.reason)
    if view is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"ad {proposal.ad_id} already has an open proposal")
    return view.model_dump(mode="json")


@router.get("/api/ml/approvals/{change_id}", tags=["approvals"])
def approvals_show(change_id: ChangeId, principal: ApprovalsRead) -> dict[str, Any]:
    return _visible_change(change_id, principal)


def _visible_change(change_id: int, principal: Principal) -> dict[str, Any]:
    view = approvals.show_change(change_id).model_dump(mode="json")
    if not principal.sees_tenant(view["tenant_id"]):  # another tenant's change reads as missing
        raise not_found(f"pending ad change with id {change_id}")
    return view


@router.post("/api/ml/approvals/{change_id}/approve", tags=["approvals"])
def approvals_approve(change_id: ChangeId, decision: DecisionRequest, principal: ApprovalsDecide) -> dict[str, Any]:
    """pending_approval -> approved; the executor applies it within minutes, through the safety gates.
    ``decided_by`` is the calling key's name."""
    _visible_change(change_id, principal)
    return approvals.approve_change(change_id, principal.name, decision.note).model_dump(mode="json")


@router.post("/api/ml/approvals/{change_id}/reject", tags=["approvals"])
def approvals_reject(change_id: ChangeId, decision: DecisionRequest, principal: ApprovalsDecide) -> dict[str, Any]:
    """pending_approval -> rejected; ``decided_by`` is the calling key's name."""
    _visible_change(change_id, principal)
    return approvals.reject_change(change_id, principal.name, decision.note).model_dump(mode="json")
