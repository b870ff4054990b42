"""The README's benchmark table is generated from bench/results (bench/report.py) and must match it; every
benchmark runs from one command line (``make bench``), and a ``--quick`` smoke run never writes results."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _bench_module(name: str) -> ModuleType:
    return importlib.import_module(f"bench.{name}")  # the scripts are modules of the bench package


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return _bench_module("report")


def test_readme_benchmark_table_is_what_the_results_give(report: ModuleType) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert report.readme_with_table(readme, report.table()) == readme, (
        "README.md's benchmark table differs from bench/results/*.json: run .venv/bin/python -m bench.report --write")


def test_every_result_has_a_command_and_a_row_format(report: ModuleType) -> None:
    assert set(report.COMMANDS) == set(report.FORMATTERS)
    for name, argv in report.COMMANDS.items():
        assert argv[0] == f"bench.{name}", f"{name}: runs {argv[0]}, not its own module"
        assert (ROOT / "bench" / f"{name}.py").is_file(), f"{name}: bench/{name}.py does not exist"
    results = {p.stem for p in (ROOT / "bench" / "results").glob("*.json")}
    assert results <= set(report.COMMANDS), f"results without a README row: {results - set(report.COMMANDS)}"


def test_make_bench_runs_the_readme_commands() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "-m bench.report --run" in makefile


@pytest.mark.parametrize("script", ["captions", "webhooks", "winners", "decisions", "render", "transcode",
                                    "split_transcode", "split_overhead", "leases", "console"])
def test_every_benchmark_offers_quick_and_output(script: str) -> None:
    done = subprocess.run([sys.executable, "-m", f"bench.{script}", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    assert "--quick" in done.stdout and "--output" in done.stdout


def test_a_quick_run_writes_no_results_unless_asked() -> None:
    common = _bench_module("_common")
    default = ROOT / "bench" / "results" / "x.json"
    assert common.output_path(argparse.Namespace(quick=True, output=None), default) is None
    assert common.output_path(argparse.Namespace(quick=False, output=None), default) == default
    assert common.output_path(argparse.Namespace(quick=True, output="/tmp/x.json"), default) == Path("/tmp/x.json")
