"""``POST /api/ml/metrics``: daily ad metrics as NDJSON (one object a line, at most 10,000 lines).

The same import as ``geminivideo metrics import`` (``geminivideo.ml.platforms.metrics_import``): upsert by (tenant, ad,
day), unknown ads created, every bad line reported by number; a body with bad lines imports nothing (422)
unless ``skip_bad_rows=true``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from geminivideo.api.auth import AdsWrite, tenant_or_404
from geminivideo.api.limits import RATE_LIMIT_RESPONSES, rate_limit
from geminivideo.ml.platforms.metrics_import import import_ndjson

MAX_ROWS = 10_000
MAX_BODY_BYTES = 10 * 1024 * 1024  # 10,000 rows of a wide Ads Manager export stay well under this

router = APIRouter()


@router.post("/api/ml/metrics", tags=["metrics"], dependencies=[rate_limit("ml")], responses=RATE_LIMIT_RESPONSES)
async def post_metrics(
    request: Request,
    tenant_id: Annotated[str, Query(min_length=1, max_length=128)],
    principal: AdsWrite,
    skip_bad_rows: bool = False,
) -> dict[str, Any]:
    """Import daily metrics (``ad_id, date, impressions, clicks, spend`` …, or Ads Manager names) for
    ``tenant_id`` (a tenant key imports into its own tenant only: another is a 404)."""
    tenant_or_404(principal, tenant_id)
    body = await _read_body(request)
    lines = sum(1 for line in body.splitlines() if line.strip())
    if lines > MAX_ROWS:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"{lines} rows in one request; send at most {MAX_ROWS} per request")
    report = await run_in_threadpool(import_ndjson, body, tenant_id, skip_bad_rows=skip_bad_rows)
    if report.status != "imported":
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"message": report.summary(), **report.as_dict()})
    return report.as_dict()


async def _read_body(request: Request) -> str:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"body over {MAX_BODY_BYTES} bytes; send at most {MAX_ROWS} rows per request")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"body is not UTF-8: {exc}") from None
