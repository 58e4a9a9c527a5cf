"""A forge names its repository in several URL forms; all of them find the Repo."""

from __future__ import annotations

import pytest

from port.webhooks.matching import MAX_URLS, payload_keys, remote_key

KEY = "github.com/acme/stardist"


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/stardist",
        "https://github.com/acme/stardist.git",
        "https://github.com/acme/stardist/",
        "https://github.com/acme/stardist.git/",
        "https://github.com//acme//stardist",
        "http://github.com/acme/stardist",
        "HTTPS://GitHub.COM/acme/stardist",
        "https://github.com/Acme/StarDist.git",  # GitHub names are case-insensitive
        "https://github.com/acme/stardist.GIT",
        "https://github.com:443/acme/stardist",  # default port
        "https://x-access-token:ghp_secret@github.com/acme/stardist.git",  # credentials
        "https://oauth2@github.com/acme/stardist",
        "ssh://git@github.com/acme/stardist.git",
        "ssh://git@github.com:22/acme/stardist.git",
        "ssh://git@github.com:2222/acme/stardist.git",  # another port: still one repo
        "git+ssh://git@github.com/acme/stardist.git",
        "ssh+git://git@github.com/acme/stardist",
        "git://github.com/acme/stardist.git",
        "git@github.com:acme/stardist.git",
        "git@GitHub.com:acme/stardist",
        "github.com:acme/stardist.git",  # scp-style without a user
        "git@github.com:/acme/stardist.git",
        "https://github.com/acme/star%64ist",  # percent-encoding
        "  https://github.com/acme/stardist  ",
    ],
)
def test_every_form_of_one_remote_has_one_key(url: str) -> None:
    assert remote_key(url) == KEY


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://gitlab.example.org/group/sub/app.git", "gitlab.example.org/group/sub/app"),
        ("git@gitlab.example.org:group/sub/app.git", "gitlab.example.org/group/sub/app"),
        ("https://git.example:3000/o/r.git", "git.example/o/r"),
        ("ssh://gitea@git.example:2222/o/r.git", "git.example/o/r"),
        ("https://[::1]:8080/o/r.git", "::1/o/r"),
        ("https://github.com/acme/stardist-napari", "github.com/acme/stardist-napari"),
        ("https://github.com/acme/stardist.github.io", "github.com/acme/stardist.github.io"),
    ],
)
def test_keys_keep_what_tells_remotes_apart(url: str, key: str) -> None:
    assert remote_key(url) == key


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://github.com/acme/stardist", "https://github.com/acme/stardist-napari"),
        ("https://github.com/acme/stardist", "https://github.com/other/stardist"),
        ("https://github.com/acme/stardist", "https://gitlab.com/acme/stardist"),
        ("https://gitlab.com/group/app", "https://gitlab.com/group/sub/app"),
    ],
)
def test_different_remotes_have_different_keys(one: str, other: str) -> None:
    assert remote_key(one) != remote_key(other)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "file:///srv/git/stardist.git",
        "/srv/git/stardist.git",
        "ext::sh -c touch% /tmp/pwned",
        "ftp://github.com/acme/stardist",
        "https://github.com/",
        "https://github.com",
        "git@github.com:",
        "https://github.com:notaport/acme/stardist",
        "not a url",
        "https://github.com/" + "a" * 3000,
    ],
)
def test_what_names_no_remote_has_no_key(url: str) -> None:
    assert remote_key(url) is None


def test_payload_keys_dedupe_and_cap() -> None:
    forms = ["https://github.com/acme/stardist.git", "git@github.com:acme/stardist.git"]
    assert payload_keys([*forms, "", "file:///x"]) == {KEY}
    many = [f"https://github.com/acme/app{n}" for n in range(MAX_URLS + 5)]
    assert len(payload_keys(many)) == MAX_URLS
