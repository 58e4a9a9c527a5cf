"""Flavour selection against declared capabilities (no engine needed)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from port.deploy.selection import (
    Candidate,
    Capabilities,
    ConsentNeeded,
    Gpu,
    Node,
    NodeState,
    NoFittingFlavour,
    Ungranted,
    gpus_for,
    select,
)
from port.errors import InvalidInput

CUDA = Candidate("cuda", [{"kind": "cuda", "min_version": "11.8"}])
CPU = Candidate("cpu", [{"kind": "cpu", "min_count": 2}, {"kind": "ram", "min": 4096}])
LAPTOP = Capabilities.one(cpus=8, memory_mb=16_000)
GPU_BOX = Capabilities.one(cpus=32, memory_mb=128_000, gpus=(Gpu("nvidia", cuda_version="12.2"),))


def flavour(name: str, *selectors: dict[str, Any]) -> Candidate:
    return Candidate(name, list(selectors))


def test_cuda_build_on_a_gpu_machine_cpu_build_elsewhere() -> None:
    on_gpu = select([CUDA, CPU], GPU_BOX)
    assert on_gpu.flavour == "cuda"  # the GPU build, though the CPU build's weights sum higher
    assert on_gpu.rejected == {"cpu": ("fits, but cuda uses the GPU",)}
    on_laptop = select([CUDA, CPU], LAPTOP)
    assert on_laptop.flavour == "cpu"
    assert on_laptop.rejected == {"cuda": ("no CUDA GPU",)}


def test_highest_weight_wins_and_ties_keep_manifest_order() -> None:
    plain = flavour("plain", {"kind": "cpu", "min_count": 1})
    tuned = flavour(
        "tuned",
        {"kind": "cpu", "min_count": 1},
        {"kind": "label", "key": "ssd", "required": False, "weight": 5},
    )
    caps = Capabilities.one(cpus=4, memory_mb=8000, labels={"ssd": "yes"})
    chosen = select([plain, tuned], caps)
    assert (chosen.flavour, chosen.score.weight) == ("tuned", 6)
    assert chosen.rejected == {"plain": ("fits, but scores 1 < 6",)}

    twin = flavour("twin", {"kind": "cpu", "min_count": 1})
    tie = select([plain, twin], caps)
    assert tie.flavour == "plain"
    assert tie.rejected == {"twin": ("fits and scores the same, but comes later in the manifest",)}


def test_preferences_never_block() -> None:
    wants_gpu = flavour("any", {"kind": "cuda", "required": False, "weight": 10})
    assert select([wants_gpu], LAPTOP).score.weight == 0


@pytest.mark.parametrize(
    ("selector", "caps", "reason"),
    [
        ({"kind": "cpu", "min_count": 16}, LAPTOP, "8 CPUs < 16"),
        (
            {"kind": "cpu", "frequency": 3000},
            LAPTOP,
            "needs a 3000 MHz CPU; this one's clock is unknown",
        ),
        ({"kind": "cpu", "arch": "arm64"}, LAPTOP, "CPU architecture amd64 is not arm64"),
        ({"kind": "ram", "min": 32_000}, LAPTOP, "16000 MB memory < 32000 MB"),
        (
            {"kind": "cuda", "min_version": "12.4"},
            GPU_BOX,
            "0 of 1 CUDA GPUs fit (CUDA 12.2 < 12.4)",
        ),
        ({"kind": "cuda", "count": 2}, GPU_BOX, "1 of 2 CUDA GPUs fit"),
        ({"kind": "cuda", "memory": 1000}, GPU_BOX, "0 of 1 CUDA GPUs fit (GPU memory unknown"),
        ({"kind": "rocm"}, GPU_BOX, "0 of 1 ROCm GPUs fit (not an AMD GPU)"),
        ({"kind": "oneapi"}, GPU_BOX, "0 of 1 oneAPI GPUs fit (not an Intel accelerator)"),
        ({"kind": "oneapi"}, LAPTOP, "no oneAPI GPU"),
        (
            {"kind": "oneapi", "min_version": "2025.0"},
            Capabilities.one(cpus=4, memory_mb=8000, gpus=(Gpu("intel", oneapi_version="2024.1"),)),
            "0 of 1 oneAPI GPUs fit (oneAPI 2024.1 < 2025.0)",
        ),
        ({"kind": "label", "key": "zone"}, LAPTOP, "no label zone"),
    ],
)
def test_each_unmet_selector_says_why(
    selector: dict[str, Any], caps: Capabilities, reason: str
) -> None:
    with pytest.raises(NoFittingFlavour) as caught:
        select([flavour("only", selector)], caps)
    assert caught.value.code == "NO_FITTING_FLAVOUR"
    [why] = caught.value.reasons["only"]
    assert why.startswith(reason)


def test_x86_64_is_amd64_and_labels_match_values() -> None:
    caps = Capabilities.one(cpus=2, memory_mb=2048, arch="x86_64", labels={"zone": "lab"})
    ok = flavour(
        "ok", {"kind": "cpu", "arch": "amd64"}, {"kind": "label", "key": "zone", "value": "lab"}
    )
    assert select([ok], caps).flavour == "ok"
    other = flavour("other", {"kind": "label", "key": "zone", "value": "cloud"})
    with pytest.raises(NoFittingFlavour, match="label zone=lab, not cloud"):
        select([other], caps)


def test_a_pinned_flavour_must_exist_and_fit() -> None:
    assert select([CUDA, CPU], GPU_BOX, pinned="cpu").flavour == "cpu"
    assert select([CUDA, CPU], GPU_BOX, pinned="cpu").rejected == {
        "cuda": ("not pinned (the Setup pins cpu)",)
    }
    with pytest.raises(NoFittingFlavour, match="cuda: no CUDA GPU"):
        select([CUDA, CPU], LAPTOP, pinned="cuda")
    with pytest.raises(InvalidInput, match="no flavour 'rocm'"):
        select([CUDA, CPU], LAPTOP, pinned="rocm")


def test_a_container_gets_the_gpus_of_the_selector_that_holds() -> None:
    mixed = Capabilities.one(
        cpus=8,
        memory_mb=32768,
        gpus=(Gpu("nvidia", cuda_version="11.0"), Gpu("amd", rocm_version="6.0")),
    )
    either = [
        {"kind": "cuda", "min_version": "12.0", "required": False, "weight": 1},  # too old
        {"kind": "rocm", "min_version": "5.7", "required": False, "weight": 1, "count": 1},
    ]
    assert gpus_for(either, mixed.nodes[0]) == (1, "amd")
    assert gpus_for([{"kind": "cuda", "count": 2}], mixed.nodes[0]) == (0, None)  # one NVIDIA GPU
    assert gpus_for([{"kind": "cpu"}], mixed.nodes[0]) == (0, None)


def test_an_intel_accelerator_runs_a_oneapi_flavour_and_gets_its_render_nodes() -> None:
    arc = Capabilities.one(cpus=8, memory_mb=16_000, gpus=(Gpu("intel", oneapi_version="2024.1"),))
    oneapi = flavour("xpu", {"kind": "oneapi", "min_version": "2024.0"})
    chosen = select([CPU, oneapi], arc)
    assert chosen.flavour == "xpu"  # it uses the accelerator, so it wins over the CPU build
    assert gpus_for(oneapi.selectors, chosen.node) == (1, "intel")


def test_a_ram_selector_without_a_minimum_holds_everywhere() -> None:
    assert select([flavour("any", {"kind": "ram"})], LAPTOP).flavour == "any"


class Granted:
    """Consents to the capabilities of these names, allowed by the policy."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def ungranted(self, capability: Mapping[str, Any]) -> Ungranted | None:
        if capability["name"] in self.names:
            return None
        return Ungranted(capability, f"needs {capability['name']} granted", asked=True)


