"""Pure parts of attribution: fingerprint hashing and the IP + user-agent score."""

from __future__ import annotations

import pytest

from geminivideo.contracts import TrackClick
from geminivideo.ml.webhooks.attribution import IP_UA_MIN_MATCH, fingerprint_hash, ip_ua_score, ua_similarity

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
CHROME_NEXT = CHROME.replace("Chrome/120.0", "Chrome/121.0")
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; rv:121.0) Gecko/20100101 Firefox/121.0"


def test_fingerprint_hash_ignores_key_order() -> None:
    a = fingerprint_hash({"screen": "1920x1080", "tz": "Europe/Berlin", "lang": "de"})
    b = fingerprint_hash({"lang": "de", "tz": "Europe/Berlin", "screen": "1920x1080"})
    assert a == b and len(a) == 64
    assert a != fingerprint_hash({"lang": "en", "tz": "Europe/Berlin", "screen": "1920x1080"})


def test_only_same_ip_and_same_agent_reach_the_match_threshold() -> None:
    assert ip_ua_score("203.0.113.7", CHROME, "203.0.113.7", CHROME) == pytest.approx(0.7)
    assert ip_ua_score("203.0.113.7", CHROME, "203.0.113.7", CHROME) >= IP_UA_MIN_MATCH
    near = [
        ip_ua_score("203.0.113.7", CHROME, "203.0.113.8", CHROME),
        ip_ua_score("203.0.113.7", CHROME, "203.0.113.7", CHROME_NEXT),
        ip_ua_score("203.0.113.7", CHROME, "203.0.113.7", FIREFOX),
    ]
    assert all(0 < score < IP_UA_MIN_MATCH for score in near)
    assert ip_ua_score("203.0.113.7", CHROME, "198.51.100.7", CHROME) == 0
    assert ip_ua_score("2001:db8::1", CHROME, "2001:db8::2", CHROME) == pytest.approx(0.7 * 0.85)


def test_ua_similarity_is_symmetric_and_bounded() -> None:
    assert ua_similarity(CHROME, CHROME) == 1.0
    assert ua_similarity(CHROME, FIREFOX) == ua_similarity(FIREFOX, CHROME) < 1.0
    assert ua_similarity("", CHROME) == 0.0


def test_a_click_needs_an_identifier() -> None:
    with pytest.raises(ValueError, match="a click needs"):
        TrackClick(ad_id="ad-1", ip_address="203.0.113.7")
    with pytest.raises(ValueError, match="not both"):
        TrackClick(ad_id="ad-1", fingerprint={"a": 1}, fingerprint_hash="x")
    assert TrackClick(ad_id="ad-1", ip_address="203.0.113.7", user_agent=CHROME).ip_address == "203.0.113.7"
