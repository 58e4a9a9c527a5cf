"""Real git repositories for indexer tests: a work tree that commits, tags and pushes.

Tests build the exact history they need (tags added, moved, deleted; Arkitekt files cut
back) in a work repository and push it with ``--mirror`` to a bare one, which the indexer
then reads over ``file://`` or ``git daemon``. Identity and dates are fixed so runs are
reproducible; every commit is one second after the previous, so history order is clear.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from indexer.result import IndexResult, Previous, RepoSpec
from indexer.scan import Limits, index_repo


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run git in ``cwd`` and return its stdout (stripped); raise on failure."""
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.strip()


class WorkRepo:
    """A work repository pushing to a bare remote at ``bare``."""

    def __init__(self, path: Path, bare: Path) -> None:
        self.path = path
        self.bare = bare
        self._clock = 1_700_000_000
        path.mkdir(parents=True)
        bare.parent.mkdir(parents=True, exist_ok=True)
        git(bare.parent, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        git(path, "init", "--quiet", "--initial-branch=main")

    def _env(self) -> dict[str, str]:
        self._clock += 1
        date = f"{self._clock} +0000"
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
            "GIT_AUTHOR_NAME": "Port tests",
            "GIT_AUTHOR_EMAIL": "tests@port.invalid",
            "GIT_COMMITTER_NAME": "Port tests",
            "GIT_COMMITTER_EMAIL": "tests@port.invalid",
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_DATE": date,
            "GIT_CONFIG_NOSYSTEM": "1",
        }

    def git(self, *args: str) -> str:
        return git(self.path, *args, env=self._env())

    def write(self, relpath: str, content: str | bytes) -> None:
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)

    def remove(self, relpath: str) -> None:
        self.git("rm", "--quiet", relpath)

    def commit(self, message: str = "change", files: dict[str, str | bytes] | None = None) -> str:
        """Write ``files``, commit everything and return the commit id."""
        for relpath, content in (files or {}).items():
            self.write(relpath, content)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def tag(self, name: str, *, annotated: bool = False, at: str = "HEAD") -> None:
        if annotated:
            self.git("tag", "--force", "-a", "-m", f"release {name}", name, at)
        else:
            self.git("tag", "--force", name, at)

    def delete_tag(self, name: str) -> None:
        self.git("tag", "--delete", name)

    def push(self) -> None:
        """Make the bare remote an exact copy (new, moved and deleted refs alike)."""
        self.git("push", "--quiet", "--mirror", "--force", str(self.bare))


def port_yaml(
    identifier: str, version: str | None = None, flavours: tuple[str, ...] = ("cpu",)
) -> str:
    """A valid ``port.yaml``; images carry the version so a moved tag shows a change."""
    tag = version or "latest"
    doc: dict[str, object] = {
        "apiVersion": "port/v1",
        "app": {"identifier": identifier, "name": identifier.title(), "scopes": ["read"]},
        "entrypoint": "app",
        "flavours": {
            name: {
                "image": f"registry.invalid/{identifier}:{tag}-{name}",
                "selectors": [{"kind": "cpu", "min_count": 1}],
            }
            for name in flavours
        },
    }
    if version is not None:
        doc["version"] = version
    return yaml.safe_dump(doc, sort_keys=False)


def image_yaml(identifier: str, version: str, image: str) -> str:
    """A ``port.yaml`` of one ``cpu`` flavour running ``image`` (for real deployments)."""
    return yaml.safe_dump(
        {
            "apiVersion": "port/v1",
            "version": version,
            "app": {"identifier": identifier, "name": identifier.title()},
            "flavours": {"cpu": {"image": image}},
        }
    )


def arkitekt_manifest(identifier: str, version: str) -> dict[str, object]:
    """The ``manifest`` block both Arkitekt shapes carry."""
    return {
        "identifier": identifier,
        "version": version,
        "author": "tests",
        "scopes": ["read"],
        "entrypoint": "app",
    }


def app_image(
    identifier: str, version: str, flavour: str = "vanilla", build: str = "1"
) -> dict[str, Any]:
    """One ``app_images`` entry of an ``.arkitekt_next/deployments.yaml``."""
    return {
        "appImageId": f"{identifier}-{version}-{flavour}-{build}",
        "flavourName": flavour,
        "image": {
            "imageString": f"registry.invalid/{identifier}:{version}-{flavour}-b{build}",
            "buildAt": "2024-01-01T00:00:00",
        },
        "manifest": arkitekt_manifest(identifier, version),
        "selectors": [],
    }


def deployment(identifier: str, version: str, flavour: str | None = None) -> dict[str, object]:
    """One ``deployments`` entry, in the older ``.arkitekt`` / ``.arkitekt_next`` shape."""
    entry: dict[str, object] = {
        "build_id": f"{identifier}-{version}",
        "deployed_at": "2023-05-01T10:00:00",
        "image": f"registry.invalid/{identifier}:{version}",
        "manifest": {**arkitekt_manifest(identifier, version), "requirements": []},
        "selectors": [],
    }
    if flavour is not None:
        entry["flavour"] = flavour
    return entry


def app_images_yaml(*entries: dict[str, object]) -> str:
    return yaml.safe_dump({"app_images": list(entries)}, sort_keys=False)


def deployments_yaml(*entries: dict[str, object]) -> str:
    return yaml.safe_dump({"deployments": list(entries)}, sort_keys=False)


@dataclass(frozen=True)
class GitDaemon:
    base: Path
    port: int

    def url(self, bare: Path) -> str:
        return f"git://127.0.0.1:{self.port}/{bare.relative_to(self.base)}"


@dataclass
class Remote:
    """A work repository, the URL its bare remote is served at, and a mirror to use."""

    work: WorkRepo
    url: str
    limits: Limits
    mirror: Path

    def spec(
        self, *, branch: str | None = None, manifest_path: str = "port.yaml", tag_prefix: str = ""
    ) -> RepoSpec:
        return RepoSpec(self.url, branch, manifest_path, tag_prefix)

    def scan(
        self,
        previous: Previous | IndexResult | None = None,
        *,
        limits: Limits | None = None,
        branch: str | None = None,
        manifest_path: str = "port.yaml",
        tag_prefix: str = "",
    ) -> IndexResult:
        """Push the work repository, then index the remote (incrementally from a result)."""
        self.work.push()
        if isinstance(previous, IndexResult):
            previous = Previous(refs=previous.refs, head=previous.head)
        spec = self.spec(branch=branch, manifest_path=manifest_path, tag_prefix=tag_prefix)
        return index_repo(spec, self.mirror, previous, limits or self.limits)


MakeRemote = Callable[[], Remote]