CAMERA = {"kind": "device", "name": "camera", "class": "video", "target": "/dev/video0"}
SCOPE = Candidate("scope", [{"kind": "cpu", "min_count": 1, "weight": 5}], [CAMERA])


def test_a_flavour_asking_for_a_capability_is_chosen_only_once_granted() -> None:
    chosen = select([SCOPE, CPU], LAPTOP)
    assert chosen.flavour == "cpu"
    assert chosen.rejected["scope"] == ("needs the device capability 'camera' granted",)
    assert select([SCOPE, CPU], LAPTOP, grants=Granted("camera")).flavour == "scope"


def test_consent_needed_says_what_to_grant_best_flavour_first() -> None:
    shm = {"kind": "shared_memory", "name": "shm", "min": 256}
    cuda = Candidate("cuda", [{"kind": "cuda"}], [shm, CAMERA])
    with pytest.raises(ConsentNeeded) as needed:
        select([SCOPE, cuda], GPU_BOX)
    assert needed.value.code == "CONSENT_NEEDED"
    assert list(needed.value.asks) == ["cuda", "scope"]  # the GPU build ranks first
    assert needed.value.asks["cuda"] == [shm, CAMERA]
    # Granting one of two still leaves the other to ask for.
    with pytest.raises(ConsentNeeded) as still:
        select([cuda], GPU_BOX, grants=Granted("camera"))
    assert still.value.asks == {"cuda": [shm]}


