"""Seeded, realistic ad histories for tests, the demo and the benchmarks, and a CSV import of real exports.

The simulation is vectorised over ads x days. Each ad gets a daily budget, a base CPM (~$12 median) and
CTR (~1.4 % median), an audience size and a profile with a known ground truth:

- ``healthy``: a large audience, frequency stays near 1, no wear-out.
- ``creative_fatigue``: CTR decays exponentially from a known onset day (creative wear-out) and the auction
  charges a little more as relevance falls.
- ``saturating``: a small audience, so lifetime frequency climbs past 4; CTR wears with frequency and CPM
  rises with it.
- ``small_noisy``: a $3-6/day ad with a few clicks a day, sometimes a zero-click last day; must stay non-critical.
- ``stalling``: delivery falls 25-45 % in the last week at an unchanged budget.
- ``new``: launched one or two days ago.

Impressions are Poisson on budget / CPM, clicks binomial on the worn CTR, conversions binomial on clicks, and
each conversion opens a deal that walks HubSpot's default stages with exponential delays (or is lost); the
deal's expected value is credited to ``ad_sampler_state`` as the webhook pipeline would have.

Column semantics written to ``ad_daily_metrics``: ``reach`` is that day's unique reach, ``frequency`` the
lifetime frequency to that day (impressions / unique people, as the platform reports it), ``budget`` the
daily budget in force that day.

Entry points: ``generate_ad_histories(DatasetSpec(...))`` (writes to DATABASE_URL, returns the ground truth),
``simulate(spec)`` (pure, no database) and ``import_metrics_csv(path, tenant_id=...)``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from geminivideo.db.dialect import dialect_insert, is_postgresql
from geminivideo.db.models import Ad, AdDailyMetric, AdSamplerState, Tenant
from geminivideo.db.session import session_scope
from geminivideo.errors import InvalidPayload

# HubSpot's default deal stages in order, with their default probabilities (DESIGN.md §6).
DEAL_STAGES: tuple[tuple[str, float], ...] = (
    ("appointmentscheduled", 0.2),
    ("qualifiedtobuy", 0.4),
    ("presentationscheduled", 0.6),
    ("decisionmakerboughtin", 0.8),
    ("contractsent", 0.9),
    ("closedwon", 1.0),
)
_STAGE_PROB = np.array([p for _, p in DEAL_STAGES])
_STAGE_STEPS = len(DEAL_STAGES) - 1


class Profile(StrEnum):
    HEALTHY = "healthy"
    CREATIVE_FATIGUE = "creative_fatigue"
    SATURATING = "saturating"
    SMALL_NOISY = "small_noisy"
    STALLING = "stalling"
    NEW = "new"


CRITICAL_PROFILES = frozenset({Profile.CREATIVE_FATIGUE, Profile.SATURATING})

DEFAULT_MIX: dict[Profile, float] = {
    Profile.HEALTHY: 0.55,
    Profile.CREATIVE_FATIGUE: 0.15,
    Profile.SATURATING: 0.08,
    Profile.SMALL_NOISY: 0.12,
    Profile.STALLING: 0.05,
    Profile.NEW: 0.05,
}


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate. The same spec always yields the same rows."""

    n_ads: int = 200
    days: int = 30
    seed: int = 7
    tenant_id: str = "default"
    id_prefix: str | None = None  # default: "<tenant_id>-"
    end_day: date | None = None  # last day of data; default yesterday (UTC)
    ads_per_campaign: int = 10
    mix: dict[Profile, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    with_outcomes: bool = True
    chunk_ads: int = 5000
    replace: bool = True  # delete earlier ads with the same ids first (re-running the demo)

    def __post_init__(self) -> None:
        if self.n_ads < 1 or self.days < 3:
            raise InvalidPayload(f"DatasetSpec: need n_ads >= 1 and days >= 3, got n_ads={self.n_ads} days={self.days}")
        if any(share < 0 for share in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise InvalidPayload(f"DatasetSpec.mix: shares must be >= 0 with a positive sum, got {self.mix}")

    @property
    def prefix(self) -> str:
        return self.id_prefix if self.id_prefix is not None else f"{self.tenant_id}-"

    @property
    def last_day(self) -> date:
        return self.end_day or (datetime.now(UTC).date() - timedelta(days=1))

    @property
    def first_day(self) -> date:
        return self.last_day - timedelta(days=self.days - 1)


@dataclass(frozen=True)
class AdTruth:
    profile: Profile
    onset_day: date | None
    expect_critical: bool


@dataclass
class SimulatedChunk:
    """Ads ``[start, start + n)`` of a dataset; day arrays are (n_ads, days), zero before an ad launched."""

    ad_ids: list[str]
    campaign_ids: list[str]
    profiles: list[Profile]
    onset_index: np.ndarray  # day index where wear-out starts, -1 for none
    first_index: np.ndarray  # day index of the ad's first day of data
    daily_budget: np.ndarray
    impressions: np.ndarray
    reach: np.ndarray
    frequency: np.ndarray
    clicks: np.ndarray
    spend: np.ndarray
    conversions: np.ndarray
    pipeline_value: np.ndarray
    cash_revenue: np.ndarray
    deals: np.ndarray


@dataclass
class GeneratedDataset:
    spec: DatasetSpec
    truth: dict[str, AdTruth]
    metric_rows: int

    @property
    def ad_ids(self) -> list[str]:
        return list(self.truth)

    def ids_with(self, *profiles: Profile) -> list[str]:
        return [ad for ad, t in self.truth.items() if t.profile in profiles]


# ─── Simulation (pure) ──────────────────────────────────────────────────────────────────────────────
def assign_profiles(spec: DatasetSpec) -> np.ndarray:
    """Exact shares of each profile (largest remainders), shuffled with the spec's seed."""
    names = list(spec.mix)
    shares = np.array([spec.mix[p] for p in names], dtype=float)
    raw = shares / shares.sum() * spec.n_ads
    counts = np.floor(raw).astype(int)
    counts[np.argsort(raw - counts)[::-1][: spec.n_ads - counts.sum()]] += 1
    labels = np.repeat(np.arange(len(names)), counts)
    rng = np.random.default_rng([spec.seed, 0])
    return np.array(names, dtype=object)[rng.permutation(labels)]


def simulate(spec: DatasetSpec) -> Iterator[SimulatedChunk]:
    """Yield the dataset in chunks of ``spec.chunk_ads`` ads (bounded memory at any scale)."""
    profiles = assign_profiles(spec)
    for start in range(0, spec.n_ads, spec.chunk_ads):
        stop = min(spec.n_ads, start + spec.chunk_ads)
        rng = np.random.default_rng([spec.seed, 1, start])
        yield _simulate_chunk(spec, start, [Profile(p) for p in profiles[start:stop]], rng)


def _lognormal(rng: np.random.Generator, median: float, sigma: float, size: int) -> np.ndarray:
    return rng.lognormal(math.log(median), sigma, size)


def _ad_parameters(profiles: np.ndarray, days: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = len(profiles)
    small = profiles == Profile.SMALL_NOISY
    budget = np.where(small, rng.uniform(3, 6, n), np.maximum(15.0, _lognormal(rng, 60, 0.5, n))).round(2)
    cpm = _lognormal(rng, 12.0, 0.2, n)
    expected_total = budget / cpm * 1000 * days
    # Lifetime impressions / audience: ~0.2 keeps frequency near 1.1, 5.5-8 pushes it past 4.
    pressure = np.where(profiles == Profile.SATURATING, rng.uniform(5.5, 8.0, n), rng.uniform(0.1, 0.3, n))
    fatigue = profiles == Profile.CREATIVE_FATIGUE
    new = profiles == Profile.NEW
    return {
        "budget": budget,
        "cpm": cpm,
        "ctr": np.clip(_lognormal(rng, 0.014, 0.3, n), 0.004, 0.05),
        "cvr": np.clip(_lognormal(rng, 0.03, 0.35, n), 0.005, 0.15),
        "quality": _lognormal(rng, 1.0, 0.6, n),
        "audience": expected_total / pressure,
        "onset": np.where(fatigue, rng.integers(days - 16, days - 6, n).clip(3), -1),
        "decay": np.where(fatigue, rng.uniform(0.12, 0.20, n), 0.0),
        "first": np.where(new, days - rng.integers(1, 3, n), 0),
        "stall": np.where(profiles == Profile.STALLING, rng.uniform(0.55, 0.75, n), 1.0),
    }


def _lifetime_frequency(cum_impressions: np.ndarray, audience: np.ndarray) -> np.ndarray:
    """Impressions per unique person when reach saturates as A(1 - exp(-I/A))."""
    x = cum_impressions / audience[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = np.where(x > 1e-9, x / -np.expm1(-x), 1.0)
    return np.maximum(freq, 1.0)


def _simulate_chunk(spec: DatasetSpec, start: int, profiles: list[Profile], rng: np.random.Generator) -> SimulatedChunk:
    p = _ad_parameters(np.array(profiles, dtype=object), spec.days, rng)
    n, d = len(profiles), spec.days
    day = np.arange(d)[None, :]
    live = day >= p["first"][:, None]
    since_onset = np.where(p["onset"][:, None] >= 0, np.maximum(0, day - p["onset"][:, None]), 0)
    wear = np.exp(-p["decay"][:, None] * since_onset)
    expected = p["budget"][:, None] / p["cpm"][:, None] * 1000 * live
    freq_expected = _lifetime_frequency(np.cumsum(expected, axis=1), p["audience"])
    freq_wear = np.exp(-0.05 * (freq_expected - 1))
    cpm = p["cpm"][:, None] * (1 + 0.25 * (1 - wear)) * (1 + 0.12 * (freq_expected - 1))
    cpm = cpm * rng.lognormal(0, 0.06, (n, d))
    delivery = rng.uniform(0.88, 1.0, (n, d)) * np.where(day >= d - 7, p["stall"][:, None], 1.0)
    impressions = rng.poisson(p["budget"][:, None] / cpm * 1000 * delivery * live)
    ctr = np.clip(p["ctr"][:, None] * wear * freq_wear * rng.lognormal(0, 0.08, (n, d)), 0, 1)
    clicks = rng.binomial(impressions, ctr)
    small = np.array([pr is Profile.SMALL_NOISY for pr in profiles])
    clicks[:, -1] = np.where(small & (rng.random(n) < 0.5), 0, clicks[:, -1])  # a noisy zero-click day
    conversions = rng.binomial(clicks, p["cvr"][:, None])
    frequency = _lifetime_frequency(np.cumsum(impressions, axis=1), p["audience"])
    daily_freq = 1 + 0.3 * (frequency - 1)
    pipeline, cash, deals = _deal_outcomes(conversions, p["quality"], rng) if spec.with_outcomes else (
        np.zeros(n), np.zeros(n), np.zeros(n, dtype=int))
    ids = [f"{spec.prefix}ad-{start + i:06d}" for i in range(n)]
    campaigns = [f"{spec.prefix}cmp-{(start + i) // spec.ads_per_campaign:05d}" for i in range(n)]
    return SimulatedChunk(
        ad_ids=ids, campaign_ids=campaigns, profiles=profiles, onset_index=p["onset"], first_index=p["first"],
        daily_budget=p["budget"], impressions=impressions, reach=np.rint(impressions / daily_freq).astype(int),
        frequency=np.where(impressions.cumsum(axis=1) > 0, frequency.round(3), 0.0), clicks=clicks,
        spend=(impressions * cpm / 1000).round(2), conversions=conversions,
        pipeline_value=pipeline, cash_revenue=cash, deals=deals,
    )


def _deal_outcomes(
    conversions: np.ndarray, quality: np.ndarray, rng: np.random.Generator, *, mean_step_days: float = 5.0,
    loss_per_step: float = 0.2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each conversion opens a deal that advances a stage every Exp(5 d) or is lost; credit its expected value."""
    n, d = conversions.shape
    flat = conversions.ravel()
    owner = np.repeat(np.arange(n * d), flat) // d
    age = (d - 1) - (np.repeat(np.arange(n * d), flat) % d) + rng.random(flat.sum())
    amount = rng.lognormal(np.log(150 * quality[owner]), 0.5)
    step_done = np.cumsum(rng.exponential(mean_step_days, (len(owner), _STAGE_STEPS)), axis=1) <= age[:, None]
    lost = (step_done & (rng.random(step_done.shape) < loss_per_step)).any(axis=1)
    stage = step_done.sum(axis=1)
    value = np.where(lost, 0.0, amount * _STAGE_PROB[stage])
    won = np.where(~lost & (stage == _STAGE_STEPS), amount, 0.0)
    return (np.bincount(owner, value, n).round(2), np.bincount(owner, won, n).round(2),
            np.bincount(owner, minlength=n))


def truth_of(chunk: SimulatedChunk, spec: DatasetSpec) -> dict[str, AdTruth]:
    out = {}
    for ad_id, profile, onset in zip(chunk.ad_ids, chunk.profiles, chunk.onset_index, strict=True):
        onset_day = spec.first_day + timedelta(days=int(onset)) if onset >= 0 else None
        out[ad_id] = AdTruth(profile, onset_day, profile in CRITICAL_PROFILES)
    return out


# ─── Writing ────────────────────────────────────────────────────────────────────────────────────────
def generate_ad_histories(spec: DatasetSpec | None = None, **overrides: Any) -> GeneratedDataset:
    """Write a seeded dataset into DATABASE_URL (one transaction per chunk) and return its ground truth."""
    spec = spec or DatasetSpec(**overrides)
    truth: dict[str, AdTruth] = {}
    rows = 0
    with session_scope() as session:
        ensure_tenant(session, spec.tenant_id)
    for chunk in simulate(spec):
        with session_scope() as session:
            if spec.replace:
                session.execute(delete(Ad).where(Ad.id.in_(chunk.ad_ids)))
            rows += write_chunk(session, chunk, spec)
        truth.update(truth_of(chunk, spec))
    return GeneratedDataset(spec=spec, truth=truth, metric_rows=rows)


def ensure_tenant(session: Session, tenant_id: str) -> None:
    if session.get(Tenant, tenant_id) is None:
        session.add(Tenant(id=tenant_id, name=tenant_id))
        session.flush()


def write_chunk(session: Session, chunk: SimulatedChunk, spec: DatasetSpec) -> int:
    """Insert the chunk's ads, daily metrics and sampler state; return the number of metric rows."""
    session.execute(insert(Ad), list(_ad_rows(chunk, spec)))
    rows = _metric_rows(chunk, spec)
    if is_postgresql(session):
        copy_rows(session, "ad_daily_metrics", _METRIC_COLUMNS, rows)
    else:
        session.execute(insert(AdDailyMetric), [dict(zip(_METRIC_COLUMNS, r, strict=True)) for r in rows])
    if spec.with_outcomes:
        session.execute(insert(AdSamplerState), list(_sampler_rows(chunk)))
    return len(rows)


def _ad_rows(chunk: SimulatedChunk, spec: DatasetSpec) -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC)
    for i, ad_id in enumerate(chunk.ad_ids):
        launched = datetime.combine(spec.first_day + timedelta(days=int(chunk.first_index[i])), time(8), UTC)
        yield {"id": ad_id, "tenant_id": spec.tenant_id, "campaign_id": chunk.campaign_ids[i], "name": ad_id,
               "status": "active", "daily_budget": float(chunk.daily_budget[i]), "launched_at": launched,
               "created_at": now}


_METRIC_COLUMNS = ("ad_id", "day", "impressions", "reach", "frequency", "clicks", "spend", "conversions", "budget")


def _metric_rows(chunk: SimulatedChunk, spec: DatasetSpec) -> list[tuple[Any, ...]]:
    ad_idx, day_idx = np.nonzero(np.arange(spec.days)[None, :] >= chunk.first_index[:, None])
    days = [spec.first_day + timedelta(days=k) for k in range(spec.days)]
    return list(zip(
        [chunk.ad_ids[i] for i in ad_idx], [days[k] for k in day_idx],
        chunk.impressions[ad_idx, day_idx].tolist(), chunk.reach[ad_idx, day_idx].tolist(),
        chunk.frequency[ad_idx, day_idx].tolist(), chunk.clicks[ad_idx, day_idx].tolist(),
        chunk.spend[ad_idx, day_idx].tolist(), chunk.conversions[ad_idx, day_idx].tolist(),
        chunk.daily_budget[ad_idx].tolist(), strict=True,
    ))


def _sampler_rows(chunk: SimulatedChunk) -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC)
    for i, ad_id in enumerate(chunk.ad_ids):
        yield {"ad_id": ad_id, "pipeline_value": float(chunk.pipeline_value[i]),
               "cash_revenue": float(chunk.cash_revenue[i]), "conversions": int(chunk.conversions[i].sum()),
               "feedback_count": int(chunk.deals[i]), "updated_at": now}


def copy_rows(session: Session, table: str, columns: Iterable[str], rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL COPY inside the session's transaction: ~10x faster than INSERT for millions of rows."""
    raw: Any = session.connection().connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# ─── CSV import ─────────────────────────────────────────────────────────────────────────────────────
CSV_REQUIRED = ("date", "ad_id", "campaign_id", "impressions", "reach", "clicks", "spend", "conversions")
CSV_OPTIONAL = ("frequency", "budget")


@dataclass(frozen=True)
class CsvImportResult:
    rows: int
    ads_created: int
    ads: int
    first_day: date | None
    last_day: date | None


def import_metrics_csv(source: str | Path | TextIO, *, tenant_id: str = "default") -> CsvImportResult:
    """Load a daily export (``date, ad_id, campaign_id, impressions, reach, clicks, spend, conversions``,
    optional ``frequency`` and ``budget``) into ``ads`` and ``ad_daily_metrics``; re-importing a day updates it.

    Bad input fails with InvalidPayload naming the line and the column; nothing is written then.
    """
    if isinstance(source, str | Path):
        with open(source, newline="", encoding="utf-8-sig") as handle:
            records = _read_csv(handle)
    else:
        records = _read_csv(source)
    if not records:
        return CsvImportResult(0, 0, 0, None, None)
    with session_scope() as session:
        ensure_tenant(session, tenant_id)
        created = _ensure_ads(session, records, tenant_id)
        _upsert_metrics(session, records)
    days = [r["day"] for r in records]
    return CsvImportResult(len(records), created, len({r["ad_id"] for r in records}), min(days), max(days))


def _read_csv(handle: TextIO | io.StringIO) -> list[dict[str, Any]]:
    reader = csv.DictReader(handle)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise InvalidPayload(f"CSV header: missing column(s) {', '.join(missing)}; expected {', '.join(CSV_REQUIRED)}")
    reader.fieldnames = header
    return [_parse_record(raw, line) for line, raw in enumerate(reader, start=2)]


def _parse_record(raw: dict[str, str], line: int) -> dict[str, Any]:
    def number(column: str, kind: type, required: bool = True) -> Any:
        text = (raw.get(column) or "").strip().replace(",", "")
        if not text:
            if required:
                raise InvalidPayload(f"CSV line {line}: column {column!r} is empty; expected a number")
            return None
        try:
            value = kind(float(text)) if kind is int else kind(text)
        except ValueError:
            raise InvalidPayload(f"CSV line {line}: column {column!r} = {text!r} is not a number") from None
        if value < 0:
            raise InvalidPayload(f"CSV line {line}: column {column!r} = {value} must be >= 0")
        return value

    try:
        day = date.fromisoformat((raw.get("date") or "").strip())
    except ValueError:
        raise InvalidPayload(f"CSV line {line}: column 'date' = {raw.get('date')!r} is not YYYY-MM-DD") from None
    ad_id, campaign_id = (raw.get("ad_id") or "").strip(), (raw.get("campaign_id") or "").strip()
    if not ad_id or not campaign_id:
        raise InvalidPayload(f"CSV line {line}: ad_id and campaign_id must not be empty")
    record = {"ad_id": ad_id, "campaign_id": campaign_id, "day": day,
              "impressions": number("impressions", int), "reach": number("reach", int, required=False),
              "clicks": number("clicks", int), "spend": number("spend", float),
              "conversions": number("conversions", int), "frequency": number("frequency", float, required=False),
              "budget": number("budget", float, required=False)}
    if record["clicks"] > record["impressions"]:
        raise InvalidPayload(
            f"CSV line {line}: clicks ({record['clicks']}) exceed impressions ({record['impressions']})")
    return record


def _ensure_ads(session: Session, records: list[dict[str, Any]], tenant_id: str) -> int:
    first: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r["day"]):
        first.setdefault(record["ad_id"], record)
    existing = set(session.scalars(select(Ad.id).where(Ad.id.in_(list(first)))))
    new = [
        {"id": ad_id, "tenant_id": tenant_id, "campaign_id": r["campaign_id"], "name": ad_id, "status": "active",
         "daily_budget": float(r["budget"] if r["budget"] is not None else _median_spend(records, ad_id)),
         "launched_at": datetime.combine(r["day"], time(0), UTC), "created_at": datetime.now(UTC)}
        for ad_id, r in first.items() if ad_id not in existing
    ]
    if new:
        session.execute(insert(Ad), new)
    return len(new)


def _median_spend(records: list[dict[str, Any]], ad_id: str) -> float:
    return float(np.median([r["spend"] for r in records if r["ad_id"] == ad_id]))


def _upsert_metrics(session: Session, records: list[dict[str, Any]]) -> None:
    columns = [c for c in _METRIC_COLUMNS if c not in ("ad_id", "day")]
    stmt = dialect_insert(session, AdDailyMetric)
    stmt = stmt.on_conflict_do_update(
        index_elements=["ad_id", "day"], set_={c: getattr(stmt.excluded, c) for c in columns}
    )
    rows = [{c: r[c] for c in _METRIC_COLUMNS} for r in records]
    session.execute(stmt, rows)




# ─── Export for the metrics import ──────────────────────────────────────────────────────────────────
EXPORT_COLUMNS = ("date", "ad_id", "campaign_id", "impressions", "reach", "frequency", "clicks", "spend",
                  "conversions", "budget")


def export_metrics_csv(spec: DatasetSpec, path: str | Path) -> GeneratedDataset:
    """Write the dataset's daily rows as a CSV in the project's column names (what ``geminivideo metrics
    import`` reads), chunk by chunk; return the ground truth. Outcomes are not metrics: see ``write_outcomes``."""
    truth: dict[str, AdTruth] = {}
    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(EXPORT_COLUMNS)
        for chunk in simulate(spec):
            campaign = dict(zip(chunk.ad_ids, chunk.campaign_ids, strict=True))
            for ad_id, day, impressions, reach, frequency, clicks, spend, conversions, budget in _metric_rows(
                    chunk, spec):
                writer.writerow((day.isoformat(), ad_id, campaign[ad_id], impressions, reach, frequency, clicks,
                                 spend, conversions, budget))
                rows += 1
            truth.update(truth_of(chunk, spec))
    return GeneratedDataset(spec=spec, truth=truth, metric_rows=rows)


def write_outcomes(spec: DatasetSpec) -> int:
    """Store the dataset's credited pipeline (``ad_sampler_state``) for ads that exist, as the webhook pipeline
    would have; returns the number of ads written."""
    written = 0
    for chunk in simulate(spec):
        with session_scope() as session:
            existing = set(session.scalars(select(Ad.id).where(Ad.id.in_(chunk.ad_ids))))
            session.execute(delete(AdSamplerState).where(AdSamplerState.ad_id.in_(chunk.ad_ids)))
            state = [r for r in _sampler_rows(chunk) if r["ad_id"] in existing]
            if state:
                session.execute(insert(AdSamplerState), state)
            written += len(state)
    return written


def delete_ads(ad_ids: Sequence[str]) -> None:
    """Remove ads and everything that cascades from them (a demo re-run starts from clean histories)."""
    with session_scope() as session:
        for start in range(0, len(ad_ids), 1000):
            session.execute(delete(Ad).where(Ad.id.in_(list(ad_ids[start:start + 1000]))))
