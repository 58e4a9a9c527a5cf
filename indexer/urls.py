"""Which remote URLs Port hands to git, and how they appear in logs.

A repository URL comes from a user, and git treats some URL forms as programs to run
(``ext::sh -c ...``), file descriptors (``fd::17``) or command-line options
(``--upload-pack=...``). So the check is an allow-list of forms, not a block-list:
``https://``, ``ssh://``, scp-style ``user@host:path`` and ``git://`` (and ``oci://``,
which never reaches git: ``indexer.oci``); ``file://`` and
plain paths only when local repositories are allowed (tests, demos), because on a server
they would let strangers read Port's own disk. git enforces the same list again through
``protocol.allow`` (see ``gitcmd``), so a URL that slipped through here still fails.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from indexer.errors import UnsafeUrlError

MAX_URL_LENGTH = 2048

# git's own rule for "<transport>::<address>" (remote helpers such as ext:: and fd::).
_HELPER = re.compile(r"^[A-Za-z0-9+.-]*::")
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# git reads "[user@]host:path" as ssh when a colon comes before any slash.
_SCP = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._~+-]+)@)?(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(?P<path>.*)$",
    re.DOTALL,
)
_HOSTNAME = re.compile(r"^[a-z0-9_](?:[a-z0-9._-]*[a-z0-9_])?$|^[0-9a-f:.]+$")
_SSH_SCHEMES = {"ssh": "ssh", "git+ssh": "ssh", "ssh+git": "ssh"}
REMOTE_SCHEMES = {"https", "git", *_SSH_SCHEMES}
OCI_SCHEMES = {"oci", "oci+http"}  # registries (indexer.oci), not git
MAX_CHANNELS = 16  # followed channels of one OCI repository
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_UNTAGGABLE = re.compile(r"[^A-Za-z0-9._-]+")
OCI_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*")
# Userinfo of any "scheme://user:pass@" in free text; greedy up to the last "@" of the
# authority, so a password holding "@" is hidden whole.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#\s]*)@", re.ASCII)


# The query of a URL may carry a token (``?private_token=...``): shown as ``?***``.
_QUERY = re.compile(r"(?P<base>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"?#]*)\?[^\s'\"#]*")


def is_oci(url: str) -> bool:
    """Is ``url`` an OCI repository's (read through a registry, never by git)?"""
    return url.split("://", 1)[0].lower() in OCI_SCHEMES if "://" in url else False


def channel_tag(channel: str) -> str | None:
    """The tag a channel's descriptor is pushed under (arkitekt-spec's ``channel_tag``:
    its name, made taggable), or None for a name that cannot be one."""
    tag = _UNTAGGABLE.sub("-", channel).strip("-.")
    return tag if _TAG.fullmatch(tag) else None


def redact(url: str) -> str:
    """Hide credentials in a URL, or in any text that contains URLs (git's messages).

    ``https://user:pass@host/x`` becomes ``https://***@host/x``. A bare user name is
    hidden too for web URLs (a token is often passed as the user), but kept for ssh,
    where ``git@`` is just the account name. Query strings are hidden as ``?***``.
    """

    def hide(match: re.Match[str]) -> str:
        scheme, info = match.group("scheme"), match.group("info")
        if scheme.lower().rstrip(":/") in _SSH_SCHEMES and ":" not in info:
            return match.group(0)
        return f"{scheme}***@"

    return _QUERY.sub(r"\g<base>?***", _USERINFO.sub(hide, url))


def check_url(url: str, *, allow_local: bool) -> str:
    """Return ``url`` in normal form if Port may fetch it, else raise ``UnsafeUrlError``.

    Normal form: lower-case scheme and host, ``git+ssh://`` spelled ``ssh://``, and local
    paths as absolute ``file://`` URLs (so git uses its pack transport, which honours
    ``protocol.file.allow``, rather than hard-linking another repository's files).
    """
    _check_characters(url)
    if _HELPER.match(url):
        raise _refuse(url, "git remote helpers ('transport::address') are not allowed")
    scheme = SCHEME.match(url)
    if scheme:
        name = scheme.group(1).lower()
        if name == "file":
            return _local(url, _split(url), allow_local)
        if name in OCI_SCHEMES:
            return _oci(url, name, _split(url), allow_local)
        if name not in REMOTE_SCHEMES:
            raise _refuse(url, f"the '{name}' protocol is not allowed (use https, ssh, git or oci)")
        return _remote(url, name, _split(url))
    if url.startswith(("/", ".", "~")):
        return _local(url, None, allow_local)
    scp = _SCP.match(url)
    if scp:
        return _scp(url, scp)
    if ":" not in url:
        return _local(url, None, allow_local)
    raise _refuse(url, "not a URL git can fetch from")


