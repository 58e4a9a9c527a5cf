"""OCI repositories: Arkitekt release descriptors read through a registry's HTTP API.

A Repo whose URL is ``oci://registry/org/app`` (``oci+http://`` for a plain-HTTP
registry, where local repositories are allowed) is read as the distribution spec
describes: the tags list (following ``Link`` pages), each tag's manifest (``Accept`` for
OCI and Docker media types), and for a manifest whose config has the media type of a
release descriptor (``application/vnd.arkitekt.release.v1+json``), that blob, checked
against its digest. Images pushed beside the releases are told apart by that media type.

Tags are refs, as git's are: ``refs/tags/<tag>`` for release tags, valued by the
manifest's digest, ``refs/oci/<tag>`` for every other tag (images), read once. A rescan
reads only tags it has not seen, so one where nothing moved costs one tags-list request;
a tag deleted from the registry withdraws its release, as a deleted git tag does.
A channel (a branch's builds) is a tag the plugin moves: its descriptor has ``channel``
set and a pre-release version (``1.4.1-dev.3f2a9c1``). Only the channels a Repo follows
are read, each under ``refs/channels/<channel>`` valued by the manifest's digest, and
that digest is checked on every run: a rescan costs the tags list and one manifest per
followed channel. A moved channel yields the build it points at now; the catalogue keeps
the builds before as no longer current (port/catalogue/ingest.py).

Credentials come from the URL (``oci://user:token@registry/...``, as for git remotes)
and are sent only to the registry and to the token realm it names: anonymous first;
``WWW-Authenticate: Bearer realm=...`` is answered with a token from the realm (asked
with the credentials when there are some), ``Basic`` with the credentials.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx
from semver import Version

from indexer.errors import IndexerError, RemoteError, UnsafeUrlError
from indexer.limits import Budget, Limits
from indexer.refs import CHANNELS, TAGS  # release tags, as git's
from indexer.result import FoundRelease, IndexResult, Previous, RepoSpec, TagInfo
from indexer.tags import parse_tag
from indexer.urls import OCI_NAME, channel_tag, redact
from manifests.arkitekt import Descriptor, parse_release_descriptor
from manifests.errors import ManifestError

log = logging.getLogger(__name__)

SCHEMES = {"oci": "https", "oci+http": "http"}
RELEASE_MEDIA_TYPE = "application/vnd.arkitekt.release.v1+json"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
OTHERS = "refs/oci/"  # tags of images (not releases): read once, then known
MAX_MANIFEST_BYTES = 4 << 20  # the distribution spec's own recommendation for manifests
MAX_TAGS = 10_000
PAGE = 1000
MAX_PAGES = 100  # pages may hold fewer than PAGE tags, or none: never followed forever
REQUEST_SECONDS = 60.0  # one request, however slowly its bytes arrive
_LINK = re.compile(r'<(?P<url>[^>]+)>\s*;\s*rel="?next"?')
_CHALLENGE = re.compile(r'(?P<key>[A-Za-z]+)="(?P<value>[^"]*)"')

Guard = Callable[[str], None]
"""Raises for a URL Port must not reach (a redirect, a token realm): the caller's
address rules (loopback, private networks...), as for the registry itself."""


@dataclass(frozen=True, slots=True)
class OciLocation:
    """Where an OCI repository is: the registry's base URL, the repository's path and
    the credentials of the URL, if any."""

    base: str  # "https://ghcr.io" or "http://127.0.0.1:5000"
    registry: str  # "ghcr.io", "127.0.0.1:5000": what image references name
    repository: str  # "acme/stardist"
    username: str | None = None
    password: str | None = None


def parse_oci_url(url: str) -> OciLocation:
    """The location of a URL in normal form (``indexer.urls.check_url``'s)."""
    parts = urlsplit(url)
    scheme = SCHEMES.get(parts.scheme.lower())
    host = parts.hostname
    repository = parts.path.strip("/")
    if scheme is None or not host or not repository:
        raise UnsafeUrlError(f"{redact(url)} is not an OCI repository URL (oci://registry/name)")
    if not OCI_NAME.fullmatch(repository):
        raise UnsafeUrlError(
            f"{redact(url)}: {repository!r} is not a repository name (lower case, a/b/c)"
        )
    netloc = f"[{host}]" if ":" in host else host
    registry = f"{netloc}:{parts.port}" if parts.port else netloc
    return OciLocation(
        base=f"{scheme}://{registry}",
        registry=registry,
        repository=repository,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """A registry's answer, its body read (within a bound)."""

    status: int
    headers: httpx.Headers
    content: bytes
    url: str

    def json(self) -> Any:
        return json.loads(self.content)


class Registry:
    """Requests to one registry for one repository: the auth dance at most once per
    scope, every answer bounded in time and bytes, every other address guarded."""

    def __init__(self, where: OciLocation, limits: Limits, guard: Guard | None = None) -> None:
        self.where = where
        self.guard = guard
        self.budget = Budget(limits)  # the run's: time, bytes and descriptors
        self._auth: str | None = None
        self._client = httpx.Client(
            timeout=httpx.Timeout(min(limits.timeout_seconds, 30.0)),
            follow_redirects=False,  # followed by hand: each target is guarded first
            headers={"User-Agent": "Port (OCI indexer)"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _url(self, path: str) -> str:
        return f"{self.where.base}/v2/{self.where.repository}/{path}"

    def get(self, url: str, accept: str = "*/*", max_bytes: int = MAX_MANIFEST_BYTES) -> Answer:
        """GET ``url`` (redirects followed, auth answered); the body read, at most
        ``max_bytes``. RemoteError for an answer that is not 200."""
        for _hop in range(5):
            answer = self._send(url, accept, max_bytes)
            same_host = urlsplit(url).netloc == urlsplit(self.where.base).netloc
            if answer.status == 401 and self._auth is None and same_host:
                self._auth = self._authorization(answer)
                answer = self._send(url, accept, max_bytes)
            if answer.status in (301, 302, 303, 307, 308) and "location" in answer.headers:
                url = urljoin(url, answer.headers["location"])
                if self.guard is not None:
                    self.guard(url)
                continue
            if answer.status != 200:
                raise RemoteError(
                    f"{self.where.registry} answered {answer.status} for "
                    f"{redact(answer.url)}{_why(answer)}"
                )
            return answer
        raise RemoteError(f"{self.where.registry}: too many redirects for {redact(url)}")

    def _send(self, url: str, accept: str, max_bytes: int) -> Answer:
        headers = {"Accept": accept}
        same_host = urlsplit(url).netloc == urlsplit(self.where.base).netloc
        if self._auth is not None and same_host:  # never to a storage redirect elsewhere
            headers["Authorization"] = self._auth
        return self._fetch(url, headers, max_bytes)

    def _fetch(self, url: str, headers: dict[str, str], max_bytes: int, auth: Any = None) -> Answer:
        """One GET, its body read within ``max_bytes`` and the request's and run's time."""
        deadline = min(time.monotonic() + REQUEST_SECONDS, self.budget.deadline)
        try:
            with self._client.stream(
                "GET", url, headers=headers, auth=auth or httpx.USE_CLIENT_DEFAULT
            ) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise RemoteError(
                            f"{self.where.registry}: {redact(url)} is larger than {max_bytes} bytes"
                        )
                    if time.monotonic() > deadline:
                        raise RemoteError(f"{self.where.registry}: {redact(url)} took too long")
                self.budget.bytes += len(body)
                return Answer(response.status_code, response.headers, bytes(body), url)
        except httpx.HTTPError as exc:
            raise RemoteError(
                f"{self.where.registry} cannot be reached: {type(exc).__name__}: {redact(str(exc))}"
            ) from None

    def _authorization(self, challenge: Answer) -> str | None:
        """The Authorization header that answers ``challenge``'s WWW-Authenticate."""
        header = challenge.headers.get("www-authenticate", "")
        scheme = header.split(" ", 1)[0].lower()
        basic = None
        if self.where.username is not None:
            basic = httpx.BasicAuth(self.where.username, self.where.password or "")
        if scheme == "basic":
            if basic is None:
                raise RemoteError(f"{self.where.registry} wants credentials: put them in the URL")
            request = self._client.build_request("GET", self.where.base)
            return str(next(basic.auth_flow(request)).headers["Authorization"])
        if scheme != "bearer":
            return None
        params: dict[str, str] = {m["key"]: m["value"] for m in _CHALLENGE.finditer(header)}
        realm = params.pop("realm", None)
        if not realm or urlsplit(realm).scheme not in ("https", "http"):
            raise RemoteError(f"{self.where.registry} asked for a token without a realm")
        if urlsplit(realm).scheme == "http" and urlsplit(self.where.base).scheme == "https":
            raise RemoteError(f"{self.where.registry} names a token service without TLS")
        if self.guard is not None:
            self.guard(realm)
        if "scope" not in params:
            params["scope"] = f"repository:{self.where.repository}:pull"
        asked = str(httpx.URL(realm, params=params))
        answer = self._fetch(asked, {"Accept": "application/json"}, MAX_MANIFEST_BYTES, basic)
        if answer.status != 200:
            raise RemoteError(
                f"the token service of {self.where.registry} answered {answer.status}"
                " (wrong credentials?)"
            )
        try:
            data = answer.json()
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError, RecursionError):
            token = None
        if not isinstance(token, str) or not token:
            raise RemoteError(f"the token service of {self.where.registry} gave no token")
        return f"Bearer {token}"

    def tags(self) -> list[str]:
        """Every tag of the repository (at most MAX_TAGS), following pages."""
        found: list[str] = []
        url: str | None = self._url(f"tags/list?n={PAGE}")
        for _page in range(MAX_PAGES):
            if url is None:
                return found
            response = self.get(url, "application/json")
            try:
                page = response.json().get("tags") or []
            except (ValueError, AttributeError, RecursionError):
                page = None
            if not isinstance(page, list):
                raise RemoteError(f"{self.where.registry} sent a tags list that is not one")
            found += [t for t in page if isinstance(t, str)]
            if len(found) > MAX_TAGS:
                raise RemoteError(f"{self.where.repository} has more than {MAX_TAGS} tags")
            url = _next_page(url, response.headers.get("link"))
        raise RemoteError(f"{self.where.repository}: more than {MAX_PAGES} pages of tags")

    def manifest(self, reference: str) -> tuple[str, dict[str, Any]]:
        """(digest, manifest) of a tag or digest."""
        response = self.get(self._url(f"manifests/{reference}"), ", ".join(MANIFEST_TYPES))
        digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
        claimed = response.headers.get("docker-content-digest")
        if claimed and claimed != digest and claimed.startswith("sha256:"):
            raise RemoteError(f"the manifest of {reference} does not match its digest {claimed}")
        try:
            data = response.json()
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            raise RemoteError(f"the manifest of {reference} is not a JSON object")
        return digest, data

    def blob(self, digest: str, max_bytes: int) -> bytes:
        """A blob, checked against ``digest`` (sha256 only)."""
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise RemoteError(f"blob digest {digest[:80]!r} is not a sha256 digest")
        data = self.get(self._url(f"blobs/{digest}"), max_bytes=max_bytes).content
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise RemoteError(f"blob {digest} does not match its digest")
        return data


def _why(answer: Answer) -> str:
    """The registry's own words for an error answer, when it gives them."""
    try:
        errors = answer.json().get("errors")
        message = errors[0].get("message") if isinstance(errors, list) and errors else None
    except (ValueError, AttributeError, RecursionError, KeyError, TypeError):
        message = None
    return f": {redact(str(message))[:200]}" if message else ""


def _next_page(current: str, link: str | None) -> str | None:
    """The next page of a ``Link: <...>; rel="next"`` header, on the same registry."""
    match = _LINK.search(link or "")
    if match is None:
        return None
    following = urljoin(current, str(match["url"]))
    if urlsplit(following).netloc != urlsplit(current).netloc:
        raise RemoteError("the tags list's next page is on another host")
    return following


def _release_tags(refs: dict[str, str], prefix: str) -> dict[str, TagInfo]:
    tags = {}
    for name, digest in refs.items():
        if name.startswith(TAGS):
            tag = name[len(TAGS) :]
            parsed = parse_tag(tag, prefix)
            if parsed is not None:
                tags[tag] = TagInfo(name=tag, version=parsed, commit=digest)
    return tags


def index_oci(
    repo: RepoSpec,
    previous: Previous | None = None,
    limits: Limits = Limits(),  # noqa: B008 - frozen, so one shared default is safe
    guard: Guard | None = None,
) -> IndexResult:
    """Index the OCI repository of ``repo.url``; ``previous``'s refs say what was read."""
    where = parse_oci_url(repo.url)
    before = previous.refs if previous is not None else {}
    # tag -> its ref name, for the tags read once (releases and images)
    known = {name.split("/", 2)[2]: name for name in before if not name.startswith(CHANNELS)}
    with Registry(where, limits, guard) as registry:
        listed = registry.tags()
        tags = [t for t in listed if parse_tag(t, repo.tag_prefix) is not None]
        heads = _channel_heads(registry, repo.channels, set(listed))
        channel_refs = {CHANNELS + c: d for c, (_tag, d, _m) in heads.items() if d is not None}
        stale = {n: d for n, d in before.items() if n.startswith(CHANNELS)}
        if previous is not None and set(tags) == set(known) and channel_refs == stale:
            log.info("%s: no tag moved since the last run", redact(repo.url))
            return IndexResult(
                repo=repo,
                branch="",
                head=None,
                refs=dict(before),
                unchanged=True,
                tags=_release_tags(dict(before), repo.tag_prefix),
            )
        refs = {known[t]: before[known[t]] for t in tags if t in known}
        result = IndexResult(repo=repo, branch="", head=None, refs=refs, fetched=True)
        _read_new(registry, where, repo, [t for t in tags if t not in known], limits, result)
        for channel, (tag, digest, manifest) in heads.items():
            ref = CHANNELS + channel
            if digest is None:
                result.channels[channel] = None  # its tag is gone: so are its builds
            else:
                if ref in before:  # not moved, or moved to what may not read: it stands
                    result.refs[ref] = before[ref]
                if before.get(ref) != digest:
                    _read_channel(registry, where, channel, tag, digest, manifest, limits, result)
    result.tags = _release_tags(result.refs, repo.tag_prefix)
    return result


Head = tuple[str, str | None, dict[str, Any] | None]
"""A followed channel's tag, and the hex digest and manifest it points at (None, None:
the registry has no such tag)."""


def _channel_heads(
    registry: Registry, channels: tuple[str, ...], listed: set[str]
) -> dict[str, Head]:
    """What each followed channel's tag points at: one manifest request per channel."""
    heads: dict[str, Head] = {}
    for channel in channels:
        tag = channel_tag(channel)
        if tag is None:
            continue  # refused when followed; never a request for it
        if tag not in listed:
            heads[channel] = (tag, None, None)
            continue
        digest, manifest = registry.manifest(tag)  # a channel that cannot be read: run fails
        heads[channel] = (tag, digest.removeprefix("sha256:"), manifest)
    return heads


def _descriptor(
    registry: Registry,
    file: str,
    tag: str,
    manifest: dict[str, Any],
    limits: Limits,
    result: IndexResult,
) -> Descriptor | None:
    """The release descriptor ``manifest`` wraps, read; None for another image (or a
    blob that cannot be had: a located error)."""
    raw = manifest.get("config")
    config: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if config.get("mediaType") != RELEASE_MEDIA_TYPE:
        return None
    try:
        blob = registry.blob(str(config.get("digest")), limits.max_manifest_bytes)
    except IndexerError as exc:
        result.errors.append(ManifestError(file=file, ref=tag, message=str(exc)))
        return Descriptor(None, None, [])
    result.blobs_read += 1
    registry.budget.manifests += 1
    read = parse_release_descriptor(blob, file=file, ref=tag, max_bytes=limits.max_manifest_bytes)
    result.errors.extend(read.errors)
    return read


def _read_channel(
    registry: Registry,
    where: OciLocation,
    channel: str,
    tag: str,
    digest: str,
    manifest: dict[str, Any] | None,
    limits: Limits,
    result: IndexResult,
) -> None:
    """The build a followed channel moved to. Anything wrong is a located error and the
    channel's ref stays as it was: its last good build stands, and is read again."""
    file = f"{where.registry}/{where.repository}:{tag}"

    def problem(message: str) -> None:
        result.errors.append(ManifestError(file=file, ref=tag, message=message))

    read = _descriptor(registry, file, tag, manifest or {}, limits, result)
    if read is None:
        return problem(f"the tag {tag} of channel {channel!r} is not a release descriptor")
    if read.release is None:
        return None  # broken: its errors are recorded
    if read.channel != channel:
        whose = f"channel {read.channel!r}" if read.channel else "a release, not a channel build"
        return problem(f"the descriptor under {tag} is {whose}; channel {channel!r} is not read")
    spec = read.release
    version = build_version(spec.version, read.revision, digest)
    if not Version.is_valid(version):
        return problem(f"build version {version!r} of channel {channel!r} is not semver")
    spec = replace(spec, version=version)
    result.refs[CHANNELS + channel] = digest
    result.channels[channel] = (spec.app.identifier, spec.version)
    result.releases.append(FoundRelease(spec, "oci", file, tag, digest, channel=channel))
    return None


def build_version(version: str, revision: str | None, digest: str) -> str:
    """The version of a channel's build: the descriptor's, marked with what it was
    built from (arkitekt-spec's ``channel_version``: ``1.4.1-dev.3f2a9c1``) unless it is
    already. The mark is the revision's first 7 characters, else the manifest digest's,
    so two builds are never one version; an all-digit mark is prefixed with ``g`` (as
    ``git describe`` does), since semver refuses numbers with a leading zero."""
    mark = re.sub(r"[^0-9A-Za-z-]", "", revision or "")[:7] or digest[:7]
    if mark.isdigit():
        mark = f"g{mark}"
    if mark in version:
        return version
    return f"{version}.{mark}" if Version.parse(version).prerelease else f"{version}-dev.{mark}"


def _read_new(
    registry: Registry,
    where: OciLocation,
    repo: RepoSpec,
    tags: list[str],
    limits: Limits,
    result: IndexResult,
) -> None:
    """Read the manifests (and descriptors) of ``tags``, within the run's budget."""
    for index, tag in enumerate(_newest_first(tags, repo.tag_prefix)):
        file = f"{where.registry}/{where.repository}:{tag}"
        spent = registry.budget.exhausted()
        if spent is not None:
            more = len(tags) - index - 1
            message = f"not read: this index run reached its budget of {spent}"
            if more:
                message += f"; {more} more tags were not read either"
            result.errors.append(ManifestError(file=file, ref=tag, message=message))
            return
        try:
            digest, manifest = registry.manifest(tag)
        except RemoteError as exc:
            result.errors.append(ManifestError(file=file, ref=tag, message=str(exc)))
            continue
        read = _descriptor(registry, file, tag, manifest, limits, result)
        if read is None or read.channel is not None:
            # An image, or a channel's build pushed under a version's tag: known from
            # now on (a followed channel's builds are read under the channel's tag).
            result.refs[OTHERS + tag] = digest
            result.tags_read.add(tag)
            continue
        if read.release is None:
            continue  # broken: read again next run, its last good release stands
        version = parse_tag(tag, repo.tag_prefix)
        if read.release.version != version:
            result.errors.append(
                ManifestError(
                    file=file,
                    ref=tag,
                    path="manifest.version",
                    message=f"the descriptor says version {read.release.version}, its tag "
                    f"{tag} says {version}; it is not indexed",
                )
            )
            continue
        hex_digest = digest.removeprefix("sha256:")
        result.refs[TAGS + tag] = hex_digest
        result.tags_read.add(tag)
        result.releases.append(FoundRelease(read.release, "oci", file, tag, hex_digest))


def _newest_first(tags: list[str], prefix: str) -> Iterator[str]:
    """Tags by version, newest first: what a budget leaves unread is the oldest."""

    def key(tag: str) -> Version:
        return Version.parse(parse_tag(tag, prefix) or "0.0.0")

    yield from sorted(tags, key=key, reverse=True)
