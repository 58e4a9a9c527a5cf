"""Settings are described once, in port/settings.py; the docs are generated from it."""

from __future__ import annotations

import re
from pathlib import Path

from port.settings import Settings, secret_of
from port.settings_docs import DOCS_PATH, GROUPS, markdown, variable

ROOT = Path(__file__).resolve().parents[2]
# PORT_* names the docs use that are not settings: what Pods get, and the test suite's.
NOT_SETTINGS = {"PORT_SETUP_ID", "PORT_POD_ID", "PORT_TEST_DATABASE_URL", "PORT_TEST_DOCKER"}
NOT_SETTINGS |= {"PORT_TEST_REGISTRY", "PORT_TEST_BROWSER", "PORT_TEST_BROWSER_DRIVER"}
NOT_SETTINGS |= {"PORT_TEST_SCREENSHOTS", "PORT_TEST_SOAK_SECONDS"}


def test_every_setting_has_one_group_and_a_description() -> None:
    grouped = [name for _, _, names in GROUPS for name in names]
    assert sorted(grouped) == sorted(Settings.model_fields)
    assert len(grouped) == len(set(grouped))
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_docs_settings_md_is_generated_from_the_settings() -> None:
    assert DOCS_PATH.read_text(encoding="utf-8") == markdown(), (
        "docs/settings.md is stale: run `python -m port.settings_docs`"
    )


def test_the_docs_name_only_settings_that_exist() -> None:
    """A renamed or removed setting cannot live on in the README or the docs."""
    known = {variable(name) for name in Settings.model_fields} | NOT_SETTINGS
    named: dict[str, set[str]] = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for found in re.findall(r"\bPORT_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text()):
            if found not in known and not any(k.startswith(found + "_") for k in known):
                named.setdefault(found, set()).add(path.name)  # a prefix (`PORT_QUOTA_*`) is fine
    assert named == {}


def test_secrets_are_not_shown_but_are_used() -> None:
    settings = Settings(notify_secret="hush", database_url="postgresql://port:pw@db/port")
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "hush" not in shown
    assert "pw@" not in shown
    assert secret_of(settings.notify_secret) == "hush"
    assert settings.sqlalchemy_url == "postgresql+asyncpg://port:pw@db/port"
