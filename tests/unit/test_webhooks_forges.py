"""Signatures and events of GitHub, GitLab and Gitea/Forgejo deliveries.

The payloads below are cut down from the forges' documented examples (GitHub's "Webhook
events and payloads", GitLab's "Webhook events", Gitea's "Webhooks" page): the fields
Port reads are as the forges send them, most others are left out. The integration
tests build their deliveries with the same helpers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from port.webhooks.forges import FORGES, EventKind, PayloadError, body_digest
from port.webhooks.receive import MAX_DELIVERY_KEY, delivery_key

SECRET = "s3cret-of-the-hook"
ZERO = "0" * 40


def github_repository(owner: str = "acme", name: str = "stardist") -> dict[str, Any]:
    return {
        "id": 186853002,
        "name": name,
        "full_name": f"{owner}/{name}",
        "private": False,
        "html_url": f"https://github.com/{owner}/{name}",
        "url": f"https://github.com/{owner}/{name}",
        "git_url": f"git://github.com/{owner}/{name}.git",
        "ssh_url": f"git@github.com:{owner}/{name}.git",
        "clone_url": f"https://github.com/{owner}/{name}.git",
        "svn_url": f"https://github.com/{owner}/{name}",
        "default_branch": "main",
    }


def github_push(ref: str = "refs/tags/v1.0.0", **repo: str) -> dict[str, Any]:
    return {
        "ref": ref,
        "before": ZERO,
        "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "created": True,
        "deleted": False,
        "forced": False,
        "base_ref": "refs/heads/main" if ref.startswith("refs/tags/") else None,
        "compare": "https://github.com/acme/stardist/compare/v1.0.0",
        "commits": [],
        "head_commit": {"id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "message": "1.0"},
        "repository": github_repository(**repo),
        "pusher": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"},
        "sender": {"login": "Codertocat", "id": 21031067},
    }


def github_create(ref: str = "v1.0.0", ref_type: str = "tag") -> dict[str, Any]:
    return {
        "ref": ref,
        "ref_type": ref_type,
        "master_branch": "main",
        "description": None,
        "pusher_type": "user",
        "repository": github_repository(),
        "sender": {"login": "Codertocat", "id": 21031067},
    }


def github_ping() -> dict[str, Any]:
    return {
        "zen": "Design for failure.",
        "hook_id": 109948940,
        "hook": {
            "type": "Repository",
            "id": 109948940,
            "events": ["push", "create"],
            "config": {"content_type": "json", "insecure_ssl": "0", "url": "https://port/x"},
        },
        "repository": github_repository(),
        "sender": {"login": "Codertocat", "id": 21031067},
    }


def gitlab_push(
    ref: str = "refs/tags/v1.0.0", host: str = "gitlab.example.org", path: str = "acme/stardist"
) -> dict[str, Any]:
    tag = ref.startswith("refs/tags/")
    web = f"https://{host}/{path}"
    return {
        "object_kind": "tag_push" if tag else "push",
        "event_name": "tag_push" if tag else "push",
        "before": ZERO,
        "after": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
        "ref": ref,
        "ref_protected": True,
        "checkout_sha": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
        "user_id": 1,
        "user_name": "John Smith",
        "project_id": 1,
        "project": {
            "id": 1,
            "name": "Stardist",
            "web_url": web,
            "git_ssh_url": f"git@{host}:{path}.git",
            "git_http_url": f"{web}.git",
            "namespace": "Acme",
            "path_with_namespace": path,
            "default_branch": "main",
            "homepage": web,
            "url": f"git@{host}:{path}.git",
            "ssh_url": f"git@{host}:{path}.git",
            "http_url": f"{web}.git",
        },
        "commits": [],
        "total_commits_count": 0,
        "repository": {
            "name": "Stardist",
            "url": f"git@{host}:{path}.git",
            "homepage": web,
            "git_http_url": f"{web}.git",
            "git_ssh_url": f"git@{host}:{path}.git",
            "visibility_level": 20,
        },
    }


def gitea_push(
    ref: str = "refs/tags/v1.0.0", host: str = "git.example.org", path: str = "acme/stardist"
) -> dict[str, Any]:
    return {
        "ref": ref,
        "before": ZERO,
        "after": "bffeb74224043ba2feb48d137756c8a9331c449a",
        "compare_url": f"https://{host}/{path}/compare/{ZERO}...bffeb742",
        "commits": [],
        "repository": {
            "id": 140,
            "owner": {"id": 1, "login": "acme", "username": "acme"},
            "name": path.rpartition("/")[2],
            "full_name": path,
            "private": False,
            "html_url": f"https://{host}/{path}",
            "ssh_url": f"ssh://git@{host}:2222/{path}.git",
            "clone_url": f"https://{host}/{path}.git",
            "default_branch": "main",
        },
        "pusher": {"id": 1, "login": "acme"},
        "sender": {"id": 1, "login": "acme"},
    }


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def github_headers(
    body: bytes, event: str = "push", delivery: str = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": "sha256=" + sign(body),
    }


def gitlab_headers(
    event: str = "Tag Push Hook", token: str = SECRET, delivery: str = "a7ff2e47"
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token,
        "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e",
        "Idempotency-Key": delivery,
        "X-Gitlab-Instance": "https://gitlab.example.org",
    }


def gitea_headers(
    body: bytes, forge: str = "gitea", event: str = "push", delivery: str = "f6266f16"
) -> dict[str, str]:
    prefixes = ["Gitea"] if forge == "gitea" else ["Forgejo", "Gitea"]  # Forgejo sends both
    headers = {"Content-Type": "application/json"}
    for prefix in prefixes:
        headers |= {
            f"X-{prefix}-Event": event,
            f"X-{prefix}-Delivery": delivery,
            f"X-{prefix}-Signature": sign(body),
        }
    return headers


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


# --- signatures -------------------------------------------------------------------


def test_github_signature() -> None:
    github = FORGES["github"]
    body = encode(github_push())
    good = "sha256=" + sign(body)
    assert github.credential(lower(github_headers(body))) == good
    assert github.verify(good, body, SECRET)
    assert github.verify("sha256=" + sign(body).upper(), body, SECRET)  # hex case is free
    assert not github.verify(good, body, "another-secret")
    assert not github.verify(good, body + b" ", SECRET)  # the body was changed
    assert not github.verify("sha256=" + sign(body)[:-2], body, SECRET)  # truncated


@pytest.mark.parametrize(
    "given",
    [
        "sha1=" + hmac.new(SECRET.encode(), b"{}", hashlib.sha1).hexdigest(),  # old header's
        "sha512=" + sign(b"{}"),
        sign(b"{}"),  # Gitea's bare hex is not GitHub's form
        "sha256 =" + sign(b"{}"),
        "sha256=" + "z" * 64,
        "sha256=" + sign(b"{}") + "ü",
        "",
    ],
)
def test_github_refuses_other_algorithms_and_forms(given: str) -> None:
    assert not FORGES["github"].verify(given, b"{}", SECRET)


def test_gitlab_token() -> None:
    gitlab = FORGES["gitlab"]
    assert gitlab.credential(lower(gitlab_headers())) == SECRET
    assert gitlab.verify(SECRET, b"whatever", SECRET)  # a plain token: the body is not signed
    assert not gitlab.verify(SECRET + "x", b"", SECRET)
    assert not gitlab.verify(SECRET[:-1], b"", SECRET)
    assert not gitlab.verify("", b"", SECRET)
    assert not gitlab.verify("sha256=" + sign(b""), b"", SECRET)
    # Header values reach Python decoded as Latin-1; a non-ASCII secret still matches.
    assert gitlab.verify("pässwörter-ß".encode().decode("latin-1"), b"", "pässwörter-ß")


@pytest.mark.parametrize("forge", ["gitea", "forgejo"])
def test_gitea_and_forgejo_signatures(forge: str) -> None:
    verifier = FORGES[forge]
    body = encode(gitea_push())
    assert verifier.credential(lower(gitea_headers(body, forge))) == sign(body)
    assert verifier.verify(sign(body), body, SECRET)
    assert verifier.verify(sign(body).upper(), body, SECRET)
    assert not verifier.verify(sign(body, "another-secret"), body, SECRET)
    assert not verifier.verify("sha256=" + sign(body), body, SECRET)  # GitHub's form
    assert not verifier.verify(hmac.new(SECRET.encode(), body, "sha1").hexdigest(), body, SECRET)
    assert not verifier.verify("", body, SECRET)


def test_each_forge_reads_its_own_header_only() -> None:
    body = encode(github_push())
    assert FORGES["github"].credential(lower(gitea_headers(body))) is None
    assert FORGES["gitea"].credential(lower(github_headers(body))) is None
    assert FORGES["gitlab"].credential(lower(github_headers(body))) is None
    assert FORGES["github"].credential({"x-hub-signature-256": ""}) is None
    # Forgejo's route prefers its own header, Gitea's the Gitea one; both read either.
    both = {"x-gitea-signature": "a" * 64, "x-forgejo-signature": "b" * 64}
    assert FORGES["forgejo"].credential(both) == "b" * 64
    assert FORGES["gitea"].credential(both) == "a" * 64
    assert FORGES["gitea"].credential({"x-forgejo-signature": "b" * 64}) == "b" * 64


# --- events -------------------------------------------------------------------------


def test_github_tag_push() -> None:
    body = encode(github_push("refs/tags/v1.0.0"))
    event = FORGES["github"].event(lower(github_headers(body)), body)
    assert (event.forge, event.name, event.kind) == ("github", "push", EventKind.PUSH)
    assert (event.ref, event.is_tag) == ("refs/tags/v1.0.0", True)
    assert event.delivery == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert event.urls == (
        "https://github.com/acme/stardist.git",
        "git@github.com:acme/stardist.git",
        "git://github.com/acme/stardist.git",
        "https://github.com/acme/stardist",
        "https://github.com/acme/stardist",
    )


def test_github_branch_push_and_create() -> None:
    github = FORGES["github"]
    body = encode(github_push("refs/heads/main"))
    branch = github.event(lower(github_headers(body)), body)
    assert (branch.kind, branch.ref, branch.is_tag) == (EventKind.PUSH, "refs/heads/main", False)

    body = encode(github_create("v2.0.0", "tag"))  # `create` names the tag short
    created = github.event(lower(github_headers(body, "create")), body)
    assert (created.kind, created.ref, created.is_tag) == (EventKind.PUSH, "refs/tags/v2.0.0", True)
    body = encode(github_create("feature", "branch"))
    created = github.event(lower(github_headers(body, "create")), body)
    assert (created.ref, created.is_tag) == ("refs/heads/feature", False)
    body = encode(github_create("v2.0.0", "tag"))
    deleted = github.event(lower(github_headers(body, "delete")), body)
    assert (deleted.kind, deleted.ref) == (EventKind.PUSH, "refs/tags/v2.0.0")


def test_github_ping_and_other_events() -> None:
    body = encode(github_ping())
    ping = FORGES["github"].event(lower(github_headers(body, "ping")), body)
    assert (ping.kind, ping.ref) == (EventKind.PING, None)
    assert "https://github.com/acme/stardist.git" in ping.urls
    issue = FORGES["github"].event(lower(github_headers(body, "issues")), body)
    assert (issue.name, issue.kind) == ("issues", EventKind.OTHER)
    nameless = FORGES["github"].event({}, body)
    assert (nameless.name, nameless.kind) == ("unknown", EventKind.OTHER)


def test_github_form_encoded_delivery() -> None:
    """GitHub's default content type sends the JSON as a `payload` form field."""
    payload = json.dumps(github_push())
    body = urlencode({"payload": payload}).encode()
    headers = lower(github_headers(body)) | {"content-type": "application/x-www-form-urlencoded"}
    event = FORGES["github"].event(headers, body)
    assert (event.kind, event.ref) == (EventKind.PUSH, "refs/tags/v1.0.0")
    with pytest.raises(PayloadError, match="payload"):
        FORGES["github"].event(headers, b"other=1")


