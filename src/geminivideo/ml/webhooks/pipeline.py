"""The HubSpot deal-stage pipeline: from a stored webhook event to credited pipeline value on an ad.

``ingest`` (the API's half) parses a verified body, stores each event once and enqueues it after the
commit. ``process_event`` (the worker's half, called by ``process_hubspot_webhook`` and, for each event
of a stored batch, by ``process_hubspot_events``) applies one deal-stage change in a single transaction:

1. lock the event row (first statement a write, so SQLite serialises writers and PostgreSQL locks the
   row) and return the stored result if it was already applied;
2. lock the deal (PostgreSQL advisory lock) and read what was applied to it before;
3. refuse out-of-order changes (older than the deal's last applied one): recorded as ``stale``;
4. value the change with the tenant's pipeline (``revenue``), attribute it (``attribution``) unless
   the deal already has an ad, write the conversion, the deal's new state, and credit the ad's
   sampler state, then mark the event processed with its result.

The CRM is asked for the amount (and any attribution properties) before the transaction, so no lock
is held during an HTTP call.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, cast

import sqlalchemy.exc
from celery.exceptions import SoftTimeLimitExceeded
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import Table, bindparam, insert, or_, select, text, update
from sqlalchemy.orm import Session

from geminivideo.config import get_settings
from geminivideo.contracts import DealStageChange, PipelineConfig, WebhookResult, parse_payload, utcnow
from geminivideo.db.dialect import insert_ignoring_conflicts, is_postgresql
from geminivideo.db.models.webhooks import Conversion, DealState, EventStatus, TenantPipeline, WebhookEvent
from geminivideo.db.session import session_scope
from geminivideo.errors import Conflict, DependencyUnavailable, InvalidPayload, LeaseLost, PermanentError
from geminivideo.leases import fencing
from geminivideo.ml.decisions.sampler_feedback import AdCredit, ad_exists, credit_ad
from geminivideo.ml.webhooks import attribution, revenue
from geminivideo.ml.webhooks import store as webhook_store
from geminivideo.ml.webhooks.crm_client import CrmDeal, HubSpotClient, client_from_settings
from geminivideo.ml.webhooks.events import parse_body
from geminivideo.telemetry import domain as telemetry

log = logging.getLogger(__name__)
# Core tables for the per-event hot path: plain statements skip the ORM's bookkeeping.
_EVENTS = cast(Table, WebhookEvent.__table__)
_CONVERSIONS = cast(Table, Conversion.__table__)
_DEALS = cast(Table, DealState.__table__)
_PIPELINES = cast(Table, TenantPipeline.__table__)


# ─── Ingestion (API) ────────────────────────────────────────────────────────────────────────────────
@dataclass
class IngestReport:
    received: int
    stored: int
    duplicates: int
    ignored: int
    enqueued: int
    events: list[dict[str, Any]] = field(default_factory=list)


def ingest(raw: bytes, *, received_at: datetime | None = None) -> IngestReport:
    """Store a verified webhook body's events once each, then enqueue the deal-stage changes."""
    received_at = received_at or utcnow()
    events = parse_body(raw, received_at=received_at)
    with session_scope() as session:
        outcome = webhook_store.store_events(session, events, received_at=received_at)
    to_send = outcome.to_send()
    sent = webhook_store.send((e.key, e.deal) for e in to_send if e.deal is not None)
    if sent:
        with session_scope() as session:
            webhook_store.mark_enqueued(session, sent)
    duplicates = {e.key for e in outcome.duplicates}
    return IngestReport(
        received=len(events), stored=len(outcome.new), duplicates=len(outcome.duplicates),
        ignored=sum(1 for e in outcome.new if e.deal is None), enqueued=len(sent),
        events=[{"key": e.key, "type": e.event_type, "duplicate": e.key in duplicates, "processed": e.deal is not None}
                for e in events],
    )


# ─── Processing (worker) ────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Prefetched:
    """What is learnt before the transaction: the amount and, from the CRM, stage and click properties."""

    amount: float | None
    amount_source: str | None
    crm: CrmDeal | None


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def _task_event_key(raw: Any, delivery_id: str | None) -> str:
    """Key of a change sent straight to the task: one per Celery message (a redelivery is the same one)."""
    if delivery_id:
        return _digest("task", delivery_id)
    return _digest("task-body", json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str))


