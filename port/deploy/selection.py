"""Flavour selection: which build of a release fits the backend's hardware, and where.

A backend offers nodes (``Capabilities.nodes``; a single Docker engine is one). A flavour
fits when every required selector holds on some ready node; it is scored on the node
that suits it best (the first of equals), and that node is recorded with the choice.
Reasons name the node when there are several. A node draining or down takes no Pod.

Among fitting flavours, one that uses an accelerator the backend has (a CUDA or ROCm selector that
holds) ranks first: a GPU build on a GPU machine, whatever the CPU build's selectors add
up to. Then the highest summed weight of the selectors that hold wins (preferences count
only when they hold), ties going to manifest order. A user may pin a flavour; it must
still fit. The choice and the reason every other flavour lost are kept (``Selection``),
so a person can see why the CPU build runs on a machine they thought had a GPU.

Facts the backend does not report (a CPU clock, a GPU's memory) never satisfy a
required selector: running a build on hardware that may lack what it needs is worse
than saying so.

A flavour whose required capabilities are not all granted (``Grantor``, the Setup's
consents under the admin's policy: ``port.deploy.grants``) does not fit either. When
that alone keeps every flavour out, selection says what to grant (``ConsentNeeded``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

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
from port.errors import ClientError, InvalidInput

ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclass(frozen=True)
class Gpu:
    """One GPU as a backend reports (or an admin declares) it."""

    vendor: Literal["nvidia", "amd", "intel"]
    cuda_version: str | None = None  # NVIDIA: the driver's CUDA version
    rocm_version: str | None = None  # AMD
    oneapi_version: str | None = None  # Intel
    compute_capability: str | None = None
    cuda_cores: int | None = None
    memory_mb: int | None = None
    architecture: str | None = None


class NodeState(enum.StrEnum):
    """Whether a node takes Pods: ``ready`` does; ``draining`` (its admin moves work
    away) and ``down`` (unreachable) do not."""

    READY = "ready"
    DRAINING = "draining"
    DOWN = "down"


@dataclass(frozen=True)
class Node:
    """One machine a backend can run a Pod on, as it reports (or an admin declares) it."""

    cpus: float
    memory_mb: int
    arch: str = "amd64"
    cpu_mhz: int | None = None
    gpus: tuple[Gpu, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)  # what `label` selectors match
    id: str = "local"
    name: str = "local"
    state: NodeState = NodeState.READY


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers containers: its nodes."""

    nodes: tuple[Node, ...]

    @classmethod
    def one(cls, **facts: Any) -> Capabilities:
        """A backend of one machine (a single engine): one node of these facts."""
        return cls((Node(**facts),))

    @property
    def ready(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.state is NodeState.READY)


class StoredFlavour(Protocol):
    """What selection reads of a catalogue flavour (a ``Flavour`` row)."""

    name: str
    selectors: list[dict[str, Any]]
    capabilities: list[dict[str, Any]]


@dataclass(frozen=True)
class Candidate:
    """A flavour as the catalogue stores it: its name, normalised selectors and the
    capabilities it asks for (JSON)."""

    name: str
    selectors: Sequence[Mapping[str, Any]]
    capabilities: Sequence[Mapping[str, Any]] = ()

    @classmethod
    def of(cls, flavour: StoredFlavour) -> Candidate:
        return cls(flavour.name, flavour.selectors, flavour.capabilities)


@dataclass(frozen=True)
class Selection:
    """The chosen flavour, its score, and why each other flavour was not chosen."""

    flavour: str
    score: Score
    rejected: Mapping[str, tuple[str, ...]]
    node: Node  # where it fits best: a placement, for a backend of several nodes

    def as_json(self) -> dict[str, Any]:
        return {
            "flavour": self.flavour,
            "score": self.score.weight,
            "accelerated": self.score.accelerated,
            "rejected": {name: list(reasons) for name, reasons in self.rejected.items()},
            "node": {"id": self.node.id, "name": self.node.name},
        }


@dataclass(frozen=True)
class Ungranted:
    """A capability a flavour cannot be given: ``asked`` when only the owner's consent
    is missing (they may grant it), else the admin's policy refuses it."""

    capability: Mapping[str, Any]
    reason: str
    asked: bool


