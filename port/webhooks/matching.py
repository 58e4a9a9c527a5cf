"""Which registered repositories a forge's payload is about, by clone URL.

A forge names its repository in several forms at once (GitHub's ``clone_url``,
``ssh_url``, ``git_url``, ``html_url``) and a repository may have been registered in any
of them. So URLs are compared by a *remote key*, ``host/owner/name``:

- the scheme does not count: ``https``, ``http``, ``ssh`` (``git+ssh``), ``git`` and
  scp-style ``git@host:owner/name`` of one repository share a key;
- user names, passwords and tokens (``https://oauth2:TOKEN@host/...``) do not count;
- the port does not count, default or not: a forge serves https and ssh on different
  ports (``https://git.example:3000/o/r`` and ``ssh://git@git.example:2222/o/r.git``
  are one repository);
- the host is lower-cased, and a trailing ``.git``, trailing and doubled slashes and
  percent-encoding are dropped;
- the path is lower-cased too. GitHub, GitLab and Gitea/Forgejo all resolve owner and
  repository names regardless of case (``github.com/Acme/Stardist`` is
  ``github.com/acme/stardist``), and only those forges reach this code.

A looser key never lets a delivery through on its own: a repository that matches must
also have signed the delivery with its webhook secret (see ``receive``). The key only
decides whose secret is tried.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import func

from indexer.urls import MAX_URL_LENGTH, OCI_SCHEMES, REMOTE_SCHEMES, SCHEME
from port.catalogue.models import Repo
from port.catalogue.repos import LISTED

# A forge's payload may name the repository by its http:// URL, which Port refuses to
# register but which still names the same repository.
_REMOTE_SCHEMES = {*REMOTE_SCHEMES, *OCI_SCHEMES, "http"}
# git reads "[user@]host:path" as ssh when a colon comes before any slash.
_SCP = re.compile(r"^(?:[^@/\s]+@)?(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(?P<path>[^\s]*)$")
_PLAIN_NAME = re.compile(r"[a-z0-9._-]+")
MAX_URLS = 16  # a payload names its repository a handful of times, not more


def remote_key(url: str) -> str | None:
    """``host/owner/name`` of a remote URL (lower-cased), or None when it names no remote.

    >>> remote_key("git@GitHub.com:Acme/Stardist.git")
    'github.com/acme/stardist'
    """
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        return None
    scheme = SCHEME.match(url)
    if scheme:
        if scheme.group(1).lower() not in _REMOTE_SCHEMES:
            return None  # file://, ext::, ... are never what a forge delivers
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
            host, path = parts.hostname, parts.path
        except ValueError:
            return None
    else:
        scp = _SCP.match(url)
        if scp is None:
            return None
        host, path = scp.group("host").strip("[]"), scp.group("path")
    if not host:
        return None
    segments = [s for s in unquote(path).split("/") if s]
    if segments and segments[-1].lower().endswith(".git"):
        segments[-1] = segments[-1][: -len(".git")]
        segments = [s for s in segments if s]
    if not segments:
        return None
    return "/".join([host.lower().rstrip("."), *segments]).lower()


def payload_keys(urls: Iterable[str]) -> set[str]:
    """The remote keys of the URLs a payload names (at most ``MAX_URLS`` of them)."""
    keys = set()
    for url in list(urls)[:MAX_URLS]:
        key = remote_key(url)
        if key is not None:
            keys.add(key)
    return keys


async def matching_repos(session: AsyncSession, urls: Iterable[str]) -> list[Repo]:
    """Registered repositories whose URL has the remote key of any of ``urls``, by id.

    Several repositories may share a remote (one monorepo, different tag prefixes or
    manifest paths): all of them are returned. SQL narrows the candidates by the
    repository name (or host) as a substring; the key comparison decides.
    """
    keys = payload_keys(urls)
    if not keys:
        return []
    needles = set()
    for key in keys:
        host, _, rest = key.partition("/")
        name = rest.rpartition("/")[2]
        needles.add(name if _PLAIN_NAME.fullmatch(name) else host)
    lowered = func.lower(Repo.url)
    candidates = await session.scalars(
        select(Repo)
        .where(LISTED, or_(*(lowered.contains(n, autoescape=True) for n in sorted(needles))))
        .order_by(Repo.id)
    )
    return [repo for repo in candidates if remote_key(repo.url) in keys]


__all__ = ["matching_repos", "payload_keys", "remote_key"]
