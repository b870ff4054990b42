"""Three-layer attribution of a conversion to an ad click, and click tracking.

Layers, tried in order until one succeeds:

1. ``click_id``: the conversion's click id, fbclid or gclid equals a recorded click's (confidence 1.0).
2. ``fingerprint``: the same device fingerprint hash clicked within 7 days before the conversion (0.9).
3. ``ip_user_agent``: a click from the same IP address and user agent within 24 h before the
   conversion, scored up to 0.7 (a neighbouring address or a similar agent scores lower); only a
   score of 0.7 counts as a match, lower scores are reported but not used.

Windows are measured back from the conversion's own time (``occurredAt``), never from "now", so a
delayed or replayed webhook attributes exactly as a prompt one would. Every attempt, with the outcome
of each layer, is written to ``attribution_attempts``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, Table, insert, or_, select
from sqlalchemy.orm import Session

from geminivideo.contracts import TrackClick, utcnow
from geminivideo.db.models.webhooks import AttributionAttempt, ClickEvent

FINGERPRINT_WINDOW = timedelta(days=7)
IP_UA_WINDOW = timedelta(hours=24)
IP_UA_MAX_CONFIDENCE = 0.7
IP_UA_MIN_MATCH = 0.7
SAME_SUBNET_FACTOR = 0.85  # same /24 (IPv4) or /64 (IPv6): likely the same office or carrier, not certain
_CANDIDATE_LIMIT = 200
_UA_TOKEN = re.compile(r"[A-Za-z0-9_.]+(?:/[A-Za-z0-9_.]+)?")


@dataclass(frozen=True)
class Identifiers:
    """What a conversion carries that a click can be matched on."""

    occurred_at: datetime
    tenant_id: str | None = None
    click_id: str | None = None
    fbclid: str | None = None
    gclid: str | None = None
    fingerprint_hash: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None


@dataclass
class LayerOutcome:
    layer: str
    ran: bool
    matched: bool = False
    detail: str = ""
    ad_id: str | None = None
    click_event_id: int | None = None
    confidence: float | None = None
    candidates: int = 0


@dataclass
class Attribution:
    layers: list[LayerOutcome] = field(default_factory=list)

    @property
    def winner(self) -> LayerOutcome | None:
        return next((layer for layer in self.layers if layer.matched), None)

    def to_dict(self) -> dict[str, Any]:
        won = self.winner
        return {
            "attributed": won is not None,
            "layer": won.layer if won else None,
            "ad_id": won.ad_id if won else None,
            "confidence": won.confidence if won else None,
            "click_event_id": won.click_event_id if won else None,
            "layers": [asdict(layer) for layer in self.layers],
        }


def fingerprint_hash(components: Mapping[str, object]) -> str:
    """A stable hash of device fingerprint components (key order and whitespace do not matter)."""
    canonical = json.dumps(dict(components), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_click(session: Session, click: TrackClick) -> ClickEvent:
    fingerprint = click.fingerprint_hash or (fingerprint_hash(click.fingerprint) if click.fingerprint else None)
    utm = {k: v for k in ("source", "medium", "campaign", "content", "term") if (v := getattr(click, f"utm_{k}"))}
    row = ClickEvent(
        ad_id=click.ad_id, campaign_id=click.campaign_id, tenant_id=click.tenant_id, click_id=click.click_id,
        fbclid=click.fbclid, gclid=click.gclid, fingerprint_hash=fingerprint, ip_address=click.ip_address,
        user_agent=click.user_agent, ip_network=str(_network(click.ip_address)) if click.ip_address else None,
        utm=utm or None, clicked_at=click.timestamp or utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def _tenant_scope(query: Select[ClickEvent], tenant_id: str | None) -> Select[ClickEvent]:
    # A click recorded without a tenant may belong to anyone; one with a tenant only to that tenant.
    if tenant_id is None:
        return query
    return query.where(or_(ClickEvent.tenant_id.is_(None), ClickEvent.tenant_id == tenant_id))


def _click_id_layer(session: Session, ids: Identifiers) -> LayerOutcome:
    pairs = [(col, val) for col, val in ((ClickEvent.click_id, ids.click_id), (ClickEvent.fbclid, ids.fbclid),
                                           (ClickEvent.gclid, ids.gclid)) if val]
    if not pairs:
        return LayerOutcome("click_id", ran=False, detail="no click_id, fbclid or gclid on the conversion")
    query = select(ClickEvent).where(or_(*(col == val for col, val in pairs)))
    clicks = list(session.scalars(query.order_by(ClickEvent.clicked_at.desc()).limit(_CANDIDATE_LIMIT)))
    # Prefer the latest click at or before the conversion; a click id is exact, so a later one still counts.
    before = [c for c in clicks if c.clicked_at <= ids.occurred_at]
    if not clicks:
        return LayerOutcome("click_id", ran=True, detail="no recorded click has these ids")
    best = (before or clicks)[0]
    return LayerOutcome("click_id", ran=True, matched=True, ad_id=best.ad_id, click_event_id=best.id,
                        confidence=1.0, candidates=len(clicks), detail="exact click id match")


def _fingerprint_layer(session: Session, ids: Identifiers) -> LayerOutcome:
    if not ids.fingerprint_hash:
        return LayerOutcome("fingerprint", ran=False, detail="no fingerprint_hash on the conversion")
    start = ids.occurred_at - FINGERPRINT_WINDOW
    query = select(ClickEvent).where(
        ClickEvent.fingerprint_hash == ids.fingerprint_hash,
        ClickEvent.clicked_at >= start,
        ClickEvent.clicked_at <= ids.occurred_at,
    )
    best = session.scalars(_tenant_scope(query, ids.tenant_id).order_by(ClickEvent.clicked_at.desc()).limit(1)).first()
    if best is None:
        return LayerOutcome("fingerprint", ran=True, detail="no click with this fingerprint in the 7 days before")
    return LayerOutcome("fingerprint", ran=True, matched=True, ad_id=best.ad_id, click_event_id=best.id,
                        confidence=0.9, candidates=1, detail="fingerprint seen within 7 days")


def _network(ip: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The /24 (IPv4) or /64 (IPv6) around an address: what layer 3 looks up candidates by."""
    address = ipaddress.ip_address(ip)
    prefix = 24 if address.version == 4 else 64
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