class Grantor(Protocol):
    """What selection asks of a Setup's grants (``port.deploy.grants.Grants``)."""

    def ungranted(self, capability: Mapping[str, Any]) -> Ungranted | None: ...


class NoGrants:
    """No consent given: every capability is yet to be granted."""

    def ungranted(self, capability: Mapping[str, Any]) -> Ungranted | None:
        what = f"the {capability.get('kind')} capability {capability.get('name')!r}"
        return Ungranted(capability, f"needs {what} granted", asked=True)


class AllGranted:
    """Every capability granted: could a flavour run here once its owner agrees (the
    catalogue's pages ask this before anyone consented)?"""

    def ungranted(self, capability: Mapping[str, Any]) -> Ungranted | None:
        return None


class NoFittingFlavour(ClientError):
    """No flavour of the release can run on this backend; ``reasons`` says why, per flavour."""

    code = "NO_FITTING_FLAVOUR"

    def __init__(self, reasons: Mapping[str, Sequence[str]]) -> None:
        self.reasons = {name: tuple(why) for name, why in reasons.items()}
        detail = "; ".join(f"{name}: {', '.join(why)}" for name, why in self.reasons.items())
        super().__init__(f"no flavour fits this backend ({detail})")

    @property
    def extensions(self) -> dict[str, object]:
        return {"code": self.code, "reasons": {k: list(v) for k, v in self.reasons.items()}}


class ConsentNeeded(NoFittingFlavour):
    """Flavours would fit once the owner grants what they ask: ``asks`` holds, per such
    flavour, the capabilities still to grant (stored form), best flavour first."""

    code = "CONSENT_NEEDED"

    def __init__(
        self,
        reasons: Mapping[str, Sequence[str]],
        asks: Mapping[str, Sequence[Mapping[str, Any]]],
    ) -> None:
        super().__init__(reasons)
        self.asks = {name: [dict(c) for c in capabilities] for name, capabilities in asks.items()}

    @property
    def extensions(self) -> dict[str, object]:
        return {**super().extensions, "asks": self.asks}


def _version(text: str) -> tuple[int, ...] | None:
    """``"11.8"`` -> (11, 8); None for anything that is not dotted numbers."""
    return tuple(int(p) for p in text.split(".")) if re.fullmatch(r"\d+(\.\d+)*", text) else None


def _at_least(have: str | None, want: str) -> bool:
    have_v, want_v = (_version(have) if have else None), _version(want)
    return have_v is not None and want_v is not None and have_v >= want_v


def _arch(name: str) -> str:
    return ARCH_ALIASES.get(name.lower(), name.lower())


GpuSelector = CudaSelector | RocmSelector | OneApiSelector
_GPU_KINDS = {CudaSelector: "CUDA", RocmSelector: "ROCm", OneApiSelector: "oneAPI"}
_VENDORS = {CudaSelector: "nvidia", RocmSelector: "amd", OneApiSelector: "intel"}


def _gpu_misses(selector: GpuSelector, gpu: Gpu) -> str | None:
    """Why ``gpu`` does not satisfy ``selector``, or None when it does."""
    if isinstance(selector, OneApiSelector):
        if gpu.vendor != "intel":
            return "not an Intel accelerator"
        if selector.min_version and not _at_least(gpu.oneapi_version, selector.min_version):
            return f"oneAPI {gpu.oneapi_version or 'unknown'} < {selector.min_version}"
        return None
    if isinstance(selector, CudaSelector):
        if gpu.vendor != "nvidia":
            return "not an NVIDIA GPU"
        if selector.min_version and not _at_least(gpu.cuda_version, selector.min_version):
            return f"CUDA {gpu.cuda_version or 'unknown'} < {selector.min_version}"
        if selector.compute_capability and not _at_least(
            gpu.compute_capability, selector.compute_capability
        ):
            have = gpu.compute_capability or "unknown"
            return f"compute capability {have} < {selector.compute_capability}"
        if selector.cuda_cores and (gpu.cuda_cores or 0) < selector.cuda_cores:
            return f"{gpu.cuda_cores or 'unknown'} CUDA cores < {selector.cuda_cores}"
    else:
        if gpu.vendor != "amd":
            return "not an AMD GPU"
        if selector.min_version and not _at_least(gpu.rocm_version, selector.min_version):
            return f"ROCm {gpu.rocm_version or 'unknown'} < {selector.min_version}"
    if selector.memory and (gpu.memory_mb or 0) < selector.memory:
        return f"GPU memory {gpu.memory_mb or 'unknown'} MB < {selector.memory} MB"
    if selector.architecture and (gpu.architecture or "").lower() != selector.architecture.lower():
        return f"GPU architecture {gpu.architecture or 'unknown'} is not {selector.architecture}"
    return None


