"""Winner index: one definition of a winner, creative DNA storage, incremental indexing and search.

A winner is an ad whose all-time numbers, read from the database, meet its tenant's thresholds
(``winner_thresholds``, defaults: pipeline ROAS >= 3.0 with spend >= $100 and impressions >= 1,000,
and CTR >= 1 % as a secondary floor). Pipeline ROAS is the value credited by the webhook pipeline
(``ad_sampler_state.pipeline_value``) over the spend summed from ``ad_daily_metrics``: both are
cumulative, so the ratio is taken over the ad's whole life.

Writers (``index_all_winners``, ``index_winner``) hold the index's write lock for their whole
read-modify-write, save the FAISS file atomically, then record what it holds in
``winner_index_entries``. If the process dies between the two, the next rebuild sees vectors whose
entry or content hash does not match and embeds them again: the two always converge.

Plain entry points (no broker needed)::

    index_all_winners(on_progress=no_progress) -> IndexWinnersResult      # what auto_index_winners runs
    index_winner(IndexWinnerJob) -> IndexWinnerResult                     # what auto_index_winner runs
    store_dna(session, ad_id, dna: dict | CreativeDNA) -> PreparedDna     # validate + upsert, no indexing
    set_thresholds(tenant_id, min_roas=..., min_spend=..., min_impressions=..., min_ctr=...) -> Thresholds
    search(query, *, k=10, tenant_id=None, format=None) -> list[WinnerHit]   # CLI and API
    similar_to(ad_id, *, k=10, tenant_id=None, format=None) -> list[WinnerHit]
    index_stats() -> dict

Seeding winners for a demo: for each ad, rows in ``ads`` (with its tenant), ``ad_daily_metrics`` (total
spend >= $100, impressions >= 1,000, clicks >= 1 % of impressions) and ``ad_sampler_state.pipeline_value``
(>= 3 x spend, as the webhook pipeline credits it), then ``store_dna(session, ad_id, {...})`` with DNA keys
from ``creative_dna.KNOWN_FIELDS`` (``creative_dna.generate_dna(seed)`` makes plausible ones), then run
``auto_index_winners`` (or ``index_all_winners()``), and search.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from geminivideo.contracts import IndexWinnerJob, IndexWinnerResult, IndexWinnersResult, utcnow
from geminivideo.db.models import Ad, AdDailyMetric, AdSamplerState, Tenant
from geminivideo.db.models.winners import (
    DEFAULT_MIN_CTR,
    DEFAULT_MIN_IMPRESSIONS,
    DEFAULT_MIN_ROAS,
    DEFAULT_MIN_SPEND,
    CreativeDnaRecord,
    WinnerIndexEntry,
    WinnerThresholds,
)
from geminivideo.db.session import session_scope
from geminivideo.errors import InvalidPayload, NotFound
from geminivideo.ml.winners import embeddings
from geminivideo.ml.winners import index as winner_index
from geminivideo.ml.winners.creative_dna import (
    AdFormat,
    CreativeDNA,
    content_hash,
    dna_text,
    expand_glossary,
    parse_dna,
)
from geminivideo.progress import ProgressCallback, no_progress

log = logging.getLogger(__name__)

EMBED_CHUNK = 256  # texts per progress update; the model batches inside a chunk
SINGLE_WRITER_LOCK_TIMEOUT_S = 30.0
MAX_K = 100
MAX_QUERY_CHARS = 1000


class UnknownAd(NotFound):
    """The ad id names no ad (or an ad without creative DNA); the API answers 404."""


# ─── The definition of a winner ───────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Thresholds:
    min_roas: float = DEFAULT_MIN_ROAS
    min_spend: float = DEFAULT_MIN_SPEND
    min_impressions: int = DEFAULT_MIN_IMPRESSIONS
    min_ctr: float = DEFAULT_MIN_CTR


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class AdPerformance:
    ad_id: str
    tenant_id: str
    campaign_id: str
    impressions: int
    clicks: int
    spend: float
    pipeline_value: float

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def roas(self) -> float:
        return self.pipeline_value / self.spend if self.spend else 0.0

    def metrics(self) -> dict[str, float | int]:
        return {
            "impressions": self.impressions,
            "clicks": self.clicks,
            "spend": round(self.spend, 2),
            "pipeline_value": round(self.pipeline_value, 2),
            "ctr": round(self.ctr, 5),
            "roas": round(self.roas, 3),
        }


def why_not_winner(perf: AdPerformance, limits: Thresholds) -> list[str]:
    """Every threshold ``perf`` misses, in words; an empty list means the ad is a winner."""
    reasons = []
    if perf.spend < limits.min_spend:
        reasons.append(f"spend ${perf.spend:,.2f} is below the ${limits.min_spend:,.2f} minimum")
    if perf.impressions < limits.min_impressions:
        reasons.append(f"impressions {perf.impressions:,} are below the {limits.min_impressions:,} minimum")
    if perf.roas < limits.min_roas:
        reasons.append(f"pipeline ROAS {perf.roas:.2f} is below {limits.min_roas:.2f}")
    if perf.ctr < limits.min_ctr:
        reasons.append(f"CTR {perf.ctr:.2%} is below {limits.min_ctr:.2%}")
    return reasons


def load_thresholds(session: Session) -> dict[str, Thresholds]:
    rows = session.scalars(select(WinnerThresholds)).all()
    return {r.tenant_id: Thresholds(r.min_roas, r.min_spend, r.min_impressions, r.min_ctr) for r in rows}


def set_thresholds(tenant_id: str, **values: float) -> Thresholds:
    """Set some of a tenant's winner thresholds (min_roas, min_spend, min_impressions, min_ctr); returns all."""
    known = tuple(Thresholds.__dataclass_fields__)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidPayload(f"unknown threshold(s) {', '.join(unknown)}; known: {', '.join(known)}")
    negative = [f"{name}={value}" for name, value in values.items() if value < 0]
    if negative:
        raise InvalidPayload(f"thresholds must be >= 0, got {', '.join(negative)}")
    with session_scope() as session:
        if session.get(Tenant, tenant_id) is None:
            raise UnknownAd(f"tenant_id {tenant_id!r}: no such tenant")
        current = load_thresholds(session).get(tenant_id, DEFAULT_THRESHOLDS)
        merged = Thresholds(**{**current.__dict__, **values})
        row = session.get(WinnerThresholds, tenant_id) or WinnerThresholds(tenant_id=tenant_id)
        for name, value in merged.__dict__.items():
            setattr(row, name, value)
        session.add(row)
    return merged