def test_no_consent_helps_a_flavour_the_hardware_cannot_run() -> None:
    cuda = Candidate("cuda", [{"kind": "cuda"}], [CAMERA])
    with pytest.raises(NoFittingFlavour) as refused:
        select([cuda], LAPTOP)
    assert not isinstance(refused.value, ConsentNeeded)
    assert refused.value.reasons == {
        "cuda": ("no CUDA GPU", "needs the device capability 'camera' granted")
    }


def test_a_capability_the_policy_refuses_is_no_question_to_the_owner() -> None:
    class Refusing:
        def ungranted(self, capability: Mapping[str, Any]) -> Ungranted | None:
            return Ungranted(capability, "not a device this Port grants", asked=False)

    with pytest.raises(NoFittingFlavour) as refused:
        select([SCOPE], LAPTOP, grants=Refusing())
    assert not isinstance(refused.value, ConsentNeeded)
    assert refused.value.reasons == {"scope": ("not a device this Port grants",)}


def test_optional_capabilities_are_declined_and_do_not_block() -> None:
    shm = {"kind": "shared_memory", "name": "shm", "min": 2048, "required": False}
    assert select([Candidate("any", [], [shm])], LAPTOP).flavour == "any"


def test_a_flavour_fits_when_some_ready_node_holds_its_selectors() -> None:
    small = Node(cpus=2, memory_mb=4000, id="n1", name="small")
    big = Node(cpus=16, memory_mb=64_000, id="n2", name="big", labels={"room": "b12"})
    gpu = Node(
        cpus=8,
        memory_mb=32_000,
        id="n3",
        name="gpu",
        gpus=(Gpu("nvidia", cuda_version="12.2"),),
        state=NodeState.DRAINING,
    )
    cluster = Capabilities((small, big, gpu))
    heavy = flavour("heavy", {"kind": "cpu", "min_count": 8})
    chosen = select([heavy], cluster)
    assert (chosen.flavour, chosen.node.name) == ("heavy", "big")
    assert chosen.as_json()["node"] == {"id": "n2", "name": "big"}
    in_room = flavour("room", {"kind": "label", "key": "room", "value": "b12"})
    assert select([in_room], cluster).node.id == "n2"  # a label selector: node labels
    # A node draining takes no Pod: the CUDA build fits nowhere, and says where not.
    cuda = flavour("cuda", {"kind": "cuda", "min_version": "12.0"})
    with pytest.raises(NoFittingFlavour) as refused:
        select([cuda], cluster)
    assert refused.value.reasons == {
        "cuda": ("small: no CUDA GPU", "big: no CUDA GPU", "gpu: draining")
    }
    # On equal scores the first node wins; a better score on a later node wins there.
    cpu = flavour("cpu", {"kind": "cpu", "min_count": 1})
    assert select([cpu], cluster).node.name == "small"
    prefers = flavour("ssd", {"kind": "label", "key": "room", "required": False, "weight": 5})
    assert select([prefers], cluster).node.name == "big"
    with pytest.raises(NoFittingFlavour, match="no node takes Pods"):
        select([cpu], Capabilities((replace(small, state=NodeState.DOWN),)))
