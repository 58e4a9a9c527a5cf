"""The backend contract: incomplete backends are refused, and backends are found by name."""

from __future__ import annotations

from typing import Any

import pytest

from port.deploy.backends import load_backend
from port.deploy.backends.base import Backend
from port.errors import InvalidInput
from port.settings import Settings
from tests.deployfakes import FakeBackend


def test_a_backend_missing_a_method_cannot_be_made() -> None:
    class Half(Backend):
        name = "half"

        async def capabilities(self) -> Any:
            return None

    with pytest.raises(TypeError, match="abstract"):
        Half()  # type: ignore[abstract]


def test_the_fake_backend_implements_the_whole_contract() -> None:
    assert FakeBackend("t").name == "fake"  # it could be instantiated: nothing is missing


def test_an_unknown_backend_names_the_installed_ones(tmp_path: Any) -> None:
    with pytest.raises(InvalidInput, match=r"no backend named 'swarm'; installed: .*docker"):
        load_backend(Settings(data_dir=tmp_path, backend="swarm"))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("docker_capabilities", ["SYS_ADMIN"], "beyond Docker's default set"),
        ("docker_mounts", {"napari": ["relative:/data"]}, "use /host:/container"),
        ("instance", "Bad_Name", "String should match pattern"),
    ],
)
def test_settings_refuse_a_wider_sandbox(
    tmp_path: Any, field: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(data_dir=tmp_path, **{field: value})