def test_gitlab_tag_push_and_push() -> None:
    gitlab = FORGES["gitlab"]
    body = encode(gitlab_push("refs/tags/v1.0.0"))
    event = gitlab.event(lower(gitlab_headers("Tag Push Hook")), body)
    assert (event.name, event.kind, event.ref, event.is_tag) == (
        "Tag Push Hook",
        EventKind.PUSH,
        "refs/tags/v1.0.0",
        True,
    )
    assert event.delivery == "a7ff2e47"  # Idempotency-Key: the same on a retry
    assert set(event.urls) == {
        "https://gitlab.example.org/acme/stardist.git",
        "git@gitlab.example.org:acme/stardist.git",
        "https://gitlab.example.org/acme/stardist",
    }
    body = encode(gitlab_push("refs/heads/main"))
    branch = gitlab.event(lower(gitlab_headers("Push Hook")), body)
    assert (branch.kind, branch.is_tag) == (EventKind.PUSH, False)
    system = gitlab.event(lower(gitlab_headers("System Hook")), body)
    assert system.kind is EventKind.OTHER
    older = lower(gitlab_headers())
    del older["idempotency-key"]  # GitLab before 17.4
    assert gitlab.event(older, body).delivery == "13792a34-cac6-4fda-95a8-c58e00a3954e"


