"""Meta (Facebook/Instagram) Marketing API adapter, on Meta's official SDK ``facebook-business``.

The SDK's ``FacebookAdsApi.call`` is the transport: it builds Graph URLs (``FacebookSession.GRAPH``, set from
``META_GRAPH_URL`` so tests can point it at a stand-in on loopback), encodes parameters, and turns error
bodies into ``FacebookRequestError`` with Meta's fields and the response headers. The SDK's object layer
(``AdAccount.get_insights`` cursors) is not used because it hides the usage headers this adapter paces itself by.

- **Insights**: ``GET act_<id>/insights`` with ``level=ad, time_increment=1`` and a ``time_range``, one row per ad
  per day, following ``paging.cursors.after`` while ``paging.next`` is present. Ranges longer than
  ``META_ASYNC_AFTER_DAYS`` go through the asynchronous report: ``POST act_<id>/insights`` -> ``report_run_id``,
  poll ``async_status`` until "Job Completed" ("Job Failed"/"Job Skipped" raise ``ReportJobFailed`` with Meta's
  ``error_*`` fields), then page ``<report_run_id>/insights``.
- **Throttling**: every answer's ``X-Business-Use-Case-Usage``, ``X-Ad-Account-Usage``, ``X-FB-Ads-Insights-Throttle``
  and ``X-App-Usage`` headers give a utilisation; at 75 % calls are spaced out, at 90 % more so. Error codes
  4, 17, 32, 613 and 80000-80099 are rate limits: a short wait (up to ``META_THROTTLE_WAIT_S``, or Meta's
  ``estimated_time_to_regain_access``) is slept here and the call repeated; a longer one raises ``RateLimited``
  and the task reschedules itself.
- **Errors**: code 190 (and 102) is an expired or invalid token: ``PlatformAuthError``, permanent, saying so.
  Codes 1, 2, ``is_transient`` and HTTP 5xx are transient; anything else is ``AdPlatformRejected`` with Meta's
  message.
- **Changes**: read before write. Pause/resume reads the ad's ``status`` and posts ``status=PAUSED``/``ACTIVE``
  only when it differs; a budget change reads the ad's ad set and posts ``daily_budget`` in the account
  currency's minor units only when it differs. A retried execution therefore never applies twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from geminivideo.config import Settings, get_settings
from geminivideo.errors import DependencyUnavailable, TransientError
from geminivideo.ml.platforms.base import ChangeRequest, PlatformAuthError, RateLimited, ReportJobFailed
from geminivideo.ml.platforms.client import AdPlatformRejected

log = logging.getLogger(__name__)

INSIGHT_FIELDS = ("ad_id", "ad_name", "adset_id", "campaign_id", "date_start", "date_stop", "impressions", "reach",
                  "frequency", "inline_link_clicks", "spend", "actions")
# Action types counted as the project's "conversions" (Ads Manager's "Results" for the usual objectives).
CONVERSION_ACTIONS = frozenset({"purchase", "lead", "complete_registration", "offsite_conversion.fb_pixel_purchase",
                                "offsite_conversion.fb_pixel_lead", "onsite_conversion.lead_grouped"})
# Currencies Meta counts in whole units (offset 1); every other currency's minor unit is 1/100.
WHOLE_UNIT_CURRENCIES = frozenset({"CLP", "COP", "CRC", "HUF", "ISK", "IDR", "JPY", "KRW", "PYG", "TWD", "VND"})
THROTTLE_CODES = frozenset({4, 17, 32, 613})
AUTH_CODES = frozenset({102, 190})
PAGE_LIMIT = 500
INLINE_RETRIES = 3
REPORT_FIELDS = ("async_status", "async_percent_completion", "error_code", "error_subcode", "error_message",
                 "error_user_title", "error_user_msg")


# ─── Usage headers and pacing ───────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class Usage:
    """The highest utilisation (percent) any usage header reports, and Meta's wait before access returns."""

    pct: float = 0.0
    regain_s: float = 0.0


def _header_json(headers: Mapping[str, str], name: str) -> Any:
    raw = next((v for k, v in headers.items() if k.lower() == name), None)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        log.warning("meta: unreadable %s header %r", name, raw[:200])
        return None


