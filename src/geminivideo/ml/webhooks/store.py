"""The ``webhook_events`` table as an outbox: store once, enqueue after commit, sweep what was never sent.

An event is inserted with ``INSERT … ON CONFLICT (idempotency_key) DO NOTHING`` (PostgreSQL and
SQLite alike), so concurrent deliveries of one batch store each event exactly once. Only after the
insert is committed is ``process_hubspot_events`` sent (one message per delivered batch); if the broker
is down the rows stay ``pending`` and the sweeper (beat, every 5 minutes) sends them later.

Every statement that writes several event rows takes their locks in one order, the key's: the insert
reads its rows sorted and each multi-row UPDATE locks its rows with ``SELECT … ORDER BY key FOR UPDATE``
first (a plain UPDATE locks in whatever order its plan visits them). So concurrent deliveries of
overlapping batches in different orders, the mark after a store and the sweeper wait on each other
instead of deadlocking on PostgreSQL (a 503 to HubSpot).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, String, Table, Update, bindparam, func, or_, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from geminivideo.celery_base import task_priority
from geminivideo.contracts import TASK_QUEUE, TaskName, utcnow
from geminivideo.db.dialect import dialect_insert as dialect_insert  # its old home; callers may still import it
from geminivideo.db.dialect import insert_ignoring_conflicts, is_postgresql
from geminivideo.db.models.webhooks import EventStatus, TenantPipeline, WebhookEvent
from geminivideo.ml.webhooks.events import IncomingEvent

log = logging.getLogger(__name__)
_EVENTS = cast(Table, WebhookEvent.__table__)
_APPLIED = (EventStatus.PROCESSED, EventStatus.STALE)

PENDING_GRACE_S = 60.0  # the API sends right after commit; older pending rows missed the broker
ENQUEUED_GRACE_S = 30 * 60.0  # a message this old and still unprocessed was lost (e.g. Redis restarted)
MAX_ATTEMPTS = 20


@dataclass
class StoreOutcome:
    new: list[IncomingEvent] = field(default_factory=list)
    duplicates: list[IncomingEvent] = field(default_factory=list)
    unsent: list[IncomingEvent] = field(default_factory=list)  # duplicates still waiting for the broker

    def to_send(self) -> list[IncomingEvent]:
        return [e for e in self.new if e.deal is not None] + self.unsent


_ROW_COLUMNS = ("idempotency_key", "source", "event_type", "portal_id", "object_id", "occurred_at", "received_at",
                "payload", "deal_payload", "status", "attempts", "deliveries")


def _row(event: IncomingEvent, received_at: datetime) -> dict[str, Any]:
    return {
        "idempotency_key": event.key, "source": event.source, "event_type": event.event_type,
        "portal_id": event.portal_id, "object_id": event.object_id, "occurred_at": event.occurred_at,
        "received_at": received_at, "payload": event.payload, "deal_payload": event.deal,
        "status": EventStatus.PENDING if event.deal is not None else EventStatus.IGNORED,
        "attempts": 0, "deliveries": 1,
    }


# PostgreSQL gets the whole batch as ONE json parameter, expanded into rows by json_to_recordset: a short
# statement that psycopg caches and PostgreSQL prepares. The multi-row VALUES statement SQLAlchemy builds
# otherwise has 12 parameters per row, too long for psycopg's statement cache, so it was re-parsed on every
# request (a fifth of the API's CPU with 100-event batches). The JSON columns are nested as JSON *text* and
# cast back, so PostgreSQL receives exactly the text psycopg would have sent for them (a \u0000 escape in
# an event's own fields is accepted by the json type but not when a record field is unescaped).
_PG_TYPES = {"portal_id": "bigint", "occurred_at": "timestamptz", "received_at": "timestamptz",
             "attempts": "integer", "deliveries": "integer"}
_PG_JSON_COLUMNS = ("payload", "deal_payload")
_PG_INSERT_NEW = text(
    f"INSERT INTO {_EVENTS.name} ({', '.join(_ROW_COLUMNS)}) SELECT "
    + ", ".join(f"CAST(r.{c} AS json)" if c in _PG_JSON_COLUMNS else f"r.{c}" for c in _ROW_COLUMNS)
    + " FROM json_to_recordset(CAST(:rows AS json)) AS r("
    + ", ".join(f"{c} {_PG_TYPES.get(c, 'text')}" for c in _ROW_COLUMNS)
    + ") ORDER BY r.idempotency_key ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key"
)


def _pg_rows_json(rows: Sequence[dict[str, Any]]) -> str:
    nested = [{**row, **{c: None if row[c] is None else json.dumps(row[c]) for c in _PG_JSON_COLUMNS}} for row in rows]
    return json.dumps(nested, default=_utc_iso)


def _utc_iso(value: object) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"webhook_events row: {type(value).__name__} is not JSON serialisable")
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: store timezone-aware UTC values")
    return value.astimezone(UTC).isoformat()


def _in_key_order(*where: ColumnElement[bool]) -> Update:
    """An UPDATE of the event rows matching ``where`` that first locks them in key order (see the module doc).

    ``FOR UPDATE`` re-checks ``where`` on a row that changed while it waited, so a condition on the status
    still holds when the row is written. SQLite ignores the lock (it serialises writers anyway).
    """
    locked = (select(_EVENTS.c.idempotency_key).where(*where).order_by(_EVENTS.c.idempotency_key)
              .with_for_update().subquery("locked"))
    return update(_EVENTS).where(_EVENTS.c.idempotency_key == locked.c.idempotency_key)


# Returns each row's status as locked: no other writer can change it before this transaction commits.
_COUNT_DELIVERY = _in_key_order(_EVENTS.c.idempotency_key.in_(bindparam("keys", expanding=True))).values(
    deliveries=_EVENTS.c.deliveries + 1).returning(_EVENTS.c.idempotency_key, _EVENTS.c.status)


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the rows whose key is not stored yet (one statement); return the keys inserted now."""
    if is_postgresql(session):
        return set(session.execute(_PG_INSERT_NEW, {"rows": _pg_rows_json(rows)}).scalars())
    # SQLite: one cached statement, rows as parameters (SQLAlchemy batches them into multi-row INSERTs).
    statement = insert_ignoring_conflicts(session, _EVENTS, ["idempotency_key"]).returning(
        _EVENTS.c.idempotency_key)
    return set(session.execute(statement, rows).scalars())


