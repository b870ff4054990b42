"""``geminivideo keys create|list|revoke``: API keys in the database (the token is printed once, at creation)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from geminivideo.security import keys

console = Console()
_SCOPES = ", ".join(s.value for s in keys.Scope)
keys_app = typer.Typer(help="API keys: named, hashed at rest, with scopes and an optional tenant.",
                       no_args_is_help=True)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who uses the key; recorded as decided_by on approvals.")],
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="Repeat: " + _SCOPES)],
    tenant: Annotated[str | None, typer.Option(help="Limit the key to one tenant's jobs, ads, approvals.")] = None,
) -> None:
    """Create a key and print its token once (only its SHA-256 is stored)."""
    token = keys.create_key(name, scope, tenant)
    # The token alone on stdout, so `TOKEN=$(geminivideo keys create …)` works; the note goes to stderr.
    typer.echo(token)
    Console(stderr=True).print(f"[green]created[/] key {name!r}: store the token now, it cannot be shown again")


@keys_app.command("list")
def list_(all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False) -> None:
    """Keys with their scopes and tenant (never the token)."""
    table = Table("name", "prefix", "scopes", "tenant", "created", "revoked")
    for key in keys.list_keys(include_revoked=all_):
        table.add_row(key.name, key.prefix + "…", " ".join(key.scopes), key.tenant_id or "(all)",
                      f"{key.created_at:%Y-%m-%d %H:%M}", f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "")
    console.print(table)


@keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: the next request with it is a 401."""
    if not keys.revoke_key(name):
        Console(stderr=True).print(f"[red]error:[/] no active key named {name!r} (see: geminivideo keys list)")
        raise typer.Exit(1)
    console.print(f"[green]revoked[/] key {name!r}")
