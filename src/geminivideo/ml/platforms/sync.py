"""Daily metrics from the ad platforms into ``ad_daily_metrics`` (the ``sync_ad_metrics`` beat task's body).

Each run re-reads the last ``META_SYNC_DAYS`` days of every account in ``META_AD_ACCOUNTS`` (``act_1:tenant``,
tenant ``default`` when omitted), so late corrections replace earlier numbers. Every page is imported as it
arrives through the metrics import (upsert by ad and day, unknown ads created), so a sync stopped by a rate
limit keeps what it read and the rescheduled run writes nothing twice.

Outcome per account: ``synced``, ``rate_limited`` (the task reschedules those accounts after Meta's wait),
``retry`` (a transient failure, such as a report job that ended "Job Failed", retried with backoff) or
``failed`` (a permanent refusal, recorded with Meta's message). An expired token fails the whole run: every
account shares it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from geminivideo.config import get_settings
from geminivideo.errors import PermanentError, TransientError
from geminivideo.ml.platforms.base import AdPlatform, PlatformAuthError, RateLimited
from geminivideo.ml.platforms.metrics_import import import_records

log = logging.getLogger(__name__)


@dataclass
class AccountOutcome:
    account: str
    tenant_id: str
    status: str = "synced"
    pages: int = 0
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    bad_rows: int = 0
    ads_created: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    wait_s: float = 0.0


def parse_accounts(entries: Sequence[str]) -> list[tuple[str, str]]:
    """``["act_1:tenant-a", "2"]`` -> ``[("act_1", "tenant-a"), ("act_2", "default")]``."""
    accounts = []
    for entry in entries:
        account, _, tenant = entry.partition(":")
        account = account.strip()
        if not account.removeprefix("act_").isdigit():
            raise PermanentError(f"META_AD_ACCOUNTS: {entry!r} is not an ad account id (act_<digits>[:tenant])")
        accounts.append((account if account.startswith("act_") else f"act_{account}", tenant.strip() or "default"))
    return accounts


def sync_account(platform: AdPlatform, account: str, tenant_id: str, since: date, until: date) -> AccountOutcome:
    outcome = AccountOutcome(account, tenant_id)
    try:
        for page in platform.fetch_daily_metrics(account, since, until):
            _import_page(outcome, page)
    except PlatformAuthError:
        raise
    except RateLimited as exc:
        outcome.status, outcome.error, outcome.wait_s = "rate_limited", str(exc), exc.wait_s
    except TransientError as exc:
        outcome.status, outcome.error = "retry", f"{type(exc).__name__}: {exc}"
    except PermanentError as exc:
        outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
    if outcome.error:
        log.warning("sync %s (%s): %s", account, outcome.status, outcome.error)
    return outcome


def _import_page(outcome: AccountOutcome, page: list[dict[str, Any]]) -> None:
    outcome.pages += 1
    if not page:
        return
    # A malformed row from the platform is reported, not allowed to block the account's other rows.
    report = import_records(page, outcome.tenant_id, skip_bad_rows=True, source=f"{outcome.account}")
    outcome.rows += report.rows_imported
    outcome.inserted += report.inserted
    outcome.updated += report.updated
    outcome.unchanged += report.unchanged
    outcome.bad_rows += report.bad_rows
    outcome.ads_created += report.ads_created
    outcome.errors.extend({"page": outcome.pages, "row": e.line, "reason": e.reason} for e in report.errors[:20])


def sync_ad_metrics(
    platform: AdPlatform | None = None, *, accounts: Sequence[str] | None = None, days: int | None = None,
    today: date | None = None,
) -> dict[str, Any]:
    """Sync every configured account (or ``accounts``); the dict lists each account's outcome."""
    settings = get_settings()
    entries = list(accounts) if accounts is not None else settings.meta_ad_accounts
    if not entries:
        return {"accounts": [], "rows": 0, "note": "META_AD_ACCOUNTS is not set: nothing to sync"}
    targets = parse_accounts(entries)
    if platform is None:
        from geminivideo.ml.platforms.meta import MetaAds

        platform = MetaAds.from_settings(settings)
    until = today or datetime.now(UTC).date()
    since = until - timedelta(days=(days or settings.meta_sync_days) - 1)
    outcomes = [sync_account(platform, account, tenant, since, until) for account, tenant in targets]
    pacer = getattr(getattr(platform, "graph", None), "pacer", None)
    return {
        "platform": platform.name, "since": since.isoformat(), "until": until.isoformat(),
        "rows": sum(o.rows for o in outcomes), "accounts": [asdict(o) for o in outcomes],
        "reschedule": [_entry(o) for o in outcomes if o.status in ("rate_limited", "retry")],
        "wait_s": max((o.wait_s for o in outcomes), default=0.0),
        "pacing": pacer.summary() if pacer is not None else None,
    }


def _entry(outcome: AccountOutcome) -> str:
    return f"{outcome.account}:{outcome.tenant_id}"
