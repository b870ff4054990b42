"""The approval executor's ad-platform client, chosen by ``META_EXECUTE``.

``META_EXECUTE=false`` (the default) keeps record-only mode: every call is written to ``ad_platform_calls``
and every result says that nothing was sent to Meta. ``META_EXECUTE=true`` sends approved changes to Meta
through ``MetaAds.apply_change`` (read before write), records the call with Meta's answer, and lets the
executor map errors: ``PermanentError`` (Meta's refusal, an expired token) fails the change with Meta's
message, ``TransientError`` (rate limit, 5xx, network) puts it back for the next run.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from geminivideo.config import Settings, get_settings
from geminivideo.contracts import utcnow
from geminivideo.db.models.decisions import AdPlatformCall
from geminivideo.ml.platforms.base import AdPlatform, ChangeKind, ChangeRequest
from geminivideo.ml.platforms.client import ClientFactory, PlatformAd, RecordingAdPlatformClient

RECORD_ONLY = "META_EXECUTE=false: recorded only, nothing was sent to Meta"
EXECUTING = "META_EXECUTE=true: approved changes are sent to Meta"


class RecordOnlyClient(RecordingAdPlatformClient):
    """The recording client whose every answer says that it is record-only."""

    def _record(self, ad: PlatformAd, operation: str, params: dict[str, Any], change_id: int | None) -> dict[str, Any]:
        return {**super()._record(ad, operation, params, change_id), "mode": RECORD_ONLY}


class PlatformClient:
    """``AdPlatformClient`` over an ``AdPlatform`` adapter, recording each call with the platform's answer."""

    def __init__(self, platform: AdPlatform, session: Session) -> None:
        self.platform = platform
        self.name = platform.name
        self._session = session

    def pause_ad(self, ad: PlatformAd, *, change_id: int | None = None) -> dict[str, Any]:
        return self._apply(ad, "pause", None, change_id)

    def resume_ad(self, ad: PlatformAd, *, change_id: int | None = None) -> dict[str, Any]:
        return self._apply(ad, "resume", None, change_id)

    def set_daily_budget(self, ad: PlatformAd, amount: float, *, change_id: int | None = None) -> dict[str, Any]:
        return self._apply(ad, "budget", round(float(amount), 2), change_id)

    def _apply(self, ad: PlatformAd, kind: ChangeKind, amount: float | None, change_id: int | None) -> dict[str, Any]:
        response = self.platform.apply_change(ChangeRequest(kind, ad.ad_id, amount))
        params: dict[str, Any] = {"kind": kind} if amount is None else {"kind": kind, "daily_budget": amount}
        call = AdPlatformCall(change_id=change_id, tenant_id=ad.tenant_id, ad_id=ad.ad_id, campaign_id=ad.campaign_id,
                              operation="set_budget" if kind == "budget" else kind, params=params, response=response,
                              client=self.name, created_at=utcnow())
        self._session.add(call)
        self._session.flush()
        return {"ok": True, **response, "mode": EXECUTING, "call_id": call.id}


def client_factory(settings: Settings | None = None) -> tuple[ClientFactory, str]:
    """The executor's client factory for the current settings, and the mode line every result carries."""
    settings = settings or get_settings()
    if not settings.meta_execute:
        return RecordOnlyClient, RECORD_ONLY
    from geminivideo.ml.platforms.meta import MetaAds

    platform = MetaAds.from_settings(settings)
    return (lambda session: PlatformClient(platform, session)), EXECUTING
