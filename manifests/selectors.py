"""Selectors: the hardware a flavour needs (``required``) or prefers (``weight``).

Both manifest families share this vocabulary. Arkitekt files spell selectors three ways
over their history, so raw input goes through :func:`normalise_selector` first:

- arkitekt (v1 CLI): ``type: cuda`` with snake_case fields
  (``cuda_version``, ``compute_capability``, ``min`` for cpu/ram/rocm);
- arkitekt_next / kabinet ``app_images``: ``kind: cuda`` with camelCase
  (``cudaVersion``, ``cudaCores``, ``apiVersion`` for rocm);
- Port's own names (``min_version``, ``min_count``, ``count``).

After normalisation unknown keys are errors (a typo must not silently widen where a
flavour may run), and ``model_dump(mode="json")`` gives the canonical dict that the
catalogue stores: ``kind``, ``required``, ``weight`` and the fields that are set.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
)

# Bounds far above any machine: a larger number is a mistake, or an attack on storage.
# (Memory's is 2**50 whatever its unit: Arkitekt files in use write bytes there too.)
Count = Annotated[int, Field(ge=0, le=1_000_000)]
MegaBytes = Annotated[int, Field(ge=0, le=1 << 50, description="Megabytes (MB).")]
# A clock may be fractional (arkitekt-spec writes a float); a whole number stays an int.
MegaHertz = Annotated[int | float, Field(ge=0, le=1_000_000, description="Megahertz (MHz).")]
Text = Annotated[str, Field(min_length=1, max_length=200)]


def _kind_required(schema: dict[str, Any]) -> None:
    """``kind`` has a default for Python callers, but a file must state it."""
    if "kind" in schema.get("properties", {}):
        schema["required"] = ["kind", *schema.get("required", [])]


class BaseSelector(BaseModel):
    """What every selector kind shares: hard constraint or weighted preference."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        coerce_numbers_to_str=True,
        json_schema_extra=_kind_required,
    )

    required: bool = Field(
        default=True,
        description="True: a backend failing this selector cannot run the flavour. "
        "False: a preference, scored by weight.",
    )
    weight: int = Field(
        default=1, ge=-1_000_000, le=1_000_000, description="Score of the selector when it holds."
    )

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``kind`` first, unset (None) fields left out: the stored canonical form."""
        data: dict[str, Any] = handler(self)
        out = {"kind": data.pop("kind")}
        out.update((key, value) for key, value in data.items() if value is not None)
        return out


class CpuSelector(BaseSelector):
    """CPU cores, clock and architecture."""

    kind: Literal["cpu"] = "cpu"
    min_count: Count | None = Field(default=None, description="Minimum number of CPU cores.")
    frequency: MegaHertz | None = None
    memory: MegaBytes | None = Field(
        default=None, description="Minimum system memory in MB (arkitekt_next's cpu selector)."
    )
    arch: Text | None = Field(default=None, description="CPU architecture, e.g. amd64, arm64.")


class RamSelector(BaseSelector):
    """System memory."""

    kind: Literal["ram"] = "ram"
    min: MegaBytes | None = Field(default=None, description="Minimum system memory in MB.")


class CudaSelector(BaseSelector):
    """An NVIDIA GPU with CUDA."""

    kind: Literal["cuda"] = "cuda"
    min_version: Text | None = Field(default=None, description="Minimum CUDA version, e.g. 11.8.")
    compute_capability: Text | None = Field(
        default=None, description="Minimum compute capability, e.g. 8.6."
    )
    cuda_cores: Count | None = None
    memory: MegaBytes | None = Field(default=None, description="Minimum GPU memory in MB.")
    count: Count | None = Field(default=None, description="Number of GPUs.")
    architecture: Text | None = Field(default=None, description="GPU architecture, e.g. ampere.")
    frequency: MegaHertz | None = None


class RocmSelector(BaseSelector):
    """An AMD GPU with ROCm."""

    kind: Literal["rocm"] = "rocm"
    min_version: Text | None = Field(default=None, description="Minimum ROCm version.")
    api_thing: Text | None = Field(default=None, description="ROCm capability qualifier.")
    count: Count | None = Field(default=None, description="Number of GPUs.")
    memory: MegaBytes | None = Field(default=None, description="Minimum GPU memory in MB.")
    architecture: Text | None = Field(default=None, description="GPU architecture, e.g. gfx90a.")
    frequency: MegaHertz | None = None


class OneApiSelector(BaseSelector):
    """An Intel accelerator with oneAPI."""

    kind: Literal["oneapi"] = "oneapi"
    min_version: Text | None = Field(default=None, description="Minimum oneAPI version.")


class LabelSelector(BaseSelector):
    """A label the backend must carry; no value means the key merely has to exist."""

    kind: Literal["label"] = "label"
    key: Text
    value: Annotated[str, Field(max_length=200)] | None = None


AnySelector = (
    CpuSelector | RamSelector | CudaSelector | RocmSelector | OneApiSelector | LabelSelector
)

SELECTOR_KINDS: dict[str, type[BaseSelector]] = {
    "cpu": CpuSelector,
    "ram": RamSelector,
    "cuda": CudaSelector,
    "rocm": RocmSelector,
    "oneapi": OneApiSelector,
    "label": LabelSelector,
}

# Arkitekt spellings (after camelCase -> snake_case) of Port's fields, per kind.
_RENAMES: dict[str, dict[str, str]] = {
    "cpu": {"min": "min_count"},
    "cuda": {"cuda_version": "min_version"},
    "rocm": {"api_version": "min_version", "rocm_version": "min_version", "min": "count"},
    "oneapi": {"oneapi_version": "min_version"},
}
_ANY_RENAME: dict[str, set[str]] = {}
for _renames in _RENAMES.values():
    for _source, _target in _renames.items():
        _ANY_RENAME.setdefault(_source, set()).add(_target)

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


@functools.lru_cache(maxsize=1024)  # a run's manifests spell the same few keys
def snake_case(key: str) -> str:
    """``cudaVersion`` -> ``cuda_version``; ``min-count`` -> ``min_count``."""
    return _CAMEL.sub(r"_\1", key.strip()).replace("-", "_").lower()


def normalise_selector(raw: Any) -> dict[str, Any]:
    """Turn any known spelling of a selector into Port's, before validation.

    ``type`` becomes ``kind`` (lowercased), camelCase keys become snake_case and the
    Arkitekt field names become Port's (cuda ``cuda_version`` -> ``min_version``, cpu
    ``min`` -> ``min_count``, rocm ``apiVersion`` -> ``min_version``). Values are left to
    the models, which accept numbers written as strings. Raises ``ValueError`` for input
    that cannot be a selector, or that names one field twice.
    """
    if isinstance(raw, BaseSelector):
        return raw.model_dump()
    if not isinstance(raw, Mapping):
        raise ValueError(
            "a selector must be a mapping such as {kind: cpu, min_count: 2}, "
            f"got {type(raw).__name__}"
        )
    out: dict[Any, Any] = {}
    spelled: dict[Any, Any] = {}
    for key, value in raw.items():
        name = snake_case(key) if isinstance(key, str) else key
        name = "kind" if name == "type" else name
        if name in out:
            raise ValueError(
                f"the selector gives {name!r} twice (as {spelled[name]!r} and {key!r})"
            )
        out[name], spelled[name] = value, key
    kind = out.get("kind")
    if isinstance(kind, str):
        kind = out["kind"] = kind.strip().lower()
        for source, target in _RENAMES.get(kind, {}).items():
            if source in out:
                if target in out:
                    raise ValueError(
                        f"the {kind} selector gives both {spelled[source]!r} and "
                        f"{spelled[target]!r}; keep only {target!r}"
                    )
                out[target] = out.pop(source)
    return out


def same_key(written: str, canonical: str) -> bool:
    """Whether a key as written in a file may be the field ``canonical`` after normalising.

    Used to locate errors: the validator reports ``min_version`` where the file says
    ``cudaVersion``.
    """
    name = snake_case(written)
    name = "kind" if name == "type" else name
    return name == canonical or canonical in _ANY_RENAME.get(name, ())


Selector = Annotated[AnySelector, Field(discriminator="kind"), BeforeValidator(normalise_selector)]
"""Any selector, normalised from any known spelling, dispatched on ``kind``."""

SELECTOR_LIST: TypeAdapter[list[Selector]] = TypeAdapter(list[Selector])


def validate_selector(raw: Any) -> AnySelector:
    """Normalise and validate one selector; raises ``pydantic.ValidationError``."""
    return _ONE.validate_python(raw)


_ONE: TypeAdapter[Selector] = TypeAdapter(Selector)


def stored_form(selector: BaseSelector) -> dict[str, Any]:
    """The canonical dict the catalogue stores (``model_dump(mode="json")``), made once
    per distinct selector: an index run stores the same few selectors thousands of times."""
    return dict(_stored_items(selector))


def _stored_items(selector: BaseSelector) -> tuple[tuple[str, Any], ...]:
    # Keyed by each value's type too: 2400 and 2400.0 are equal, their JSON is not.
    key = (type(selector), *((k, type(v), v) for k, v in selector.__dict__.items()))
    return _stored_by_key(key, selector)


@functools.lru_cache(maxsize=1024)
def _stored_by_key(_key: tuple[Any, ...], selector: BaseSelector) -> tuple[tuple[str, Any], ...]:
    return tuple(selector.model_dump(mode="json").items())