def load_performance(session: Session, ad_ids: Collection[str] | None = None) -> dict[str, AdPerformance]:
    """All-time impressions, clicks, spend and credited pipeline value per ad (all ads, or ``ad_ids``)."""
    totals = (
        select(
            AdDailyMetric.ad_id.label("ad_id"),
            func.sum(AdDailyMetric.impressions).label("impressions"),
            func.sum(AdDailyMetric.clicks).label("clicks"),
            func.sum(AdDailyMetric.spend).label("spend"),
        )
        .group_by(AdDailyMetric.ad_id)
        .subquery()
    )
    query = (
        select(
            Ad.id,
            Ad.tenant_id,
            Ad.campaign_id,
            totals.c.impressions,
            totals.c.clicks,
            totals.c.spend,
            AdSamplerState.pipeline_value,
        )
        .outerjoin(totals, totals.c.ad_id == Ad.id)
        .outerjoin(AdSamplerState, AdSamplerState.ad_id == Ad.id)
    )
    if ad_ids is not None:
        query = query.where(Ad.id.in_(list(ad_ids)))
    return {
        row[0]: AdPerformance(
            row[0], row[1], row[2], int(row[3] or 0), int(row[4] or 0), float(row[5] or 0.0), float(row[6] or 0.0)
        )
        for row in session.execute(query)
    }


# ─── Creative DNA storage ─────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class PreparedDna:
    dna: CreativeDNA
    text: str
    content_hash: str


def prepare(dna: CreativeDNA) -> PreparedDna:
    text = dna_text(dna)
    return PreparedDna(dna, text, content_hash(text, embeddings.MODEL_NAME))


