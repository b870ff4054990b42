"""A small HubSpot CRM v3 client: read one deal's amount, stage and attribution properties.

``GET {HUBSPOT_API_BASE_URL}/crm/v3/objects/deals/{dealId}?properties=…`` with a bearer token (a
private-app or OAuth access token). HubSpot answers ``{"id", "properties": {name: string | null},
"createdAt", "updatedAt", "archived"}``; properties the portal does not define are simply absent.

Timeouts are bounded; connection errors, 429 and 5xx are retried a few times with backoff (honouring
``Retry-After``) and then raised as ``DependencyUnavailable`` so the Celery task retries later. A
refused token (401/403) is a configuration problem: ``CrmAccessDenied``, not retried.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from geminivideo.config import Settings
from geminivideo.errors import DependencyUnavailable, PermanentError, ProcessingFailed

DEAL_PROPERTIES = ("amount", "dealstage", "pipeline")
# Deal properties a portal may define to carry the click that produced the deal (see attribution.py).
ATTRIBUTION_PROPERTIES = ("click_id", "fbclid", "gclid", "fingerprint_hash", "ip_address", "user_agent")
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 10.0


class CrmAccessDenied(PermanentError):
    """HubSpot refused the access token: fix HUBSPOT_ACCESS_TOKEN or the app's scopes."""


@dataclass(frozen=True)
class CrmDeal:
    deal_id: str
    amount: float | None
    stage: str | None
    pipeline: str | None
    properties: dict[str, str | None] = field(default_factory=dict)

    def attribution(self) -> dict[str, str]:
        return {name: value for name in ATTRIBUTION_PROPERTIES if (value := self.properties.get(name))}


def _amount(raw: Any) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None  # a non-numeric amount in the CRM is treated as "no amount"
    return value if value >= 0 else None


def parse_deal(data: Any) -> CrmDeal:
    """Read HubSpot's deal object; raise DependencyUnavailable when the shape is not the documented one."""
    if not isinstance(data, dict) or not isinstance(data.get("properties"), dict):
        raise DependencyUnavailable("HubSpot CRM answered without a 'properties' object")
    props = {str(k): (None if v is None else str(v)) for k, v in data["properties"].items()}
    return CrmDeal(
        deal_id=str(data.get("id", "")), amount=_amount(props.get("amount")), stage=props.get("dealstage") or None,
        pipeline=props.get("pipeline") or None, properties=props,
    )


class HubSpotClient:
    """Synchronous CRM client; one per task run (or per process), closed after use."""

    def __init__(
        self, access_token: str, base_url: str, *, timeout_s: float = 5.0, max_attempts: int = 3,
        backoff_s: float = 0.5, transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout_s),
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            transport=transport,
        )
        self._max_attempts = max(1, max_attempts)
        self._backoff_s = backoff_s
        self._sleep = sleep

    def __enter__(self) -> HubSpotClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get_deal(self, deal_id: str) -> CrmDeal | None:
        """The deal, or None when HubSpot does not know it (404)."""
        params = {"properties": ",".join(DEAL_PROPERTIES + ATTRIBUTION_PROPERTIES)}
        response = self._get(f"/crm/v3/objects/deals/{quote(deal_id, safe='')}", params)
        if response.status_code == 404:
            return None
        try:
            return parse_deal(response.json())
        except ValueError:
            raise DependencyUnavailable("HubSpot CRM answered with a body that is not JSON") from None

    def _get(self, path: str, params: dict[str, str]) -> httpx.Response:
        last_problem = ""
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = self._http.get(path, params=params)
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                self._pause(attempt, None)
                continue
            if response.status_code in (401, 403):
                raise CrmAccessDenied(
                    f"HubSpot CRM refused the access token ({response.status_code}): check HUBSPOT_ACCESS_TOKEN "
                    "and that the app has the crm.objects.deals.read scope"
                )
            if response.status_code not in _RETRY_STATUSES:
                if response.status_code >= 400 and response.status_code != 404:
                    raise ProcessingFailed(
                        f"HubSpot CRM answered {response.status_code} for {path}: {response.text[:200]}"
                    )
                return response
            last_problem = f"HTTP {response.status_code}"
            self._pause(attempt, response.headers.get("Retry-After"))
        raise DependencyUnavailable(f"HubSpot CRM unavailable after {self._max_attempts} attempts ({last_problem})")

    def _pause(self, attempt: int, retry_after: str | None) -> None:
        if attempt >= self._max_attempts:
            return
        delay = self._backoff_s * 2 ** (attempt - 1)
        if retry_after:
            # An HTTP-date Retry-After is not a number: keep our own backoff then.
            with contextlib.suppress(ValueError):
                delay = min(MAX_RETRY_AFTER_S, max(delay, float(retry_after)))
        self._sleep(delay)


def client_from_settings(settings: Settings) -> HubSpotClient | None:
    """A client when HUBSPOT_ACCESS_TOKEN is set, else None (amounts then come from the tenant's average)."""
    if settings.hubspot_access_token is None or not settings.hubspot_access_token.get_secret_value():
        return None
    return HubSpotClient(settings.hubspot_access_token.get_secret_value(), settings.hubspot_api_base_url)
