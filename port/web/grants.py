"""The pages' grant fields: what an app asks to be granted, as a form offers it, and the
consents a filled-in form gives (the install form, and a Setup whose update waits)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from port.deploy.grants import ROOT_EQUIVALENT, Consent, describe_capability


@dataclass(frozen=True, slots=True)
class Ask:
    """One capability offered to grant: ``host`` is the kind of host side to name
    ("folder", "device"), else it is a checkbox."""

    name: str
    text: str
    why: str
    required: bool
    host: str | None
    default: str
    root: bool  # root on the machine in all but name

    @property
    def field(self) -> str:
        return f"grant.{self.name}"


def asks_of(capability_lists: Iterable[Sequence[Mapping[str, Any]]]) -> list[Ask]:
    """What the flavours (their capability lists) ask, each name once (first wording)."""
    found: dict[str, Ask] = {}
    for capabilities in capability_lists:
        for c in capabilities:
            kind = str(c.get("kind"))
            found.setdefault(
                str(c.get("name")),
                Ask(
                    name=str(c.get("name")),
                    text=describe_capability(c),
                    why=str(c.get("description") or ""),
                    required=bool(c.get("required", True)),
                    host=kind if kind in ("folder", "device") else None,
                    default=str(c.get("target")) if kind == "device" else "",
                    root=kind in ROOT_EQUIVALENT,
                ),
            )
    return list(found.values())


def consents_from(fields: Mapping[str, str], asks: Sequence[Ask]) -> tuple[Consent, ...]:
    """The form's grants: a host side written, or a box ticked; nothing else is granted."""
    consents = []
    for ask in asks:
        value = fields.get(ask.field, "").strip()
        if ask.host is not None and value:
            consents.append(Consent(ask.name, value))
        elif ask.host is None and value == "yes":
            consents.append(Consent(ask.name))
    return tuple(consents)
