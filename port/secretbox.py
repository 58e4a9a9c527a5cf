"""Secrets at rest: sealed with the server's key (``PORT_SECRET_KEY``), never in clear.

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``): a sealed value carries its
own IV and MAC, so a tampered or foreign one fails to open instead of opening wrong.
``PORT_PREVIOUS_SECRET_KEYS`` still open what older keys sealed, so a key is rotated
without losing anything: set the new key, keep the old as previous, run
``port secrets rotate`` (everything is sealed again with the new key), drop the old.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

from port.errors import ClientError

if TYPE_CHECKING:
    from port.settings import Settings

KEY_BYTES = 32


class SecretsUnreadable(ClientError):
    """A stored secret cannot be opened: no key, or not the key it was sealed with."""

    code = "SECRETS_UNREADABLE"


def check_key(text: str) -> str:
    """``text`` if it is a key ``new_key`` could have made; ValueError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ValueError("not a secret key: make one with `port secrets new-key`")
    return text


def new_key() -> str:
    """A fresh key, as ``PORT_SECRET_KEY`` takes it."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Seals with the current key; opens with it or any previous one."""

    def __init__(self, key: str, previous: Sequence[str] = ()) -> None:
        # Imported here: `port` commands that never touch secrets do not pay for it.
        from cryptography.fernet import Fernet, MultiFernet

        self._keys = MultiFernet([Fernet(k.encode("ascii")) for k in (key, *previous)])

    @classmethod
    def of(cls, settings: Settings) -> Self | None:
        """The box of ``settings``; None when no key is set (nothing can be sealed)."""
        if settings.secret_key is None:
            return None
        previous = [k.get_secret_value() for k in settings.previous_secret_keys]
        return cls(settings.secret_key.get_secret_value(), previous)

    def seal(self, value: str) -> str:
        return self._keys.encrypt(value.encode()).decode("ascii")

    def open(self, sealed: str, what: str) -> str:
        """The value ``sealed`` holds; SecretsUnreadable names ``what`` when no key opens it."""
        from cryptography.fernet import InvalidToken

        try:
            return self._keys.decrypt(sealed.encode("ascii")).decode()
        except InvalidToken:
            raise SecretsUnreadable(
                f"{what} cannot be opened with PORT_SECRET_KEY (nor a previous key): "
                "set the key it was stored with"
            ) from None

    def reseal(self, sealed: str, what: str) -> str:
        """``sealed`` sealed again with the current key (a rotation's step)."""
        self.open(sealed, what)  # the located error, before MultiFernet's bare one
        return self._keys.rotate(sealed.encode("ascii")).decode("ascii")