def misses(selector: AnySelector, caps: Node) -> str | None:
    """Why ``selector`` does not hold on the node ``caps``, or None when it holds."""
    match selector:
        case CpuSelector():
            if selector.min_count and caps.cpus < selector.min_count:
                return f"{caps.cpus:g} CPUs < {selector.min_count}"
            if selector.frequency and (caps.cpu_mhz or 0) < selector.frequency:
                if not caps.cpu_mhz:
                    return f"needs a {selector.frequency} MHz CPU; this one's clock is unknown"
                return f"CPU clock {caps.cpu_mhz} MHz < {selector.frequency} MHz"
            if selector.memory and caps.memory_mb < selector.memory:
                return f"{caps.memory_mb} MB memory < {selector.memory} MB"
            if selector.arch and _arch(caps.arch) != _arch(selector.arch):
                return f"CPU architecture {caps.arch} is not {selector.arch}"
            return None
        case RamSelector():
            if selector.min is not None and caps.memory_mb < selector.min:
                return f"{caps.memory_mb} MB memory < {selector.min} MB"
            return None
        case CudaSelector() | RocmSelector() | OneApiSelector():
            kind = _GPU_KINDS[type(selector)]
            needed = getattr(selector, "count", None) or 1
            why = [_gpu_misses(selector, gpu) for gpu in caps.gpus]
            if sum(w is None for w in why) >= needed:
                return None
            if not caps.gpus:
                return f"no {kind} GPU"
            fitting = sum(w is None for w in why)
            first = next((w for w in why if w is not None), "")
            return f"{fitting} of {needed} {kind} GPUs fit ({first})"
        case LabelSelector():
            have = caps.labels.get(selector.key)
            if have is None:
                return f"no label {selector.key}"
            if selector.value is not None and have != selector.value:
                return f"label {selector.key}={have}, not {selector.value}"
            return None
    return f"unknown selector kind {selector.kind}"  # pragma: no cover - the union is closed


def gpus_for(selectors: Sequence[Any], caps: Node) -> tuple[int, str | None]:
    """GPUs to hand a container of a flavour and their vendor: the count its CUDA, ROCm
    or oneAPI selectors that hold on the node ``caps`` ask for; (0, None) when none
    holds."""
    counts: dict[str, int] = {}
    for raw in selectors:
        selector = validate_selector(raw)
        if isinstance(selector, GpuSelector) and misses(selector, caps) is None:
            vendor = _VENDORS[type(selector)]
            counts[vendor] = max(counts.get(vendor, 0), getattr(selector, "count", None) or 1)
    for vendor, count in counts.items():  # the first that holds, as the manifest lists
        return count, vendor
    return 0, None


@dataclass(frozen=True, order=True)
class Score:
    """How well a fitting flavour uses the backend; higher is better."""

    accelerated: bool  # a CUDA, ROCm or oneAPI selector holds: it uses the GPU
    weight: int


@dataclass(frozen=True)
class _Assessment:
    candidate: Candidate
    score: Score
    node: Node | None  # where its hardware fits best; None: nowhere
    blockers: list[str]  # hardware first, then capabilities
    asks: list[Mapping[str, Any]]  # capabilities only a consent is missing for

    @property
    def fits(self) -> bool:
        return not self.blockers

    @property
    def needs_consent_only(self) -> bool:
        """It would fit once the owner grants what it asks."""
        return bool(self.asks) and len(self.asks) == len(self.blockers)


