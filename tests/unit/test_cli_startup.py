"""`port --help` starts without the server or the deployment code: what it imports."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from port.cli import LAZY, main

HEAVY = ("strawberry", "litestar", "uvicorn", "docker", "port.serve", "port.deploy", "port.api")


def test_the_command_line_imports_no_server_and_no_deployment_code() -> None:
    """Repro (issue 12): `port --help` spent ~1 s importing modules it never uses."""
    probe = (
        "import sys; from port.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_lazy_groups_say_what_their_own_help_says() -> None:
    """The one-line help `port --help` shows for a lazy group is the group's own."""
    for name in LAZY:
        command = main.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None
        assert command.get_short_help_str(200).startswith(LAZY[name][1].rstrip(".")), name
    shown = CliRunner().invoke(main, ["--help"]).output
    assert "setup     Setups: a user's intent to run an app." in shown
    assert "pod       Pods: the containers of Setups." in shown


def test_the_migration_head_read_from_the_files_is_alembics() -> None:
    """`check_migrated` reads the head without Alembic: it must be the one Alembic sees."""
    from alembic.script import ScriptDirectory

    from port.db import alembic_config, migration_head

    config = alembic_config("sqlite+aiosqlite:///:memory:")
    assert migration_head() == ScriptDirectory.from_config(config).get_current_head()


# What a listing (`port repo list`, `port apps`, `port setup list`) never needs: Alembic
# and Mako (migrations), GitPython, a YAML library, the default-directory lookup, and the
# reconciler, the updater and the apps' addresses (commands that act import them).
NOT_FOR_LISTINGS = (
    "alembic",
    "mako",
    "git",
    "yaml",
    "platformdirs",
    "port.deploy.reconciler",
    "port.deploy.updater",
    "port.apps.addresses",
)


def test_a_listing_command_imports_only_what_it_lists() -> None:
    """Repro (issue 12): `port repo list` paid for Alembic, Mako, GitPython and the
    manifest parsers it never uses; `port setup list` for the reconciler."""
    probe = (
        "import sys; import port.cli_catalogue, port.cli_deploy, port.cli_accounts\n"
        "import port.settings\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {NOT_FOR_LISTINGS!r}"
        f" or m in {NOT_FOR_LISTINGS!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
