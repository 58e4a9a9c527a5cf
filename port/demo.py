"""The bundled example repository: built from ``manifests/examples`` into a local git repo.

``make run`` indexes it so that a newcomer sees a real catalogue without any network:
stardist releases cut from ``port.yaml`` at two semver tags, and Arkitekt apps from a
``.arkitekt_next/deployments.yaml`` file at the branch head.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import manifests

EXAMPLES = Path(manifests.__file__).parent / "examples"
# Versions cut from the stardist example: the manifest's image tags follow the tag.
STARDIST_VERSIONS = ("0.4.9", "0.4.10")
_TEMPLATE_VERSION = "0.4.10"


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


def build_example_repo(target: Path) -> Path:
    """(Re)create the example repository at ``target`` and return its path."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    _git(target, "init", "--quiet", "--initial-branch=main")
    template = (EXAMPLES / "stardist" / "port.yaml").read_text()
    for version in STARDIST_VERSIONS:
        (target / "port.yaml").write_text(template.replace(_TEMPLATE_VERSION, version))
        _git(target, "add", "port.yaml")
        _git(target, "commit", "--quiet", "-m", f"stardist {version}")
        _git(target, "tag", f"v{version}")
    arkitekt = target / ".arkitekt_next"
    arkitekt.mkdir()
    shutil.copy(EXAMPLES / "arkitekt" / "deployments.yaml", arkitekt / "deployments.yaml")
    _git(target, "add", ".arkitekt_next")
    _git(target, "commit", "--quiet", "-m", "Arkitekt deployments")
    return target
