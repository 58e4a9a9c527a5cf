"""``POST /webhooks/{github,gitlab,gitea,forgejo,registry}``: thin HTTP edge of port.webhooks.

Statuses: 202 accepted (also for pings, replays and events that do not index), 401
unsigned or wrong signature or no such repository (one answer for all three), 400 a
body that is not that forge's payload, 404 an unknown forge, 413 a body over
``MAX_WEBHOOK_BODY``. The answer comes once the delivery is recorded and its index job
queued; the index itself runs as a job.

Also the ``webhookUrls`` of a Repo in GraphQL: where to point a forge.
"""

from __future__ import annotations

from typing import Any

import strawberry
from litestar import MediaType, Request, Response, post
from litestar.datastructures import State

from port.webhooks.forges import FORGES, webhook_urls
from port.webhooks.receive import Outcome, Status, receive

# The body is parsed before its signature can be checked (the payload names the repo,
# hence the secret), so this bounds what an anonymous caller can make Port parse. Tag
# pushes are small; a branch push of hundreds of commits may be refused (413), and the
# poller catches up. Kept apart from PORT_MAX_BODY_KB, which sizes GraphQL documents.
MAX_WEBHOOK_BODY = 1 << 20

_STATUS = {
    Status.ACCEPTED: 202,
    Status.REPLAY: 202,
    Status.UNAUTHORIZED: 401,
    Status.INVALID: 400,
    Status.UNKNOWN_FORGE: 404,
}
PATHS = tuple(f"/webhooks/{name}" for name in FORGES)  # metric labels


def answer(outcome: Outcome) -> dict[str, Any]:
    """The JSON answer: never a header value, never a secret."""
    accepted = outcome.status in (Status.ACCEPTED, Status.REPLAY)
    body: dict[str, Any] = {"accepted": accepted, "message": outcome.message}
    if accepted and outcome.event is not None:
        body |= {
            "event": outcome.event.name,
            "replay": outcome.status is Status.REPLAY,
            "repos": len(outcome.repos),
            "jobs": len(outcome.jobs),
        }
    return body


@post(
    "/webhooks/{forge:str}",
    request_max_body_size=MAX_WEBHOOK_BODY,
    media_type=MediaType.JSON,
    status_code=202,
)
async def webhook(request: Request[Any, Any, State]) -> Response[dict[str, Any]]:
    """A forge's delivery: verified, recorded once, its repository's index queued."""
    forge: str = request.path_params["forge"]
    if forge not in FORGES:  # before reading a byte of the body
        outcome = Outcome(Status.UNKNOWN_FORGE, f"no forge {forge[:32]!r}: use {sorted(FORGES)}")
    else:
        body = await request.body()  # 413 beyond MAX_WEBHOOK_BODY
        headers = dict(request.headers.items())
        state = request.app.state.api
        outcome = await receive(state.sessions, forge, headers, body)
        if outcome.jobs:
            state.wake_jobs()
    return Response(answer(outcome), status_code=_STATUS[outcome.status])


@strawberry.type(
    name="WebhookUrls",
    description="Where a forge delivers this repository's webhooks: paste the URL of "
    "your forge into its webhook form, with the repository's webhook secret "
    "(see docs/webhooks.md). Needs PORT_SERVER_URL set to Port's public address.",
)
class WebhookUrlsType:
    github: str
    gitlab: str
    gitea: str
    forgejo: str
    registry: str = strawberry.field(
        description="For an OCI repository: the registry's notifications endpoint, sent "
        "with the header `Authorization: Token <webhook secret>`."
    )

    @classmethod
    def of(cls, public_url: str) -> WebhookUrlsType:
        return cls(**webhook_urls(public_url))


__all__ = ["MAX_WEBHOOK_BODY", "PATHS", "WebhookUrlsType", "answer", "webhook"]
