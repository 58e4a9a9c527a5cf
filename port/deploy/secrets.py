"""Secret variables: write-only, sealed at rest, opened only to start a Pod.

A Setup's secrets (``Secret`` rows with its ``setup_id``) reach its Pods' environment
and nowhere else: the API shows their names, events say which names changed, logs say
nothing. A user's own secret, without a Setup, is their Arkitekt redeem token
(``FAKTS_REDEEM_TOKEN``): stored once, given to the Pods of every Arkitekt app of
theirs that has no token of its own. Values are sealed with ``PORT_SECRET_KEY``
(``port.secretbox``); without a key nothing can be stored, and a server with secrets
stored and no key that opens them refuses to start (``check_readable``).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from port.deploy.models import EventKind, Secret, Setup, SetupEvent
from port.deploy.variables import ENV_MAX_ITEMS, check_variable
from port.errors import InvalidInput, PortError
from port.orm import utcnow
from port.secretbox import SecretBox, SecretsUnreadable
from port.settings import Settings

REDEEM_TOKEN = "FAKTS_REDEEM_TOKEN"  # noqa: S105 - the variable's name, not a value
ARKITEKT_URL = "FAKTS_URL"  # where an Arkitekt app finds its server


def _box(settings: Settings) -> SecretBox:
    box = SecretBox.of(settings)
    if box is None:
        raise InvalidInput(
            "secrets cannot be stored: this Port has no PORT_SECRET_KEY (its admin sets "
            "one: docs/arkitekt.md)",
            field="secrets",
        )
    return box


async def set_secrets(
    session: AsyncSession, setup: Setup, values: Mapping[str, str | None], settings: Settings
) -> None:
    """Set (a value) or remove (None) secrets of ``setup``; the event names them only."""
    if not values:
        return
    for name, value in values.items():
        check_variable(name, "" if value is None else value, what="secrets")
    box = _box(settings) if any(v is not None for v in values.values()) else None
    stored = {
        s.name: s for s in await session.scalars(select(Secret).where(Secret.setup_id == setup.id))
    }
    for name, value in values.items():
        if value is None:
            if name in stored:
                await session.delete(stored.pop(name))
        elif box is not None:
            sealed = box.seal(value)
            if name in stored:
                stored[name].sealed, stored[name].updated_at = sealed, utcnow()
            else:
                stored[name] = Secret(
                    owner_id=setup.owner_id, setup_id=setup.id, name=name, sealed=sealed
                )
                session.add(stored[name])
    if len(stored) > ENV_MAX_ITEMS:
        raise InvalidInput(f"at most {ENV_MAX_ITEMS} secrets per setup", field="secrets")
    set_names = sorted(n for n, v in values.items() if v is not None)
    removed = sorted(n for n, v in values.items() if v is None)
    words = [f"set {', '.join(set_names)}"] if set_names else []
    words += [f"removed {', '.join(removed)}"] if removed else []
    session.add(
        SetupEvent(setup_id=setup.id, kind=EventKind.SECRETS_CHANGED, message="; ".join(words))
    )


async def set_redeem_token(
    session: AsyncSession, user_id: int, token: str | None, settings: Settings
) -> None:
    """Store (or, with None, forget) the user's Arkitekt redeem token."""
    await session.execute(
        delete(Secret).where(
            Secret.owner_id == user_id, Secret.setup_id.is_(None), Secret.name == REDEEM_TOKEN
        )
    )
    if token is not None:
        check_variable(REDEEM_TOKEN, token, what="token")
        sealed = _box(settings).seal(token)
        session.add(Secret(owner_id=user_id, setup_id=None, name=REDEEM_TOKEN, sealed=sealed))


async def has_redeem_token(session: AsyncSession, user_id: int) -> bool:
    found = await session.scalar(
        select(Secret.id).where(
            Secret.owner_id == user_id, Secret.setup_id.is_(None), Secret.name == REDEEM_TOKEN
        )
    )
    return found is not None


async def secret_names(session: AsyncSession, setup_ids: list[int]) -> dict[int, list[str]]:
    """The names of each Setup's secrets (never their values), sorted."""
    names: dict[int, list[str]] = {pk: [] for pk in setup_ids}
    rows = await session.execute(
        select(Secret.setup_id, Secret.name)
        .where(Secret.setup_id.in_(setup_ids))
        .order_by(Secret.name)
    )
    for setup_id, name in rows:
        names.setdefault(setup_id or 0, []).append(name)
    return names


async def pod_secrets(
    session: AsyncSession, setup: Setup, settings: Settings, *, arkitekt: bool
) -> dict[str, str]:
    """The opened secrets a Pod of ``setup`` gets: its own, and for an Arkitekt app the
    owner's redeem token unless the Setup has one. SecretsUnreadable when they cannot
    be opened (no key, or another key)."""
    mine = Secret.setup_id == setup.id
    if arkitekt:
        own = and_(Secret.setup_id.is_(None), Secret.name == REDEEM_TOKEN)
        mine = or_(mine, own)
    rows = list(
        await session.scalars(
            select(Secret)
            .where(Secret.owner_id == setup.owner_id, mine)
            .order_by(Secret.setup_id.is_(None).desc())  # the owner's first, the Setup's over
        )
    )
    if not rows:
        return {}
    box = SecretBox.of(settings)
    if box is None:
        raise SecretsUnreadable(
            f"setup {setup.id} has secrets, but PORT_SECRET_KEY is not set: set the key "
            "they were stored with"
        )
    return {
        row.name: box.open(row.sealed, f"secret {row.name} of setup {setup.id}") for row in rows
    }


async def check_readable(session: AsyncSession, settings: Settings) -> None:
    """PortError when secrets are stored but the key cannot open them: a server must not
    start Pods without their secrets (or seal new ones with a key nobody keeps)."""
    sample = await session.scalar(select(Secret).order_by(Secret.id).limit(1))
    if sample is None:
        return
    box = SecretBox.of(settings)
    if box is None:
        count = await session.scalar(select(func.count()).select_from(Secret))
        raise PortError(
            f"{count} secrets are stored, but PORT_SECRET_KEY is not set: set the key "
            "they were stored with (docs/arkitekt.md)"
        )
    try:
        box.open(sample.sealed, "a stored secret")
    except SecretsUnreadable as exc:
        raise PortError(str(exc)) from None


async def rotate(session: AsyncSession, settings: Settings) -> int:
    """Seal every stored secret again with PORT_SECRET_KEY; how many. After it the
    previous keys may be dropped."""
    box = _box(settings)
    rows = list(await session.scalars(select(Secret).order_by(Secret.id)))
    for row in rows:
        row.sealed = box.reseal(row.sealed, f"secret {row.name} (row {row.id})")
        row.updated_at = utcnow()
    return len(rows)
