"""GET /api/ml/rag/{search-winners,similar/{ad_id},stats} on a real index, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geminivideo.api import create_app
from geminivideo.ml.winners import service as winners
from tests.integration.winners.conftest import CINEMATIC, REVIEW, UGC, Shop
from tests.support.env import applied


@pytest.fixture
def api() -> Iterator[TestClient]:
    with TestClient(create_app(), client=("127.0.0.1", 50000)) as client:
        yield client


@pytest.fixture
def indexed(shop_factory: Any, index_dir: Path) -> dict[str, str]:
    """Two tenants' winners, indexed by a rebuild (called directly: the worker path has its own tests)."""
    shop, other = shop_factory(), shop_factory()
    ads = {
        "ugc": shop.ad("ugc", spend=200, value=1000, dna=UGC),
        "review": shop.ad("review", spend=200, value=900, dna=REVIEW),
        "cinematic": shop.ad("cinematic", spend=200, value=700, dna=CINEMATIC),
        "loser": shop.ad("loser", spend=200, value=100, dna=REVIEW),
        "other": other.ad("ugc", spend=200, value=1000, dna=UGC),
        "tenant": shop.tenant_id,
        "other_tenant": other.tenant_id,
    }
    result = winners.index_all_winners()
    assert (result.added, result.total) == (4, 4)
    return ads


def test_text_search_ranks_by_meaning_with_dna_and_metrics(api: TestClient, indexed: dict[str, str]) -> None:
    response = api.get(
        "/api/ml/rag/search-winners", params={"q": "user-generated review, quick edits", "tenant_id": indexed["tenant"]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [hit["ad_id"] for hit in body["results"]] == [indexed["review"], indexed["ugc"], indexed["cinematic"]]
    top = body["results"][0]
    assert top["dna"] == {"hook_type": "user-generated review", "pacing": "quick edits", "format": "1:1"}
    assert top["metrics"] == {
        "impressions": 5000,
        "clicks": 100,
        "spend": 200.0,
        "pipeline_value": 900.0,
        "ctr": 0.02,
        "roas": 4.5,
    }
    scores = [hit["similarity"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] < scores[0] <= 1.0


def test_filters_by_tenant_format_and_k(api: TestClient, indexed: dict[str, str]) -> None:
    get = lambda **params: api.get("/api/ml/rag/search-winners", params={"q": "testimonial", **params}).json()  # noqa: E731
    vertical = get(format="9:16")
    assert {hit["ad_id"] for hit in vertical["results"]} == {indexed["ugc"], indexed["other"]}
    assert [hit["ad_id"] for hit in get(tenant_id=indexed["other_tenant"])["results"]] == [indexed["other"]]
    assert get(tenant_id=indexed["tenant"], k=2)["count"] == 2
    assert get(tenant_id="nobody")["results"] == []


def test_similar_excludes_the_ad_itself_and_works_for_non_winners(api: TestClient, indexed: dict[str, str]) -> None:
    response = api.get(f"/api/ml/rag/similar/{indexed['ugc']}", params={"tenant_id": indexed["tenant"]})
    assert response.status_code == 200, response.text
    assert [hit["ad_id"] for hit in response.json()["results"]] == [indexed["review"], indexed["cinematic"]]
    # The loser is not indexed, but its DNA (same as "review") still finds what won like it.
    loser = api.get(f"/api/ml/rag/similar/{indexed['loser']}", params={"tenant_id": indexed["tenant"], "k": 1}).json()
    assert [hit["ad_id"] for hit in loser["results"]] == [indexed["review"]]
    assert loser["results"][0]["similarity"] == pytest.approx(1.0, abs=1e-4)


def test_stats_agree_with_sql(api: TestClient, indexed: dict[str, str]) -> None:
    stats = api.get("/api/ml/rag/stats").json()
    assert stats["total_vectors"] == stats["entries"] == 4 and stats["in_sync"] is True
    assert stats["by_tenant"] == {indexed["tenant"]: 3, indexed["other_tenant"]: 1}
    assert stats["by_format"] == {"9:16": 2, "1:1": 1, "16:9": 1}
    assert stats["dimension"] == 384 and stats["file_size_bytes"] > 384 * 4 * 4


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/api/ml/rag/search-winners", {"q": "x", "k": 0}, 422, "k"),
        ("/api/ml/rag/search-winners", {"q": "x", "format": "4:3"}, 422, "format"),
        ("/api/ml/rag/search-winners", {"q": "   "}, 422, "search text is empty"),
        ("/api/ml/rag/search-winners", {}, 422, "q"),
        ("/api/ml/rag/similar/no-such-ad", {}, 404, "no such ad"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    api: TestClient, index_dir: Path, database_url: str, path: str, params: dict[str, Any], status: int, says: str
) -> None:
    response = api.get(path, params=params)
    assert response.status_code == status
    assert says in response.text


def test_an_ad_without_dna_is_a_404_naming_the_reason(api: TestClient, shop: Shop, index_dir: Path) -> None:
    ad_id = shop.ad("plain", spend=10, value=0)
    response = api.get(f"/api/ml/rag/similar/{ad_id}")
    assert response.status_code == 404 and "has no creative DNA" in response.text


def test_an_api_key_is_required_when_configured(api: TestClient, index_dir: Path) -> None:
    with applied({"API_KEYS": "secret-key", "API_AUTH": "on"}):
        assert api.get("/api/ml/rag/stats").status_code == 401
        assert api.get("/api/ml/rag/stats", headers={"X-API-Key": "secret-key"}).status_code == 200
