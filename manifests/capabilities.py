"""Capabilities: what a flavour must be *granted* on the machine it runs on.

The vocabulary of the current Arkitekt spec (``arkitekt_spec.capabilities``): the
container engine's socket, a host device, a host folder, the host's network, one added
Linux capability, more shared memory. Selectors say where a flavour may be placed;
capabilities say what it must be given there, and a person agrees to each first.

- A capability names the **container side only** (``target``); the host side is the
  installer's to choose. ``name`` is unique within a flavour: a grant is recorded
  under it.
- ``required: false``: the app runs without it; the person may decline it.
- Unknown keys are errors (a typo must not change what is granted), and so are
  ``ALL`` and ``SYS_ADMIN`` as Linux capabilities (privileged in all but name).

They are stored in the spec's own spelling (``class``, ``readOnly``), the form
:func:`stored_capability` gives, so what an app author wrote is what a person reads.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from manifests.diagnostics import Vocabulary
from manifests.fields import check_shown_line, check_shown_text

MAX_CAPABILITIES = 16  # a flavour's; more is a mistake, or an attack on the consent page

ContainerPath = Annotated[
    str,
    Field(
        min_length=2,
        max_length=1024,
        pattern=r"^/\S*$",
        description="An absolute path inside the container, without spaces.",
    ),
    AfterValidator(check_shown_line),
]


class BaseCapability(BaseModel):
    """What every capability kind shares."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="What the capability is called within the flavour: what a person "
        "answers to and what the grant is recorded under.",
    )
    description: str | None = Field(
        default=None,
        max_length=500,
        description="Why the app needs it, in a sentence: shown to the person who agrees.",
    )
    required: bool = Field(
        default=True,
        description="False: the app runs without it; the person installing may decline it.",
    )

    @field_validator("description")
    @classmethod
    def _showable(cls, value: str | None) -> str | None:
        return None if value is None else check_shown_text(value)


class ContainerEngineCapability(BaseCapability):
    """The container engine's API socket: root on the machine, in all but name."""

    kind: Literal["container_engine"] = "container_engine"
    target: ContainerPath = "/var/run/docker.sock"


class DeviceCapability(BaseCapability):
    """A device of the host, passed through: a camera, a serial port, a USB device."""

    kind: Literal["device"] = "device"
    device_class: Literal["video", "serial", "usb", "dri", "other"] = Field(alias="class")
    target: ContainerPath


class FolderCapability(BaseCapability):
    """A folder of the host, mounted into the container."""

    kind: Literal["folder"] = "folder"
    target: ContainerPath
    read_only: bool = Field(default=True, alias="readOnly")


class HostNetworkCapability(BaseCapability):
    """The host's network stack instead of the container's own."""

    kind: Literal["host_network"] = "host_network"


class LinuxCapability(BaseCapability):
    """One Linux capability added to the container (``cap_add``)."""

    kind: Literal["linux_capability"] = "linux_capability"
    cap: str = Field(pattern=r"^[A-Z][A-Z_]{1,31}$", description="Without `CAP_`.")

    @model_validator(mode="after")
    def _not_all(self) -> LinuxCapability:
        if self.cap in {"ALL", "SYS_ADMIN"}:
            raise ValueError(
                f"{self.cap} is privileged in all but name: name the narrower capability"
            )
        return self


class SharedMemoryCapability(BaseCapability):
    """More shared memory (``/dev/shm``) than the engine's default of 64 MB."""

    kind: Literal["shared_memory"] = "shared_memory"
    min: int = Field(gt=0, le=1 << 30, description="The shared memory needed, in MB.")


AnyCapability = (
    ContainerEngineCapability
    | DeviceCapability
    | FolderCapability
    | HostNetworkCapability
    | LinuxCapability
    | SharedMemoryCapability
)
Capability = Annotated[AnyCapability, Field(discriminator="kind")]

CAPABILITY_KINDS: dict[str, type[BaseCapability]] = {
    "container_engine": ContainerEngineCapability,
    "device": DeviceCapability,
    "folder": FolderCapability,
    "host_network": HostNetworkCapability,
    "linux_capability": LinuxCapability,
    "shared_memory": SharedMemoryCapability,
}


def _unique_names(value: list[AnyCapability]) -> list[AnyCapability]:
    seen: set[str] = set()
    for capability in value:
        if capability.name in seen:
            raise ValueError(f"two capabilities are called {capability.name!r}")
        seen.add(capability.name)
    return value


CapabilityList = Annotated[list[Capability], Field(max_length=MAX_CAPABILITIES)]


@functools.cache
def _adapter() -> TypeAdapter[list[AnyCapability]]:
    # Built on first use: `port` commands that never read manifests do not pay for it.
    return TypeAdapter(CapabilityList)


def validate_capabilities(raw: Any) -> tuple[AnyCapability, ...]:
    """A flavour's capabilities; raises ``pydantic.ValidationError`` or ``ValueError``
    (two of one name)."""
    return tuple(_unique_names(_adapter().validate_python(raw)))


def stored_capability(capability: BaseCapability) -> dict[str, Any]:
    """The stored and shown form: ``kind`` first, the spec's spelling, unset fields left
    out."""
    data = capability.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"kind": data.pop("kind"), **data}


CAPABILITIES = Vocabulary("capability", tuple(CAPABILITY_KINDS))
