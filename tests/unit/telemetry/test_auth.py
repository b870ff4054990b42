"""Who may read /metrics: the token holder from anywhere, or loopback callers when no token is set."""

from __future__ import annotations

from pathlib import Path

import pytest

from geminivideo.config import Settings
from geminivideo.errors import ConfigError
from geminivideo.telemetry.auth import may_read_metrics, metrics_token


@pytest.mark.parametrize(("token", "authorization", "client", "allowed"), [
    (None, None, "127.0.0.1", True),
    (None, None, "::1", True),
    (None, None, "10.0.0.5", False),
    (None, None, None, False),
    ("tok", None, "127.0.0.1", False),  # with a token, loopback needs it too
    ("tok", "Bearer tok", "10.0.0.5", True),
    ("tok", "bearer tok", None, True),
    ("tok", "Bearer wrong", "127.0.0.1", False),
    ("tok", "Basic tok", "127.0.0.1", False),
])
def test_may_read_metrics(token: str | None, authorization: str | None, client: str | None, allowed: bool) -> None:
    assert may_read_metrics(token, authorization, client) is allowed


def test_token_from_file_and_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text("from-file\n")
    assert metrics_token(Settings()) is None
    monkeypatch.setenv("METRICS_TOKEN_FILE", str(path))
    assert metrics_token(Settings()) == "from-file"
    monkeypatch.setenv("METRICS_TOKEN", "direct")
    with pytest.raises(ConfigError, match="both METRICS_TOKEN and METRICS_TOKEN_FILE"):
        Settings()
    monkeypatch.delenv("METRICS_TOKEN")
    path.write_text("")
    assert metrics_token(Settings()) is None  # an empty secret file is no token: loopback only
    monkeypatch.setenv("METRICS_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="cannot read"):
        Settings()