def _store_direct_event(key: str, raw: Any, change: DealStageChange | None, error: str | None = None) -> None:
    """A change that did not come through the API gets its event row here (same outbox, same audit)."""
    # JSON-safe copy: an in-process caller may pass datetimes, the column stores JSON.
    payload = json.loads(json.dumps(raw if isinstance(raw, dict) else {"value": raw}, default=str))
    row = {
        "idempotency_key": key, "source": "task", "event_type": "deal.stageChange", "portal_id": None,
        "object_id": change.deal_id if change else None, "occurred_at": change.occurred_at if change else None,
        "received_at": utcnow(), "payload": payload,
        "deal_payload": change.model_dump(mode="json", by_alias=True, exclude_none=True) if change else None,
        "status": EventStatus.FAILED if error else EventStatus.ENQUEUED, "attempts": 0,
        "deliveries": 1, "error": error, "processed_at": utcnow() if error else None,
    }
    with session_scope() as session:
        session.execute(insert_ignoring_conflicts(session, WebhookEvent, ["idempotency_key"]).values(**row))


def _parse(event: Any, delivery_id: str | None) -> tuple[str, DealStageChange]:
    try:
        change = parse_payload(DealStageChange, event)
    except InvalidPayload as exc:
        key = (event.get("eventKey") or event.get("event_key")) if isinstance(event, dict) else None
        key = key if isinstance(key, str) and _is_stored_key(key) else _task_event_key(event, delivery_id)
        _store_direct_event(key, event, None, error=str(exc))
        _record(key, str(exc), final=True)
        raise
    if change.event_key and _is_stored_key(change.event_key):
        return change.event_key, change  # the usual case: stored by the API, row already there
    # A caller's own eventKey dedupes its calls; without one, the Celery message id does.
    key = _digest("task-key", change.tenant_id, change.event_key) if change.event_key else \
        _task_event_key(event, delivery_id)
    change = change.model_copy(update={"event_key": key, "occurred_at": change.occurred_at or utcnow()})
    _store_direct_event(key, event, change)
    return key, change


def _is_stored_key(key: str) -> bool:
    """Keys the API stores under are 64 hex digits (see hubspot_events); anything else is a caller's own."""
    return len(key) == 64 and all(c in "0123456789abcdef" for c in key)


def _record(key: str, error: str, *, final: bool) -> None:
    try:
        with session_scope() as session:
            webhook_store.record_failure(session, key, error, final=final)
        if final:
            telemetry.webhook_failed()
    except Exception as exc:  # the database may be the thing that failed
        log.warning("could not record the error of webhook event %s: %s", key, exc)


def _stored_result(key: str) -> WebhookResult | None:
    with session_scope() as session:
        row = session.scalars(select(WebhookEvent).where(WebhookEvent.idempotency_key == key)).first()
        if row is not None and row.status in (EventStatus.PROCESSED, EventStatus.STALE) and row.result:
            return WebhookResult.model_validate({**row.result, "status": "duplicate"})
    return None


def _prefetch(change: DealStageChange, client: HubSpotClient | None) -> Prefetched:
    crm = client.get_deal(change.deal_id) if client is not None else None
    if change.deal_value is not None:
        return Prefetched(change.deal_value, "event", crm)
    if crm is not None and crm.amount is not None:
        return Prefetched(crm.amount, "hubspot_crm", crm)
    return Prefetched(None, None, crm)


def _crm_client() -> AbstractContextManager[HubSpotClient | None]:
    """The CRM client when HUBSPOT_ACCESS_TOKEN is set (closed on exit), else None."""
    client = client_from_settings(get_settings())
    return client if client is not None else nullcontext()


def process_event(event: Any, *, delivery_id: str | None = None) -> WebhookResult:
    """Apply one deal-stage change exactly once; a repeat returns the first result as ``duplicate``."""
    with _crm_client() as crm:
        return _process_one(event, delivery_id, crm)


