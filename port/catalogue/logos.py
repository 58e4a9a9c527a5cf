"""Logos given as https URLs: fetched once, at index time, so that a visitor's browser
never asks a manifest's server for anything (it would learn who browses the store).

The fetch is an outbound request a manifest chose, so it goes through ``port.outbound``:
public addresses only (``PORT_LOGO_ALLOWED_NETWORKS`` adds others), no redirects, one
deadline, at most ``LOGO_MAX_BYTES``; at most ``FETCHES_PER_RUN`` logos per index run.
What comes back must be an image by its first bytes, as for logos in the repository.
Failures are located errors of the release's manifest (``app.logo``); the app is
indexed all the same and keeps the logo it had.
"""

from __future__ import annotations

import http.client

from indexer.logos import LOGO_MAX_BYTES, Logo, image_type, newest_with_logo
from indexer.result import IndexResult
from manifests.errors import ManifestError
from port import outbound

FETCHES_PER_RUN = 20
TIMEOUT_SECONDS = 10.0


def fetch_logos(result: IndexResult, guard: outbound.Guard) -> None:
    """Fetch the https logos of the apps ``result`` read (blocking: run in a thread)."""
    wanted = sorted(newest_with_logo(result.releases, urls=True).items())
    for number, (identifier, found) in enumerate(wanted):
        url = found.spec.app.logo or ""
        if number < FETCHES_PER_RUN:
            fetched = _fetch(url, guard, found.spec.version)
        else:
            fetched = f"was not fetched: at most {FETCHES_PER_RUN} logos are fetched per run"
        if isinstance(fetched, Logo):
            result.logos[identifier] = fetched
            continue
        result.errors.append(
            ManifestError(
                file=found.file, ref=found.ref, path="app.logo", message=f"the logo {fetched}"
            )
        )


def _fetch(url: str, guard: outbound.Guard, version: str) -> Logo | str:
    """The logo at ``url``, or why not (to follow "the logo ")."""
    shown = url[:200]
    try:
        answer = outbound.get(url, timeout=TIMEOUT_SECONDS, guard=guard, max_bytes=LOGO_MAX_BYTES)
    except outbound.UrlRefused as exc:
        return f"was not fetched: {exc}"
    except outbound.TooLarge:
        return f"{shown} is over the limit of {LOGO_MAX_BYTES // 1024} KB"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return f"{shown} could not be fetched ({type(exc).__name__})"
    if answer.status != 200:
        return f"{shown} answered HTTP {answer.status}"
    kind = image_type(answer.body)
    if kind is None:
        return f"{shown} is not a PNG, JPEG, GIF or WebP image"
    return Logo(kind, answer.body, version)
