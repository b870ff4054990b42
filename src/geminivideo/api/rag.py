"""Winner search: ``/api/ml/rag/search-winners`` (text), ``/api/ml/rag/similar/{ad_id}`` and ``/stats``.

Endpoints are plain ``def`` so FastAPI runs them in its thread pool: embedding a query and searching
FAISS are CPU work. The model and the index are loaded on first use and the index is reloaded when a
worker replaces the file (see ``geminivideo.ml.winners.index``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from geminivideo.api.auth import AdsRead, MetricsRead, ads_or_404, fleet_wide, tenant_or_404
from geminivideo.api.limits import RATE_LIMIT_RESPONSES, rate_limit
from geminivideo.ml.winners import service as winners
from geminivideo.ml.winners.creative_dna import AdFormat

router = APIRouter(prefix="/api/ml/rag", tags=["winners"])

K = Annotated[int, Query(ge=1, le=winners.MAX_K, description="how many winners to return")]
TenantFilter = Annotated[str | None, Query(min_length=1, max_length=128, description="only this tenant's winners")]
FormatFilter = Annotated[AdFormat | None, Query(description="only this aspect ratio")]


class WinnerSearchResponse(BaseModel):
    query: str | None = None
    ad_id: str | None = None
    k: int
    tenant_id: str | None = None
    format: str | None = None
    count: int
    results: list[winners.WinnerHit]


@router.get("/search-winners", dependencies=[rate_limit("ml")], responses=RATE_LIMIT_RESPONSES)
def search_winners(
    q: Annotated[str, Query(min_length=1, max_length=winners.MAX_QUERY_CHARS, description="a creative, in words")],
    principal: AdsRead,
    k: K = 10,
    tenant_id: TenantFilter = None,
    format: FormatFilter = None,
) -> WinnerSearchResponse:
    """Winners whose creative DNA is most similar to the text ``q`` (cosine similarity, best first)."""
    tenant_id = tenant_or_404(principal, tenant_id)
    fmt = format.value if format else None
    hits = winners.search(q, k=k, tenant_id=tenant_id, format=fmt)
    return WinnerSearchResponse(query=q, k=k, tenant_id=tenant_id, format=fmt, count=len(hits), results=hits)


@router.get("/similar/{ad_id}", dependencies=[rate_limit("ml")], responses=RATE_LIMIT_RESPONSES)
def similar_winners(
    ad_id: Annotated[str, Path(min_length=1, max_length=128)],
    principal: AdsRead,
    k: K = 10,
    tenant_id: TenantFilter = None,
    format: FormatFilter = None,
) -> WinnerSearchResponse:
    """Winners most similar to the creative DNA of ``ad_id`` (which need not be a winner itself)."""
    ads_or_404(principal, [ad_id])
    tenant_id = tenant_or_404(principal, tenant_id)
    fmt = format.value if format else None
    hits = winners.similar_to(ad_id, k=k, tenant_id=tenant_id, format=fmt)
    return WinnerSearchResponse(ad_id=ad_id, k=k, tenant_id=tenant_id, format=fmt, count=len(hits), results=hits)


@router.get("/stats")
def winner_index_stats(principal: MetricsRead) -> dict[str, Any]:
    """Vectors in the index, SQL entries (and whether they agree), per-tenant and per-format counts."""
    fleet_wide(principal)
    return winners.index_stats()