def host_of(url: str) -> str | None:
    """The host a URL in normal form (``check_url``'s) connects to; None for a local one."""
    if url.startswith("file://"):
        return None
    if SCHEME.match(url):
        return urlsplit(url).hostname
    scp = _SCP.match(url)
    return scp.group("host").strip("[]").lower() if scp else None


def _refuse(url: str, why: str) -> UnsafeUrlError:
    shown = redact(url)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return UnsafeUrlError(f"refusing repository URL {shown!r}: {why}")


def _check_characters(url: str) -> None:
    if not url:
        raise _refuse(url, "it is empty")
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(url, f"it is longer than {MAX_URL_LENGTH} characters")
    if url.startswith("-"):
        raise _refuse(url, "it looks like a command-line option")
    # Encoded control characters would reach git (and ssh) after decoding.
    for text in (url, unquote(url)):
        for char in text:
            if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
                raise _refuse(url, "it contains control characters")
    if any(char.isspace() for char in url):
        raise _refuse(url, "it contains whitespace")


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise _refuse(url, f"it is malformed ({exc})") from None
    if parts.fragment or parts.query or "#" in url or "?" in url:
        raise _refuse(url, "query strings and fragments are not allowed")
    return parts


def _check_host(url: str, host: str | None) -> str:
    if not host:
        raise _refuse(url, "it has no host")
    host = host.lower()
    if host.startswith("-") or not _HOSTNAME.match(host):
        raise _refuse(url, f"'{host}' is not a valid host name")
    return host


def _check_path(url: str, path: str) -> None:
    if path.strip("/") == "":
        raise _refuse(url, "it names no repository path")
    if path.startswith("-"):
        raise _refuse(url, "its path looks like a command-line option")


def _remote(url: str, scheme: str, parts: SplitResult) -> str:
    host = _check_host(url, parts.hostname)
    _check_path(url, parts.path)
    scheme = _SSH_SCHEMES.get(scheme, scheme)
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if userinfo and scheme == "git":
        raise _refuse(url, "git:// URLs carry no credentials")
    if userinfo.startswith("-"):
        raise _refuse(url, "its user name looks like a command-line option")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return f"{scheme}://{netloc}{parts.path}"


def _oci(url: str, scheme: str, parts: SplitResult, allow_local: bool) -> str:
    """An OCI repository: ``oci://registry[:port]/name`` (https), or ``oci+http://`` for
    a registry without TLS, only where local repositories are allowed (tests, a lab's
    own registry): credentials would cross the network in clear."""
    if scheme == "oci+http" and not allow_local:
        raise _refuse(url, "plain-HTTP registries (oci+http://) are not allowed here: use oci://")
    if not OCI_NAME.fullmatch(parts.path.strip("/")):
        raise _refuse(
            url,
            "name the repository alone, lower case, without a tag or digest "
            "(oci://registry/org/app)",
        )
    return _remote(url, scheme, parts)


def _scp(url: str, match: re.Match[str]) -> str:
    host = _check_host(url, match.group("host").strip("[]"))
    path = match.group("path")
    _check_path(url, path)
    user = match.group("user")
    if user and user.startswith("-"):
        raise _refuse(url, "its user name looks like a command-line option")
    netloc = f"[{host}]" if ":" in host else host
    return f"{user}@{netloc}:{path}" if user else f"{netloc}:{path}"


def _local(url: str, parts: SplitResult | None, allow_local: bool) -> str:
    if not allow_local:
        raise _refuse(url, "local repositories (file:// and paths) are not allowed on this server")
    if parts is None:
        path = str(Path(url).expanduser())
    else:
        if parts.netloc not in ("", "localhost"):
            raise _refuse(url, "file:// URLs may not name a host")
        path = unquote(parts.path)
    if not path:
        raise _refuse(url, "it names no path")
    # git decodes %XX in file:// URLs, so a literal "%" must be encoded to survive.
    return "file://" + os.path.normpath(Path(path).absolute()).replace("%", "%25")
