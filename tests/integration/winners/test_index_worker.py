"""auto_index_winners / auto_index_winner on a real ML worker, on SQLite and PostgreSQL.

Each test's worker consumes a queue of its own (tasks are sent there explicitly): a session ML worker
bound to the session's SQLite database may be consuming ``budget-optimization`` at the same time, and
must not take these tasks against the wrong database and index directory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Task
from sqlalchemy import func, select

from geminivideo import procs
from geminivideo.contracts import TaskStatus
from geminivideo.db.models.winners import WinnerIndexEntry
from geminivideo.db.session import session_scope
from geminivideo.errors import InvalidPayload, ModelUnavailable
from geminivideo.ml.tasks import auto_index_winner, auto_index_winners
from geminivideo.ml.winners import index as winner_index
from geminivideo.ml.winners import service as winners
from geminivideo.progress import follow
from geminivideo.redis_client import get_redis
from tests.integration.winners.conftest import CINEMATIC, REVIEW, UGC, Shop
from tests.support.env import TestEnv as SessionEnv
from tests.support.env import applied

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Backend:
    database_url: str
    index_dir: Path
    queue: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, test_env: SessionEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """One ML worker per database for the whole module (a worker start costs seconds on 2 cores)."""
    url = test_env.sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    root = tmp_path_factory.mktemp(f"winners-{request.param}")
    found = Backend(url, root / "winner_index", f"winners-{uuid.uuid4().hex[:8]}")
    values = {"DATABASE_URL": url, "WINNER_INDEX_PATH": str(found.index_dir)}
    worker = procs.start_worker(
        "ml",
        queues=[found.queue],
        hostname=f"winners-{uuid.uuid4().hex[:8]}@localhost",
        env=test_env.process_env(**values),
        log_path=root / "worker.log",
    )
    try:
        with applied(values):
            yield found
    finally:
        worker.stop()


@pytest.fixture
def database_url(backend: Backend) -> str:
    """The shop fixtures write to the database the module's worker uses."""
    return backend.database_url


@pytest.fixture
def winners_queue(backend: Backend) -> str:
    """The worker's queue, with an empty index: each test starts from no vectors."""
    (backend.index_dir / winner_index.INDEX_FILE).unlink(missing_ok=True)
    return backend.queue


def run(task: Task, queue: str, *args: Any, **kwargs: Any) -> Any:
    return task.apply_async(args, kwargs, queue=queue).get(timeout=120)


def ranked(query: str, tenant_id: str) -> list[str]:
    return [hit.ad_id for hit in winners.search(query, k=10, tenant_id=tenant_id)]


def indexed_ids() -> list[int]:
    return winner_index.ids_of(winner_index.get_store().current()).tolist()


def entry_count(tenant_id: str) -> int:
    with session_scope() as session:
        query = select(func.count()).select_from(WinnerIndexEntry).where(WinnerIndexEntry.tenant_id == tenant_id)
        return int(session.scalar(query) or 0)


def test_rebuild_indexes_winners_incrementally_and_drops_former_winners(
    winners_queue: str, shop: Shop, redis_client: Any
) -> None:
    # Given three winners with DNA, a winner without DNA and a loser with DNA
    ugc = shop.ad("ugc", spend=200, value=1000, dna=UGC)
    review = shop.ad("review", spend=200, value=800, dna=REVIEW)
    cinematic = shop.ad("cinematic", spend=300, value=1200, dna=CINEMATIC)
    shop.ad("no-dna", spend=200, value=1000)
    shop.ad("loser", spend=200, value=100, dna={"hook_type": "UGC testimonial"})

    # When the periodic rebuild runs on the worker
    result = auto_index_winners.apply_async(queue=winners_queue)
    first = result.get(timeout=120)

    # Then the three winners with DNA are embedded and searchable by meaning
    assert (first["added"], first["updated"], first["removed"], first["unchanged"]) == (3, 0, 0, 0)
    assert first["total"] == 3 and first["winners"] >= 4 and first["winners_without_dna"] >= 1
    events = list(follow(redis_client, result.id, timeout_s=10))
    assert events[-1].status is TaskStatus.COMPLETED and events[-1].progress == 100
    assert ranked("UGC testimonial with fast cuts and a green text CTA", shop.tenant_id) == [ugc, review, cinematic]

    # When it runs again with nothing changed, nothing is embedded
    second = run(auto_index_winners, winners_queue)
    assert (second["added"], second["updated"], second["unchanged"], second["embedded"]) == (0, 0, 3, 0)

    # When one winner's DNA changes and another stops winning (a costly new day drops its ROAS below 3)
    run(auto_index_winner, winners_queue, review, {"hook_type": "unboxing on a kitchen table", "format": "1:1"})
    shop.add_day(cinematic, spend=500)
    third = run(auto_index_winners, winners_queue)

    # Then the change was re-embedded in place (one vector per ad) and the former winner is gone
    assert (third["removed"], third["total"], third["unchanged"]) == (1, 2, 2)
    ids = indexed_ids()
    assert len(ids) == len(set(ids)) == 2 == entry_count(shop.tenant_id)
    assert ranked("unboxing a parcel in the kitchen", shop.tenant_id)[0] == review
    assert cinematic not in ranked("cinematic slow product shot", shop.tenant_id)