def _process_one(event: Any, delivery_id: str | None, crm: HubSpotClient | None) -> WebhookResult:
    key, change = _parse(event, delivery_id)
    # Only worth a separate look-up when a duplicate would otherwise cost a CRM call.
    if crm is not None and (stored := _stored_result(key)) is not None:
        return stored
    try:
        prefetched = _prefetch(change, crm)
        # A batch taken over by another worker (this attempt's lease lapsed while it waited on the CRM) must not
        # apply anything more: the attempt holding the lease applies it.
        fencing.check_current()
        try:
            with session_scope() as session:
                return _apply(session, key, change, prefetched)
        except _MissingEvent:
            # A 64-hex eventKey the API never stored: keep it as this caller's key and store the row now.
            _store_direct_event(key, event, change)
            with session_scope() as session:
                return _apply(session, key, change, prefetched)
    except LeaseLost:
        raise  # a lost attempt records nothing either
    except PermanentError as exc:
        _record(key, f"{type(exc).__name__}: {exc}", final=True)
        raise
    except Exception as exc:
        _record(key, f"{type(exc).__name__}: {exc}", final=False)
        raise


# The database or the broker itself is unreachable: every later event of a batch would fail the same way.
_OUTAGES = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, RedisConnectionError, RedisTimeoutError,
            DependencyUnavailable)


@dataclass
class BatchOutcome:
    """What ``process_events`` did with a batch; ``deferred`` and ``unstarted`` still need a message."""

    events: int = 0
    applied: dict[str, int] = field(default_factory=dict)  # WebhookResult.status → count
    failed: int = 0  # permanent errors, recorded as ``failed`` on their rows
    deferred: list[Any] = field(default_factory=list)  # transient errors: retry with backoff
    unstarted: list[Any] = field(default_factory=list)  # the soft time limit came first: continue at once
    last_error: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"events": self.events, **self.applied, "failed": self.failed, "deferred": len(self.deferred),
                "continued": len(self.unstarted), "last_error": self.last_error}


def process_events(events: Sequence[Any]) -> BatchOutcome:
    """Apply a batch of stored changes in order, each exactly once and in its own transaction.

    A permanent error fails only its event (recorded on its row). A transient one defers its event and
    the batch goes on, unless the database or broker itself is unreachable: then the rest is deferred too.
    When the task's soft time limit fires, the interrupted event and the rest are returned unstarted.
    Events without an ``eventKey`` are keyed by their body (an identical event is one event).
    """
    outcome = BatchOutcome(events=len(events))
    with _crm_client() as crm:  # one client (and its kept-alive connection) for the whole batch
        _process_batch(events, crm, outcome)
    return outcome


def _process_batch(events: Sequence[Any], crm: HubSpotClient | None, outcome: BatchOutcome) -> None:
    for index, event in enumerate(events):
        try:
            result = _process_one(event, None, crm)
        except SoftTimeLimitExceeded:
            outcome.unstarted = list(events[index:])
            break
        except LeaseLost:
            raise  # the whole batch goes back to the attempt that holds the lease
        except PermanentError:
            outcome.failed += 1
        except _OUTAGES as exc:
            outcome.deferred += events[index:]
            outcome.last_error = f"{type(exc).__name__}: {exc}"
            break
        except Exception as exc:
            outcome.deferred.append(event)
            outcome.last_error = f"{type(exc).__name__}: {exc}"
        else:
            outcome.applied[result.status] = outcome.applied.get(result.status, 0) + 1


class _MissingEvent(Exception):
    """No event row has this key (only possible for a change sent straight to the task)."""


@dataclass(frozen=True)
class _Claimed:
    status: str
    result: dict[str, Any] | None
    received_at: datetime


@dataclass(frozen=True)
class _Deal:
    """A ``deal_states`` row (without its key), as read under the deal's lock or about to be written."""

    stage: str
    amount: float | None
    expected_value: float
    opening_value: float
    credited_value: float
    won: bool
    cash_credited: float
    ad_id: str | None
    ad_credited_value: float  # what ad_id's sampler state has received from this deal
    ad_cash_credited: float
    ad_won: bool
    last_occurred_at: datetime | None
    last_event_key: str | None


_DEAL_COLUMNS = tuple(f.name for f in fields(_Deal))

# The per-event statements, built once: building and hashing a statement per call cost about as much CPU as
# running it (py-spy/cProfile of the worker). Values travel as parameters; an UPDATE without .values() sets
# the columns named by its parameters, and the key's parameters are named apart from the columns.
_CLAIM = (
    update(_EVENTS).where(_EVENTS.c.idempotency_key == bindparam("key"))
    .values(attempts=_EVENTS.c.attempts + 1)
    .returning(_EVENTS.c.status, _EVENTS.c.result, _EVENTS.c.received_at)
)
_FINISH = update(_EVENTS).where(_EVENTS.c.idempotency_key == bindparam("key"))
_PIPELINE_COLUMNS = (_PIPELINES.c.tenant_id, _PIPELINES.c.portal_id, _PIPELINES.c.config)
_PIPELINE_OF_TENANT = select(*_PIPELINE_COLUMNS).where(_PIPELINES.c.tenant_id == bindparam("tenant_id"))
_PIPELINE_OF_TENANT_OR_PORTAL = select(*_PIPELINE_COLUMNS).where(
    or_(_PIPELINES.c.tenant_id == bindparam("tenant_id"), _PIPELINES.c.portal_id == bindparam("portal_id")))