def store_dna(session: Session, ad_id: str, dna: CreativeDNA | dict[str, Any]) -> PreparedDna:
    """Insert or replace an ad's DNA (validated); UnknownAd when the ad does not exist."""
    prepared = prepare(parse_dna(dna))
    if session.get(Ad, ad_id) is None:
        raise UnknownAd(f"ad_id {ad_id!r}: no such ad; create the ad before storing its creative DNA")
    record = session.get(CreativeDnaRecord, ad_id) or CreativeDnaRecord(ad_id=ad_id)
    record.dna = prepared.dna.to_json()
    record.text, record.content_hash = prepared.text, prepared.content_hash
    record.format = prepared.dna.format.value if prepared.dna.format else None
    session.add(record)
    return prepared


# ─── Rebuild: auto_index_winners ──────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Desired:
    """An ad that belongs in the index, with what it should hold."""

    ad_id: str
    vector_id: int
    perf: AdPerformance
    prepared: PreparedDna
    forced: bool


@dataclass
class Plan:
    desired: list[Desired]
    to_embed: list[Desired]
    added: int
    updated: int
    remove_ids: set[int]
    winners: int
    winners_without_dna: int


def _desired_ads(session: Session) -> tuple[list[Desired], int, int]:
    """Winners with DNA plus forced entries; also counts winners and winners lacking DNA."""
    limits = load_thresholds(session)
    performance = load_performance(session)
    records = {r.ad_id: r for r in session.scalars(select(CreativeDnaRecord))}
    forced = set(session.scalars(select(WinnerIndexEntry.ad_id).where(WinnerIndexEntry.forced.is_(True))))
    desired, winners, without_dna = [], 0, 0
    for ad_id, perf in performance.items():
        is_winner = not why_not_winner(perf, limits.get(perf.tenant_id, DEFAULT_THRESHOLDS))
        winners += is_winner
        record = records.get(ad_id)
        if record is None:
            without_dna += is_winner
            continue
        if not (is_winner or ad_id in forced):
            continue
        try:
            prepared = prepare(parse_dna(record.dna))
        except InvalidPayload as exc:
            log.warning("ad %s skipped: its stored DNA no longer validates (%s)", ad_id, exc)
            continue
        desired.append(Desired(ad_id, winner_index.vector_id_for(ad_id), perf, prepared, ad_id in forced))
    return desired, winners, without_dna


def _plan(session: Session, index_ids: set[int]) -> Plan:
    desired, winners, without_dna = _desired_ads(session)
    stored = dict(session.execute(select(WinnerIndexEntry.vector_id, WinnerIndexEntry.content_hash)).tuples().all())
    to_embed = [
        d for d in desired if d.vector_id not in index_ids or stored.get(d.vector_id) != d.prepared.content_hash
    ]
    added = sum(d.vector_id not in index_ids for d in to_embed)
    wanted = {d.vector_id for d in desired}
    remove_ids = (index_ids | set(stored)) - wanted
    return Plan(desired, to_embed, added, len(to_embed) - added, remove_ids, winners, without_dna)


def _embed_with_progress(texts: Sequence[str], on_progress: ProgressCallback, span: tuple[float, float]) -> np.ndarray:
    start, end = span
    parts = []
    for offset in range(0, len(texts), EMBED_CHUNK):
        parts.append(embeddings.embed(texts[offset : offset + EMBED_CHUNK]))
        done = min(len(texts), offset + EMBED_CHUNK)
        on_progress(start + (end - start) * done / len(texts), f"embedded {done}/{len(texts)} creatives")
    return np.vstack(parts) if parts else np.zeros((0, embeddings.EMBEDDING_DIM), dtype=np.float32)


def _entry_values(item: Desired, now: datetime) -> dict[str, Any]:
    return {
        "vector_id": item.vector_id,
        "tenant_id": item.perf.tenant_id,
        "format": _format_of(item.prepared),
        "content_hash": item.prepared.content_hash,
        "forced": item.forced,
        "impressions": item.perf.impressions,
        "clicks": item.perf.clicks,
        "spend": item.perf.spend,
        "pipeline_value": item.perf.pipeline_value,
        "checked_at": now,
    }


