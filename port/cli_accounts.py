"""`port user ...` and `port token ...`: accounts from the server's shell (as an admin)."""

from __future__ import annotations

from typing import Any

import click

from port.accounts import service as accounts
from port.accounts.models import Token
from port.clitools import Sessions, echo_json, say, with_db
from port.principal import CLI
from port.settings import Settings


@click.group("user")
def user_group() -> None:
    """Users of the API (the command line acts as an admin)."""


@user_group.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May manage users, repos and every token.")
def user_add(name: str, admin: bool) -> None:
    """Add a user and print its id (`port token create --user NAME` gives it a token)."""

    async def work(sessions: Sessions, _settings: Settings) -> int:
        async with sessions() as session, session.begin():
            return (await accounts.create_user(session, name, is_admin=admin)).id

    click.echo(with_db(work))


@user_group.command("passwd")
@click.argument("name")
@click.option(
    "--password-file",
    type=click.File("r"),
    help="Read the password from this file's first line (`-`: standard input).",
)
def user_passwd(name: str, password_file: Any) -> None:
    """Set the password NAME signs in to the pages with (asked for twice, not echoed).

    Every page session of NAME ends; its API tokens keep working.
    """
    if password_file is not None:
        password = password_file.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            f"New password of {name}", hide_input=True, confirmation_prompt=True
        )

    async def work(sessions: Sessions, _settings: Settings) -> None:
        async with sessions() as session, session.begin():
            user = await accounts.get_user(session, name)
            await accounts.set_password(session, user, password, by=CLI)

    with_db(work)
    say(f"password of {name} set; {name} signs in at /sign-in", err=True)


def _set_active(name: str, active: bool) -> None:
    async def work(sessions: Sessions, _settings: Settings) -> None:
        async with sessions() as session, session.begin():
            user = await accounts.get_user(session, name)
            await accounts.set_active(session, user, active, by=CLI)

    with_db(work)


@user_group.command("deactivate")
@click.argument("name")
def user_deactivate(name: str) -> None:
    """NAME can no longer sign in or use its tokens (its Setups stay as they are)."""
    _set_active(name, False)
    say(f"{name} is deactivated: signed out, its tokens refused", err=True)


@user_group.command("activate")
@click.argument("name")
def user_activate(name: str) -> None:
    """Undo `port user deactivate NAME`."""
    _set_active(name, True)
    say(f"{name} is active again", err=True)


@user_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def user_list(as_json: bool) -> None:
    """List users."""

    async def work(sessions: Sessions, _settings: Settings) -> list[dict[str, Any]]:
        async with sessions() as session:
            return [
                {
                    "id": u.id,
                    "name": u.name,
                    "is_admin": u.is_admin,
                    "active": u.active,
                    "has_password": u.password_hash is not None,
                    "created_at": u.created_at.isoformat(),
                }
                for u in await accounts.list_users(session)
            ]

    rows = with_db(work)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no users yet: `port user add NAME --admin`")
    for row in rows:
        marks = ("  (admin)" if row["is_admin"] else "") + (
            "" if row["active"] else "  (deactivated)"
        )
        say(f"{row['id']:>4}  {row['name']}{marks}")


@click.group("token")
def token_group() -> None:
    """API tokens: `Authorization: Bearer <token>`. Shown once, stored hashed."""


@token_group.command("create")
@click.option("--user", "user_name", required=True, help="The user the token acts as.")
@click.option("--name", "label", default="cli", show_default=True, help="What it is for.")
def token_create(user_name: str, label: str) -> None:
    """Print a new token, alone on stdout (`TOKEN=$(port token create --user NAME)`)."""

    async def work(sessions: Sessions, _settings: Settings) -> str:
        async with sessions() as session, session.begin():
            user = await accounts.get_user(session, user_name)
            token, secret = await accounts.create_token(session, user, label)
        say(f"token {token.id} of {user_name}: keep it now, it is not shown again", err=True)
        return secret

    click.echo(with_db(work))


def _token_document(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


@token_group.command("list")
@click.option("--user", "user_name", required=True, help="Whose tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def token_list(user_name: str, as_json: bool) -> None:
    """List a user's tokens (never their secrets: the prefix tells them apart)."""

    async def work(sessions: Sessions, _settings: Settings) -> list[dict[str, Any]]:
        async with sessions() as session:
            user = await accounts.get_user(session, user_name)
            return [_token_document(t) for t in await accounts.list_tokens(session, user.id)]

    rows = with_db(work)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        used = row["last_used_at"] or "never"
        say(f"{row['id']:>4}  {row['prefix']}...  {row['name']}  {state}, last used {used}")


@token_group.command("revoke")
@click.argument("token_id", type=int, metavar="ID")
def token_revoke(token_id: int) -> None:
    """Revoke a token: requests that show it fail from now on."""

    async def work(sessions: Sessions, _settings: Settings) -> None:
        async with sessions() as session, session.begin():
            await accounts.revoke_token(session, token_id, by=CLI)

    with_db(work)
    say(f"token {token_id} revoked")