def store_events(session: Session, events: Sequence[IncomingEvent], *, received_at: datetime) -> StoreOutcome:
    """Insert the events that are new; count another delivery on the ones already stored."""
    outcome = StoreOutcome()
    if not events:
        return outcome
    inserted = _insert_new(session, [_row(e, received_at) for e in events])
    outcome.new = [e for e in events if e.key in inserted]
    outcome.duplicates = [e for e in events if e.key not in inserted]
    if outcome.duplicates:
        counted = session.execute(_COUNT_DELIVERY, {"keys": [e.key for e in outcome.duplicates]})
        pending = {key for key, status in counted if status == EventStatus.PENDING}
        outcome.unsent = [e for e in outcome.duplicates if e.key in pending and e.deal is not None]
    return outcome


MAX_EVENTS_PER_MESSAGE = 100  # HubSpot's own batch size: one delivered batch is one message


def send(payloads: Iterable[tuple[str, dict[str, Any]]]) -> list[str]:
    """Send the (key, payload) pairs as ``process_hubspot_events`` messages; return the keys the broker accepted.

    One message carries up to ``MAX_EVENTS_PER_MESSAGE`` events, so a delivered HubSpot batch costs one
    publish instead of a hundred (Celery's per-message cost was over half of the endpoint's CPU) and the
    worker applies a batch in order, each event in its own transaction. Stops at the first broker error:
    the events not sent stay ``pending`` for the sweeper (a message that did arrive is applied once anyway:
    the worker claims each event row).
    """
    items = list(payloads)
    sent: list[str] = []
    if not items:
        return sent
    from geminivideo.ml.celery_app import app  # the app only (no task modules): cheap for the API

    try:
        with app.producer_or_acquire() as producer:
            for start in range(0, len(items), MAX_EVENTS_PER_MESSAGE):
                chunk = items[start:start + MAX_EVENTS_PER_MESSAGE]
                app.send_task(str(TaskName.PROCESS_HUBSPOT_EVENTS), args=[[payload for _, payload in chunk]],
                              producer=producer, retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2},
                              **batch_options([key for key, _ in chunk]))
                sent.extend(key for key, _ in chunk)
    except (KombuError, RedisError, OSError) as exc:
        log.warning("broker refused webhook events (%d sent, rest left for the sweeper): %s", len(sent), exc)
    return sent


