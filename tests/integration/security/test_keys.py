"""The key store on SQLite and PostgreSQL, the ``geminivideo keys`` commands, and the API's refusal to
start with authentication on and no key."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from geminivideo.api.app import create_app
from geminivideo.api.auth import authenticate
from geminivideo.db.migrate import upgrade
from geminivideo.db.models import ApiKey
from geminivideo.db.session import session_scope
from geminivideo.errors import ConfigError, InvalidPayload
from geminivideo.security.keys import Scope, create_key, list_keys, revoke_key
from tests.support import env as support_env
from tests.support import leaks
from tests.support.env import applied, create_test_key


def test_keys_are_hashed_at_rest_scoped_and_revocable(database_url: str) -> None:
    name = f"ci-{uuid.uuid4().hex[:8]}"
    token = create_test_key(name, ["jobs:read", "approvals:decide"], tenant_id="acme")
    with session_scope() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.name == name)).one()
        assert row.key_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in (row.key_hash, row.prefix) and len(token) > 40
    principal = authenticate(token)
    assert principal is not None and principal.name == name and principal.tenant_id == "acme"
    assert principal.allows(Scope.JOBS_READ) and not principal.allows(Scope.JOBS_WRITE)
    assert authenticate(token + "x") is None and authenticate("ключ") is None and authenticate(b"\xff") is None
    assert name in {k.name for k in list_keys()}
    with pytest.raises(InvalidPayload, match="already exists"):
        create_key(name, ["jobs:read"])
    with pytest.raises(InvalidPayload, match="unknown scope"):
        create_key(f"{name}-2", ["jobs:everything"])
    assert revoke_key(name) and not revoke_key(name)
    assert authenticate(token) is None
    assert name not in {k.name for k in list_keys()} and name in {k.name for k in list_keys(include_revoked=True)}


def test_bootstrap_keys_from_the_environment_are_named_admins() -> None:
    with applied({"API_KEYS": "ops=tok-one-123, tok-two-456"}):
        first, second = authenticate("tok-one-123"), authenticate("tok-two-456")
        assert first is not None and first.name == "ops" and first.allows(Scope.APPROVALS_DECIDE)
        assert second is not None and second.name == "api-keys-2"
        assert authenticate("tok-one") is None


def _cli(env: support_env.TestEnv, *args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "geminivideo.cli", "keys", *args], capture_output=True, text=True,
                          env=env.process_env(**overrides), timeout=120, check=False)


def test_cli_creates_lists_and_revokes_a_key(test_env: support_env.TestEnv, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade(url)
    created = _cli(test_env, "create", "reporting", "--scope", "jobs:read", "--tenant", "acme", DATABASE_URL=url)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    leaks.register_secret("API key (geminivideo keys create)", token)
    assert token.startswith("gv_") and "cannot be shown again" in created.stderr
    listed = _cli(test_env, "list", DATABASE_URL=url)
    assert "reporting" in listed.stdout and "jobs:read" in listed.stdout and token not in listed.stdout
    with applied({"DATABASE_URL": url}):
        assert authenticate(token) is not None
        assert _cli(test_env, "revoke", "reporting", DATABASE_URL=url).returncode == 0
        assert authenticate(token) is None
    again = _cli(test_env, "revoke", "reporting", DATABASE_URL=url)
    assert again.returncode == 1 and "no active key" in again.stderr


def test_the_api_refuses_to_start_without_any_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    with applied({"DATABASE_URL": url, "API_AUTH": "on", "API_KEYS": ""}):
        with pytest.raises(ConfigError, match="no API key exists"), TestClient(create_app()):
            pass
        create_test_key("first", ["admin"])
        with TestClient(create_app(), client=("127.0.0.1", 1)) as api:
            assert api.get("/api/queues").status_code == 401
