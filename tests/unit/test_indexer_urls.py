"""Which repository URLs reach git, in which form, and how they appear in messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.errors import UnsafeUrlError
from indexer.urls import check_url, redact


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://github.com/stardist/stardist", "https://github.com/stardist/stardist"),
        ("https://github.com/stardist/stardist.git", "https://github.com/stardist/stardist.git"),
        ("HTTPS://GitHub.COM/Acme/App", "https://github.com/Acme/App"),
        (
            "https://gitlab.example.org:8443/group/sub/app.git",
            "https://gitlab.example.org:8443/group/sub/app.git",
        ),
        (
            "https://user:token@github.com/acme/private",
            "https://user:token@github.com/acme/private",
        ),
        ("https://[::1]:8080/repo.git", "https://[::1]:8080/repo.git"),
        ("ssh://git@github.com/acme/app.git", "ssh://git@github.com/acme/app.git"),
        ("ssh://git@github.com:2222/acme/app.git", "ssh://git@github.com:2222/acme/app.git"),
        ("git+ssh://git@github.com/acme/app.git", "ssh://git@github.com/acme/app.git"),
        ("git@github.com:acme/app.git", "git@github.com:acme/app.git"),
        ("git@GitHub.com:acme/app.git", "git@github.com:acme/app.git"),
        ("github.com:acme/app.git", "github.com:acme/app.git"),
        ("git://127.0.0.1:9418/app.git", "git://127.0.0.1:9418/app.git"),
    ],
)
def test_remote_urls_are_accepted(url: str, normalised: str) -> None:
    assert check_url(url, allow_local=False) == normalised
    assert check_url(normalised, allow_local=False) == normalised  # idempotent


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("file:///srv/git/app.git", "file:///srv/git/app.git"),
        ("file://localhost/srv/git/app.git", "file:///srv/git/app.git"),
        ("file:///srv/git/../git/app.git", "file:///srv/git/app.git"),
        ("/srv/git/app.git", "file:///srv/git/app.git"),
        ("/srv/git/app.git/", "file:///srv/git/app.git"),
        ("/srv/100%/app.git", "file:///srv/100%25/app.git"),
        ("file:///srv/100%25/app.git", "file:///srv/100%25/app.git"),
    ],
)
def test_local_urls_need_allow_local(url: str, normalised: str) -> None:
    assert check_url(url, allow_local=True) == normalised
    assert check_url(normalised, allow_local=True) == normalised
    with pytest.raises(UnsafeUrlError, match="local repositories"):
        check_url(url, allow_local=False)


def test_relative_paths_become_absolute() -> None:
    assert check_url("./repo.git", allow_local=True) == f"file://{Path.cwd()}/repo.git"
    assert check_url("repo", allow_local=True) == f"file://{Path.cwd()}/repo"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ext::sh -c touch% /tmp/pwned",
        "ext::sh",
        "fd::17",
        "fd::17/foo",
        "::foo",
        "http::https://example.org/x",
        "https::example.org/x",
        "--upload-pack=touch /tmp/x",
        "-oProxyCommand=touch /tmp/x",
        "-",
        "ssh://-oProxyCommand=x/repo",
        "ssh://user@-oProxyCommand=x/repo",
        "ssh://-user@host/repo",
        "git@-oProxyCommand=x:repo",
        "-git@host:repo",
        "host:-repo",
        "http://example.org/repo.git",
        "ftp://example.org/repo.git",
        "gopher://example.org/repo",
        "ext://example.org/repo",
        "https://example.org",
        "https://example.org/",
        "https:///repo",
        "https://exa mple.org/repo",
        "https://example.org/re po",
        "https://example.org/repo\n",
        "https://example.org/repo\r\nHost: evil",
        "https://example.org/repo\x00",
        "https://example.org/re%0apo",
        "https://example.org/re%00po",
        "https://example.org/repo\u200b",
        "https://example.org/repo\u202e",
        "https://example.org/repo?x=1",
        "https://example.org/repo#frag",
        "https://example.org:99999/repo",
        "https://example.org:port/repo",
        "git://user@example.org/repo",
        "https://exa_mple!.org/repo",
        "file://otherhost/etc",
        "https://" + "a" * 3000 + ".org/x",
    ],
)
def test_unsafe_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrlError):
        check_url(url, allow_local=True)


def test_refusals_never_show_credentials() -> None:
    with pytest.raises(UnsafeUrlError) as raised:
        check_url("https://alice:hunter2@example.org/a b", allow_local=False)
    assert "hunter2" not in str(raised.value)
    assert "***@example.org" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://user:pass@host/x", "https://***@host/x"),
        ("https://token@host/x", "https://***@host/x"),
        ("https://user:p@ss@host/x", "https://***@host/x"),
        ("HTTPS://user:pass@host/x", "HTTPS://***@host/x"),
        ("ssh://git@host/x", "ssh://git@host/x"),
        ("ssh://git:pw@host/x", "ssh://***@host/x"),
        ("git@github.com:acme/app.git", "git@github.com:acme/app.git"),
        ("https://host/x", "https://host/x"),
        ("https://host/x@y", "https://host/x@y"),
        (
            "fatal: unable to access 'https://u:secret@host/r.git/': refused",
            "fatal: unable to access 'https://***@host/r.git/': refused",
        ),
        ("a https://a:b@h/x and http://c:d@i/y", "a https://***@h/x and http://***@i/y"),
    ],
)
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown


_credential = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/?#@ \t\r\n\x0b\x0c"),
    min_size=1,
    max_size=20,
)


@given(_credential, _credential)
def test_redact_never_leaks_a_password(user: str, password: str) -> None:
    shown = redact(f"https://{user}:{password}@example.org/repo.git")
    assert shown == "https://***@example.org/repo.git"