def _num(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def read_usage(headers: Mapping[str, str]) -> Usage:
    pct, regain = 0.0, 0.0
    business = _header_json(headers, "x-business-use-case-usage")
    for entries in (business.values() if isinstance(business, dict) else []):
        for entry in entries if isinstance(entries, list) else []:
            pct = max(pct, *(_num(entry.get(k)) for k in ("call_count", "total_cputime", "total_time")))
            regain = max(regain, _num(entry.get("estimated_time_to_regain_access")) * 60)  # minutes
    account = _header_json(headers, "x-ad-account-usage")
    if isinstance(account, dict):
        pct = max(pct, _num(account.get("acc_id_util_pct")))
        if _num(account.get("acc_id_util_pct")) >= 100:
            regain = max(regain, _num(account.get("reset_time_duration")))
    for name, keys in (("x-fb-ads-insights-throttle", ("app_id_util_pct", "acc_id_util_pct")),
                       ("x-app-usage", ("call_count", "total_cputime", "total_time"))):
        values = _header_json(headers, name)
        if isinstance(values, dict):
            pct = max(pct, *(_num(values.get(k)) for k in keys))
    return Usage(pct, regain)


@dataclass
class Pacer:
    """Spaces calls out as utilisation climbs; counts what it did for the sync's result."""

    wait_s: float
    sleep: Callable[[float], None] = time.sleep
    slept_s: float = 0.0
    max_usage_pct: float = 0.0
    throttled: int = 0
    calls: int = 0

    def after(self, usage: Usage) -> None:
        self.calls += 1
        self.max_usage_pct = max(self.max_usage_pct, usage.pct)
        if usage.pct >= 90:
            self.pause(self.wait_s * 0.25)
        elif usage.pct >= 75:
            self.pause(self.wait_s * 0.05)

    def pause(self, seconds: float) -> None:
        if seconds > 0:
            self.slept_s += seconds
            self.sleep(seconds)

    def summary(self) -> dict[str, Any]:
        return {"calls": self.calls, "throttled": self.throttled, "slept_s": round(self.slept_s, 3),
                "max_usage_pct": self.max_usage_pct}


# ─── Errors ─────────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class MetaError:
    """Meta's error fields, as one readable line."""

    code: int
    subcode: int | None
    type: str
    message: str
    http_status: int
    user_message: str = ""
    fbtrace_id: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        sub = f", subcode {self.subcode}" if self.subcode else ""
        user = f"; {self.user_message}" if self.user_message else ""
        trace = f" [fbtrace_id {self.fbtrace_id}]" if self.fbtrace_id else ""
        return f"code {self.code}{sub}, {self.type or 'error'}, HTTP {self.http_status}: {self.message}{user}{trace}"


def classify(exc: Any, wait_s: float) -> Exception:
    """The error of this package for a ``FacebookRequestError``."""
    body = exc.body() if isinstance(exc.body(), dict) else {}
    raw: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    error = MetaError(code=int(exc.api_error_code() or 0), subcode=exc.api_error_subcode(),
                      type=str(exc.api_error_type() or ""), message=str(exc.api_error_message() or exc.get_message()),
                      http_status=int(exc.http_status() or 0), user_message=str(raw.get("error_user_msg") or ""),
                      fbtrace_id=str(raw.get("fbtrace_id") or ""), fields=raw)
    text = error.describe()
    if error.code in AUTH_CODES:
        return PlatformAuthError(f"Meta access token expired or invalid ({text}); renew META_ACCESS_TOKEN "
                                 "(or META_ACCESS_TOKEN_FILE) with a token that has ads_read/ads_management")
    if error.code in THROTTLE_CODES or 80000 <= error.code < 80100:
        usage = read_usage(exc.http_headers() or {})
        return RateLimited(f"Meta rate limit ({text})", wait_s=max(usage.regain_s, wait_s))
    if error.code in (1, 2) or exc.api_transient_error() or error.http_status >= 500:
        return TransientError(f"Meta API temporarily failed ({text})")
    if error.code == 10 or 200 <= error.code < 300:
        return PlatformAuthError(f"Meta refused for lack of permission ({text}); grant ads_management to the token")
    return AdPlatformRejected(f"Meta refused the request ({text})")


# ─── Transport ──────────────────────────────────────────────────────────────────────────────────────
class MetaGraph:
    """Graph API calls through the SDK, paced by usage headers; errors mapped to this package's tree."""

    def __init__(self, token: str, *, version: str, graph_url: str, timeout_s: float, throttle_wait_s: float,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        from facebook_business.api import FacebookAdsApi, FacebookSession

        session = FacebookSession(access_token=token, timeout=timeout_s)
        session.GRAPH = graph_url.rstrip("/")  # an instance attribute: other sessions keep graph.facebook.com
        self._api = FacebookAdsApi(session, api_version=version)
        self.pacer = Pacer(throttle_wait_s, sleep)

    def request(self, method: str, path: tuple[str, ...], params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        import requests
        from facebook_business.exceptions import FacebookRequestError

        for attempt in range(INLINE_RETRIES + 1):
            try:
                response = self._api.call(method, path, params=dict(params or {}))
            except FacebookRequestError as exc:
                error = classify(exc, self.pacer.wait_s)
                if isinstance(error, RateLimited):
                    self.pacer.throttled += 1
                    if error.wait_s <= self.pacer.wait_s and attempt < INLINE_RETRIES:
                        log.warning("meta: %s; waiting %.1f s", error, error.wait_s)
                        self.pacer.pause(error.wait_s)
                        continue
                raise error from None
            except requests.RequestException as exc:
                raise DependencyUnavailable(f"Meta Graph API {method} /{'/'.join(path)} unreachable: {exc}") from None
            self.pacer.after(read_usage(response.headers() or {}))
            body = response.json()
            return body if isinstance(body, dict) else {"data": body}
        raise AssertionError("unreachable")


# ─── Adapter ────────────────────────────────────────────────────────────────────────────────────────
def account_path(account_id: str) -> str:
    account_id = account_id.strip()
    return account_id if account_id.startswith("act_") else f"act_{account_id}"


def conversions(actions: Any) -> int:
    if not isinstance(actions, list):
        return 0
    return int(sum(_num(a.get("value")) for a in actions
                   if isinstance(a, dict) and a.get("action_type") in CONVERSION_ACTIONS))


def insight_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """One insights row in the metrics import's column names (Meta omits zero counters: they default to 0)."""
    return {"ad_id": row.get("ad_id"), "ad_name": row.get("ad_name"), "campaign_id": row.get("campaign_id"),
            "day": row.get("date_start"), "day_end": row.get("date_stop"), "impressions": row.get("impressions", 0),
            "reach": row.get("reach"), "frequency": row.get("frequency"),
            "clicks": row.get("inline_link_clicks", 0), "spend": row.get("spend", 0),
            "conversions": conversions(row.get("actions"))}


def to_minor_units(amount: float, currency: str) -> int:
    return round(amount) if currency.upper() in WHOLE_UNIT_CURRENCIES else round(amount * 100)


class MetaAds:
    """The Meta adapter (``AdPlatform``)."""

    name = "meta"

    def __init__(self, graph: MetaGraph, *, async_after_days: int, poll_interval_s: float,
                 poll_timeout_s: float = 25 * 60) -> None:
        self.graph = graph
        self.async_after_days = async_after_days
        self.poll_interval_s = poll_interval_s
        self.poll_timeout_s = poll_timeout_s
        self._currencies: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> MetaAds:
        settings = settings or get_settings()
        if settings.meta_access_token is None or not settings.meta_access_token.get_secret_value():
            raise PlatformAuthError("META_ACCESS_TOKEN (or META_ACCESS_TOKEN_FILE) is not set: Meta cannot be reached")
        graph = MetaGraph(settings.meta_access_token.get_secret_value(), version=settings.meta_api_version,
                          graph_url=settings.meta_graph_url, timeout_s=settings.meta_timeout_s,
                          throttle_wait_s=settings.meta_throttle_wait_s)
        return cls(graph, async_after_days=settings.meta_async_after_days,
                   poll_interval_s=settings.meta_poll_interval_s)

    # Metrics in
    def fetch_daily_metrics(self, account_id: str, since: date, until: date) -> Iterator[list[dict[str, Any]]]:
        account = account_path(account_id)
        params = {"level": "ad", "time_increment": 1, "fields": ",".join(INSIGHT_FIELDS), "limit": PAGE_LIMIT,
                  "time_range": {"since": since.isoformat(), "until": until.isoformat()}}
        if (until - since).days + 1 > self.async_after_days:
            run_id = self._finished_report(account, params)
            yield from self._pages((run_id, "insights"), {"limit": PAGE_LIMIT})
        else:
            yield from self._pages((account, "insights"), params)

    def _pages(self, path: tuple[str, ...], params: Mapping[str, Any]) -> Iterator[list[dict[str, Any]]]:
        after: str | None = None
        while True:
            body = self.graph.request("GET", path, {**params, **({"after": after} if after else {})})
            yield [insight_record(r) for r in body.get("data") or [] if isinstance(r, dict)]
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:
                return

    def _finished_report(self, account: str, params: Mapping[str, Any]) -> str:
        job = self.graph.request("POST", (account, "insights"), params)
        run_id = str(job.get("report_run_id") or job.get("id") or "")
        if not run_id:
            raise TransientError(f"Meta answered the insights job for {account} without a report_run_id: {job}")
        deadline = time.monotonic() + self.poll_timeout_s
        while True:
            report = self.graph.request("GET", (run_id,), {"fields": ",".join(REPORT_FIELDS)})
            status = str(report.get("async_status") or "")
            if status == "Job Completed":
                return run_id
            if status in ("Job Failed", "Job Skipped"):
                fields = {k: report.get(k) for k in REPORT_FIELDS if report.get(k) is not None}
                raise ReportJobFailed(f"Meta report job {run_id} for {account} ended {status!r}: {json.dumps(fields)}")
            if time.monotonic() > deadline:
                raise TransientError(f"Meta report job {run_id} for {account} still {status!r} "
                                     f"({report.get('async_percent_completion')} %) after {self.poll_timeout_s:.0f} s")
            time.sleep(self.poll_interval_s)

    # Changes out
    def apply_change(self, change: ChangeRequest) -> dict[str, Any]:
        if change.kind in ("pause", "resume"):
            return self._set_status(change.ad_id, "PAUSED" if change.kind == "pause" else "ACTIVE")
        if change.amount is None or change.amount < 0:
            raise AdPlatformRejected(f"a budget change for ad {change.ad_id} needs an amount >= 0, got {change.amount}")
        return self._set_budget(change.ad_id, change.amount)

    def _set_status(self, ad_id: str, target: str) -> dict[str, Any]:
        before = self.graph.request("GET", (ad_id,), {"fields": "id,status,effective_status,adset_id"})
        outcome: dict[str, Any] = {"platform": self.name, "object": ad_id, "read": before}
        if str(before.get("status") or "").upper() == target:
            return {**outcome, "already_applied": True, "status": target}
        answer = self.graph.request("POST", (ad_id,), {"status": target})
        return {**outcome, "already_applied": False, "sent": {"status": target}, "response": answer}

    def _set_budget(self, ad_id: str, amount: float) -> dict[str, Any]:
        ad = self.graph.request("GET", (ad_id,), {"fields": "id,adset_id"})
        adset_id = str(ad.get("adset_id") or "")
        if not adset_id:
            raise AdPlatformRejected(f"Meta returned no ad set for ad {ad_id}; cannot change its budget")
        adset = self.graph.request("GET", (adset_id,), {"fields": "id,daily_budget,account_id"})
        if not _num(adset.get("daily_budget")):
            raise AdPlatformRejected(f"ad set {adset_id} of ad {ad_id} has no daily budget (lifetime budget or "
                                     "campaign budget optimisation): change the budget where it is set")
        currency = self._currency(str(adset.get("account_id") or ""))
        minor = to_minor_units(amount, currency)
        outcome: dict[str, Any] = {"platform": self.name, "object": adset_id, "ad_id": ad_id, "currency": currency,
                                   "read": adset}
        if int(_num(adset.get("daily_budget"))) == minor:
            return {**outcome, "already_applied": True, "daily_budget": minor}
        answer = self.graph.request("POST", (adset_id,), {"daily_budget": minor})
        return {**outcome, "already_applied": False, "sent": {"daily_budget": minor}, "response": answer}

    def _currency(self, account_id: str) -> str:
        if not account_id:
            return "USD"
        if account_id not in self._currencies:
            body = self.graph.request("GET", (account_path(account_id),), {"fields": "currency"})
            self._currencies[account_id] = str(body.get("currency") or "USD")
        return self._currencies[account_id]
