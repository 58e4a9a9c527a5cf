"""Grants: what a Setup's owner agreed its Pods be given, within the admin's policy.

A flavour asks for capabilities (``manifests.capabilities``: a host folder, a device,
shared memory, a Linux capability, the host's network, the engine's socket). Three
parties decide what a Pod gets:

- the **app author** asks, naming the container side only;
- the **owner** consents, per capability name, and chooses the host side (which folder,
  which device): a ``Consent``, kept on the Setup;
- the **admin's policy** (``PORT_GRANTABLE_*``, ``PORT_HOST_ACCESS_APPS``) bounds what any
  consent can give: a ``GrantPolicy``.

A ``Grant`` is what one Pod gets for one capability. Grants are worked out when the Pod
is planned, from the flavour's capability, the Setup's consent and the policy of that
moment (an admin who narrows the policy narrows every Pod planned after), and recorded
on the Pod: the backend applies exactly the Pod's grants, nothing more.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Self

from port.deploy.selection import Ungranted
from port.errors import InvalidInput
from port.settings import Settings

# Root on the machine in all but name: only for apps an admin named (PORT_HOST_ACCESS_APPS).
ROOT_EQUIVALENT = frozenset({"host_network", "container_engine"})
ENGINE_SOCKET = "/var/run/docker.sock"  # the engine's socket when PORT_DOCKER_HOST names none
MAX_CONSENTS = 32


TERMS = ("kind", "target", "readOnly", "class", "cap", "min")  # what a consent agrees to


def terms_of(capability: Mapping[str, Any]) -> dict[str, Any]:
    """What granting ``capability`` means (its wording aside): a release that keeps the
    name but changes any of these asks anew."""
    return {key: capability[key] for key in TERMS if key in capability}


@dataclass(frozen=True)
class Consent:
    """An owner's yes to one capability of an app, by its name; ``host`` is the host
    side where the kind has one (a folder, a device), None for the default; ``agreed``
    the capability's terms it said yes to (``terms_of``), set when it was checked."""

    name: str
    host: str | None = None
    agreed: Mapping[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.host is not None:
            data["host"] = self.host
        if self.agreed is not None:
            data["agreed"] = dict(self.agreed)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(str(data["name"]), data.get("host"), data.get("agreed"))

    @classmethod
    def parse(cls, text: str) -> Self:
        """``NAME`` or ``NAME=HOST_SIDE``, as the CLI's ``--grant`` takes it."""
        name, _, host = text.partition("=")
        return cls(name.strip(), host.strip() or None)


@dataclass(frozen=True)
class Grant:
    """What one Pod is given for one capability; ``source`` is the host side (a folder,
    a device, the engine's socket), ``target`` the container side."""

    name: str
    kind: str
    source: str | None = None
    target: str | None = None
    read_only: bool = True
    shm_mb: int | None = None
    cap: str | None = None
    device_class: str | None = None  # a device's: what the policy allows it by

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind}
        for key, value in (
            ("source", self.source),
            ("target", self.target),
            ("shmMb", self.shm_mb),
            ("cap", self.cap),
            ("class", self.device_class),
        ):
            if value is not None:
                data[key] = value
        if self.kind == "folder":
            data["readOnly"] = self.read_only
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            source=data.get("source"),
            target=data.get("target"),
            read_only=bool(data.get("readOnly", True)),
            shm_mb=data.get("shmMb"),
            cap=data.get("cap"),
            device_class=data.get("class"),
        )

    def capability(self) -> dict[str, Any]:
        """The capability this grant answers, as far as the policy judges it."""
        asked: dict[str, Any] = {"name": self.name, "kind": self.kind, "target": self.target}
        asked |= {"readOnly": self.read_only, "class": self.device_class, "cap": self.cap}
        return asked | {"min": self.shm_mb or 0}


class Refused(Exception):
    """The policy gives nothing for this consent; the message says why, in words."""


def _host_path(path: str | None, what: str) -> str:
    """An absolute host path, normalised; ``..`` and characters a mount or device
    option would misread are refused, not interpreted."""
    if not path:
        raise Refused(f"name the host {what} to grant (NAME=/host/path)")
    if not path.startswith("/") or any(c in path for c in ":,\x00\n") or len(path) > 1024:
        raise Refused(f"{path!r} is not an absolute host path (no ':' or ',')")
    if ".." in path.split("/"):
        raise Refused(f"{path!r}: '..' is not allowed in a granted path")
    return posixpath.normpath(path)


