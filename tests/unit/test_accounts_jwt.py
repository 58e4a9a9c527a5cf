"""JWT verification against locally generated keys: what passes and what must not."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import RSAAlgorithm

from port.accounts.jwt import JwtClaims, JwtVerifier
from port.errors import PortError
from port.settings import Settings

ISSUER = "https://id.example.org/realms/lab"
AUDIENCE = "port"


@cache
def _rsa_key(which: int, bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def rsa_key(which: int = 0, bits: int = 2048) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make: one per (which, bits) for the whole run."""
    return _rsa_key(which, bits)


def public_pem(private: Any) -> bytes:
    key = private.public_key()
    return bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def public_jwk(private: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "use": "sig"}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "7f3e-uuid",
        "preferred_username": "alice",
        "iat": now,
        "exp": now + 300,
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def sign(private: Any = None, algorithm: str = "RS256", kid: str | None = None, **kw: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims(**kw), private or rsa_key(), algorithm=algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
    }
    values.update(overrides)
    return Settings(**values)


def pem_verifier(tmp_path: Path, private: Any = None, **overrides: Any) -> JwtVerifier:
    path = tmp_path / "idp.pem"
    path.write_bytes(public_pem(private or rsa_key()))
    verifier = JwtVerifier.from_settings(settings(tmp_path, jwt_public_key_file=path, **overrides))
    assert verifier is not None
    return verifier


def jwks_verifier(tmp_path: Path, keys: list[dict[str, Any]]) -> JwtVerifier:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    verifier = JwtVerifier.from_settings(settings(tmp_path, jwt_jwks_file=path))
    assert verifier is not None
    return verifier


# --- accepted --------------------------------------------------------------------------


def test_a_valid_token_gives_its_user(tmp_path: Path) -> None:
    verifier = pem_verifier(tmp_path)
    assert verifier.verify(sign()) == JwtClaims(subject="7f3e-uuid", name="alice", is_admin=False)


def test_name_falls_back_to_sub(tmp_path: Path) -> None:
    claims_ = pem_verifier(tmp_path).verify(sign(preferred_username=None))
    assert claims_ is not None
    assert claims_.name == "7f3e-uuid"


def test_admin_role_in_the_roles_list(tmp_path: Path) -> None:
    verifier = pem_verifier(tmp_path)
    admin = verifier.verify(sign(roles=["viewer", "port-admin"]))
    assert admin is not None
    assert admin.is_admin
    for roles in (["viewer"], "port-admin", {"port-admin": True}):
        other = verifier.verify(sign(roles=roles))
        assert other is not None
        assert not other.is_admin, roles


def test_admin_role_is_configurable(tmp_path: Path) -> None:
    verifier = pem_verifier(tmp_path, jwt_admin_role="ops")
    as_ops, as_default = (
        verifier.verify(sign(roles=["ops"])),
        verifier.verify(sign(roles=["port-admin"])),
    )
    assert as_ops is not None
    assert as_ops.is_admin
    assert as_default is not None
    assert not as_default.is_admin


def test_pss_and_ec_and_eddsa_keys(tmp_path: Path) -> None:
    assert pem_verifier(tmp_path).verify(sign(algorithm="PS256")) is not None
    p256 = ec.generate_private_key(ec.SECP256R1())
    assert pem_verifier(tmp_path, p256).verify(sign(p256, "ES256")) is not None
    p384 = ec.generate_private_key(ec.SECP384R1())
    on_p384 = pem_verifier(tmp_path, p384)
    assert on_p384.verify(sign(p384, "ES384")) is not None
    assert on_p384.verify(sign(p256, "ES256")) is None  # the curve fixes the algorithm
    ed = ed25519.Ed25519PrivateKey.generate()
    assert pem_verifier(tmp_path, ed).verify(sign(ed, "EdDSA")) is not None


def test_small_clock_skew_is_tolerated(tmp_path: Path) -> None:
    now = int(time.time())
    assert pem_verifier(tmp_path).verify(sign(exp=now - 10)) is not None


# --- refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("why", "overrides"),
    [
        # Times are offsets from the moment the test runs, not from collection: a long
        # suite would otherwise turn "ten minutes from now" into the past.
        ("expired", {"exp": -600}),
        ("not yet valid", {"nbf": +600}),
        ("wrong audience", {"aud": "grafana"}),
        ("wrong issuer", {"iss": "https://evil.example.org"}),
        ("no expiry", {"exp": None}),
        ("no audience", {"aud": None}),
        ("no subject", {"sub": None}),
    ],
)
def test_claims_that_are_refused(tmp_path: Path, why: str, overrides: dict[str, Any]) -> None:
    now = int(time.time())
    flaw = {
        k: now + v if k in ("exp", "nbf") and v is not None else v for k, v in overrides.items()
    }
    verifier = pem_verifier(tmp_path)
    assert verifier.verify(sign()) is not None  # the same token without the flaw passes
    assert verifier.verify(sign(**flaw)) is None, why