def _format_of(prepared: PreparedDna) -> str | None:
    return prepared.dna.format.value if prepared.dna.format else None


def _put_entry(
    session: Session, item: Desired, now: datetime, *, embedded: bool, entry: WinnerIndexEntry | None
) -> None:
    entry = entry or WinnerIndexEntry(ad_id=item.ad_id, indexed_at=now)
    for name, value in _entry_values(item, now).items():
        setattr(entry, name, value)
    if embedded:
        entry.indexed_at = now
    session.add(entry)


def _record_entries(plan: Plan) -> None:
    """Make ``winner_index_entries`` describe exactly what the saved index holds."""
    now = utcnow()
    embedded = {d.ad_id for d in plan.to_embed}
    with session_scope() as session:
        existing = {e.ad_id: e for e in session.scalars(select(WinnerIndexEntry))}
        for item in plan.desired:
            _put_entry(session, item, now, embedded=item.ad_id in embedded, entry=existing.pop(item.ad_id, None))
        for stale in existing.values():
            session.delete(stale)


def index_all_winners(
    on_progress: ProgressCallback = no_progress, *, store: winner_index.IndexStore | None = None
) -> IndexWinnersResult:
    """Bring the index in line with the current winners, embedding only ads whose DNA text changed."""
    started = time.monotonic()
    store = store or winner_index.get_store()
    on_progress(2, "waiting for the index write lock")
    with store.write_lock():
        index = store.load_for_write(recover=True)
        on_progress(5, "finding winners")
        with session_scope() as session:
            plan = _plan(session, set(winner_index.ids_of(index).tolist()))
        vectors = _embed_with_progress([d.prepared.text for d in plan.to_embed], on_progress, (10, 90))
        winner_index.remove(index, plan.remove_ids)
        winner_index.upsert(index, (d.vector_id for d in plan.to_embed), vectors)
        on_progress(92, f"saving {index.ntotal} vectors")
        store.save(index)
        _record_entries(plan)
    return IndexWinnersResult(
        added=plan.added,
        updated=plan.updated,
        removed=len(plan.remove_ids),
        unchanged=len(plan.desired) - len(plan.to_embed),
        total=int(index.ntotal),
        winners=plan.winners,
        forced=sum(d.forced for d in plan.desired),
        winners_without_dna=plan.winners_without_dna,
        embedded=len(plan.to_embed),
        duration_s=round(time.monotonic() - started, 3),
        timestamp=utcnow(),
    )


# ─── One ad: auto_index_winner ────────────────────────────────────────────────────────────────────
def _store_and_judge(job: IndexWinnerJob) -> tuple[PreparedDna, AdPerformance, list[str]]:
    with session_scope() as session:
        prepared = store_dna(session, job.ad_id, parse_dna(job.creative_dna))
        perf = load_performance(session, [job.ad_id])[job.ad_id]
        limits = load_thresholds(session).get(perf.tenant_id, DEFAULT_THRESHOLDS)
    return prepared, perf, why_not_winner(perf, limits)


def _index_one(index: Any, item: Desired, present: bool) -> str:
    with session_scope() as session:
        entry = session.get(WinnerIndexEntry, item.ad_id)
        stored_hash = entry.content_hash if entry else None
    if present and stored_hash == item.prepared.content_hash:
        return "unchanged"
    winner_index.upsert(index, [item.vector_id], embeddings.embed([item.prepared.text]))
    return "updated" if present else "added"


def _write_entry(item: Desired, *, embedded: bool) -> None:
    with session_scope() as session:
        _put_entry(session, item, utcnow(), embedded=embedded, entry=session.get(WinnerIndexEntry, item.ad_id))


def _drop_entry(ad_id: str) -> None:
    with session_scope() as session:
        entry = session.get(WinnerIndexEntry, ad_id)
        if entry is not None:
            session.delete(entry)


