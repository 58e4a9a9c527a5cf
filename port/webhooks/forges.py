"""What each forge sends: the credential header, how to check it, and what the event is.

Headers are given as a mapping of **lower-case** names to values (``receive`` builds it).

- GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``, delivery id
  ``X-GitHub-Delivery``, event ``X-GitHub-Event``: ``push``, ``create`` and ``delete``
  index, ``ping`` is answered.
- GitLab: ``X-Gitlab-Token: <the secret itself>``, delivery id ``Idempotency-Key`` (the
  same on retries) or else ``X-Gitlab-Event-UUID``, event ``X-Gitlab-Event``: ``Push
  Hook`` and ``Tag Push Hook`` index.
- Gitea and Forgejo: ``X-Gitea-Signature`` / ``X-Forgejo-Signature: <bare hex
  HMAC-SHA256>``, delivery id ``X-Gitea-Delivery`` / ``X-Forgejo-Delivery``, event
  ``X-Gitea-Event`` / ``X-Forgejo-Event``: ``push``, ``create`` and ``delete`` index.
  Forgejo sends both sets of headers; each route prefers its own.
- Registries (OCI repositories): ``Authorization: Token <the secret itself>``, the
  events envelope's ``push`` and ``delete`` events index, delivery id the first
  event's ``id``.

Every comparison is constant-time (``hmac.compare_digest``); GitLab's token is compared
through SHA-256 digests of both sides, so not even its length shows in the timing. A
delivery without an id header gets ``sha256:<hex of the body>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import parse_qs

from port.signing import hmac_sha256

Headers = Mapping[str, str]

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
MAX_EVENT_NAME = 64  # the column's size


class PayloadError(ValueError):
    """The body is not a payload this forge sends (not JSON, not an object, no repo)."""


class EventKind(StrEnum):
    PUSH = "push"  # a branch or tag moved, appeared or vanished: index the repository
    PING = "ping"  # the forge checks the hook: answer, do nothing
    OTHER = "other"  # an event Port does not act on (issues, releases, ...)


@dataclass(frozen=True)
class Event:
    """One delivery, as far as Port cares.

    ``ref`` is a full ref name (``refs/tags/v1.2.3``, ``refs/heads/main``) when the event
    names one; GitHub's and Gitea's ``create``/``delete`` give a short name, which is
    expanded with their ``ref_type``.
    """

    forge: str
    name: str
    kind: EventKind
    delivery: str
    urls: tuple[str, ...]
    ref: str | None = None

    @property
    def is_tag(self) -> bool:
        return self.ref is not None and self.ref.startswith("refs/tags/")


def body_digest(body: bytes) -> str:
    """The delivery id of a delivery that carries none."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _latin1(value: str) -> bytes:
    """Header bytes as sent: ASGI servers hand them over decoded as Latin-1."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _push_or_ref(name: str, payload: dict[str, Any]) -> tuple[EventKind, str | None]:
    """GitHub's and Gitea's events: ``push`` names a full ref, ``create``/``delete`` a
    short branch or tag name; anything else is not about refs."""
    if name == "push":
        return EventKind.PUSH, _string(payload, "ref")
    if name in ("create", "delete"):
        return EventKind.PUSH, _short_ref(payload)
    return EventKind.OTHER, None


def _load(headers: Headers, body: bytes) -> dict[str, Any]:
    """The JSON payload; form-encoded deliveries (``payload=<json>``) are read too."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    raw: bytes | str = body
    if content_type == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(body.decode("utf-8"), max_num_fields=8)
        except (UnicodeDecodeError, ValueError) as exc:
            raise PayloadError("the form body cannot be read") from exc
        if not fields.get("payload"):
            raise PayloadError("the form body has no 'payload' field")
        raw = fields["payload"][0]
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise PayloadError("the body is not JSON") from exc
    if not isinstance(payload, dict):
        raise PayloadError("the body is not a JSON object")
    return payload


def _urls(container: object, *fields: str) -> list[str]:
    if not isinstance(container, dict):
        return []
    return [v for f in fields if isinstance(v := container.get(f), str) and v]


