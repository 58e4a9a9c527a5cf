"""Grants: what an owner's consent gives a Pod under the admin's policy (no engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from port.deploy.grants import (
    Consent,
    Grant,
    GrantPolicy,
    Grants,
    Refused,
    check_consents,
)
from port.errors import InvalidInput
from port.settings import Settings

IMAGES = {"kind": "folder", "name": "images", "target": "/images", "readOnly": True}
RESULTS = {"kind": "folder", "name": "results", "target": "/results", "readOnly": False}
CAMERA = {"kind": "device", "name": "camera", "class": "video", "target": "/dev/video0"}
SHM = {"kind": "shared_memory", "name": "shm", "min": 512}
NICE = {"kind": "linux_capability", "name": "nice", "cap": "SYS_NICE"}
HOSTNET = {"kind": "host_network", "name": "net"}
ENGINE = {"kind": "container_engine", "name": "docker", "target": "/var/run/docker.sock"}

POLICY = GrantPolicy(
    folders=(("/data", False), ("/scratch", True)),
    devices={"video": ("/dev/video*",)},
    shared_memory_mb=1024,
    linux_capabilities=frozenset({"SYS_NICE"}),
    host_access_apps=frozenset({"trusted"}),
)


def grant(capability: dict[str, Any], host: str | None = None, app: str = "napari") -> Grant:
    return POLICY.grant(capability, Consent(str(capability["name"]), host), app)


def refusal(capability: dict[str, Any], host: str | None = None, app: str = "napari") -> str:
    with pytest.raises(Refused) as refused:
        grant(capability, host, app)
    return str(refused.value)


def test_a_folder_under_a_grantable_root_is_mounted_read_only() -> None:
    assert grant(IMAGES, "/data/lab/images") == Grant(
        "images", "folder", "/data/lab/images", "/images", read_only=True
    )
    assert grant(IMAGES, "/data/lab//x/").source == "/data/lab/x"  # normalised
    assert "not under a folder" in refusal(IMAGES, "/etc")
    assert "not under a folder" in refusal(IMAGES, "/database")  # a prefix is not a parent
    assert "'..'" in refusal(IMAGES, "/data/../etc")
    assert "name the host folder" in refusal(IMAGES)
    assert "absolute host path" in refusal(IMAGES, "data/x")
    assert "absolute host path" in refusal(IMAGES, "/data/x:/etc")  # no mount options


def test_write_only_where_the_app_asks_and_the_policy_allows() -> None:
    assert grant(RESULTS, "/scratch/run1").read_only is False
    assert "read-only only" in refusal(RESULTS, "/data/run1")
    assert grant(IMAGES, "/scratch/in").read_only is True  # it did not ask to write


def test_devices_come_from_the_allow_list_of_their_class() -> None:
    assert grant(CAMERA) == Grant(
        "camera", "device", "/dev/video0", "/dev/video0", device_class="video"
    )
    assert grant(CAMERA, "/dev/video2").source == "/dev/video2"
    assert "not a video device" in refusal(CAMERA, "/dev/sda")
    serial = {**CAMERA, "class": "serial", "name": "port", "target": "/dev/ttyUSB0"}
    assert "(PORT_GRANTABLE_DEVICES: none)" in refusal(serial)


def test_shared_memory_up_to_the_admins_maximum() -> None:
    assert grant(SHM).shm_mb == 512
    assert "more than the 1024 MB" in refusal({**SHM, "min": 2048})
    assert "takes no host side" in refusal(SHM, "/dev/shm")


def test_linux_capabilities_from_the_allow_list_only() -> None:
    assert grant(NICE).cap == "SYS_NICE"
    assert "not one this Port grants" in refusal({**NICE, "cap": "NET_ADMIN"})


def test_root_equivalent_kinds_only_for_apps_an_admin_named() -> None:
    assert "an admin must allow napari" in refusal(HOSTNET)
    assert "an admin must allow napari" in refusal(ENGINE)
    assert grant(HOSTNET, app="trusted").kind == "host_network"
    engine = grant(ENGINE, app="trusted")
    assert (engine.source, engine.target, engine.read_only) == (
        "/var/run/docker.sock",
        "/var/run/docker.sock",
        False,
    )
    remote = GrantPolicy(host_access_apps=frozenset({"trusted"}), engine_socket=None)
    with pytest.raises(Refused, match="remote"):
        remote.grant(ENGINE, Consent("docker"), "trusted")


def test_the_policy_is_read_from_the_settings() -> None:
    settings = Settings(
        grantable_folders=["/data", "/scratch:rw"],
        grantable_devices={"video": ["/dev/video*"]},
        grantable_linux_capabilities=["cap_sys_nice"],
        docker_host="tcp://engine:2375",
    )
    policy = GrantPolicy.of(settings)
    assert policy.folders == (("/data", False), ("/scratch", True))
    assert policy.linux_capabilities == {"SYS_NICE"}
    assert policy.engine_socket is None  # a remote engine's socket is not here
    assert GrantPolicy.of(Settings(docker_host="unix:///run/docker.sock")).engine_socket == (
        "/run/docker.sock"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("grantable_linux_capabilities", ["SYS_ADMIN"], "never grantable"),
        ("grantable_linux_capabilities", ["ALL"], "never grantable"),
        ("grantable_folders", ["data"], "absolute host path"),
        ("grantable_folders", ["/data:rwx"], "absolute host path"),
    ],
)
def test_a_policy_wider_than_allowed_is_refused_at_start(
    field: str, value: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.model_validate({field: value})


def test_consents_are_checked_when_given_not_when_a_pod_starts() -> None:
    asked: list[list[dict[str, Any]]] = [[IMAGES, SHM], [CAMERA]]
    consents = [Consent("images", "/data/x"), Consent("camera")]
    checked = check_consents(consents, asked, POLICY, "napari")
    assert [(c.name, c.host) for c in checked] == [("images", "/data/x"), ("camera", None)]
    with pytest.raises(InvalidInput, match="asks for no capability 'gpu'") as unknown:
        check_consents([Consent("gpu")], asked, POLICY, "napari")
    assert unknown.value.field == "grants"
    with pytest.raises(InvalidInput, match="images: /etc is not under"):
        check_consents([Consent("images", "/etc")], asked, POLICY, "napari")
    with pytest.raises(InvalidInput, match="granted twice"):
        check_consents([Consent("shm"), Consent("shm")], asked, POLICY, "napari")


def test_a_pod_gets_what_was_consented_and_allowed_nothing_else() -> None:
    optional_nice = {**NICE, "required": False}
    grants = Grants(POLICY, {"images": Consent("images", "/data/x")}, "napari")
    applied = grants.applied([IMAGES, SHM, optional_nice])
    assert applied == [Grant("images", "folder", "/data/x", "/images")]
    assert grants.ungranted(IMAGES) is None
    shm = grants.ungranted(SHM)
    assert shm is not None
    assert shm.asked
    # A policy narrowed since the consent: refused now, and no question to the owner.
    narrowed = Grants(GrantPolicy(), grants.consents, "napari")
    refused = narrowed.ungranted(IMAGES)
    assert refused is not None
    assert not refused.asked
    assert "images" in refused.reason
    assert "not under a folder" in refused.reason
    assert narrowed.applied([IMAGES]) == []


def test_consent_round_trips_and_parses_the_cli_form() -> None:
    assert Consent.parse("images=/data/x") == Consent("images", "/data/x")
    assert Consent.parse("shm") == Consent("shm")
    assert Consent.from_json(Consent("a", "/b").as_json()) == Consent("a", "/b")
    folder = Grant("images", "folder", "/data/x", "/images", read_only=False)
    assert Grant.from_json(folder.as_json()) == folder
    assert Grant("shm", "shared_memory", shm_mb=64).as_json() == {
        "name": "shm",
        "kind": "shared_memory",
        "shmMb": 64,
    }


def test_a_symlink_under_a_root_leads_nowhere_outside_it(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "escape").symlink_to("/etc")
    policy = GrantPolicy(folders=((str(root), True),))
    with pytest.raises(Refused, match="/etc is not under a folder"):
        policy.grant(IMAGES, Consent("images", str(root / "a" / "escape")), "napari")
    inside = root / "a" / "inside"
    inside.symlink_to(root / "a")
    granted = policy.grant(IMAGES, Consent("images", str(inside)), "napari")
    assert granted.source == str(root / "a")  # what the engine will mount


def test_a_consent_agrees_to_terms_and_changed_terms_ask_again() -> None:
    [consent] = check_consents([Consent("images", "/scratch/x")], [[IMAGES]], POLICY, "napari")
    assert consent.agreed == {"kind": "folder", "target": "/images", "readOnly": True}
    grants = Grants(POLICY, {"images": consent}, "napari")
    assert grants.ungranted(IMAGES) is None
    assert grants.ungranted({**IMAGES, "description": "reworded"}) is None  # words only
    writable = {**IMAGES, "readOnly": False}  # the same name, a wider meaning
    asked = grants.ungranted(writable)
    assert asked is not None
    assert asked.asked
    assert "otherwise than it was granted" in asked.reason
    assert grants.applied([writable]) == []
    # Kept through a round trip, and not overwritten when checked again.
    again = check_consents([Consent.from_json(consent.as_json())], [[writable]], POLICY, "n")
    assert again[0].agreed == consent.agreed


def test_a_grant_given_before_is_judged_again_by_todays_policy() -> None:
    results = grant(RESULTS, "/scratch/run1")  # writable, under a :rw root
    camera = grant(CAMERA)
    nice = grant(NICE)
    assert [POLICY.refusal(g, "napari") for g in (results, camera, nice)] == [None] * 3
    narrowed = GrantPolicy(folders=(("/scratch", False),))
    assert "read-only only" in (narrowed.refusal(results, "napari") or "")
    assert "not a video device" in (narrowed.refusal(camera, "napari") or "")
    assert "not one this Port grants" in (narrowed.refusal(nice, "napari") or "")
    hostnet = grant(HOSTNET, app="trusted")
    assert POLICY.refusal(hostnet, "trusted") is None
    assert "an admin must allow trusted" in (narrowed.refusal(hostnet, "trusted") or "")
    assert Grant.from_json(camera.as_json()) == camera  # the class is kept
