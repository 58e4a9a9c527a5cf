"""What a newcomer sees: `port db upgrade` + `port demo` as `make run` calls them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PORT = Path(sys.executable).with_name("port")


def port(data: Path, *args: str) -> str:
    env = {
        **os.environ,
        "PORT_DATA_DIR": str(data),
        "PORT_ALLOW_LOCAL_REPOS": "true",
    }
    env.pop("PORT_DATABASE_URL", None)
    done = subprocess.run(
        [str(PORT), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_demo_indexes_the_example_repository_once(tmp_path: Path) -> None:
    port(tmp_path, "db", "upgrade")
    first = port(tmp_path, "demo")
    assert "run 1 succeeded" in first
    assert "added stardist 0.4.10" in first
    apps = {a["identifier"]: a for a in json.loads(port(tmp_path, "apps", "--json"))}
    assert set(apps) >= {"stardist", "fiji"}
    assert [r["version"] for r in apps["stardist"]["releases"]] == ["0.4.10", "0.4.9"]
    assert [f["name"] for f in apps["stardist"]["releases"][0]["flavours"]] == ["cuda", "cpu"]

    # Rebuilt from the same examples, the repository has the same commits: nothing moved.
    assert "run 2 unchanged" in port(tmp_path, "demo")
