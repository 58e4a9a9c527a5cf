"""Notices out: a signed JSON POST to PORT_NOTIFY_URL, queued as a job, retried on error."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from port.jobs.models import Job
from port.notify import Notifier
from tests.conftest import Catalogue


class Receiver(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that keeps what it was sent and answers ``status``."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # the name http.server calls
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass  # quiet: the test output is for failures


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def queued(catalogue: Catalogue) -> list[Job]:
    async with catalogue.sessions() as session:
        return list(await session.scalars(select(Job).where(Job.kind == "notify")))


async def test_a_notice_is_queued_signed_and_delivered(
    catalogue: Catalogue, receiver: Receiver
) -> None:
    settings = catalogue.settings.model_copy(
        update={"notify_url": receiver.url, "notify_secret": "hush"}
    )
    notifier = Notifier(catalogue.sessions, settings)
    await notifier.announce("release.added", {"repo": 1, "release": "stardist 1.1.0"})
    [job] = await queued(catalogue)
    assert await notifier.deliver(job) == 204
    [(headers, body)] = receiver.received
    notice = json.loads(body)
    assert (notice["kind"], notice["data"]) == (
        "release.added",
        {"repo": 1, "release": "stardist 1.1.0"},
    )
    expected = "sha256=" + hmac.new(b"hush", body, hashlib.sha256).hexdigest()
    assert headers["X-Port-Signature-256"] == expected
    assert "hush" not in body.decode()


async def test_a_refused_notice_fails_its_attempt(catalogue: Catalogue, receiver: Receiver) -> None:
    receiver.status = 500
    settings = catalogue.settings.model_copy(update={"notify_url": receiver.url})
    notifier = Notifier(catalogue.sessions, settings)
    await notifier.announce("update.succeeded", {"setup": 1})
    [job] = await queued(catalogue)
    with pytest.raises(RuntimeError, match="refused: HTTP 500"):
        await notifier.deliver(job)


async def test_without_a_url_nothing_is_queued(catalogue: Catalogue) -> None:
    await Notifier(catalogue.sessions, catalogue.settings).announce("release.added", {})
    assert await queued(catalogue) == []