def _under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True)
class GrantPolicy:
    """What the admin lets owners grant (``PORT_GRANTABLE_*``, ``PORT_HOST_ACCESS_APPS``)."""

    folders: tuple[tuple[str, bool], ...] = ()  # (root, writable)
    devices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # class: globs
    shared_memory_mb: int = 0
    linux_capabilities: frozenset[str] = frozenset()
    host_access_apps: frozenset[str] = frozenset()
    engine_socket: str | None = ENGINE_SOCKET

    @classmethod
    def of(cls, settings: Settings) -> Self:
        folders = []
        for entry in settings.grantable_folders:
            root, _, mode = entry.partition(":")
            folders.append((os.path.realpath(posixpath.normpath(root)), mode == "rw"))
        host = settings.docker_host
        socket: str | None = ENGINE_SOCKET
        if host is not None:  # a remote engine's socket is not on this machine to mount
            socket = host.removeprefix("unix://") if host.startswith("unix://") else None
        return cls(
            folders=tuple(folders),
            devices={k: tuple(v) for k, v in settings.grantable_devices.items()},
            shared_memory_mb=settings.grantable_shared_memory_mb,
            linux_capabilities=frozenset(settings.grantable_linux_capabilities),
            host_access_apps=frozenset(settings.host_access_apps),
            engine_socket=socket,
        )

    def grant(self, capability: Mapping[str, Any], consent: Consent, app: str) -> Grant:
        """The grant of ``capability`` for ``consent`` in ``app``; ``Refused`` says why
        there is none."""
        name, kind, target = (
            str(capability["name"]),
            capability.get("kind"),
            capability.get("target"),
        )
        if kind in ROOT_EQUIVALENT and app not in self.host_access_apps:
            raise Refused(
                f"{kind} is root on this machine; an admin must allow {app} first "
                "(PORT_HOST_ACCESS_APPS)"
            )
        match kind:
            case "folder":
                # Symlinks resolved, as the engine would follow them: a link an app
                # made under a root must not lead another grant out of it.
                source = os.path.realpath(_host_path(consent.host, "folder"))
                writable = capability.get("readOnly", True) is False
                roots = [(r, rw) for r, rw in self.folders if _under(source, r)]
                if not roots:
                    allowed = ", ".join(r for r, _ in self.folders) or "none"
                    raise Refused(
                        f"{source} is not under a folder this Port lets owners grant "
                        f"(PORT_GRANTABLE_FOLDERS: {allowed})"
                    )
                if writable and not any(rw for _, rw in roots):
                    raise Refused(
                        f"{app} asks to write to {source}; it may be granted read-only only"
                    )
                return Grant(name, kind, source, str(target), read_only=not writable)
            case "device":
                device_class = str(capability.get("class"))
                source = os.path.realpath(_host_path(consent.host or str(target), "device"))
                patterns = self.devices.get(device_class, ())
                if not any(fnmatch.fnmatchcase(source, p) for p in patterns):
                    allowed = ", ".join(patterns) or "none"
                    raise Refused(
                        f"{source} is not a {device_class} device this Port lets owners "
                        f"grant (PORT_GRANTABLE_DEVICES: {allowed})"
                    )
                return Grant(name, kind, source, str(target), device_class=device_class)
            case "shared_memory":
                self._no_host_side(consent, kind)
                wanted = int(capability.get("min", 0))
                if wanted > self.shared_memory_mb:
                    raise Refused(
                        f"{wanted} MB of shared memory is more than the "
                        f"{self.shared_memory_mb} MB this Port grants"
                    )
                return Grant(name, kind, shm_mb=wanted)
            case "linux_capability":
                self._no_host_side(consent, kind)
                cap = str(capability.get("cap"))
                if cap not in self.linux_capabilities:
                    allowed = ", ".join(sorted(self.linux_capabilities)) or "none"
                    raise Refused(
                        f"the Linux capability {cap} is not one this Port grants "
                        f"(PORT_GRANTABLE_LINUX_CAPABILITIES: {allowed})"
                    )
                return Grant(name, kind, cap=cap)
            case "host_network":
                self._no_host_side(consent, kind)
                return Grant(name, kind)
            case "container_engine":
                self._no_host_side(consent, kind)
                if self.engine_socket is None:
                    raise Refused("the container engine is remote: its socket cannot be mounted")
                return Grant(name, kind, self.engine_socket, str(target), read_only=False)
        raise Refused(f"this Port cannot grant a {kind} capability")

    def refusal(self, grant: Grant, app: str) -> str | None:
        """Why this policy would not give ``grant`` now (an admin narrowed it since the
        Pod was planned), or None: checked again before each container is made."""
        host = grant.source if grant.kind in ("folder", "device") else None
        try:  # a writable folder asks to write again: refused where only reading is left
            self.grant(grant.capability(), Consent(grant.name, host), app)
        except Refused as refused:
            return str(refused)
        return None

    @staticmethod
    def _no_host_side(consent: Consent, kind: str) -> None:
        if consent.host is not None:
            raise Refused(f"a {kind} capability takes no host side (grant it as NAME alone)")


_DEVICES = {"video": "a camera", "serial": "a serial port", "usb": "a USB device",
            "dri": "a GPU render node", "other": "a device"}  # fmt: skip