def _string(payload: dict[str, Any], field: str) -> str | None:
    value = payload.get(field)
    return value if isinstance(value, str) and value else None


def _short_ref(payload: dict[str, Any]) -> str | None:
    """``create``/``delete`` name the ref short, with ``ref_type`` tag or branch."""
    ref, kind = _string(payload, "ref"), _string(payload, "ref_type")
    if ref is None or ref.startswith("refs/"):
        return ref
    return f"refs/tags/{ref}" if kind == "tag" else f"refs/heads/{ref}"


class Forge(ABC):
    """One forge's delivery format. Subclasses say where things are; nothing more."""

    name: ClassVar[str]

    @abstractmethod
    def credential(self, headers: Headers) -> str | None:
        """The signature or token header's value, or None when it is missing."""

    @abstractmethod
    def verify(self, credential: str, body: bytes, secret: str) -> bool:
        """Whether ``credential`` proves the sender knows ``secret`` (constant time)."""

    @abstractmethod
    def event(self, headers: Headers, body: bytes) -> Event:
        """The event of a delivery; PayloadError when the body cannot be one."""

    def _delivery(self, headers: Headers, body: bytes, *names: str) -> str:
        for name in names:
            if value := headers.get(name, "").strip():
                return value
        return body_digest(body)


class GitHub(Forge):
    name = "github"
    _SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")

    def credential(self, headers: Headers) -> str | None:
        return headers.get("x-hub-signature-256") or None

    def verify(self, credential: str, body: bytes, secret: str) -> bool:
        given = self._SIGNATURE.fullmatch(credential.strip())
        if given is None:  # sha1=..., no prefix, truncated: refused before any hashing
            return False
        return hmac.compare_digest(hmac_sha256(secret, body), given.group(1).lower())

    def event(self, headers: Headers, body: bytes) -> Event:
        payload = _load(headers, body)
        name = headers.get("x-github-event", "").strip()[:MAX_EVENT_NAME]
        repository = payload.get("repository")
        urls = _urls(repository, "clone_url", "ssh_url", "git_url", "html_url", "svn_url")
        kind, ref = (EventKind.PING, None) if name == "ping" else _push_or_ref(name, payload)
        delivery = self._delivery(headers, body, "x-github-delivery")
        return Event(self.name, name or "unknown", kind, delivery, tuple(urls), ref)


class GitLab(Forge):
    name = "gitlab"
    # "System Hook" deliveries carry pushes too, but are instance-wide: not a repo's hook.
    _EVENTS: ClassVar[frozenset[str]] = frozenset({"Push Hook", "Tag Push Hook"})

    def credential(self, headers: Headers) -> str | None:
        return headers.get("x-gitlab-token") or None

    def verify(self, credential: str, body: bytes, secret: str) -> bool:
        # The token is the secret itself: compare digests, so its length does not leak.
        given = hashlib.sha256(_latin1(credential)).digest()
        wanted = hashlib.sha256(secret.encode("utf-8")).digest()
        return hmac.compare_digest(given, wanted)

    def event(self, headers: Headers, body: bytes) -> Event:
        payload = _load(headers, body)
        name = headers.get("x-gitlab-event", "").strip()[:MAX_EVENT_NAME]
        urls = [
            *_urls(payload.get("project"), "git_http_url", "git_ssh_url", "web_url", "http_url"),
            *_urls(payload.get("project"), "ssh_url", "url"),
            *_urls(payload.get("repository"), "git_http_url", "git_ssh_url", "homepage", "url"),
        ]
        if name in self._EVENTS:
            kind, ref = EventKind.PUSH, _string(payload, "ref")
        else:
            kind, ref = EventKind.OTHER, None
        delivery = self._delivery(headers, body, "idempotency-key", "x-gitlab-event-uuid")
        return Event(self.name, name or "unknown", kind, delivery, tuple(dict.fromkeys(urls)), ref)