def _on(candidate: Candidate, node: Node) -> tuple[Score, list[str]]:
    """``candidate``'s score on ``node``, and why its required selectors do not hold."""
    weight, accelerated, blockers = 0, False, []
    for raw in candidate.selectors:
        selector = validate_selector(raw)
        why = misses(selector, node)
        if why is None:
            weight += selector.weight
            accelerated = accelerated or isinstance(selector, GpuSelector)
        elif selector.required:
            blockers.append(why)
    return Score(accelerated, weight), blockers


def _assess(candidate: Candidate, caps: Capabilities, grants: Grantor) -> _Assessment:
    best: tuple[Score, Node] | None = None
    hardware: list[str] = []
    named = len(caps.nodes) > 1  # one machine: its reasons need no name
    for node in caps.ready:
        score, why = _on(candidate, node)
        if not why and (best is None or score > best[0]):
            best = (score, node)
        hardware += [f"{node.name}: {w}" if named else w for w in why]
    hardware += [f"{n.name}: {n.state}" for n in caps.nodes if n.state is not NodeState.READY]
    if not caps.ready:
        states = ", ".join(f"{n.name} {n.state}" for n in caps.nodes) or "none"
        hardware = [f"no node takes Pods now ({states})"]
    blockers = [] if best is not None else hardware
    asks = []
    # Optional capabilities never block: ungranted, they are declined.
    for capability in candidate.capabilities:
        if not capability.get("required", True):
            continue
        ungranted = grants.ungranted(capability)
        if ungranted is not None:
            blockers.append(ungranted.reason)
            if ungranted.asked:
                asks.append(capability)
    if best is None:
        return _Assessment(candidate, Score(False, 0), None, blockers, asks)
    return _Assessment(candidate, best[0], best[1], blockers, asks)


def why_not(candidate: Candidate, caps: Capabilities, grants: Grantor | None = None) -> list[str]:
    """Why ``candidate`` cannot run on ``caps`` with ``grants``; empty when it can."""
    return _assess(candidate, caps, grants or NoGrants()).blockers


def select(
    candidates: Sequence[Candidate],
    caps: Capabilities,
    pinned: str | None = None,
    grants: Grantor | None = None,
) -> Selection:
    """Choose a flavour of ``candidates`` (in manifest order) for ``caps`` and ``grants``
    (default: nothing granted)."""
    if pinned is not None and pinned not in {c.name for c in candidates}:
        names = ", ".join(c.name for c in candidates)
        raise InvalidInput(f"no flavour {pinned!r} in this release (it has {names})")
    assessed = [_assess(c, caps, grants or NoGrants()) for c in candidates]
    fitting = [a for a in assessed if a.fits and (pinned is None or a.candidate.name == pinned)]
    if not fitting:
        reasons = {a.candidate.name: a.blockers for a in assessed if a.blockers}
        reasons = reasons or {pinned or "": ["pinned flavour does not fit"]}
        waiting = [
            a
            for a in assessed
            if a.needs_consent_only and (pinned is None or a.candidate.name == pinned)
        ]
        if waiting:
            waiting.sort(key=lambda a: a.score, reverse=True)  # stable: manifest order ties
            raise ConsentNeeded(reasons, {a.candidate.name: a.asks for a in waiting})
        raise NoFittingFlavour(reasons)
    best = fitting[0]
    for assessment in fitting[1:]:
        if assessment.score > best.score:  # strictly higher: ties keep manifest order
            best = assessment
    best_name, best_score = best.candidate.name, best.score
    rejected: dict[str, tuple[str, ...]] = {}
    for assessment in assessed:
        name, score = assessment.candidate.name, assessment.score
        if assessment is best:
            continue
        if assessment.blockers:
            rejected[name] = tuple(assessment.blockers)
        elif pinned is not None:
            rejected[name] = (f"not pinned (the Setup pins {pinned})",)
        elif best_score.accelerated and not score.accelerated:
            rejected[name] = (f"fits, but {best_name} uses the GPU",)
        elif score < best_score:
            rejected[name] = (f"fits, but scores {score.weight} < {best_score.weight}",)
        else:
            rejected[name] = ("fits and scores the same, but comes later in the manifest",)
    assert best.node is not None  # noqa: S101 - it fits, so on some node
    return Selection(flavour=best_name, score=best_score, rejected=rejected, node=best.node)
