"""The operations files in deploy/ are what Prometheus, promtool, Grafana and compose accept, and name real series.

- ``promtool check config`` (in full, with the token file and rule paths it points at made real in a copy) and
  ``promtool check rules`` pass;
- ``promtool test rules`` shows every alert firing on synthetic series that should trigger it and staying quiet
  on series that should not; each alert's tests fail when its expression is replaced by one that never fires or
  one that always fires;
- every series the alerts and the dashboard query is one the code exports;
- compose's ``observability`` profile adds Prometheus and Grafana wired to these files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from geminivideo.telemetry import metrics as metrics_module

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"


def promtool(*args: str, cwd: Path = DEPLOY / "prometheus") -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is required: apt-get install prometheus (scripts/setup.sh, .ci/run)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_promtool_accepts_the_scrape_config(tmp_path: Path) -> None:
    original = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert promtool("check", "config", "--syntax-only", "prometheus.yml").returncode == 0
    # The full check also opens every file the config names: put them where a copy of it points.
    (tmp_path / "metrics-token").write_text("token")
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    copy = original.replace("/run/secrets/metrics_token", str(tmp_path / "metrics-token"))
    copy = copy.replace("/etc/prometheus/", f"{tmp_path}/")
    (tmp_path / "prometheus.yml").write_text(copy)
    checked = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    jobs = {job["job_name"] for job in yaml.safe_load(original)["scrape_configs"]}
    assert jobs == {"geminivideo-api", "geminivideo-workers"}


def alert_names() -> list[str]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def rule_cases() -> list[dict[str, Any]]:
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts_test.yml").read_text())["tests"]
    return [case for test in tests for case in test["alert_rule_test"]]


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_firing_case_and_a_quiet_case() -> None:
    cases = rule_cases()
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert set(alert_names()) - fired == set(), "alerts no rule test shows firing"
    assert set(alert_names()) - quiet == set(), "alerts no rule test shows staying quiet"
    assert {case["alertname"] for case in cases} <= set(alert_names()), "a rule test names an alert that is gone"


def _mutant(root: Path, alert: str, expr: str) -> Path:
    """A copy of the rules where ``alert`` has ``expr`` instead of its own, next to a copy of the rule tests."""
    folder = root / f"{alert}-{'never' if expr.startswith('vector(0)') else 'always'}"
    folder.mkdir()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = expr
    (folder / "alerts.yml").write_text(yaml.safe_dump(rules))
    shutil.copy(DEPLOY / "prometheus" / "alerts_test.yml", folder / "alerts_test.yml")
    return folder / "alerts_test.yml"


def test_the_rule_tests_catch_an_alert_that_never_fires_or_always_fires(tmp_path: Path) -> None:
    """Each alert's expression replaced by one that never fires, then by one that always does: the tests fail."""
    mutants = [(alert, _mutant(tmp_path, alert, expr)) for alert in alert_names()
               for expr in ("vector(0) > 1", "vector(1)")]
    with ThreadPoolExecutor(max_workers=4) as pool:  # promtool waits more than it computes
        results = list(pool.map(lambda mutant: promtool("test", "rules", str(mutant[1]), cwd=tmp_path), mutants))
    survived = [f"{alert} ({path.parent.name})" for (alert, path), result in zip(mutants, results, strict=True)
                if result.returncode == 0]
    assert not survived, f"rule tests pass with these alerts broken: {survived}"
    assert all("FAILED" in result.stdout + result.stderr for result in results)


def exported_series() -> set[str]:
    """Every series name the code exports (histograms with their _bucket/_count/_sum, counters with _total)."""
    names: set[str] = set()
    for metric in vars(metrics_module.metrics()).values():
        base = metric._name  # prometheus_client strips _total from counter names
        kind = metric._type
        names |= {f"{base}_total"} if kind == "counter" else set()
        names |= {f"{base}_bucket", f"{base}_count", f"{base}_sum"} if kind == "histogram" else set()
        names |= {base} if kind == "gauge" else set()
    source = (ROOT / "src/geminivideo/telemetry/scrape.py").read_text()
    scraped = re.findall(r'GaugeMetricFamily\(\s*f"\{PREFIX\}_([a-z_]+)"', source)
    counted = re.findall(r'CounterMetricFamily\(\s*f"\{PREFIX\}_([a-z_]+)"', source)
    return (names | {f"geminivideo_{name}" for name in scraped} | {f"geminivideo_{name}_total" for name in counted}
            | {"geminivideo:queue_expected_wait_seconds"})


def queried_series(text: str) -> set[str]:
    return set(re.findall(r"\bgeminivideo[_:][a-z_:]+[a-z]", text))


def test_alerts_and_dashboard_query_only_series_the_code_exports() -> None:
    known = exported_series()
    rules = queried_series((DEPLOY / "prometheus" / "alerts.yml").read_text()) - {"geminivideo:queue_expected_wait"}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "geminivideo.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    assert not (rules - known), f"alert rules query unknown series: {rules - known}"
    assert not (queried_series(exprs) - known), f"dashboard queries unknown series: {queried_series(exprs) - known}"
    titles = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert {"Is work piling up?", "Is it failing?", "Where does a job spend its time?", "Webhooks", "Approvals",
            "Fleet"} <= titles


def test_compose_observability_profile_runs_prometheus_and_grafana_on_these_files() -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian package) is required"
    env = {**{k: v for k, v in os.environ.items()}, "POSTGRES_PASSWORD": "pg", "HUBSPOT_CLIENT_SECRET": "hs",
           "FLOWER_PASSWORD": "fl"}
    files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.workers.yml")]
    result = subprocess.run([binary, *files, "--profile", "observability", "config"], env=env, capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    assert {"prometheus", "grafana"} <= set(services)
    mounts = " ".join(str(v) for v in services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    assert "deploy/prometheus" in mounts and "deploy/grafana/dashboards" in mounts
    for worker in ("celery-ml", "celery-video-render"):
        assert services[worker]["environment"]["WORKER_METRICS_PORT"] == "9808"
        assert services[worker]["environment"]["METRICS_TOKEN_FILE"] == "/run/secrets/metrics_token"
    # The scrape token is a Docker secret on both sides: Prometheus reads it as credentials_file.
    assert "metrics_token" in {s if isinstance(s, str) else s["source"] for s in services["prometheus"]["secrets"]}
    assert "/run/secrets/metrics_token" in (ROOT / "deploy/prometheus/prometheus.yml").read_text()
    for name in ("prometheus", "grafana"):  # started only with --profile observability
        assert services[name]["profiles"] == ["observability"]
        assert all(not str(port).startswith(("0.0.0.0", "9090", "3000")) for port in services[name]["ports"])


@pytest.mark.parametrize("name", ["geminivideo_tasks_started_total", "geminivideo_queue_messages"])
def test_prometheus_conventions(name: str) -> None:
    assert name in exported_series()
