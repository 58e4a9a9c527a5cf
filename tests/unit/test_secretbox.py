"""Sealing secrets: what one key seals only it (or a successor's previous list) opens."""

from __future__ import annotations

import pytest

from port.secretbox import SecretBox, SecretsUnreadable, check_key, new_key
from port.settings import Settings


def test_a_sealed_value_opens_with_its_key_only() -> None:
    key, other = new_key(), new_key()
    sealed = SecretBox(key).seal("correct horse")
    assert "correct horse" not in sealed
    assert SecretBox(key).seal("correct horse") != sealed  # a fresh IV each time
    assert SecretBox(key).open(sealed, "x") == "correct horse"
    with pytest.raises(SecretsUnreadable, match="secret A cannot be opened"):
        SecretBox(other).open(sealed, "secret A")
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(SecretsUnreadable):
        SecretBox(key).open(tampered, "x")


def test_a_rotation_reseals_with_the_new_key() -> None:
    old, new = new_key(), new_key()
    sealed = SecretBox(old).seal("token")
    during = SecretBox(new, [old])
    assert during.open(sealed, "x") == "token"
    resealed = during.reseal(sealed, "x")
    assert SecretBox(new).open(resealed, "x") == "token"  # the old key may go now
    with pytest.raises(SecretsUnreadable):
        SecretBox(old).open(resealed, "x")


def test_keys_are_checked_when_the_settings_are_read() -> None:
    key = new_key()
    assert check_key(key) == key
    for bad in ("hunter2", "", "é" * 44, key[:-4]):
        with pytest.raises(ValueError, match="port secrets new-key"):
            check_key(bad)
    with pytest.raises(ValueError, match="not a secret key"):
        Settings.model_validate({"secret_key": "hunter2"})
    assert SecretBox.of(Settings()) is None  # no key: nothing can be sealed
    settings = Settings.model_validate({"secret_key": key})
    assert SecretBox.of(settings) is not None
    assert key not in repr(settings)  # never printed with the settings
