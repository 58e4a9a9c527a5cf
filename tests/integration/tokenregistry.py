"""A registry that wants bearer tokens, and the small token issuer it trusts.

Debian's docker-registry, started with ``auth: token`` (realm, service, issuer and a root
certificate), as registries on the internet are run (ghcr.io, Docker Hub). The issuer is
the test's own: an HTTP server that signs JWTs with the certificate's key, giving
``pull`` on ``public/*`` to anyone and ``pull`` on ``private/*`` only to the user and
password it was made with, ``push`` to the test's pusher. Both are stopped, and the
registry's storage removed, when the test ends.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.serverproc import free_port

SERVICE = "port-test-registry"
ISSUER = "port-test-issuer"
PUSHER = ("pusher", "push-" + secrets.token_hex(4))


def _certificate() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


@dataclass
class TokenRegistry:
    """Where the registry answers, and the credentials its issuer knows."""

    address: str  # host:port of the registry
    user: str
    password: str
    issued: list[str]  # the scopes of every token asked for, in order
    realm_address: str  # host:port of the issuer

    def push_token(self, repository: str) -> str:
        answer = httpx.get(
            f"http://{self.realm_address}/token",
            params={"service": SERVICE, "scope": f"repository:{repository}:pull,push"},
            auth=PUSHER,
        )
        answer.raise_for_status()
        return str(answer.json()["token"])


def _issuer(
    key: rsa.RSAPrivateKey,
    certificate: x509.Certificate,
    user: str,
    password: str,
    issued: list[str],
) -> http.server.ThreadingHTTPServer:
    chain = [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()]

    class Issuer(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            scope = query.get("scope", [""])[0]
            issued.append(scope)
            who = self._who()
            if who == "refused":
                self.send_response(401)
                self.end_headers()
                return
            access = []
            if scope.startswith("repository:"):
                _, name, actions = scope.split(":", 2)
                granted = [a for a in actions.split(",") if self._may(who, name, a)]
                access.append({"type": "repository", "name": name, "actions": granted})
            now = int(time.time())
            token = jwt.encode(
                {
                    "iss": ISSUER,
                    "sub": who or "",
                    "aud": SERVICE,
                    "exp": now + 300,
                    "nbf": now - 10,
                    "iat": now,
                    "jti": secrets.token_hex(8),
                    "access": access,
                },
                key,
                algorithm="RS256",
                headers={"x5c": chain},
            )
            body = json.dumps({"token": token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _who(self) -> str | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            name, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            if (name, secret) in ((user, password), PUSHER):
                return name
            return "refused"

        @staticmethod
        def _may(who: str | None, repository: str, action: str) -> bool:
            if action == "push":
                return who == PUSHER[0]
            return repository.startswith("public/") or who in (user, PUSHER[0])

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Issuer)


def _bcrypt(password: str) -> str:
    """The htpasswd hash the registry reads (bcrypt, through the C library's crypt)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt leaves in 3.13
        import crypt

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))  # noqa: S324 - bcrypt


@contextmanager
def token_registry(
    workdir: Path, *, auth: str | None = "token", notify: tuple[str, str] | None = None
) -> Iterator[TokenRegistry]:
    """A registry on a free port with ``auth`` "token" (and its issuer), "basic" (an
    htpasswd file of the user alone) or None, sending notifications to ``notify`` (URL,
    token) when given; all stopped after."""
    key, certificate = _certificate()
    user, password = "alice", "s3cret-" + secrets.token_hex(4)
    issued: list[str] = []
    issuer = _issuer(key, certificate, user, password, issued)
    thread = threading.Thread(target=issuer.serve_forever, daemon=True)
    thread.start()
    realm = f"127.0.0.1:{issuer.server_address[1]}"
    port = free_port()
    storage = workdir / "token-registry"
    storage.mkdir()
    (storage / "root.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (storage / "htpasswd").write_text(f"{user}:{_bcrypt(password)}\n")
    (storage / "config.yml").write_text(
        json.dumps(  # JSON is YAML: the registry reads it as its config
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {
                    "filesystem": {"rootdirectory": str(storage / "data")},
                    "delete": {"enabled": True},
                },
                "http": {"addr": f"127.0.0.1:{port}"},
                **({"auth": {"token": {
                    "realm": f"http://{realm}/token",
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(storage / "root.pem"),
                }}} if auth == "token" else {}),
                **({"auth": {"htpasswd": {
                    "realm": "port-test",
                    "path": str(storage / "htpasswd"),
                }}} if auth == "basic" else {}),
                **({"notifications": {"endpoints": [{
                    "name": "port",
                    "url": notify[0],
                    "headers": {"Authorization": [f"Token {notify[1]}"]},
                    "timeout": "2s",
                    "threshold": 1,
                    "backoff": "1s",
                }]}} if notify else {}),
            }
        )
    )  # fmt: skip
    process = subprocess.Popen(
        ["docker-registry", "serve", str(storage / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=(storage / "registry.log").open("wb"),
    )
    try:
        for _ in range(150):
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code
                if status == (401 if auth else 200):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the token registry did not start: {storage / 'registry.log'}")
        yield TokenRegistry(f"127.0.0.1:{port}", user, password, issued, realm)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        issuer.shutdown()
        issuer.server_close()
        shutil.rmtree(storage, ignore_errors=True)