def test_alg_none_is_refused(tmp_path: Path) -> None:
    token = unsigned({"alg": "none", "typ": "JWT"}, claims(roles=["port-admin"])) + "."
    assert pem_verifier(tmp_path).verify(token) is None


def test_hs256_signed_with_the_public_key_is_refused(tmp_path: Path) -> None:
    """The classic confusion: HMAC keyed with the (public) PEM the server verifies with."""
    pem = public_pem(rsa_key())
    body = unsigned({"alg": "HS256", "typ": "JWT"}, claims(roles=["port-admin"]))
    mac = hmac.new(pem, body.encode(), hashlib.sha256).digest()
    assert pem_verifier(tmp_path).verify(f"{body}.{b64(mac)}") is None


def test_tampered_payload_is_refused(tmp_path: Path) -> None:
    header, _payload, signature = sign().split(".")
    forged = b64(json.dumps(claims(roles=["port-admin"])).encode())
    assert pem_verifier(tmp_path).verify(f"{header}.{forged}.{signature}") is None


def test_token_of_another_key_is_refused(tmp_path: Path) -> None:
    assert pem_verifier(tmp_path).verify(sign(rsa_key(1))) is None


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "port_x", "e30.e30.", "...."])
def test_garbage_is_refused(tmp_path: Path, garbage: str) -> None:
    assert pem_verifier(tmp_path).verify(garbage) is None


# --- JWKS ------------------------------------------------------------------------------


def test_jwks_picks_the_key_by_kid(tmp_path: Path) -> None:
    verifier = jwks_verifier(tmp_path, [public_jwk(rsa_key(0), "k0"), public_jwk(rsa_key(1), "k1")])
    assert verifier.verify(sign(rsa_key(0), kid="k0")) is not None
    assert verifier.verify(sign(rsa_key(1), kid="k1")) is not None
    assert verifier.verify(sign(rsa_key(1), kid="k0")) is None  # right key set, wrong kid
    assert verifier.verify(sign(rsa_key(0), kid="k9")) is None  # unknown kid
    assert verifier.verify(sign(rsa_key(2), kid="k0")) is None  # a stranger's key


def test_jwks_without_kid_tries_each_key(tmp_path: Path) -> None:
    verifier = jwks_verifier(tmp_path, [public_jwk(rsa_key(0), "k0"), public_jwk(rsa_key(1), "k1")])
    assert verifier.verify(sign(rsa_key(1))) is not None


def test_jwks_alg_pins_the_algorithm(tmp_path: Path) -> None:
    verifier = jwks_verifier(tmp_path, [{**public_jwk(rsa_key(0), "k0"), "alg": "PS256"}])
    assert verifier.verify(sign(algorithm="PS256", kid="k0")) is not None
    assert verifier.verify(sign(algorithm="RS256", kid="k0")) is None


# --- configuration ---------------------------------------------------------------------


def test_off_without_issuer(tmp_path: Path) -> None:
    assert JwtVerifier.from_settings(settings(tmp_path, jwt_issuer=None)) is None


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def test_bad_configuration_is_a_clear_error(tmp_path: Path) -> None:
    pem = write(tmp_path, "ok.pem", public_pem(rsa_key()))
    jwks = write(tmp_path, "ok.json", json.dumps({"keys": [public_jwk(rsa_key(), "k")]}))
    private = write(
        tmp_path,
        "private.pem",
        rsa_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    oct_key = {"kty": "oct", "k": b64(b"0" * 32), "kid": "s"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"jwt_public_key_file": pem, "jwt_audience": None}, "PORT_JWT_AUDIENCE"),
        ({"jwt_public_key_file": pem, "jwt_issuer": " "}, "PORT_JWT_ISSUER is empty"),
        ({}, "exactly one"),
        ({"jwt_public_key_file": pem, "jwt_jwks_file": jwks}, "exactly one"),
        ({"jwt_public_key_file": tmp_path / "missing.pem"}, "cannot read"),
        ({"jwt_public_key_file": write(tmp_path, "junk.pem", "hello")}, "not a PEM public key"),
        ({"jwt_public_key_file": private}, "not a PEM public key"),
        (
            {"jwt_public_key_file": write(tmp_path, "small.pem", public_pem(rsa_key(0, 1024)))},
            "1024 bits",
        ),
        ({"jwt_jwks_file": write(tmp_path, "junk.json", "{")}, "not JSON"),
        ({"jwt_jwks_file": write(tmp_path, "list.json", "[]")}, '"keys"'),
        ({"jwt_jwks_file": write(tmp_path, "empty.json", '{"keys": []}')}, "no signing key"),
        ({"jwt_jwks_file": write(tmp_path, "oct.json", json.dumps({"keys": [oct_key]}))}, "secret"),
        (
            {
                "jwt_jwks_file": write(
                    tmp_path,
                    "mismatch.json",
                    json.dumps({"keys": [{**public_jwk(rsa_key(), "k"), "alg": "HS256"}]}),
                )
            },
            "does not fit",
        ),
    ]
    for overrides, message in cases:
        with pytest.raises(PortError, match=message):
            JwtVerifier.from_settings(settings(tmp_path, **overrides))