_LOCK_DEAL = text("SELECT pg_advisory_xact_lock(:id)")
_DEAL_KEY = (_DEALS.c.tenant_id == bindparam("key_tenant_id")) & (_DEALS.c.deal_id == bindparam("key_deal_id"))
_READ_DEAL = select(*(_DEALS.c[name] for name in _DEAL_COLUMNS)).where(_DEAL_KEY)
_INSERT_DEAL = insert(_DEALS)
_UPDATE_DEAL = update(_DEALS).where(_DEAL_KEY)
_INSERT_CONVERSION = insert(_CONVERSIONS)


def _claim(session: Session, key: str) -> _Claimed | None:
    """Lock the event row by writing to it first (see the module docstring); None when it does not exist."""
    row = session.execute(_CLAIM, {"key": key}).first()
    return _Claimed(row.status, row.result, row.received_at) if row is not None else None


def _finish(session: Session, key: str, result: WebhookResult) -> None:
    status = EventStatus.STALE if result.status == "stale" else EventStatus.PROCESSED
    session.execute(_FINISH, {"key": key, "status": status, "result": result.model_dump(mode="json"),
                              "processed_at": utcnow(), "error": None})


def _lock_deal(session: Session, tenant_id: str, deal_id: str) -> _Deal | None:
    """Take the deal's lock (PostgreSQL; SQLite already serialises writers) and read it fresh."""
    if is_postgresql(session):
        lock_id = int.from_bytes(hashlib.sha256(f"deal\x1f{tenant_id}\x1f{deal_id}".encode()).digest()[:8], "big",
                                 signed=True)
        session.execute(_LOCK_DEAL, {"id": lock_id})
    row = session.execute(_READ_DEAL, {"key_tenant_id": tenant_id, "key_deal_id": deal_id}).first()
    return _Deal(*row) if row is not None else None


def _write_deal(session: Session, tenant_id: str, deal_id: str, deal: _Deal, *, exists: bool) -> None:
    values: dict[str, Any] = {name: getattr(deal, name) for name in _DEAL_COLUMNS}
    values["updated_at"] = utcnow()
    if exists:
        session.execute(_UPDATE_DEAL, {"key_tenant_id": tenant_id, "key_deal_id": deal_id, **values})
    else:
        session.execute(_INSERT_DEAL, {"tenant_id": tenant_id, "deal_id": deal_id, **values})


def resolve_pipeline(session: Session, change: DealStageChange) -> tuple[str, PipelineConfig]:
    """The tenant (a HubSpot portal maps to its configured tenant) and its pipeline, else the default."""
    if change.portal_id is None:
        rows = list(session.execute(_PIPELINE_OF_TENANT, {"tenant_id": change.tenant_id}))
    else:
        rows = list(session.execute(_PIPELINE_OF_TENANT_OR_PORTAL,
                                    {"tenant_id": change.tenant_id, "portal_id": change.portal_id}))
    # A portal's configured tenant wins over the tenant id the event was given.
    row = next((r for r in rows if change.portal_id is not None and r.portal_id == change.portal_id), None)
    row = row or next((r for r in rows if r.tenant_id == change.tenant_id), None)
    if row is None:
        return change.tenant_id, revenue.TEMPLATES[revenue.DEFAULT_TEMPLATE]
    return row.tenant_id, PipelineConfig.model_validate(row.config)


def save_pipeline(session: Session, tenant_id: str, config: PipelineConfig) -> None:
    row = session.get(TenantPipeline, tenant_id)
    data = config.model_dump(mode="json", exclude_none=True)
    if row is None:
        session.add(TenantPipeline(tenant_id=tenant_id, portal_id=config.portal_id, config=data))
    else:
        row.portal_id, row.config = config.portal_id, data
    try:
        session.flush()
    except sqlalchemy.exc.IntegrityError:  # portal_id is unique: one HubSpot portal feeds one tenant
        raise Conflict(f"portal_id {config.portal_id} belongs to another tenant") from None


