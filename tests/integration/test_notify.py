"""Notices out: signed JSON POSTs to PORT_NOTIFY_URL and to users' own URLs, queued as
jobs, retried on error; users' URLs never reach internal addresses."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from port.accounts.models import User
from port.accounts.service import create_token
from port.catalogue.ingest import Changes, ReleaseRef
from port.catalogue.models import IndexRun, Release
from port.catalogue.scanning import ScanOutcome
from port.deploy.models import Setup
from port.errors import Permanent
from port.jobs.models import Job
from port.jobs.worker import Worker
from port.notify import Notifier
from port.work.jobs import after_index_run
from tests.deployfakes import add_app, add_user
from tests.harness import Api, Catalogue


class Receiver(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that keeps what it was sent and answers ``status``."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        self.location: str | None = None
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
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass  # quiet: the test output is for failures


def serve() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


receiver = pytest.fixture(serve)
other_receiver = pytest.fixture(serve)
LOOPBACK = ["127.0.0.1/32"]  # the receivers' network, allowed as an admin would a lab's


async def queued(catalogue: Catalogue) -> list[Job]:
    async with catalogue.sessions() as session:
        return list(await session.scalars(select(Job).where(Job.kind == "notify")))


async def test_a_notice_is_queued_signed_and_delivered(
    catalogue: Catalogue, receiver: Receiver
) -> None:
    settings = catalogue.settings.model_copy(
        update={"notify_url": receiver.url, "notify_secret": SecretStr("hush")}
    )
    notifier = Notifier(catalogue.sessions, settings)
    await notifier.announce("release.added", {"repo": 1, "release": "stardist 1.1.0"})
    [job] = await queued(catalogue)
    assert await notifier.deliver(job) == 204
    [(headers, body)] = receiver.received
    notice = json.loads(body)
    assert job.payload["notice"] == notice
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


# --- users' own notice URLs ------------------------------------------------------------


async def listener(catalogue: Catalogue, name: str, url: str | None, secret: str | None) -> int:
    async with catalogue.sessions() as session, session.begin():
        user = await add_user(session, name)
        user.notify_url, user.notify_secret = url, secret
        return user.id


async def test_a_users_notices_go_to_their_url_signed_with_their_secret(
    catalogue: Catalogue, receiver: Receiver
) -> None:
    settings = catalogue.settings.model_copy(update={"notify_allowed_networks": LOOPBACK})
    alice = await listener(catalogue, "alice", receiver.url, "alices-key")
    bob = await listener(catalogue, "bob", None, None)
    notifier = Notifier(catalogue.sessions, settings)
    await notifier.announce("update.succeeded", {"setup": 7}, [alice, bob])
    [job] = await queued(catalogue)  # no server URL, and bob has none
    assert job.payload["user"] == alice
    assert "alices-key" not in json.dumps(job.payload)
    assert receiver.url not in json.dumps(job.payload)
    assert await notifier.deliver(job) == 204
    [(headers, body)] = receiver.received
    assert json.loads(body)["data"] == {"setup": 7}
    expected = "sha256=" + hmac.new(b"alices-key", body, hashlib.sha256).hexdigest()
    assert headers["X-Port-Signature-256"] == expected

    async with catalogue.sessions() as session, session.begin():
        user = await session.get(User, alice)
        assert user is not None
        user.notify_url = None  # she turned them off while the notice waited
    assert await notifier.deliver(job) == 0
    assert len(receiver.received) == 1


async def test_release_notices_go_to_the_users_running_the_app(catalogue: Catalogue) -> None:
    settings = catalogue.settings.model_copy(update={"notify_allowed_networks": LOOPBACK})
    alice = await listener(catalogue, "alice", "http://127.0.0.1:9/a", None)
    await listener(catalogue, "bob", "http://127.0.0.1:9/b", None)  # runs nothing
    async with catalogue.sessions() as session, session.begin():
        app = await add_app(session, identifier="sd", flavours=(("cpu", "img/{v}", []),))
        release_id = await session.scalar(select(Release.id).where(Release.app_id == app.id))
        assert release_id is not None
        session.add(Setup(owner_id=alice, app_id=app.id, release_id=release_id, env={}))
    added = IndexRun(repo_id=app.repo_id, status="succeeded", added=["sd 1.1.0"])
    outcome = ScanOutcome(run=added, changes=Changes(added=[ReleaseRef("sd", "1.1.0")]))
    await after_index_run(
        catalogue.sessions, Notifier(catalogue.sessions, settings), outcome, lambda: None
    )
    [job] = await queued(catalogue)
    assert job.payload["user"] == alice
    assert job.payload["notice"]["data"] == {
        "repo": app.repo_id,
        "release": "sd 1.1.0",
        "app": "sd",
        "version": "1.1.0",
    }


async def test_a_url_that_now_points_inside_is_never_reached(
    catalogue: Catalogue, receiver: Receiver
) -> None:
    """Allowed when set, internal when sent (a DNS change, a narrowed allow-list): the
    address connected to is checked, and the job fails for good."""
    alice = await listener(catalogue, "alice", receiver.url, None)
    strict = Notifier(catalogue.sessions, catalogue.settings)  # no network allowed
    await strict.announce("update.rolled_back", {"setup": 1}, [alice])
    [job] = await queued(catalogue)
    with pytest.raises(Permanent, match=r"127\.0\.0\.1.* is not a public address"):
        await strict.deliver(job)
    worker = Worker(catalogue.sessions, catalogue.settings, {"notify": strict.deliver})
    assert await worker.run_once()
    [failed] = await queued(catalogue)
    assert (failed.status, failed.attempts) == ("failed", 1)  # not 8 attempts
    assert receiver.url not in (failed.last_error or "")  # a URL may carry a secret
    assert receiver.received == []


async def test_redirects_are_not_followed(
    catalogue: Catalogue, receiver: Receiver, other_receiver: Receiver
) -> None:
    settings = catalogue.settings.model_copy(update={"notify_allowed_networks": LOOPBACK})
    receiver.status, receiver.location = 307, other_receiver.url
    alice = await listener(catalogue, "alice", receiver.url, None)
    notifier = Notifier(catalogue.sessions, settings)
    await notifier.announce("release.added", {}, [alice])
    [job] = await queued(catalogue)
    with pytest.raises(RuntimeError, match="refused: HTTP 307"):
        await notifier.deliver(job)
    assert (len(receiver.received), other_receiver.received) == (1, [])


SET = """mutation($url: String, $secret: String, $user: ID) {
  setNotifyUrl(input: {url: $url, secret: $secret, user: $user}) {
    user { name notifyUrl notifySigned } } }"""


async def test_users_set_their_own_url_and_only_public_ones(api: Api, receiver: Receiver) -> None:
    async with api.catalogue.sessions() as session, session.begin():
        alice, bob = await add_user(session, "alice"), await add_user(session, "bob")
        alice_token = (await create_token(session, alice, "t"))[1]
        bob_token = (await create_token(session, bob, "t"))[1]

    for url, why in (
        ("http://169.254.169.254/latest", "not a public address"),
        (receiver.url, "not a public address"),
        ("file:///etc/passwd", "only http:// and https://"),
    ):
        refused = await api.gql(SET, {"url": url}, token=alice_token)
        [error] = refused["errors"]
        assert (error["extensions"]["code"], why in error["message"]) == ("INVALID_INPUT", True)

    api.catalogue.settings.notify_allowed_networks = LOOPBACK
    done = await api.gql(SET, {"url": receiver.url, "secret": "s3cret"}, token=alice_token)
    assert done["data"]["setNotifyUrl"]["user"] == {
        "name": "alice",
        "notifyUrl": receiver.url,
        "notifySigned": True,
    }
    me = await api.gql("{ me { user { notifyUrl notifySigned } } }", token=alice_token)
    assert me["data"]["me"]["user"] == {"notifyUrl": receiver.url, "notifySigned": True}
    assert "s3cret" not in json.dumps(me) + json.dumps(done)

    gid = await api.gql("{ me { user { id } } }", token=alice_token)
    alice_gid = gid["data"]["me"]["user"]["id"]
    theft = await api.gql(SET, {"url": "https://8.8.8.8/", "user": alice_gid}, token=bob_token)
    assert theft["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    by_admin = await api.gql(SET, {"url": None, "user": alice_gid}, token=api.admin_token)
    assert by_admin["data"]["setNotifyUrl"]["user"]["notifyUrl"] is None
    async with api.catalogue.sessions() as session:
        row = await session.get(User, alice.id)
        assert row is not None
        assert (row.notify_url, row.notify_secret) == (None, None)