@pytest.mark.parametrize("forge", ["gitea", "forgejo"])
def test_gitea_push_and_create(forge: str) -> None:
    body = encode(gitea_push("refs/heads/main"))
    event = FORGES[forge].event(lower(gitea_headers(body, forge)), body)
    assert (event.forge, event.kind, event.ref) == (forge, EventKind.PUSH, "refs/heads/main")
    assert event.delivery == "f6266f16"
    assert event.urls == (
        "https://git.example.org/acme/stardist.git",
        "ssh://git@git.example.org:2222/acme/stardist.git",
        "https://git.example.org/acme/stardist",
    )
    body = encode(gitea_push() | {"ref": "v1.1.0", "ref_type": "tag"})
    created = FORGES[forge].event(lower(gitea_headers(body, forge, "create")), body)
    assert (created.ref, created.is_tag) == ("refs/tags/v1.1.0", True)
    other = FORGES[forge].event(lower(gitea_headers(body, forge, "issues")), body)
    assert other.kind is EventKind.OTHER


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"push"', "not a JSON object"),
        (b"[" * 100_000, "not JSON"),  # nesting deep enough to exhaust the parser's stack
    ],
)
@pytest.mark.parametrize("forge", sorted(FORGES))
def test_bodies_that_are_no_payload(forge: str, body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        FORGES[forge].event({"content-type": "application/json"}, body)


def test_odd_payload_fields_are_skipped() -> None:
    body = encode({"ref": 5, "repository": {"clone_url": None, "ssh_url": ["x"], "html_url": ""}})
    event = FORGES["github"].event({"x-github-event": "push"}, body)
    assert (event.ref, event.urls) == (None, ())


# --- delivery ids ---------------------------------------------------------------------


def test_a_delivery_without_id_is_known_by_its_body() -> None:
    body = encode(github_push())
    headers = lower(github_headers(body))
    del headers["x-github-delivery"]
    event = FORGES["github"].event(headers, body)
    assert event.delivery == body_digest(body) == "sha256:" + hashlib.sha256(body).hexdigest()


def test_delivery_keys() -> None:
    assert delivery_key("72d3162e-cc78", [3]) == "72d3162e-cc78@3"
    assert delivery_key("72d3162e-cc78", [5, 3]) == delivery_key("72d3162e-cc78", [3, 5])
    assert delivery_key("72d3162e-cc78", [3]) != delivery_key("72d3162e-cc78", [4])
    odd = delivery_key("plain-id\n", [3])
    assert odd.startswith("sha256:")
    assert "\n" not in odd
    assert len(delivery_key("x" * 128, list(range(1000)))) <= MAX_DELIVERY_KEY
