"""The object store's share of a host's cleanup: abort multipart uploads a killed task left unfinished.

A multipart upload is invisible until completed, but its parts take space (and money on AWS) until it is
aborted. An attempt aborts its own key's leftovers before it uploads again; this sweep catches the ones
no retry came back for: every upload under OUTPUT_URL and INDEX_URL older than CLEANUP_PARTIAL_AGE_S.
"""

from __future__ import annotations

import logging

from geminivideo.config import get_settings
from geminivideo.storage.transfer import abort_multipart_uploads
from geminivideo.storage.uri import allowed

log = logging.getLogger(__name__)


def stale_prefixes() -> list[tuple[str, str]]:
    settings = get_settings()
    found = []
    for name, url in (("OUTPUT_URL", settings.output_url), ("INDEX_URL", settings.index_url)):
        if url:
            uri = allowed(url, field=name)
            found.append((uri.bucket, uri.key))
    return found


def abort_stale_uploads(older_than_s: float | None = None) -> int:
    """Abort unfinished uploads older than ``older_than_s`` (default CLEANUP_PARTIAL_AGE_S); return how many."""
    age = get_settings().cleanup_partial_age_s if older_than_s is None else older_than_s
    aborted = 0
    for bucket, prefix in stale_prefixes():
        aborted += abort_multipart_uploads(bucket, prefix, older_than_s=age)
    if aborted:
        log.info("cleanup: aborted %d stale multipart uploads", aborted)
    return aborted
