"""Verify JWTs of an identity provider that sits in front of Port (optional).

Decisions, for whoever wires this into a server:

- ``JwtVerifier.from_settings`` returns None when ``PORT_JWT_ISSUER`` is unset (JWTs are
  off). When it is set, ``PORT_JWT_AUDIENCE`` and exactly one of
  ``PORT_JWT_PUBLIC_KEY_FILE`` (one PEM public key) or ``PORT_JWT_JWKS_FILE`` (a JSON Web
  Key Set) are required; anything else is a ``PortError`` at start, not a surprise
  later. The audience is required because without it a token the same provider issued
  to any other application would open Port.
- ``verify`` checks the signature, ``exp`` (required), ``nbf``, ``iss`` and ``aud``, with
  30 seconds of leeway for clocks. The algorithm is chosen by the *key*, never by the
  token: RSA keys accept RS*/PS*, EC keys the ES* of their curve, Ed25519/Ed448 EdDSA,
  and a JWK with an ``alg`` only that. ``none`` and HS* are never accepted (symmetric
  keys are refused when loading), which closes the "HS256 signed with the public key"
  confusion. With a JWKS, the token's ``kid`` picks the key.
- It returns ``JwtClaims`` (subject, name, admin) rather than a ``Principal``: mapping to
  a local user needs the database, which ``port.accounts.service.principal_from_jwt``
  does. The name is ``preferred_username`` if present, else ``sub``; the caller is an
  admin when ``PORT_JWT_ADMIN_ROLE`` is in the ``roles`` claim (a list of strings).
- Any invalid token gives None (the reason is logged at debug level, the token never).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from port.errors import PortError
from port.settings import Settings

log = logging.getLogger(__name__)

LEEWAY_SECONDS = 30
MIN_RSA_BITS = 2048
_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512", "secp256k1": "ES256K"}
_REQUIRED = ["exp", "iss", "aud", "sub"]


@dataclass(frozen=True)
class JwtClaims:
    """What Port takes from a verified JWT."""

    subject: str  # the "sub" claim
    name: str  # "preferred_username", else "sub"
    is_admin: bool  # the admin role is in "roles"


@dataclass(frozen=True)
class VerificationKey:
    """A public key and the algorithms it may verify."""

    key: Any  # a cryptography public key object
    algorithms: tuple[str, ...]
    kid: str | None = None


def algorithms_for(key: object, where: str) -> tuple[str, ...]:
    """The JWS algorithms a public key can verify; PortError for anything else."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise PortError(f"{where}: RSA key of {key.key_size} bits, at least {MIN_RSA_BITS}")
        return _RSA
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _EC:
            raise PortError(f"{where}: unsupported elliptic curve {key.curve.name}")
        return (_EC[key.curve.name],)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return ("EdDSA",)
    raise PortError(f"{where}: not a public key Port can verify JWTs with (RSA, EC, EdDSA)")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PortError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc


def load_public_key_file(path: Path) -> list[VerificationKey]:
    """The one PEM public key of ``path`` (PORT_JWT_PUBLIC_KEY_FILE)."""
    where = f"PORT_JWT_PUBLIC_KEY_FILE {path}"
    try:
        key = load_pem_public_key(_read(path, "JWT public key file"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PortError(f"{where}: not a PEM public key (-----BEGIN PUBLIC KEY-----)") from exc
    return [VerificationKey(key, algorithms_for(key, where))]


def load_jwks_file(path: Path) -> list[VerificationKey]:
    """The signing keys of a JWKS file (PORT_JWT_JWKS_FILE); symmetric keys are refused."""
    where = f"PORT_JWT_JWKS_FILE {path}"
    try:
        document = json.loads(_read(path, "JWKS file"))
    except ValueError as exc:
        raise PortError(f"{where}: not JSON ({exc})") from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise PortError(f'{where}: a JWKS is an object with a "keys" list')
    keys: list[VerificationKey] = []
    for index, entry in enumerate(entries):
        at = f"{where}, key {index}"
        if not isinstance(entry, dict):
            raise PortError(f"{at}: not an object")
        if entry.get("use", "sig") != "sig":
            continue  # an encryption key: not for signatures
        if entry.get("kty") == "oct" or "d" in entry:
            raise PortError(f"{at}: a secret or private key; a JWKS for Port holds public keys")
        try:  # the key type decides how to parse it; "alg" is checked against it below
            jwk = jwt.PyJWK({k: v for k, v in entry.items() if k != "alg"})
        except jwt.PyJWTError as exc:
            raise PortError(f"{at}: {exc}") from exc
        algorithms = algorithms_for(jwk.key, at)
        alg = entry.get("alg")
        if alg is not None:
            if alg not in algorithms:
                raise PortError(f"{at}: alg {alg!r} does not fit a {entry.get('kty')} key")
            algorithms = (alg,)
        kid = entry.get("kid")
        keys.append(VerificationKey(jwk.key, algorithms, kid if isinstance(kid, str) else None))
    if not keys:
        raise PortError(f"{where}: no signing key")
    return keys


class JwtVerifier:
    """Checks JWTs against one issuer, one audience and a fixed set of public keys."""

    def __init__(
        self, *, issuer: str, audience: str, keys: list[VerificationKey], admin_role: str
    ) -> None:
        if not keys:
            raise PortError("a JWT verifier needs at least one key")
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self.admin_role = admin_role

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtVerifier | None:
        """The verifier the settings describe, None when JWTs are off; PortError if unusable."""
        if not settings.jwt_enabled or settings.jwt_issuer is None:
            return None
        if not settings.jwt_issuer.strip():
            raise PortError("PORT_JWT_ISSUER is empty: unset it, or set the issuer's URL")
        if not settings.jwt_audience:
            raise PortError(
                "PORT_JWT_ISSUER is set but PORT_JWT_AUDIENCE is not: set it to the audience "
                "your identity provider puts in Port's tokens"
            )
        key_file, jwks_file = settings.jwt_public_key_file, settings.jwt_jwks_file
        if key_file is not None and jwks_file is None:
            keys = load_public_key_file(key_file)
        elif jwks_file is not None and key_file is None:
            keys = load_jwks_file(jwks_file)
        else:
            raise PortError(
                "PORT_JWT_ISSUER is set: set exactly one of PORT_JWT_PUBLIC_KEY_FILE (PEM) "
                "or PORT_JWT_JWKS_FILE"
            )
        return cls(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            keys=keys,
            admin_role=settings.jwt_admin_role,
        )

    def _candidates(self, alg: str, kid: object) -> list[VerificationKey]:
        return [
            k
            for k in self.keys
            if alg in k.algorithms and (kid is None or k.kid is None or k.kid == kid)
        ]

    def verify(self, token: str) -> JwtClaims | None:
        """The claims of a valid token, None for anything invalid, expired or foreign."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            log.debug("JWT refused: %s", exc)
            return None
        alg, kid = header.get("alg"), header.get("kid")
        candidates = self._candidates(alg, kid) if isinstance(alg, str) else []
        if not isinstance(alg, str) or not candidates:
            log.debug("JWT refused: no key for alg %r, kid %r", alg, kid)
            return None
        for candidate in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    candidate.key,
                    algorithms=[alg],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=LEEWAY_SECONDS,
                    options={"require": _REQUIRED},
                )
            except jwt.InvalidSignatureError:
                continue  # maybe the next key (several keys without a kid)
            except jwt.PyJWTError as exc:
                log.debug("JWT refused: %s", exc)
                return None
            return self._claims(claims)
        log.debug("JWT refused: signature verification failed")
        return None

    def _claims(self, claims: dict[str, Any]) -> JwtClaims | None:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            return None
        preferred = claims.get("preferred_username")
        name = preferred if isinstance(preferred, str) and preferred else subject
        roles = claims.get("roles")
        is_admin = isinstance(roles, list) and self.admin_role in roles
        return JwtClaims(subject=subject, name=name, is_admin=is_admin)