def describe_capability(capability: Mapping[str, Any]) -> str:
    """What a flavour asks to be granted, as a person agreeing to it reads it."""
    name, kind = capability.get("name", "?"), capability.get("kind")
    target = capability.get("target")
    match kind:
        case "folder":
            how = "read-only" if capability.get("readOnly", True) else "writable"
            what = f"a {how} host folder at {target}"
        case "device":
            what = f"{_DEVICES.get(str(capability.get('class')), 'a device')} at {target}"
        case "shared_memory":
            what = f"{size_text(int(capability.get('min', 0)))} shared memory"
        case "linux_capability":
            what = f"the Linux capability {capability.get('cap')}"
        case "host_network":
            what = "the host's network (root-equivalent)"
        case "container_engine":
            what = f"the container engine's socket at {target} (root-equivalent)"
        case _:
            what = f"a {kind} capability"
    return f"{name}: {what}"


def size_text(megabytes: int) -> str:
    """Megabytes as a person reads them: 512 MB, 2 GB, 1.5 GB."""
    if megabytes >= 1024 and megabytes % 1024 == 0:
        return f"{megabytes // 1024} GB"
    if megabytes >= 1024:
        return f"{megabytes / 1024:.1f} GB"
    return f"{megabytes} MB"


def _what(capability: Mapping[str, Any]) -> str:
    return f"the {capability.get('kind')} capability {capability.get('name')!r}"


@dataclass(frozen=True)
class Grants:
    """One Setup's consents under the policy: what selection asks (``Grantor``) and what
    a planned Pod gets."""

    policy: GrantPolicy
    consents: Mapping[str, Consent]
    app: str

    @classmethod
    def of(cls, settings: Settings, app: str, consents: Iterable[Consent]) -> Self:
        return cls(GrantPolicy.of(settings), {c.name: c for c in consents}, app)

    def ungranted(self, capability: Mapping[str, Any]) -> Ungranted | None:
        consent = self._consent(capability)
        if consent is None:
            if capability.get("name") in self.consents:  # granted, but on other terms
                why = f"asks for {_what(capability)} otherwise than it was granted"
            else:
                why = f"needs {_what(capability)} granted"
            return Ungranted(capability, why, asked=True)
        try:
            self.policy.grant(capability, consent, self.app)
        except Refused as refused:
            return Ungranted(capability, f"{_what(capability)}: {refused}", asked=False)
        return None

    def applied(self, capabilities: Sequence[Mapping[str, Any]]) -> list[Grant]:
        """The grants of a Pod of a flavour asking ``capabilities``: each consented one
        the policy allows (an optional one it refuses is left out, as if declined)."""
        grants = []
        for capability in capabilities:
            consent = self._consent(capability)
            if consent is None:
                continue
            try:
                grants.append(self.policy.grant(capability, consent, self.app))
            except Refused:
                continue  # selection kept a flavour whose required ones are all granted
        return grants

    def _consent(self, capability: Mapping[str, Any]) -> Consent | None:
        """The consent to ``capability``: of its name, agreeing to its terms as they are."""
        consent = self.consents.get(str(capability.get("name")))
        if consent is None or consent.agreed is None:
            return consent
        return consent if dict(consent.agreed) == terms_of(capability) else None


def check_consents(
    consents: Sequence[Consent],
    flavours: Iterable[Sequence[Mapping[str, Any]]],
    policy: GrantPolicy,
    app: str,
) -> list[Consent]:
    """``consents`` for a release whose flavours ask ``flavours`` (capability lists), as
    stored, each with the terms it agrees to (kept when it has some: a consent given
    before agrees to what it agreed to then); INVALID_INPUT (field ``grants``) for a
    duplicate, a name no flavour asks, or one the policy refuses, so nothing is
    silently not granted."""
    if len(consents) > MAX_CONSENTS:
        raise InvalidInput(f"at most {MAX_CONSENTS} grants", field="grants")
    asked: dict[str, Mapping[str, Any]] = {}
    for capabilities in flavours:
        for capability in capabilities:
            asked.setdefault(str(capability.get("name")), capability)
    seen: set[str] = set()
    for consent in consents:
        if consent.name in seen:
            raise InvalidInput(f"{consent.name!r} is granted twice", field="grants")
        seen.add(consent.name)
        if consent.name not in asked:
            names = ", ".join(sorted(asked)) or "nothing"
            raise InvalidInput(
                f"{app} asks for no capability {consent.name[:64]!r} (it asks for {names})",
                field="grants",
            )
        try:
            policy.grant(asked[consent.name], consent, app)
        except Refused as refused:
            raise InvalidInput(f"{consent.name}: {refused}", field="grants") from refused
    return [
        c if c.agreed is not None else replace(c, agreed=terms_of(asked[c.name])) for c in consents
    ]
