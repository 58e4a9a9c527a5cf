"""`port --version` says which Port this is, from the installed package's metadata."""

from __future__ import annotations

from importlib.metadata import version

from click.testing import CliRunner

from port.cli import main


def test_port_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"port {version('port')}\n"
