"""The bundled example repositories, built from ``manifests/examples`` into local git repos.

``make run`` indexes them so that a newcomer sees a real catalogue without any network:
releases cut from ``port.yaml`` at semver tags, and Arkitekt apps from a
``.arkitekt_next/deployments.yaml`` file at a branch head.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import semver
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import manifests
from indexer.scan import Progress
from port.catalogue import repos
from port.catalogue.jobs import enqueue_index, scan_now
from port.catalogue.scanning import ScanOutcome
from port.errors import NotFound, PortError
from port.settings import Settings

EXAMPLES = Path(manifests.__file__).parent / "examples"
# (example folder, versions to tag): each version is cut from the one manifest, whose
# image tags carry the first version listed last, e.g. "0.4.10" -> "0.4.9".
NATIVE = {"stardist": ("0.4.9", "0.4.10"), "napari": ("0.5.0",)}


def _git(repo: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Port examples",
        "GIT_AUTHOR_EMAIL": "examples@port.invalid",
        "GIT_COMMITTER_NAME": "Port examples",
        "GIT_COMMITTER_EMAIL": "examples@port.invalid",
        # Fixed dates give the same commit ids on every build, so a rebuilt example
        # repository is "unchanged" to the indexer instead of a repo of moved tags.
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
        "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
    }
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def _init(target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    _git(target, "init", "--quiet", "--initial-branch=main")


def example_manifest(app: str) -> str:
    """The port.yaml template of example ``app``: its image tags carry its newest
    bundled version, which each tag replaces by its own."""
    return (EXAMPLES / app / "port.yaml").read_text()


def _tag_versions(target: Path, app: str, versions: tuple[str, ...]) -> None:
    template = example_manifest(app)
    # The example's other files (its logo, say) are in every release.
    for source in (EXAMPLES / app).rglob("*"):
        if source.is_file() and source.name != "port.yaml":
            copy = target / source.relative_to(EXAMPLES / app)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, copy)
            _git(target, "add", str(copy.relative_to(target)))
    for version in versions:
        (target / "port.yaml").write_text(template.replace(NATIVE[app][-1], version))
        _git(target, "add", "port.yaml")
        _git(target, "commit", "--quiet", "-m", f"{app} {version}")
        _git(target, "tag", f"v{version}")


Versions = dict[str, tuple[str, ...]]


def versions_with(extra: Versions | None) -> Versions:
    """The examples' versions, and ``extra`` ones (newer, cut from the same manifest)."""
    extra = extra or {}
    unknown = sorted(set(extra) - set(NATIVE))
    if unknown:
        raise PortError(f"no example app {', '.join(unknown)}: try {', '.join(NATIVE)}")
    for app, versions in extra.items():
        for version in versions:
            if not semver.Version.is_valid(version):
                raise PortError(f"{app}={version}: a version is semver, like 0.5.1")
    return {app: (*versions, *extra.get(app, ())) for app, versions in NATIVE.items()}


def build_example_repos(root: Path, extra: Versions | None = None) -> list[Path]:
    """(Re)create the example repositories under ``root`` and return their paths.

    ``stardist``: two semver tags of its port.yaml, and an Arkitekt deployments file at
    the branch head (fiji, renamer). ``napari``: one tag. ``extra`` adds tags.
    """
    versions = versions_with(extra)
    stardist, napari = root / "stardist", root / "napari"
    _init(stardist)
    _tag_versions(stardist, "stardist", versions["stardist"])
    arkitekt = stardist / ".arkitekt_next"
    arkitekt.mkdir()
    shutil.copy(EXAMPLES / "arkitekt" / "deployments.yaml", arkitekt / "deployments.yaml")
    _git(stardist, "add", ".arkitekt_next")
    _git(stardist, "commit", "--quiet", "-m", "Arkitekt deployments")
    _init(napari)
    _tag_versions(napari, "napari", versions["napari"])
    return [stardist, napari]


async def index_examples(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    progress: Callable[[str], Progress | None] = lambda _name: None,
) -> list[tuple[str, ScanOutcome]]:
    """Build the example repositories, register the new ones and scan them all.

    Returns (repository URL, outcome) per example. Needs ``allow_local_repos``: the
    examples are local paths.
    """
    if not settings.allow_local_repos:
        raise PortError("the example repositories are local paths: set PORT_ALLOW_LOCAL_REPOS=true")
    outcomes = []
    for example in build_example_repos(settings.data_dir / "examples"):
        async with sessions() as session, session.begin():
            try:
                repo = await repos.find_repo(session, str(example))
            except NotFound:
                repo = await repos.add_repo(session, str(example), allow_local=True)
        outcome = await scan_now(sessions, settings, repo.id, progress(example.name), "demo")
        outcomes.append((repo.url, outcome))
    return outcomes


async def release_examples(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, extra: Versions
) -> list[str]:
    """Cut the ``extra`` releases into the example repositories and queue an index run
    of each for the server's job worker, which then rolls the new versions out to the
    Setups that follow them. Returns the repositories' URLs."""
    queued = []
    for example in build_example_repos(settings.data_dir / "examples", extra):
        async with sessions() as session, session.begin():
            repo = await repos.find_repo(session, str(example))
            await enqueue_index(session, repo.id, "examples")
            queued.append(repo.url)
    return queued
