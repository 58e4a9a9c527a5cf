"""Users, tokens and the Authorization header, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from port.accounts import service
from port.accounts.bearer import principal_for
from port.accounts.jwt import JwtVerifier
from port.accounts.models import Token, User
from port.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from port.principal import CLI, Principal
from tests.harness import Catalogue
from tests.unit.test_accounts_jwt import ISSUER, public_pem, rsa_key, sign

# --- users -----------------------------------------------------------------------------


async def test_create_list_get_users(catalogue: Catalogue) -> None:
    async with catalogue.sessions() as session, session.begin():
        bob = await service.create_user(session, "bob", is_admin=True)
        alice = await service.create_user(session, "alice")
    async with catalogue.sessions() as session:
        users = await service.list_users(session)
        assert [(u.name, u.is_admin) for u in users] == [("alice", False), ("bob", True)]
        assert (await service.get_user(session, "bob")).id == bob.id
        assert alice.created_at.tzinfo is not None
        with pytest.raises(NotFound, match="no user 'carol'"):
            await service.get_user(session, "carol")


async def test_a_name_is_taken_once(catalogue: Catalogue) -> None:
    async with catalogue.sessions() as session, session.begin():
        await service.create_user(session, "alice")
    async with catalogue.sessions() as session:
        with pytest.raises(Conflict, match="already exists"):
            await service.create_user(session, "alice", is_admin=True)


async def test_user_names(catalogue: Catalogue) -> None:
    async with catalogue.sessions() as session, session.begin():
        for good in ("a", "0", "a" * 64, "j.doe_2-x"):
            await service.create_user(session, good)
        for bad in ("", "Alice", "-x", ".x", "a b", "a" * 65, "é", "a/b", "x\n"):
            with pytest.raises(InvalidInput, match="invalid user name"):
                await service.create_user(session, bad)
    async with catalogue.sessions() as session:
        assert len(await service.list_users(session)) == 4


# --- tokens ----------------------------------------------------------------------------


async def make_user(catalogue: Catalogue, name: str, *, is_admin: bool = False) -> User:
    async with catalogue.sessions() as session, session.begin():
        return await service.create_user(session, name, is_admin=is_admin)


async def make_token(catalogue: Catalogue, user: User, name: str = "laptop") -> tuple[Token, str]:
    async with catalogue.sessions() as session, session.begin():
        return await service.create_token(session, user, name)


async def authenticate(catalogue: Catalogue, secret: str) -> Principal | None:
    async with catalogue.sessions() as session, session.begin():
        return await service.authenticate_token(session, secret)


async def test_a_token_authenticates_its_user(catalogue: Catalogue) -> None:
    alice = await make_user(catalogue, "alice")
    token, secret = await make_token(catalogue, alice)
    assert secret.startswith("port_")
    assert len(secret) == 48  # "port_" + 32 random bytes in URL-safe base64
    assert (token.name, token.prefix, token.user_id) == ("laptop", secret[:8], alice.id)
    assert await authenticate(catalogue, secret) == Principal(alice.id, "alice", False, "token")
    _other, second = await make_token(catalogue, alice)
    assert second != secret


async def test_the_secret_is_stored_only_as_its_hash(
    catalogue: Catalogue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = await make_user(catalogue, "alice")
    _token, secret = await make_token(catalogue, alice)
    await authenticate(catalogue, secret)
    async with catalogue.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM tokens"))).all()
    [row] = rows
    assert all(secret not in str(value) for value in row)
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in caplog.text
    assert secret[8:] not in caplog.text


@pytest.mark.parametrize(
    "wrong",
    ["", "port_", "port_nope", "ghp_abc", "x" * 10_000, "port_" + "A" * 43],
)
async def test_unknown_secrets_fail(catalogue: Catalogue, wrong: str) -> None:
    alice = await make_user(catalogue, "alice")
    _token, secret = await make_token(catalogue, alice)
    assert await authenticate(catalogue, wrong) is None
    assert await authenticate(catalogue, secret[:-1]) is None
    assert await authenticate(catalogue, secret + "x") is None


async def test_token_names(catalogue: Catalogue) -> None:
    alice = await make_user(catalogue, "alice")
    token, _secret = await make_token(catalogue, alice, "  CI runner  ")
    assert token.name == "CI runner"
    async with catalogue.sessions() as session:
        for bad in ("", "   ", "x" * 101, "tab\there"):
            with pytest.raises(InvalidInput, match="token name"):
                await service.create_token(session, alice, bad)


async def test_last_used_is_written_at_most_once_a_minute(catalogue: Catalogue) -> None:
    alice = await make_user(catalogue, "alice")
    token, secret = await make_token(catalogue, alice)
    assert token.last_used_at is None
    before = len(catalogue.writes("tokens"))
    await authenticate(catalogue, secret)
    await authenticate(catalogue, secret)
    await authenticate(catalogue, secret)
    assert len(catalogue.writes("tokens")) == before + 1  # three requests, one write
    async with catalogue.sessions() as session, session.begin():
        row = await session.get(Token, token.id)
        assert row is not None
        assert row.last_used_at is not None
        first_use = row.last_used_at
        row.last_used_at = first_use - timedelta(minutes=2)
    await authenticate(catalogue, secret)
    async with catalogue.sessions() as session:
        row = await session.get(Token, token.id)
        assert row is not None
        assert row.last_used_at is not None
        assert row.last_used_at >= first_use


async def test_revoke_by_owner_other_user_and_admin(catalogue: Catalogue) -> None:
    alice = await make_user(catalogue, "alice")
    bob = await make_user(catalogue, "bob")
    root = await make_user(catalogue, "root", is_admin=True)
    as_alice = Principal(alice.id, "alice", False, "token")
    as_bob = Principal(bob.id, "bob", False, "token")
    as_root = Principal(root.id, "root", True, "token")
    stranger = Principal(None, "alice", False, "jwt")  # same name, but no local user row
    mine, mine_secret = await make_token(catalogue, alice)
    other, other_secret = await make_token(catalogue, alice, "other")
    third, third_secret = await make_token(catalogue, alice, "third")

    async with catalogue.sessions() as session:
        for who in (as_bob, stranger):
            with pytest.raises(NotFound, match="you have no token"):
                await service.revoke_token(session, mine.id, by=who)
        with pytest.raises(NotFound, match="no token 999"):
            await service.revoke_token(session, 999, by=as_root)
    assert await authenticate(catalogue, mine_secret) is not None

    async with catalogue.sessions() as session, session.begin():
        revoked = await service.revoke_token(session, mine.id, by=as_alice)
        assert revoked.revoked_at is not None
        first_revocation = revoked.revoked_at
    async with catalogue.sessions() as session, session.begin():
        await service.revoke_token(session, other.id, by=as_root)
        await service.revoke_token(session, third.id, by=CLI)
        again = await service.revoke_token(session, mine.id, by=as_alice)
        assert again.revoked_at == first_revocation  # revoking twice changes nothing
    for secret in (mine_secret, other_secret, third_secret):
        assert await authenticate(catalogue, secret) is None

    async with catalogue.sessions() as session:
        listed = await service.list_tokens(session, alice.id)
        assert [(t.name, t.revoked_at is not None) for t in listed] == [
            ("laptop", True),
            ("other", True),
            ("third", True),
        ]
        assert await service.list_tokens(session, bob.id) == []


async def test_deleting_a_user_deletes_its_tokens(catalogue: Catalogue) -> None:
    alice = await make_user(catalogue, "alice")
    await make_token(catalogue, alice)
    async with catalogue.engine.begin() as conn:  # the database's cascade, not the ORM's
        await conn.execute(text("DELETE FROM users WHERE name = 'alice'"))
    async with catalogue.sessions() as session:
        assert (await session.scalars(select(Token))).all() == []


# --- bootstrap -------------------------------------------------------------------------


async def test_bootstrap_admin_happens_once(catalogue: Catalogue) -> None:
    async with catalogue.sessions() as session, session.begin():
        first = await service.bootstrap_admin(session)
    assert first is not None
    principal = await authenticate(catalogue, first.token)
    assert principal is not None
    assert (principal.name, principal.is_admin) == ("admin", True)
    async with catalogue.sessions() as session, session.begin():
        assert await service.bootstrap_admin(session) is None
        assert [u.name for u in await service.list_users(session)] == ["admin"]


async def test_no_bootstrap_when_any_user_exists(catalogue: Catalogue) -> None:
    await make_user(catalogue, "alice")
    async with catalogue.sessions() as session, session.begin():
        assert await service.bootstrap_admin(session) is None
    async with catalogue.sessions() as session:
        assert [u.name for u in await service.list_users(session)] == ["alice"]


async def test_bootstrap_race_has_one_winner(
    catalogue: Catalogue, caplog: pytest.LogCaptureFixture
) -> None:
    """Two servers starting at once on an empty database: one admin, one printed token."""
    caplog.set_level(logging.INFO, logger="port.accounts.service")
    async with catalogue.sessions() as first, catalogue.sessions() as second:
        winner = await service.bootstrap_admin(first)  # inserted, not yet committed
        assert winner is not None
        racing = asyncio.create_task(service.bootstrap_admin(second))
        await asyncio.sleep(0.3)  # the second one saw no user and waits on the row lock
        await first.commit()
        loser = await asyncio.wait_for(racing, timeout=30)
        await second.commit()
    assert loser is None
    assert "another process created the first admin" in caplog.text  # it really raced
    async with catalogue.sessions() as session:
        assert [u.name for u in await service.list_users(session)] == ["admin"]
        assert len((await session.scalars(select(Token))).all()) == 1
    assert await authenticate(catalogue, winner.token) is not None


# --- the Authorization header ----------------------------------------------------------


async def bearer(
    catalogue: Catalogue, header: str | None, verifier: JwtVerifier | None = None
) -> Principal | None:
    async with catalogue.sessions() as session, session.begin():
        return await principal_for(session, header, verifier)


async def test_principal_for_tokens(catalogue: Catalogue) -> None:
    alice = await make_user(catalogue, "alice")
    good, secret = await make_token(catalogue, alice)
    gone, revoked_secret = await make_token(catalogue, alice, "gone")
    async with catalogue.sessions() as session, session.begin():
        await service.revoke_token(session, gone.id, by=CLI)

    assert await bearer(catalogue, None) is None  # anonymous
    expected = Principal(alice.id, "alice", False, "token")
    assert await bearer(catalogue, f"Bearer {secret}") == expected
    assert await bearer(catalogue, f"bearer  {secret} ") == expected  # scheme is case-blind

    refused = {
        "": "Bearer <token>",
        "Bearer": "Bearer <token>",
        "Bearer ": "Bearer <token>",
        secret: "Bearer <token>",
        f"Basic {secret}": "Bearer <token>",
        f"Bearer {secret} extra": "Bearer <token>",
        "Bearer port_unknown": "unknown or revoked",
        f"Bearer {revoked_secret}": "unknown or revoked",
        "Bearer eyJhbGciOiJub25lIn0.e30.": "not a Port token",  # no verifier: no JWTs
    }
    for header, message in refused.items():
        with pytest.raises(Unauthenticated, match=message) as caught:
            await bearer(catalogue, header)
        assert secret not in str(caught.value)
        assert revoked_secret not in str(caught.value)
    assert good.id != gone.id


async def test_principal_for_jwts(catalogue: Catalogue, tmp_path: Path) -> None:
    alice = await make_user(catalogue, "alice")
    key_file = tmp_path / "idp.pem"
    key_file.write_bytes(public_pem(rsa_key()))
    settings = catalogue.settings.model_copy(
        update={"jwt_issuer": ISSUER, "jwt_audience": "port", "jwt_public_key_file": key_file}
    )
    verifier = JwtVerifier.from_settings(settings)
    assert verifier is not None

    known = await bearer(catalogue, f"Bearer {sign()}", verifier)
    assert known == Principal(None, "alice", False, "jwt")  # a name is no link to a user
    unknown = await bearer(catalogue, f"Bearer {sign(preferred_username='carol')}", verifier)
    assert unknown == Principal(None, "carol", False, "jwt")  # no user row is created
    admin = await bearer(catalogue, f"Bearer {sign(sub='x', roles=['port-admin'])}", verifier)
    assert admin is not None
    assert admin.is_admin
    async with catalogue.sessions() as session:
        assert [u.name for u in await service.list_users(session)] == ["alice"]

    for bad in (sign(aud="other"), sign(exp=1), sign(rsa_key(1)), "not.a.jwt"):
        with pytest.raises(Unauthenticated, match="JWT is invalid"):
            await bearer(catalogue, f"Bearer {bad}", verifier)
    # Port tokens still work next to JWTs.
    _token, secret = await make_token(catalogue, alice)
    assert await bearer(catalogue, f"Bearer {secret}", verifier) is not None
