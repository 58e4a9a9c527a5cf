"""Files written by Arkitekt's own writer (the `arkitekt-spec` package) read without loss.

Every selector and capability kind of the current spec, with every field it has, is written by
``arkitekt_spec.deployment.dump_deployments`` and read by Port's Arkitekt parser; the
catalogue's canonical form of each is checked field by field. ``spec_version`` is read:
a newer version than Port knows is a located error of the whole file.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from arkitekt_spec import capabilities as caps
from arkitekt_spec import selectors as spec
from arkitekt_spec.deployment import AppImage, DeploymentsFile, DockerImage, dump_deployments
from arkitekt_spec.inspection import Inspection
from arkitekt_spec.manifest import AppManifest, Requirement
from arkitekt_spec.release import ReleaseDescriptor, ReleaseFlavour, dump_descriptor

from manifests.arkitekt import SPEC_VERSION, parse_arkitekt_deployments, parse_release_descriptor
from manifests.capabilities import MAX_CAPABILITIES, stored_capability
from manifests.selectors import stored_form
from manifests.specs import Parsed

EVERY_SELECTOR = [
    spec.CpuSelector(min_count=2, frequency=2400.5, arch="arm64"),
    spec.RamSelector(min=4096),
    spec.RamSelector(),
    spec.CudaSelector(
        compute_capability="8.6", cuda_version="12.2", memory=8192, count=2, cuda_cores=5000
    ),
    spec.RocmSelector(api_version="6.0", api_thing="gfx90a"),
    spec.OneApiSelector(oneapi_version="2024.1", required=False, weight=5),
    spec.LabelSelector(key="site", value="lab"),
    spec.LabelSelector(key="scope", required=False, weight=-3),
]

# What the catalogue stores for each, in Port's names (docs/manifests: selectors).
STORED = [
    {"kind": "cpu", "required": True, "weight": 1, "min_count": 2, "frequency": 2400.5,
     "arch": "arm64"},
    {"kind": "ram", "required": True, "weight": 1, "min": 4096},
    {"kind": "ram", "required": True, "weight": 1},
    {"kind": "cuda", "required": True, "weight": 1, "min_version": "12.2",
     "compute_capability": "8.6", "cuda_cores": 5000, "memory": 8192, "count": 2},
    {"kind": "rocm", "required": True, "weight": 1, "min_version": "6.0",
     "api_thing": "gfx90a"},
    {"kind": "oneapi", "required": False, "weight": 5, "min_version": "2024.1"},
    {"kind": "label", "required": True, "weight": 1, "key": "site", "value": "lab"},
    {"kind": "label", "required": False, "weight": -3, "key": "scope"},
]  # fmt: skip


def written(*images: AppImage) -> str:
    return dump_deployments(DeploymentsFile(app_images=list(images)))


def image(flavour: str, selectors: list[Any], version: str = "1.0.0") -> AppImage:
    return AppImage(
        app_image_id=f"{flavour}-{version}",
        flavour_name=flavour,
        manifest=AppManifest(identifier="stardist", version=version, author="acme"),
        selectors=selectors,
        inspection=Inspection(
            requirements=[Requirement(key="mikro", service="live.arkitekt.mikro")]
        ),
        image=DockerImage(image_string=f"ghcr.io/acme/stardist:{version}-{flavour}"),
    )


def parsed(text: str) -> Parsed:
    return parse_arkitekt_deployments(text, file=".arkitekt/deployments.yaml", ref="main")


def test_every_selector_kind_of_the_spec_is_read_with_every_field() -> None:
    result = parsed(written(image("all", EVERY_SELECTOR)))
    assert result.errors == []
    [release] = result.releases
    [flavour] = release.flavours
    assert [stored_form(s) for s in flavour.selectors] == STORED
    assert flavour.image == "ghcr.io/acme/stardist:1.0.0-all"
    assert [(r.key, r.service) for r in release.app.requirements] == [
        ("mikro", "live.arkitekt.mikro")
    ]


@pytest.mark.parametrize("index", range(len(EVERY_SELECTOR)))
def test_each_selector_alone_makes_a_flavour(index: int) -> None:
    result = parsed(written(image("one", [EVERY_SELECTOR[index]])))
    assert result.errors == []
    [release] = result.releases
    assert [stored_form(s) for s in release.flavours[0].selectors] == [STORED[index]]


def test_the_spec_version_port_reads_is_the_writers() -> None:
    assert DeploymentsFile().spec_version == SPEC_VERSION


def test_a_newer_spec_version_is_a_located_error_of_the_file() -> None:
    text = written(image("cpu", [spec.CpuSelector(min_count=1)]))
    assert "spec_version: 1" in text
    newer = text.replace("spec_version: 1", "spec_version: 2")
    result = parsed(newer)
    assert result.releases == []
    [error] = result.errors
    assert error.path == "spec_version"
    assert error.line == newer.splitlines().index("spec_version: 2") + 1
    assert error.message == (
        "spec_version 2 is newer than the Arkitekt spec Port reads (1); the file is not read"
    )


@pytest.mark.parametrize("value", ["'1'", "true", "0", "1.5", "[1]"])
def test_a_spec_version_that_is_not_a_version_is_refused(value: str) -> None:
    text = written(image("cpu", [])).replace("spec_version: 1", f"spec_version: {value}")
    result = parsed(text)
    assert result.releases == []
    assert [e.path for e in result.errors] == ["spec_version"]
    assert result.errors[0].message.startswith("spec_version must be a whole number from 1")


def test_files_from_before_spec_version_still_read() -> None:
    text = written(image("cpu", [spec.RamSelector(min=1024)]))
    older = "\n".join(line for line in text.splitlines() if not line.startswith("spec_version"))
    assert [r.version for r in parsed(older).releases] == ["1.0.0"]


EVERY_CAPABILITY = [
    caps.ContainerEngineCapability(name="engine", description="Starts its workers."),
    caps.DeviceCapability(name="camera", device_class="video", target="/dev/video0"),
    caps.FolderCapability(name="data", target="/data", read_only=False),
    caps.FolderCapability(name="models", target="/models", required=False),
    caps.HostNetworkCapability(name="discovery", required=False),
    caps.LinuxCapability(name="nice", cap="SYS_NICE"),
    caps.SharedMemoryCapability(name="shm", min=2048),
]


def test_every_capability_kind_is_kept_as_the_spec_writes_it() -> None:
    entry = image("all", [spec.CpuSelector(min_count=1)])
    entry = entry.model_copy(update={"capabilities": EVERY_CAPABILITY})
    result = parsed(written(entry))
    assert result.errors == []
    [flavour] = result.releases[0].flavours
    stored = [stored_capability(c) for c in flavour.capabilities]
    as_written = [
        c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in EVERY_CAPABILITY
    ]
    assert stored == as_written  # same fields, same spelling (`class`, `readOnly`)
    assert [next(iter(c)) for c in stored] == ["kind"] * len(stored)  # kind first
    assert stored[1] == {
        "kind": "device",
        "name": "camera",
        "required": True,
        "class": "video",
        "target": "/dev/video0",
    }


@pytest.mark.parametrize(
    ("capability", "path", "message"),
    [
        (
            {"kind": "folder", "name": "data", "target": "/data", "readonly": True},
            "capabilities[0].readonly",
            "unknown field 'readonly' for a folder capability; did you mean 'readOnly'?",
        ),
        (
            {"kind": "linux_capability", "name": "root", "cap": "SYS_ADMIN"},
            "capabilities[0]",
            "SYS_ADMIN is privileged in all but name",
        ),
        (
            {"kind": "privileged", "name": "all"},
            "capabilities[0]",
            "unknown capability kind 'privileged'",
        ),
        ({"name": "x"}, "capabilities[0]", "a capability needs a 'kind': one of"),
        (
            {"kind": "folder", "name": "data", "target": "relative/path"},
            "capabilities[0].target",
            "string should match pattern",
        ),
        (
            {"kind": "device", "name": "Camera", "class": "video", "target": "/dev/video0"},
            "capabilities[0].name",
            "string should match pattern",
        ),
    ],
)
def test_a_bad_capability_skips_its_entry_with_a_located_error(
    capability: dict[str, Any], path: str, message: str
) -> None:
    text = written(image("cpu", []))
    document = yaml.safe_load(text)
    document["app_images"][0]["capabilities"] = [capability]
    result = parsed(yaml.safe_dump(document))
    assert result.releases == []  # never shown, nor run, asking for less than it needs
    [error] = result.errors
    assert error.path == f"app_images[0].{path}"
    assert error.line is not None
    assert message in error.message
    assert error.message.endswith("; this entry is skipped")


def test_two_capabilities_of_one_name_and_too_many_are_refused() -> None:
    document = yaml.safe_load(written(image("cpu", [])))
    twice = {"kind": "host_network", "name": "net"}
    document["app_images"][0]["capabilities"] = [twice, twice]
    [error] = parsed(yaml.safe_dump(document)).errors
    assert "two capabilities are called 'net'" in error.message
    many = [{"kind": "host_network", "name": f"n{i}"} for i in range(MAX_CAPABILITIES + 1)]
    document["app_images"][0]["capabilities"] = many
    [error] = parsed(yaml.safe_dump(document)).errors
    assert error.path == "app_images[0].capabilities"
    assert f"at most {MAX_CAPABILITIES} items" in error.message


# --- release descriptors (arkitekt_spec.release: what an OCI registry carries) ----------

DIGEST = "sha256:" + "ab" * 32


def descriptor(*flavours: ReleaseFlavour, version: str = "1.4.0", **fields: Any) -> bytes:
    return dump_descriptor(
        ReleaseDescriptor(
            manifest=AppManifest(identifier="stardist", version=version, author="acme"),
            flavours=list(flavours),
            **fields,
        )
    )


def flavour_of(
    name: str, selectors: list[Any], capabilities: list[Any] | None = None
) -> ReleaseFlavour:
    return ReleaseFlavour(
        name=name,
        image=f"ghcr.io/acme/stardist@{DIGEST}",
        selectors=selectors,
        capabilities=capabilities or [],
        inspection=Inspection(
            requirements=[Requirement(key="mikro", service="live.arkitekt.mikro")]
        ),
    )


def test_a_release_descriptor_is_one_release_with_every_selector_and_capability() -> None:
    folder = caps.FolderCapability(name="images", target="/images")
    read = parse_release_descriptor(
        descriptor(flavour_of("all", EVERY_SELECTOR, [folder]), flavour_of("cpu", [])),
        file="ghcr.io/acme/stardist:1.4.0",
        ref="1.4.0",
    )
    assert read.errors == []
    assert read.channel is None
    assert read.release is not None
    assert (read.release.app.identifier, read.release.version) == ("stardist", "1.4.0")
    assert [f.name for f in read.release.flavours] == ["all", "cpu"]
    first = read.release.flavours[0]
    assert first.image == f"ghcr.io/acme/stardist@{DIGEST}"
    assert [stored_form(s) for s in first.selectors] == STORED
    assert [stored_capability(c) for c in first.capabilities] == [
        {
            "kind": "folder",
            "name": "images",
            "required": True,
            "target": "/images",
            "readOnly": True,
        }
    ]
    assert [r.service for r in read.release.app.requirements] == ["live.arkitekt.mikro"]


def test_a_descriptor_of_a_newer_spec_or_a_movable_image_is_refused_where_it_says_so() -> None:
    data = json.loads(descriptor(flavour_of("cpu", [])))
    newer = parse_release_descriptor(
        json.dumps({**data, "spec_version": SPEC_VERSION + 1}).encode(), file="d", ref="1.4.0"
    )
    assert newer.release is None
    [error] = newer.errors
    assert (error.path, error.ref) == ("spec_version", "1.4.0")
    assert "newer than the Arkitekt spec Port reads" in error.message

    data["flavours"][0]["image"] = "ghcr.io/acme/stardist:1.4.0-cpu"
    tagged = parse_release_descriptor(json.dumps(data, indent=1).encode(), file="d", ref="1.4.0")
    assert tagged.release is None  # its only flavour is skipped
    [error] = tagged.errors
    assert error.path == "flavours[0].image"
    assert "not pinned by digest" in error.message
    assert error.line is not None  # located in the descriptor's own text


def test_a_channel_build_says_its_channel() -> None:
    read = parse_release_descriptor(
        descriptor(flavour_of("cpu", []), version="1.4.1-dev.3", channel="main"),
        file="d",
        ref="main",
    )
    assert read.channel == "main"
    assert read.release is not None
    assert read.release.version == "1.4.1-dev.3"