def _book(deal: _Deal | None) -> revenue.DealBook | None:
    if deal is None:
        return None
    return revenue.DealBook(deal.stage, deal.expected_value, deal.credited_value, deal.opening_value, deal.won,
                            deal.cash_credited)


@dataclass
class _Context:
    key: str
    change: DealStageChange
    tenant_id: str
    pipeline: PipelineConfig
    deal: _Deal | None
    occurred_at: datetime
    amount: float
    amount_source: str
    crm: CrmDeal | None


def _apply(session: Session, key: str, change: DealStageChange, pre: Prefetched) -> WebhookResult:
    row = _claim(session, key)
    if row is None:
        raise _MissingEvent(key)
    if row.status in (EventStatus.PROCESSED, EventStatus.STALE) and row.result:
        return WebhookResult.model_validate({**row.result, "status": "duplicate"})
    tenant_id, pipeline = resolve_pipeline(session, change)
    deal = _lock_deal(session, tenant_id, change.deal_id)
    amount, source = _amount(pre, deal, pipeline)
    ctx = _Context(key, change, tenant_id, pipeline, deal, change.occurred_at or row.received_at, amount, source,
                   pre.crm)
    stale_reason = _stale_reason(ctx)
    # Core statements run at once, in order: the conversion's unique event_key is checked before the event
    # is marked done.
    result = _stale(ctx, stale_reason) if stale_reason else _credit(session, ctx)
    _finish(session, key, result)
    telemetry.webhook_applied("stale" if result.status == "stale" else "processed", row.received_at)
    return result


def _amount(pre: Prefetched, deal: _Deal | None, pipeline: PipelineConfig) -> tuple[float, str]:
    if pre.amount is not None and pre.amount_source:
        return pre.amount, pre.amount_source
    if deal is not None and deal.amount is not None:
        return deal.amount, "deal_state"
    return pipeline.average_deal_value, "tenant_average"


def _stale_reason(ctx: _Context) -> str | None:
    if ctx.deal is None:
        return None
    if ctx.change.is_creation:
        return f"deal {ctx.change.deal_id!r} is already known (stage {ctx.deal.stage!r}); a creation cannot move it"
    last = ctx.deal.last_occurred_at
    if last is not None and ctx.occurred_at < last:
        return f"occurredAt {ctx.occurred_at.isoformat()} is older than the deal's last change {last.isoformat()}"
    return None


def _stage_to(ctx: _Context) -> str:
    stage = ctx.change.stage_to or (ctx.crm.stage if ctx.crm else None) or ctx.pipeline.entry_stage
    if not stage:
        raise InvalidPayload("stageTo: a deal creation without a stage needs the CRM or a pipeline entry_stage")
    return stage


def _stale(ctx: _Context, reason: str) -> WebhookResult:
    stage_to = _stage_to(ctx)
    value = revenue.stage_value(ctx.pipeline, stage_to, ctx.amount, tenant_id=ctx.tenant_id)
    return WebhookResult(
        status="stale", synthetic_revenue=value, attribution=None, ad_id=ctx.deal.ad_id if ctx.deal else None,
        deal_id=ctx.change.deal_id, credit=0.0, event_key=ctx.key, tenant_id=ctx.tenant_id,
        stage_from=ctx.deal.stage if ctx.deal else None, stage_to=stage_to, amount=ctx.amount,
        amount_source=ctx.amount_source, note=reason,
    )


def _identifiers(ctx: _Context) -> attribution.Identifiers:
    crm = ctx.crm.attribution() if ctx.crm else {}
    change = ctx.change
    return attribution.Identifiers(
        occurred_at=ctx.occurred_at, tenant_id=ctx.tenant_id,
        click_id=change.click_id or crm.get("click_id"), fbclid=change.fbclid or crm.get("fbclid"),
        gclid=change.gclid or crm.get("gclid"), fingerprint_hash=change.fingerprint_hash or crm.get("fingerprint_hash"),
        ip_address=change.ip_address or crm.get("ip_address"), user_agent=change.user_agent or crm.get("user_agent"),
    )