def ua_similarity(a: str, b: str) -> float:
    """1.0 for the same user agent, else the Jaccard overlap of its product/version tokens."""
    if a == b:
        return 1.0
    left, right = set(_UA_TOKEN.findall(a)), set(_UA_TOKEN.findall(b))
    if not left or not right:
        return 0.0
    return len(left & right) / len(left | right)


def ip_ua_score(conv_ip: str, conv_ua: str, click_ip: str | None, click_ua: str | None) -> float:
    """Score of a click against a conversion's IP and user agent, at most 0.7 (both exactly equal)."""
    if not click_ip or not click_ua:
        return 0.0
    if ipaddress.ip_address(click_ip) == ipaddress.ip_address(conv_ip):
        ip_factor = 1.0
    elif ipaddress.ip_address(click_ip) in _network(conv_ip):
        ip_factor = SAME_SUBNET_FACTOR
    else:
        return 0.0
    return round(IP_UA_MAX_CONFIDENCE * ip_factor * ua_similarity(conv_ua, click_ua), 6)


def _ip_ua_layer(session: Session, ids: Identifiers) -> LayerOutcome:
    if not (ids.ip_address and ids.user_agent):
        return LayerOutcome("ip_user_agent", ran=False, detail="conversion lacks ip_address or user_agent")
    query = select(ClickEvent).where(
        ClickEvent.ip_network == str(_network(ids.ip_address)),
        ClickEvent.clicked_at >= ids.occurred_at - IP_UA_WINDOW,
        ClickEvent.clicked_at <= ids.occurred_at,
    )
    query = _tenant_scope(query, ids.tenant_id).order_by(ClickEvent.clicked_at.desc()).limit(_CANDIDATE_LIMIT)
    clicks = list(session.scalars(query))
    scored = [(ip_ua_score(ids.ip_address, ids.user_agent, c.ip_address, c.user_agent), c) for c in clicks]
    if not scored:
        return LayerOutcome("ip_user_agent", ran=True, detail="no click from this network in the 24 h before")
    score, best = max(scored, key=lambda pair: (pair[0], pair[1].clicked_at))
    matched = score >= IP_UA_MIN_MATCH - 1e-9
    detail = "same IP and user agent within 24 h" if matched else f"best score {score:.2f} is below {IP_UA_MIN_MATCH}"
    return LayerOutcome("ip_user_agent", ran=True, matched=matched, ad_id=best.ad_id if matched else None,
                        click_event_id=best.id if matched else None, confidence=score, candidates=len(clicks),
                        detail=detail)


_LAYERS = (("click_id", _click_id_layer), ("fingerprint", _fingerprint_layer), ("ip_user_agent", _ip_ua_layer))


def attribute(session: Session, ids: Identifiers) -> Attribution:
    """Run the layers in order; those after a match are listed as not run."""
    result = Attribution()
    for name, layer in _LAYERS:
        if result.winner is not None:
            result.layers.append(LayerOutcome(name, ran=False, detail="an earlier layer matched"))
            continue
        result.layers.append(layer(session, ids))
    return result


# Built once: the worker writes one attempt per conversion, and building the statement cost as much as running it.
_INSERT_ATTEMPT = insert(cast(Table, AttributionAttempt.__table__))


def record_attempt(session: Session, *, event_key: str, tenant_id: str, deal_id: str, ids: Identifiers,
                   attribution: Attribution) -> None:
    won = attribution.winner
    session.execute(_INSERT_ATTEMPT, {
        "event_key": event_key, "tenant_id": tenant_id, "deal_id": deal_id,
        "layers": [asdict(layer) for layer in attribution.layers], "layer": won.layer if won else None,
        "ad_id": won.ad_id if won else None, "click_event_id": won.click_event_id if won else None,
        "confidence": won.confidence if won else None, "conversion_at": ids.occurred_at, "created_at": utcnow(),
    })