def index_winner(job: IndexWinnerJob, *, store: winner_index.IndexStore | None = None) -> IndexWinnerResult:
    """Store the ad's DNA; index it when it is a winner (or ``force``), else say why and drop any old vector."""
    prepared, perf, reasons = _store_and_judge(job)
    item = Desired(job.ad_id, winner_index.vector_id_for(job.ad_id), perf, prepared, forced=job.force and bool(reasons))
    store = store or winner_index.get_store()
    with store.write_lock(SINGLE_WRITER_LOCK_TIMEOUT_S):
        index = store.load_for_write()
        present = item.vector_id in set(winner_index.ids_of(index).tolist())
        if reasons and not job.force:
            action = "removed" if present else "skipped"
            if present:
                winner_index.remove(index, [item.vector_id])
                store.save(index)
            _drop_entry(job.ad_id)
        else:
            action = _index_one(index, item, present)
            if action != "unchanged":
                store.save(index)
            _write_entry(item, embedded=action != "unchanged")
    indexed = action in ("added", "updated", "unchanged")
    return IndexWinnerResult(
        ad_id=job.ad_id,
        indexed=indexed,
        action=action,
        is_winner=not reasons,
        forced=item.forced,
        reasons=reasons,
        vector_id=item.vector_id if indexed else None,
        total=int(index.ntotal),
        timestamp=utcnow(),
    )


# ─── Search ───────────────────────────────────────────────────────────────────────────────────────
class WinnerHit(BaseModel):
    ad_id: str
    similarity: float
    tenant_id: str
    campaign_id: str
    format: str | None
    dna: dict[str, Any]
    metrics: dict[str, float | int]
    forced: bool
    indexed_at: datetime


def _validate_filters(k: int, format: str | None) -> None:
    if not 1 <= k <= MAX_K:
        raise InvalidPayload(f"k must be between 1 and {MAX_K}, got {k}")
    if format is not None and format not in {f.value for f in AdFormat}:
        raise InvalidPayload(f"format must be one of {', '.join(f.value for f in AdFormat)}, got {format!r}")


def _allowed_ids(session: Session, tenant_id: str | None, format: str | None) -> np.ndarray | None:
    if tenant_id is None and format is None:
        return None
    query = select(WinnerIndexEntry.vector_id)
    if tenant_id is not None:
        query = query.where(WinnerIndexEntry.tenant_id == tenant_id)
    if format is not None:
        query = query.where(WinnerIndexEntry.format == format)
    return np.fromiter(session.scalars(query), dtype=np.int64)


def _hits(session: Session, ranked: list[tuple[int, float]], k: int, exclude: str | None) -> list[WinnerHit]:
    """Join FAISS ids with their entries, DNA and live metrics; ids without an entry are skipped."""
    ids = [vid for vid, _ in ranked]
    rows = session.execute(
        select(WinnerIndexEntry, CreativeDnaRecord)
        .join(CreativeDnaRecord, CreativeDnaRecord.ad_id == WinnerIndexEntry.ad_id)
        .where(WinnerIndexEntry.vector_id.in_(ids))
    ).tuples()
    by_id = {entry.vector_id: (entry, record) for entry, record in rows}
    performance = load_performance(session, [entry.ad_id for entry, _ in by_id.values()])
    hits = []
    for vid, score in ranked:
        if vid not in by_id or by_id[vid][0].ad_id == exclude:
            continue
        entry, record = by_id[vid]
        perf = performance[entry.ad_id]
        hits.append(
            WinnerHit(
                ad_id=entry.ad_id,
                similarity=round(score, 5),
                tenant_id=entry.tenant_id,
                campaign_id=perf.campaign_id,
                format=entry.format,
                dna=record.dna,
                metrics=perf.metrics(),
                forced=entry.forced,
                indexed_at=entry.indexed_at,
            )
        )
    return hits[:k]


def _search_vector(
    vector: np.ndarray,
    k: int,
    tenant_id: str | None,
    format: str | None,
    exclude: str | None,
    store: winner_index.IndexStore,
) -> list[WinnerHit]:
    index = store.current()
    with session_scope() as session:
        allowed = _allowed_ids(session, tenant_id, format)
        # A few extra candidates cover the excluded ad and ids whose entry is not committed yet.
        ranked = winner_index.search(index, vector, k + 5, allowed)[0]
        return _hits(session, ranked, k, exclude)


