"""The ad-platform client interface the approval executor calls, and its default implementation.

The default ``RecordingAdPlatformClient`` changes nothing outside this system: it writes each call to
``ad_platform_calls`` in the executor's transaction, so a call and the change's new status commit together.
A real client (Meta, Google Ads) implements the same three methods and raises ``AdPlatformRejected`` for a
refusal that another try will not change, or a ``TransientError`` for a timeout or rate limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from geminivideo.contracts import utcnow
from geminivideo.db.models.decisions import AdPlatformCall
from geminivideo.errors import PermanentError


class AdPlatformRejected(PermanentError):
    """The ad platform refused the change (ad deleted, budget below its minimum, no permission)."""


@dataclass(frozen=True)
class PlatformAd:
    """What a client needs to know about the ad it changes."""

    ad_id: str
    tenant_id: str
    campaign_id: str
    status: str
    daily_budget: float


class AdPlatformClient(Protocol):
    """One ad platform; each method returns the platform's answer as a JSON-able dict."""

    name: str

    def pause_ad(self, ad: PlatformAd, *, change_id: int | None = None) -> dict[str, Any]: ...

    def resume_ad(self, ad: PlatformAd, *, change_id: int | None = None) -> dict[str, Any]: ...

    def set_daily_budget(self, ad: PlatformAd, amount: float, *, change_id: int | None = None) -> dict[str, Any]: ...


ClientFactory = Callable[[Session], AdPlatformClient]


class RecordingAdPlatformClient:
    """Records every call in ``ad_platform_calls`` and reports success; reaches no platform."""

    name = "recording"

    def __init__(self, session: Session) -> None:
        self._session = session

    def pause_ad(self, ad: PlatformAd, *, change_id: int | None = None) -> dict[str, Any]:
        return self._record(ad, "pause", {"status": "paused"}, change_id)

    def resume_ad(self, ad: PlatformAd, *, change_id: int | None = None) -> dict[str, Any]:
        return self._record(ad, "resume", {"status": "active"}, change_id)

    def set_daily_budget(self, ad: PlatformAd, amount: float, *, change_id: int | None = None) -> dict[str, Any]:
        if amount < 0:
            raise AdPlatformRejected(f"daily budget for ad {ad.ad_id} must be >= 0, got {amount}")
        return self._record(ad, "set_budget", {"daily_budget": round(float(amount), 2)}, change_id)

    def _record(self, ad: PlatformAd, operation: str, params: dict[str, Any], change_id: int | None) -> dict[str, Any]:
        response = {"ok": True, "recorded_only": True, "operation": operation, **params}
        call = AdPlatformCall(
            change_id=change_id, tenant_id=ad.tenant_id, ad_id=ad.ad_id, campaign_id=ad.campaign_id,
            operation=operation, params=params, response=response, client=self.name, created_at=utcnow(),
        )
        self._session.add(call)
        self._session.flush()
        return {**response, "call_id": call.id}


def recording_client(session: Session) -> AdPlatformClient:
    """The default ClientFactory."""
    return RecordingAdPlatformClient(session)
