"""The backend contract: incomplete backends are refused, and backends are found by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from port.deploy.backends import load_backend
from port.deploy.backends.base import Backend
from port.deploy.backends.firewall import bridge_name
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
        Settings.model_validate({"data_dir": tmp_path, field: value})


@pytest.mark.parametrize("network", ["host", "none", "default", "bridge", "container:abc123"])
def test_a_network_shared_with_the_host_or_others_is_refused_at_start_up(
    tmp_path: Path, network: str
) -> None:
    """Repro: PORT_DOCKER_NETWORK=host gave Pods the host's network (they reached Port's
    loopback-only API); none and container:* were accepted too."""
    with pytest.raises(ValidationError, match="is not a network of Port's"):
        Settings(data_dir=tmp_path, docker_network=network)


def test_the_bridge_of_a_setup_fits_the_kernels_name_limit() -> None:
    assert len(bridge_name("port-1a2b3c4d", 0xFFFFFF)) == 15
    assert bridge_name("a", 1) != bridge_name("b", 1)
