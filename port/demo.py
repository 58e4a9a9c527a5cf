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

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import manifests
from indexer.scan import Progress
from port.catalogue import repos
from port.catalogue.scanning import ScanOutcome, scan_repo
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


def _tag_versions(target: Path, app: str, versions: tuple[str, ...]) -> None:
    template = (EXAMPLES / app / "port.yaml").read_text()
    # The example's other files (its logo, say) are in every release.
    for source in (EXAMPLES / app).rglob("*"):
        if source.is_file() and source.name != "port.yaml":
            copy = target / source.relative_to(EXAMPLES / app)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, copy)
            _git(target, "add", str(copy.relative_to(target)))
    for version in versions:
        (target / "port.yaml").write_text(template.replace(versions[-1], version))
        _git(target, "add", "port.yaml")
        _git(target, "commit", "--quiet", "-m", f"{app} {version}")
        _git(target, "tag", f"v{version}")


def build_example_repos(root: Path) -> list[Path]:
    """(Re)create the example repositories under ``root`` and return their paths.

    ``stardist``: two semver tags of its port.yaml, and an Arkitekt deployments file at
    the branch head (fiji, renamer). ``napari``: one tag.
    """
    stardist, napari = root / "stardist", root / "napari"
    _init(stardist)
    _tag_versions(stardist, "stardist", NATIVE["stardist"])
    arkitekt = stardist / ".arkitekt_next"
    arkitekt.mkdir()
    shutil.copy(EXAMPLES / "arkitekt" / "deployments.yaml", arkitekt / "deployments.yaml")
    _git(stardist, "add", ".arkitekt_next")
    _git(stardist, "commit", "--quiet", "-m", "Arkitekt deployments")
    _init(napari)
    _tag_versions(napari, "napari", NATIVE["napari"])
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
        outcome = await scan_repo(sessions, settings, repo.id, progress(example.name))
        outcomes.append((repo.url, outcome))
    return outcomes