class Gitea(Forge):
    """Gitea, and Forgejo (its fork) under its own headers. Forgejo sends both sets."""

    name = "gitea"
    _prefixes: ClassVar[tuple[str, ...]] = ("x-gitea-", "x-forgejo-")

    def _header(self, headers: Headers, suffix: str) -> str:
        for prefix in self._prefixes:
            if value := headers.get(prefix + suffix, "").strip():
                return value
        return ""

    def credential(self, headers: Headers) -> str | None:
        return self._header(headers, "signature") or None

    def verify(self, credential: str, body: bytes, secret: str) -> bool:
        given = credential.strip()
        if not _HEX64.fullmatch(given):  # bare hex only: "sha256=..." is GitHub's form
            return False
        return hmac.compare_digest(hmac_sha256(secret, body), given.lower())

    def event(self, headers: Headers, body: bytes) -> Event:
        payload = _load(headers, body)
        name = self._header(headers, "event")[:MAX_EVENT_NAME]
        urls = _urls(payload.get("repository"), "clone_url", "ssh_url", "html_url")
        kind, ref = _push_or_ref(name, payload)
        delivery = self._header(headers, "delivery") or body_digest(body)
        return Event(self.name, name or "unknown", kind, delivery, tuple(urls), ref)


class Forgejo(Gitea):
    name = "forgejo"
    _prefixes = ("x-forgejo-", "x-gitea-")


class Registry(Forge):
    """A container registry's notifications (the distribution registry's ``notifications``
    endpoints; Harbor and others send the same envelope): ``Authorization: Token
    <secret>``, one of its ``headers``, proves the sender; a ``push`` of a tag (not of
    a blob) or a ``delete`` names a repository (``request.host`` + ``target.repository``)
    to index."""

    name = "registry"
    _ACTIONS: ClassVar[frozenset[str]] = frozenset({"push", "delete"})
    MAX_EVENTS = 100

    def credential(self, headers: Headers) -> str | None:
        value = headers.get("authorization", "").strip()
        scheme, _, token = value.partition(" ")
        return token.strip() or None if scheme.lower() == "token" else None

    def verify(self, credential: str, body: bytes, secret: str) -> bool:
        given = hashlib.sha256(_latin1(credential)).digest()
        wanted = hashlib.sha256(secret.encode("utf-8")).digest()
        return hmac.compare_digest(given, wanted)

    def event(self, headers: Headers, body: bytes) -> Event:
        payload = _load(headers, body)
        events = payload.get("events")
        if not isinstance(events, list):
            raise PayloadError("the body is not a registry's events envelope")
        urls: list[str] = []
        ref = None
        kind = EventKind.OTHER
        for item in events[: self.MAX_EVENTS]:
            if not isinstance(item, dict) or item.get("action") not in self._ACTIONS:
                continue
            target, request = item.get("target"), item.get("request")
            repository = _string(target, "repository") if isinstance(target, dict) else None
            host = _string(request, "host") if isinstance(request, dict) else None
            tag = _string(target, "tag") if isinstance(target, dict) else None
            if repository is None or host is None:
                continue
            urls.append(f"oci://{host}/{repository}")
            if item["action"] == "push" and not tag:
                continue  # a blob's push: the manifest's, with its tag, follows
            kind = EventKind.PUSH
            ref = ref or (f"refs/tags/{tag}" if tag else None)
        first = events[0] if events and isinstance(events[0], dict) else {}
        delivery = _string(first, "id") or body_digest(body)
        name = "push" if kind is EventKind.PUSH else "other"
        return Event(self.name, name, kind, delivery, tuple(dict.fromkeys(urls)), ref)


FORGES: dict[str, Forge] = {f.name: f for f in (GitHub(), GitLab(), Gitea(), Forgejo(), Registry())}


def webhook_urls(public_url: str) -> dict[str, str]:
    """Where each forge delivers webhooks to the Port at ``public_url``, by forge name."""
    base = public_url.rstrip("/")
    return {name: f"{base}/webhooks/{name}" for name in FORGES}


__all__ = [
    "FORGES",
    "Event",
    "EventKind",
    "Forge",
    "PayloadError",
    "body_digest",
    "webhook_urls",
]
