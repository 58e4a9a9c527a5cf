"""Selectors in words a scientist reads ("NVIDIA GPU, CUDA 11.8+", "2+ CPUs", "4 GB RAM"),
and whether a flavour fits this Port's machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from manifests.selectors import (
    AnySelector,
    CpuSelector,
    CudaSelector,
    LabelSelector,
    OneApiSelector,
    RamSelector,
    RocmSelector,
    validate_selector,
)
from port.deploy.grants import describe_capability, size_text
from port.deploy.selection import (
    AllGranted,
    Candidate,
    Capabilities,
    GpuSelector,
    StoredFlavour,
    why_not,
)


class ShownFlavour(StoredFlavour, Protocol):
    image: str


@dataclass(frozen=True, slots=True)
class Badge:
    text: str
    required: bool  # False: preferred (it only raises the flavour's score), or declinable
    accelerator: bool
    why: str = ""  # what the app author says it is for (capabilities)


@dataclass(frozen=True, slots=True)
class FlavourView:
    name: str
    image: str
    badges: tuple[Badge, ...]
    fits: bool | None  # None: this Port's machine is not known right now
    why_not: tuple[str, ...]
    asks: tuple[Badge, ...] = ()  # the capabilities it asks to be granted


def describe(selector: AnySelector) -> str:
    """One selector as a short phrase."""
    parts: list[str] = []
    match selector:
        case CudaSelector() | RocmSelector():
            cuda = isinstance(selector, CudaSelector)
            many = selector.count is not None and selector.count > 1
            vendor = "NVIDIA" if cuda else "AMD"
            parts.append(f"{selector.count} {vendor} GPUs" if many else f"{vendor} GPU")
            if selector.min_version:
                parts.append(f"{'CUDA' if cuda else 'ROCm'} {selector.min_version}+")
            if isinstance(selector, CudaSelector) and selector.compute_capability:
                parts.append(f"compute {selector.compute_capability}+")
            if selector.memory:
                parts.append(f"{size_text(selector.memory)} GPU memory")
        case CpuSelector():
            parts.append(f"{selector.min_count}+ CPUs" if selector.min_count else "CPU")
            if selector.frequency:
                parts.append(f"{selector.frequency / 1000:g} GHz+")
            if selector.arch:
                parts.append(selector.arch)
            if selector.memory:
                parts.append(f"{size_text(selector.memory)} RAM")
        case OneApiSelector():
            parts.append("Intel accelerator")
            if selector.min_version:
                parts.append(f"oneAPI {selector.min_version}+")
        case RamSelector():
            parts.append(f"{size_text(selector.min)} RAM" if selector.min is not None else "RAM")
        case LabelSelector():
            parts.append(f"{selector.key}={selector.value}" if selector.value else selector.key)
    return ", ".join(parts)


def badges(selectors: Sequence[Mapping[str, Any]]) -> tuple[Badge, ...]:
    shown = []
    for raw in selectors:
        try:
            selector = validate_selector(raw)
        except ValidationError:
            continue  # stored by an older Port: the API still shows it raw
        accelerator = isinstance(selector, GpuSelector)
        shown.append(Badge(describe(selector), selector.required, accelerator))
    return tuple(shown)


def flavour_view(flavour: ShownFlavour, caps: Capabilities | None) -> FlavourView:
    # What the hardware allows: what it asks to be granted is the installer's to answer.
    reasons = tuple(why_not(Candidate.of(flavour), caps, AllGranted())) if caps is not None else ()
    return FlavourView(
        name=flavour.name,
        image=flavour.image,
        badges=badges(flavour.selectors),
        asks=tuple(
            Badge(
                describe_capability(c),
                bool(c.get("required", True)),
                accelerator=False,
                why=str(c.get("description") or ""),
            )
            for c in flavour.capabilities
        ),
        fits=None if caps is None else not reasons,
        why_not=reasons,
    )
