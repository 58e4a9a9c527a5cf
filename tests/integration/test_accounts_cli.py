"""`port user ...` and `port token ...`: what scripts capture and what people read."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner

from port import db
from port.accounts.principal import Principal
from port.accounts.service import authenticate_token
from port.settings import get_settings
from tests.harness import run_cli


def authenticate(secret: str) -> Principal | None:
    """What the server would make of this token (same database as the CLI)."""

    async def check() -> Principal | None:
        engine = db.create_engine(get_settings().sqlalchemy_url)
        try:
            async with db.sessionmaker(engine)() as session, session.begin():
                return await authenticate_token(session, secret)
        finally:
            await engine.dispose()

    return asyncio.run(check())


def test_user_add_and_list(port: CliRunner) -> None:
    assert run_cli(port, "user", "add", "alice").stdout == "1\n"
    assert run_cli(port, "user", "add", "bob", "--admin").stdout == "2\n"
    assert "already exists" in run_cli(port, "user", "add", "alice", code=1).output
    assert "invalid user name" in run_cli(port, "user", "add", "Not Valid", code=1).output

    users = json.loads(run_cli(port, "user", "list", "--json").stdout)
    assert [(u["id"], u["name"], u["is_admin"]) for u in users] == [
        (1, "alice", False),
        (2, "bob", True),
    ]
    assert all(u["created_at"] for u in users)
    lines = run_cli(port, "user", "list").stdout.splitlines()
    assert [line.split() for line in lines] == [["1", "alice"], ["2", "bob", "(admin)"]]


def test_token_create_prints_only_the_token(port: CliRunner) -> None:
    run_cli(port, "user", "add", "alice")
    result = run_cli(port, "token", "create", "--user", "alice", "--name", "laptop")
    [secret] = result.stdout.splitlines()  # exactly one line: TOKEN=$(port token create ...)
    assert result.stdout == secret + "\n"
    assert secret.startswith("port_")
    assert "not shown again" in result.stderr  # the human hint goes to stderr
    assert authenticate(secret) == Principal(1, "alice", False, "token")

    [token] = json.loads(run_cli(port, "token", "list", "--user", "alice", "--json").stdout)
    assert (token["id"], token["name"], token["prefix"]) == (1, "laptop", secret[:8])
    assert token["revoked_at"] is None
    assert token["last_used_at"] is not None  # authenticate() above used it
    listing = run_cli(port, "token", "list", "--user", "alice").stdout
    assert secret[:8] in listing
    assert secret not in listing


def test_token_create_for_unknown_user_prints_nothing(port: CliRunner) -> None:
    result = run_cli(port, "token", "create", "--user", "nobody", code=1)
    assert result.stdout == ""
    assert "no user 'nobody'" in result.stderr


def test_token_revoke(port: CliRunner) -> None:
    run_cli(port, "user", "add", "alice")
    secret = run_cli(port, "token", "create", "--user", "alice").stdout.strip()
    kept = run_cli(port, "token", "create", "--user", "alice", "--name", "ci").stdout.strip()
    assert run_cli(port, "token", "revoke", "1").stdout == "token 1 revoked\n"
    assert authenticate(secret) is None
    assert authenticate(kept) is not None
    tokens = json.loads(run_cli(port, "token", "list", "--user", "alice", "--json").stdout)
    assert [(t["name"], t["revoked_at"] is not None) for t in tokens] == [
        ("cli", True),
        ("ci", False),
    ]
    assert "revoked" in run_cli(port, "token", "list", "--user", "alice").stdout
    assert "no token 99" in run_cli(port, "token", "revoke", "99", code=1).output