def batch_options(keys: Sequence[str]) -> dict[str, Any]:
    """Message options of a ``process_hubspot_events`` batch sent by the API or the sweeper."""
    # ignore_result: the outcome is kept on the event rows; a day of Redis results per batch would only cost memory.
    return {
        "queue": str(TASK_QUEUE[TaskName.PROCESS_HUBSPOT_EVENTS]), "ignore_result": True,
        "priority": task_priority(TaskName.PROCESS_HUBSPOT_EVENTS),
        **batch_repr(keys),
    }


def batch_repr(keys: Sequence[str]) -> dict[str, str]:
    """Flower and logs show a batch's event keys, never its payloads (IP addresses, user agents)."""
    shown = ", ".join(key[:12] for key in keys[:3]) + (", …" if len(keys) > 3 else "")
    return {"argsrepr": f"[{len(keys)} events: {shown}]", "kwargsrepr": "{}"}


# PostgreSQL: the keys as one array parameter, so the statement text does not grow with the batch (an IN list
# of 100 parameters is re-parsed by psycopg on every request, like the multi-row INSERT above).
def _mark_enqueued(keys_match: ColumnElement[bool], *statuses: str) -> Update:
    """Set ``enqueued`` (at the ``now`` parameter) on the matching rows still in one of ``statuses``."""
    return _in_key_order(keys_match, _EVENTS.c.status.in_(statuses)).values(
        status=EventStatus.ENQUEUED, enqueued_at=bindparam("now"))


_PG_MARK_ENQUEUED = _mark_enqueued(
    _EVENTS.c.idempotency_key == func.any(bindparam("keys", type_=postgresql.ARRAY(String))), EventStatus.PENDING)
_MARK_ENQUEUED = _mark_enqueued(_EVENTS.c.idempotency_key.in_(bindparam("keys", expanding=True)), EventStatus.PENDING)


def mark_enqueued(session: Session, keys: Sequence[str]) -> None:
    if not keys:
        return
    statement = _PG_MARK_ENQUEUED if is_postgresql(session) else _MARK_ENQUEUED
    session.execute(statement, {"keys": list(keys), "now": utcnow()})


def record_failure(session: Session, key: str, error: str, *, final: bool) -> None:
    """Note an error on an event not yet applied; ``final`` (permanent errors) also marks it failed."""
    events = _EVENTS.c
    values: dict[str, Any] = {"error": error[:4000], "attempts": events.attempts + 1}
    if final:
        values.update(status=EventStatus.FAILED, processed_at=utcnow())
    # Conditional: a concurrent delivery of the same event may have applied it meanwhile.
    session.execute(update(_EVENTS).where(events.idempotency_key == key, events.status.not_in(_APPLIED))
                    .values(**values))


@dataclass(frozen=True)
class _Overdue:
    key: str
    attempts: int
    error: str | None
    deal_payload: dict[str, Any] | None