def test_single_ad_indexing_says_why_and_honours_force(winners_queue: str, shop: Shop) -> None:
    winner = shop.ad("winner", spend=150, value=600)
    loser = shop.ad("loser", spend=150, value=150, clicks=10)

    added = run(auto_index_winner, winners_queue, winner, UGC)
    assert (added["action"], added["indexed"], added["is_winner"]) == ("added", True, True)
    again = run(auto_index_winner, winners_queue, winner, UGC)
    assert again["action"] == "unchanged" and again["total"] == 1

    refused = run(auto_index_winner, winners_queue, loser, REVIEW)
    assert (refused["action"], refused["indexed"]) == ("skipped", False)
    assert "pipeline ROAS 1.00 is below 3.00" in refused["reasons"]
    assert any(reason.startswith("CTR 0.20% is below 1.00%") for reason in refused["reasons"])

    forced = run(auto_index_winner, winners_queue, loser, REVIEW, force=True)
    assert (forced["action"], forced["indexed"], forced["forced"]) == ("added", True, True)
    # A forced ad stays through rebuilds although it is not a winner.
    rebuilt = run(auto_index_winners, winners_queue)
    assert rebuilt["removed"] == 0 and rebuilt["forced"] == 1 and rebuilt["total"] == 2
    # Sent again without force, the non-winner leaves the index.
    dropped = run(auto_index_winner, winners_queue, loser, REVIEW)
    assert (dropped["action"], dropped["total"]) == ("removed", 1)
    assert sorted(indexed_ids()) == [winner_index.vector_id_for(winner)]


def test_bad_input_fails_at_once_without_retry(winners_queue: str, shop: Shop) -> None:
    winner = shop.ad("winner", spend=150, value=600)
    cases = [
        (winner, {"hook": "UGC"}, r"unknown key\(s\) hook; known keys are hook_type, visual_style"),
        (winner, {"hook_type": "UGC", "format": "4:3"}, r"creative_dna\.format: Input should be '9:16'"),
        (f"{shop.tenant_id}-missing", UGC, "no such ad"),
    ]
    for ad_id, dna, expected in cases:
        result = auto_index_winner.apply_async((ad_id, dna), queue=winners_queue)
        with pytest.raises(InvalidPayload, match=expected):
            result.get(timeout=60)
        assert result.state == "FAILURE"
        statuses = [event.status for event in follow(get_redis(), result.id, timeout_s=10)]
        assert statuses[-1] is TaskStatus.FAILED and TaskStatus.RETRYING not in statuses


def test_without_faiss_the_task_fails_with_a_clear_message(
    start_worker: Any, test_env: SessionEnv, tmp_path: Path
) -> None:
    blocker = tmp_path / "no-faiss" / "faiss"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('faiss is not available in this test worker')\n")
    queue = f"winners-nofaiss-{uuid.uuid4().hex[:8]}"
    start_worker(
        "ml", queues=[queue], name="nofaiss", WINNER_INDEX_PATH=str(tmp_path / "idx"), PYTHONPATH=str(blocker.parent)
    )
    result = auto_index_winners.apply_async(queue=queue)
    with pytest.raises(ModelUnavailable, match=r"faiss is not installed .*pip install"):
        result.get(timeout=60)
    assert result.state == "FAILURE"
