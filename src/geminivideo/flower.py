"""Flower with basic auth on every page: ``python -m geminivideo.flower [--app video|ml]`` and ``… check``.

Credentials come from FLOWER_USER / FLOWER_PASSWORD; the default password is refused unless Flower listens
on loopback only. Flower 2.2 leaves ``/metrics`` and ``/healthcheck`` open even with ``--basic-auth``, so
both are swapped for authenticated versions before the app is built. ``check`` is the compose healthcheck:
an authenticated GET of ``/healthcheck``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Sequence
from typing import Any

from geminivideo.config import DEFAULT_FLOWER_PASSWORD, Settings, get_settings
from geminivideo.errors import ConfigError
from geminivideo.ops import APPS

_LOOPBACK_NAMES = {"localhost"}


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; False for '' and 0.0.0.0 (every interface)."""
    if address in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def basic_auth(settings: Settings) -> str:
    """``user:password`` for Flower, or ConfigError naming the variable to fix."""
    user, password = settings.flower_user, settings.flower_password.get_secret_value()
    if not user or not password:
        raise ConfigError("FLOWER_USER and FLOWER_PASSWORD must both be set: Flower never runs without auth")
    if "," in user or "," in password or ":" in user:
        raise ConfigError("FLOWER_USER must not contain ':' or ',' and FLOWER_PASSWORD must not contain ','")
    if password == DEFAULT_FLOWER_PASSWORD and not is_loopback(settings.flower_address):
        raise ConfigError(
            f"FLOWER_PASSWORD is the default {DEFAULT_FLOWER_PASSWORD!r} while FLOWER_ADDRESS="
            f"{settings.flower_address or '0.0.0.0'!r} exposes Flower beyond this host: set a strong "
            "FLOWER_PASSWORD, or FLOWER_ADDRESS=127.0.0.1"
        )
    return f"{user}:{password}"


def protect_open_endpoints() -> None:
    """Replace Flower's unauthenticated /metrics and /healthcheck handlers with authenticated ones."""
    from flower import urls
    from flower.views import monitor
    from tornado import web

    class AuthenticatedMetrics(monitor.Metrics):
        @web.authenticated
        async def get(self) -> None:
            await super().get()

    class AuthenticatedHealthcheck(monitor.Healthcheck):
        @web.authenticated
        async def get(self) -> None:
            await super().get()

    replacements: dict[Any, Any] = {
        monitor.Metrics: AuthenticatedMetrics,
        monitor.Healthcheck: AuthenticatedHealthcheck,
    }
    for index, handler in enumerate(urls.handlers):
        if isinstance(handler, tuple) and handler[1] in replacements:
            urls.handlers[index] = (handler[0], replacements[handler[1]], *handler[2:])


def run(app: str) -> None:
    """Validate the settings, then hand over to ``celery -A <app> flower`` in this process."""
    settings = get_settings()
    credentials = basic_auth(settings)
    protect_open_endpoints()
    # Flower reads FLOWER_BASIC_AUTH itself; passing it by environment keeps the password out of `ps`.
    os.environ["FLOWER_BASIC_AUTH"] = credentials
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", "-A", APPS[app], "flower", f"--port={settings.flower_port}",
                f"--address={settings.flower_address}"]
    celery_main()


def check(url: str | None = None, timeout_s: float = 5.0) -> int:
    """0 when Flower answers an authenticated /healthcheck with 200."""
    import httpx

    settings = get_settings()
    host = settings.flower_address if is_loopback(settings.flower_address) else "127.0.0.1"
    target = url or f"http://{host}:{settings.flower_port}/healthcheck"
    auth = (settings.flower_user, settings.flower_password.get_secret_value())
    try:
        response = httpx.get(target, auth=auth, timeout=timeout_s)
    except httpx.HTTPError as exc:
        print(f"flower check: {target}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"flower check: {target} answered {response.status_code}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geminivideo.flower", description=__doc__)
    parser.add_argument("--app", choices=sorted(APPS), default="video",
                        help="app whose broker Flower watches (both apps share it by default)")
    parser.add_argument("command", nargs="?", choices=["run", "check"], default="run")
    parser.add_argument("--url", help="check: URL to probe (default: this host's FLOWER_PORT)")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return check(args.url)
        run(args.app)
    except ConfigError as exc:
        print(f"flower: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