def search(
    query: str,
    *,
    k: int = 10,
    tenant_id: str | None = None,
    format: str | None = None,
    store: winner_index.IndexStore | None = None,
) -> list[WinnerHit]:
    """Winners whose creative DNA is most similar to ``query`` (free text), best first."""
    query = " ".join((query or "").split())
    if not query:
        raise InvalidPayload("q: the search text is empty; describe a creative, e.g. 'UGC testimonial, fast cuts'")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidPayload(f"q: the search text has {len(query)} characters; at most {MAX_QUERY_CHARS} allowed")
    _validate_filters(k, format)
    return _search_vector(
        embeddings.embed_one(expand_glossary(query)), k, tenant_id, format, None, store or winner_index.get_store()
    )


def _vector_of(ad_id: str, index: Any) -> np.ndarray:
    """The ad's indexed vector when current, else its DNA embedded now."""
    with session_scope() as session:
        record = session.get(CreativeDnaRecord, ad_id)
        entry = session.get(WinnerIndexEntry, ad_id)
        if record is None:
            exists = session.get(Ad, ad_id) is not None
            raise UnknownAd(f"ad_id {ad_id!r}: " + ("the ad has no creative DNA" if exists else "no such ad"))
        prepared = prepare(parse_dna(record.dna))
    if entry is not None and entry.content_hash == prepared.content_hash:
        try:
            return np.asarray(index.reconstruct(int(entry.vector_id)), dtype=np.float32).reshape(1, -1)
        except RuntimeError:
            pass  # the index does not hold it (yet): embed instead
    return embeddings.embed_one(prepared.text)


def similar_to(
    ad_id: str,
    *,
    k: int = 10,
    tenant_id: str | None = None,
    format: str | None = None,
    store: winner_index.IndexStore | None = None,
) -> list[WinnerHit]:
    """Winners most similar to the creative DNA of ``ad_id`` (the ad itself excluded), best first."""
    _validate_filters(k, format)
    store = store or winner_index.get_store()
    vector = _vector_of(ad_id, store.current())
    return _search_vector(vector, k, tenant_id, format, ad_id, store)


def index_stats(store: winner_index.IndexStore | None = None) -> dict[str, Any]:
    """Size of the index, whether SQL agrees with it, and where the entries come from."""
    store = store or winner_index.get_store()
    index = store.current()
    identity = winner_index.FileIdentity.of(store.index_path)
    with session_scope() as session:
        entries = session.scalar(select(func.count()).select_from(WinnerIndexEntry)) or 0
        forced = session.scalar(select(func.count()).where(WinnerIndexEntry.forced.is_(True))) or 0
        by_tenant = dict(session.execute(_count_by(WinnerIndexEntry.tenant_id)).tuples().all())
        by_format = {k or "unspecified": v for k, v in session.execute(_count_by(WinnerIndexEntry.format)).tuples()}
        last_indexed = session.scalar(select(func.max(WinnerIndexEntry.indexed_at)))
        last_checked = session.scalar(select(func.max(WinnerIndexEntry.checked_at)))
    return {
        "total_vectors": int(index.ntotal),
        "entries": entries,
        "in_sync": entries == index.ntotal,
        "forced": forced,
        "by_tenant": by_tenant,
        "by_format": by_format,
        "dimension": int(index.d),
        "metric": "cosine (inner product on L2-normalised vectors)",
        "index_type": "IndexIDMap2(IndexFlatIP)",
        "model": embeddings.MODEL_NAME,
        "index_path": str(store.index_path),
        "file_size_bytes": identity.size if identity else 0,
        "last_indexed_at": last_indexed.isoformat() if last_indexed else None,
        "last_checked_at": last_checked.isoformat() if last_checked else None,
    }


def _count_by(column: Any) -> Any:
    return select(column, func.count()).group_by(column)