def _attribute(session: Session, ctx: _Context) -> tuple[str | None, dict[str, Any]]:
    if ctx.deal is not None and ctx.deal.ad_id:
        return ctx.deal.ad_id, {"attributed": True, "layer": "deal", "ad_id": ctx.deal.ad_id,
                                "detail": "the deal was attributed by an earlier event"}
    ids = _identifiers(ctx)
    found = attribution.attribute(session, ids)
    attribution.record_attempt(session, event_key=ctx.key, tenant_id=ctx.tenant_id, deal_id=ctx.change.deal_id,
                               ids=ids, attribution=found)
    winner = found.winner
    return (winner.ad_id if winner else None), found.to_dict()


def _credit(session: Session, ctx: _Context) -> WebhookResult:
    stage_to = _stage_to(ctx)
    change = revenue.apply_change(ctx.pipeline, prior=_book(ctx.deal), stage_to=stage_to, amount=ctx.amount,
                                  stage_from_hint=ctx.change.stage_from, tenant_id=ctx.tenant_id)
    ad_id, found = _attribute(session, ctx)
    prior = ctx.deal
    book = change.book
    deal = _Deal(
        stage=book.stage, amount=ctx.amount, expected_value=book.expected_value, opening_value=book.opening_value,
        credited_value=book.credited_value, won=book.won, cash_credited=book.cash_credited, ad_id=ad_id,
        ad_credited_value=prior.ad_credited_value if prior else 0.0,
        ad_cash_credited=prior.ad_cash_credited if prior else 0.0, ad_won=prior.ad_won if prior else False,
        last_occurred_at=ctx.occurred_at, last_event_key=ctx.key,
    )
    ad_credit, note, deal = _credit_ad(session, deal)
    _write_deal(session, ctx.tenant_id, ctx.change.deal_id, deal, exists=prior is not None)
    session.execute(_INSERT_CONVERSION, {
        "event_key": ctx.key, "tenant_id": ctx.tenant_id, "deal_id": ctx.change.deal_id, "ad_id": ad_id,
        "stage_from": change.stage_from, "stage_to": stage_to, "amount": ctx.amount,
        "amount_source": ctx.amount_source, "synthetic_value": change.synthetic_value, "credit": change.credit,
        "ad_credit": ad_credit.pipeline_value, "cash_credit": change.cash_credit,
        "attributed_spend": ctx.change.attributed_spend, "attribution_layer": found.get("layer"),
        "attribution_confidence": found.get("confidence"), "occurred_at": ctx.occurred_at, "created_at": utcnow(),
    })
    return WebhookResult(
        status="processed", synthetic_revenue=change.synthetic_value, attribution=found, ad_id=ad_id,
        deal_id=ctx.change.deal_id, credit=change.credit, event_key=ctx.key, tenant_id=ctx.tenant_id,
        stage_from=change.stage_from, stage_to=stage_to, amount=ctx.amount, amount_source=ctx.amount_source,
        note=note or _hint_note(ctx, change.stage_from),
    )


def _credit_ad(session: Session, deal: _Deal) -> tuple[AdCredit, str | None, _Deal]:
    """Bring the ad's sampler state up to the deal's totals (a late attribution catches up in one go).

    Returns the credit given, a note when the ad is unknown, and the deal with what its ad has received.
    """
    if not deal.ad_id:
        return AdCredit(feedback=0), None, deal
    credit = AdCredit(
        pipeline_value=round(deal.credited_value - deal.ad_credited_value, 6),
        cash_revenue=round(deal.cash_credited - deal.ad_cash_credited, 6),
        conversions=int(deal.won) - int(deal.ad_won),
    )
    if not ad_exists(session, deal.ad_id):
        note = f"ad {deal.ad_id!r} is not in the ads table: its sampler state was not credited"
        return AdCredit(feedback=0), note, deal
    credit_ad(session, deal.ad_id, credit)
    caught_up = replace(deal, ad_credited_value=deal.credited_value, ad_cash_credited=deal.cash_credited,
                        ad_won=deal.won)
    return credit, None, caught_up


def _hint_note(ctx: _Context, applied_from: str | None) -> str | None:
    hint = ctx.change.stage_from
    if hint and ctx.deal is not None and hint != applied_from:
        return f"stageFrom {hint!r} differs from the deal's applied stage {applied_from!r}; credited from the latter"
    return None


# ─── Sweeper and queries ────────────────────────────────────────────────────────────────────────────
def sweep_unprocessed_events(limit: int = 1000) -> dict[str, Any]:
    """Re-enqueue stored events the broker never got (or lost); called by beat every 5 minutes."""
    return webhook_store.sweep(session_scope, limit=limit)