def _overdue(session: Session, now: datetime, limit: int) -> list[_Overdue]:
    events = _EVENTS.c
    query = (
        select(events.idempotency_key, events.attempts, events.error, events.deal_payload)
        .where(or_(
            (events.status == EventStatus.PENDING) & (events.received_at < now - timedelta(seconds=PENDING_GRACE_S)),
            (events.status == EventStatus.ENQUEUED) & (events.enqueued_at < now - timedelta(seconds=ENQUEUED_GRACE_S)),
        ))
        .order_by(events.received_at)
        .limit(limit)
    )
    return [_Overdue(*row) for row in session.execute(query)]


def _give_up(session: Session, row: _Overdue, now: datetime) -> None:
    events = _EVENTS.c
    error = f"gave up after {row.attempts} attempts; last error: {row.error or 'none recorded'}"
    session.execute(update(_EVENTS).where(events.idempotency_key == row.key, events.status.in_(EventStatus.OPEN))
                    .values(status=EventStatus.FAILED, processed_at=now, error=error))


def sweep(session_factory: Callable[[], AbstractContextManager[Session]], *, limit: int = 1000,
          now: datetime | None = None) -> dict[str, Any]:
    """Re-send stored events that never reached (or were lost by) the broker; give up after MAX_ATTEMPTS.

    Reads, sends and marks in separate short transactions, and every write is conditional on the row
    still being open: a worker may apply a re-sent event before this sweep has even committed.
    """
    now = now or utcnow()
    with session_factory() as session:
        rows = _overdue(session, now, limit)
        hopeless = sorted((r for r in rows if r.attempts >= MAX_ATTEMPTS or r.deal_payload is None),
                          key=lambda r: r.key)
        for row in hopeless:
            _give_up(session, row, now)
    retry = [r for r in rows if r not in hopeless]
    sent = send((r.key, r.deal_payload) for r in retry if r.deal_payload is not None)
    if sent:
        with session_factory() as session:
            session.execute(_mark_enqueued(_EVENTS.c.idempotency_key.in_(sent), *EventStatus.OPEN), {"now": now})
    return {"overdue": len(rows), "reenqueued": len(sent), "given_up": len(hopeless), "timestamp": now.isoformat()}


def event_view(row: WebhookEvent) -> dict[str, Any]:
    return {
        "key": row.idempotency_key, "source": row.source, "event_type": row.event_type, "portal_id": row.portal_id,
        "object_id": row.object_id, "occurred_at": row.occurred_at, "received_at": row.received_at,
        "status": row.status, "attempts": row.attempts, "deliveries": row.deliveries, "enqueued_at": row.enqueued_at,
        "processed_at": row.processed_at, "error": row.error, "result": row.result, "payload": row.payload,
    }


def tenant_portals(session: Session, tenant_id: str) -> list[int]:
    """The HubSpot portals a tenant's pipeline names: the events a key limited to that tenant may read."""
    rows = session.scalars(select(TenantPipeline.portal_id).where(TenantPipeline.tenant_id == tenant_id))
    return [p for p in rows if p is not None]


def get_event(session: Session, key: str, *, portals: Sequence[int] | None = None) -> dict[str, Any] | None:
    """One event by key; with ``portals``, only an event from one of those portals."""
    query = select(WebhookEvent).where(WebhookEvent.idempotency_key == key)
    if portals is not None:
        query = query.where(WebhookEvent.portal_id.in_(portals))
    row = session.scalars(query).first()
    return event_view(row) if row else None


def list_events(
    session: Session, *, status: str | None, limit: int, portals: Sequence[int] | None = None
) -> dict[str, Any]:
    """Events newest first with the total; ``portals`` limits both to events from those portals."""
    query = select(WebhookEvent)
    counted = select(func.count()).select_from(WebhookEvent)
    if status:
        query, counted = query.where(WebhookEvent.status == status), counted.where(WebhookEvent.status == status)
    if portals is not None:
        query = query.where(WebhookEvent.portal_id.in_(portals))
        counted = counted.where(WebhookEvent.portal_id.in_(portals))
    rows = session.scalars(query.order_by(WebhookEvent.received_at.desc()).limit(limit))
    return {"total": session.scalar(counted) or 0, "events": [event_view(r) for r in rows]}
