"""What a newcomer sees: `make run` on the embedded default (SQLite in a data folder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PORT = Path(sys.executable).with_name("port")


def make_run(data: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORT_")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "run", f"DATA={data}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_make_run_shows_the_example_catalogue_and_is_unchanged_the_second_time(
    tmp_path: Path,
) -> None:
    first = make_run(tmp_path)
    assert "run 1 succeeded" in first
    assert "added stardist 0.4.10" in first
    assert "added napari 0.5.0" in first
    assert "  0.4.10: cuda=localhost:5000/port-examples/stardist:0.4.10-cuda" in first

    env = {**os.environ, "PORT_DATA_DIR": str(tmp_path)}
    env.pop("PORT_DATABASE_URL", None)
    listed = subprocess.run(
        [str(PORT), "apps", "--json"], env=env, capture_output=True, text=True, check=True
    ).stdout
    apps = {a["identifier"]: a for a in json.loads(listed)}
    assert set(apps) == {"stardist", "napari", "fiji", "renamer"}
    assert [r["version"] for r in apps["stardist"]["releases"]] == ["0.4.10", "0.4.9"]

    # Rebuilt from the same examples, the repositories have the same commits.
    second = make_run(tmp_path)
    assert "run 3 unchanged" in second
    assert "run 4 unchanged" in second
