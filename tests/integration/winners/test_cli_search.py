"""`geminivideo winners search "…"` in its own process, against an index a rebuild wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from geminivideo.ml.winners import service as winners
from tests.integration.winners.conftest import CINEMATIC, UGC


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_prints_the_closest_winners_first(shop_factory: Any, index_dir: Path, database_url: str) -> None:
    shop = shop_factory()
    ugc = shop.ad("ugc", spend=200, value=1000, dna=UGC)
    cinematic = shop.ad("cinematic", spend=200, value=1000, dna=CINEMATIC)
    winners.index_all_winners()

    argv = [
        sys.executable,
        "-m",
        "geminivideo.cli",
        "winners",
        "search",
        "user-generated testimonial, quick cuts",
        "--tenant",
        shop.tenant_id,
        "--k",
        "2",
    ]
    out = subprocess.run(argv, env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True, timeout=180)

    assert out.returncode == 0, out.stdout + out.stderr
    assert ugc in out.stdout and cinematic in out.stdout
    assert out.stdout.index(ugc) < out.stdout.index(cinematic)
