"""`port user ...` and `port token ...`: what scripts capture and what people read."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from port import db
from port.accounts.service import authenticate_token, sign_in
from port.cli import main
from port.principal import Principal
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


def signs_in(name: str, password: str) -> bool:
    async def check() -> bool:
        engine = db.create_engine(get_settings().sqlalchemy_url)
        try:
            async with db.sessionmaker(engine)() as session:
                return await sign_in(session, name, password) is not None
        finally:
            await engine.dispose()

    return asyncio.run(check())


def test_user_passwd_asks_twice_or_reads_a_file(port: CliRunner, tmp_path: Path) -> None:
    run_cli(port, "user", "add", "alice")
    asked = port.invoke(main, ["user", "passwd", "alice"], input="long enough pw\n" * 2)
    assert asked.exit_code == 0, asked.output
    assert "long enough pw" not in asked.stdout  # not echoed
    assert signs_in("alice", "long enough pw")
    secret = tmp_path / "pw"
    secret.write_text("from a file, too\n")
    run_cli(port, "user", "passwd", "alice", "--password-file", str(secret))
    assert signs_in("alice", "from a file, too")
    assert not signs_in("alice", "long enough pw")
    short = tmp_path / "short"
    short.write_text("short\n")
    failed = run_cli(port, "user", "passwd", "alice", "--password-file", str(short), code=1)
    assert "10 to 256 characters" in failed.output
    assert (
        "no user 'bob'"
        in run_cli(port, "user", "passwd", "bob", "--password-file", str(secret), code=1).output
    )


def test_user_deactivate_refuses_sign_in_and_tokens(port: CliRunner, tmp_path: Path) -> None:
    run_cli(port, "user", "add", "alice")
    secret = run_cli(port, "token", "create", "--user", "alice").stdout.strip()
    password = tmp_path / "pw"
    password.write_text("long enough pw\n")
    run_cli(port, "user", "passwd", "alice", "--password-file", str(password))
    run_cli(port, "user", "deactivate", "alice")
    assert authenticate(secret) is None
    assert not signs_in("alice", "long enough pw")
    assert run_cli(port, "user", "list").stdout.split() == ["1", "alice", "(deactivated)"]
    run_cli(port, "user", "activate", "alice")
    assert authenticate(secret) is not None
    assert signs_in("alice", "long enough pw")
