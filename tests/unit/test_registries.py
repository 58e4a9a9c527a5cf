"""Images come from public registries or those an admin allows: what port.registries
refuses, and why."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from port.registries import Registries, registry_of
from port.settings import Settings


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("busybox", "docker.io"),
        ("stardist/stardist:0.4", "docker.io"),
        ("library/busybox@sha256:" + "a" * 64, "docker.io"),
        ("ghcr.io/acme/napari:1.0", "ghcr.io"),
        ("localhost/x:1", "localhost"),
        ("localhost:5000/port-examples/fiji:0.1.0", "localhost:5000"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000"),
        ("[::1]:5000/x", "[::1]:5000"),
        ("Registry.Lab:5000/x", "registry.lab:5000"),
    ],
)
def test_the_registry_is_read_as_the_engine_reads_it(image: str, registry: str) -> None:
    assert registry_of(image) == registry


@pytest.mark.parametrize(
    "image",
    [
        "127.0.0.1:8000/graphql:x",  # Port's own API, answered through the engine
        "localhost:5000/x",
        "app.localhost/x",
        "10.1.2.3:5000/x",
        "192.168.1.10/x",
        "169.254.169.254/latest:x",  # a cloud's metadata service
        "[::1]:5000/x",
        "[fe80::1]/x",
        "[::ffff:127.0.0.1]:5000/x",
        "0.0.0.0:5000/x",
        "2130706433:5000/x",  # 127.0.0.1 as one number: resolvers accept it
    ],
)
def test_registries_on_the_servers_own_network_are_refused(image: str) -> None:
    why = Registries().refusal(image)
    assert why is not None
    assert f"the registry {registry_of(image)} is on this server's own network" in why
    assert "PORT_ALLOWED_REGISTRIES" in why


@pytest.mark.parametrize(
    "image",
    [
        "busybox:1",
        "8.8.8.8:5000/x",
        "[2001:4860:4860::8888]:443/x",
        "registry.invalid/x",  # does not resolve: the engine cannot reach it either
    ],
)
def test_public_and_unresolvable_registries_pass(image: str) -> None:
    assert Registries().refusal(image) is None


def test_an_allowed_registry_passes_and_entries_match_exactly() -> None:
    registries = Registries(["127.0.0.1:5000", "Registry.Lab"])
    assert registries.refusal("127.0.0.1:5000/x:1") is None
    assert registries.refusal("127.0.0.1:5001/x:1") is not None  # another port
    assert registries.refusal("127.0.0.1/x:1") is not None
    assert registries.allowed == {"127.0.0.1:5000", "registry.lab"}


@pytest.mark.parametrize("entry", ["http://registry.lab", "registry.lab/x", "a b", "h:99999", ""])
def test_bad_allowed_registries_are_refused_by_name(entry: str) -> None:
    with pytest.raises(ValidationError, match="not a registry"):
        Settings(allowed_registries=[entry])


def test_allowed_registries_are_normalised() -> None:
    assert Settings(allowed_registries=[" LocalHost:5000 "]).allowed_registries == [
        "localhost:5000"
    ]
