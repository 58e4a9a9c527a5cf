"""The environment and options every git process of the indexer runs with."""

from __future__ import annotations

import pytest

from indexer.gitcmd import git_argv, git_env
from indexer.scan import Limits


def config(argv: list[str]) -> dict[str, str]:
    pairs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-c"]
    return dict(pair.split("=", 1) for pair in pairs)


def test_git_never_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_ASKPASS", "/usr/bin/my-prompt")
    env = git_env(Limits())

    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_ASKPASS"].endswith("false")
    assert env["SSH_ASKPASS"].endswith("false")
    assert "BatchMode=yes" in env["GIT_SSH_COMMAND"]
    assert config(git_argv(["fetch"], allow_local=False))["credential.helper"] == ""


def test_only_allowed_protocols(monkeypatch: pytest.MonkeyPatch) -> None:
    remote = config(git_argv(["fetch"], allow_local=False))
    local = config(git_argv(["fetch"], allow_local=True))

    assert remote["protocol.allow"] == "never"
    assert {k for k, v in remote.items() if k.startswith("protocol.") and v == "always"} == {
        "protocol.https.allow",
        "protocol.ssh.allow",
        "protocol.git.allow",
    }
    assert remote["protocol.file.allow"] == "never"
    assert local["protocol.file.allow"] == "always"
    assert git_env(Limits())["GIT_ALLOW_PROTOCOL"] == "https:ssh:git"
    assert git_env(Limits(allow_local=True))["GIT_ALLOW_PROTOCOL"] == "https:ssh:git:file"


def test_hooks_are_off_and_inherited_git_variables_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_CONFIG_PARAMETERS",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    ):
        monkeypatch.setenv(name, "/elsewhere")
    monkeypatch.setenv("GIT_SSL_CAINFO", "/etc/ssl/ca.pem")

    env = git_env(Limits())

    assert config(git_argv([], allow_local=False))["core.hooksPath"] == "/dev/null"
    assert not {"GIT_DIR", "GIT_WORK_TREE", "GIT_CONFIG_PARAMETERS"} & env.keys()
    assert "GIT_ALTERNATE_OBJECT_DIRECTORIES" not in env
    assert env["GIT_SSL_CAINFO"] == "/etc/ssl/ca.pem"
    assert env["GIT_NO_REPLACE_OBJECTS"] == "1"
