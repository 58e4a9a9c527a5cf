"""Readers for the ``deployments.yaml`` files Arkitekt app repositories carry today.

The folder (``.arkitekt/`` or ``.arkitekt_next/``) does not tell the shape, so it is
read from the content. Seen in real repositories (arkitektio-apps/*, jhnnsrs/*,
alexschroeter/*), all handled by one tolerant entry reader:

- ``deployments:`` items with the identity flat on the item (``identifier``,
  ``version``, ``image``; arkitekt 0.4, e.g. arkitektio-apps/stdlib), sometimes with the
  image as ``deployed: {docker: ...}`` and versions like ``latest`` (arkitektio-apps/omero);
- ``deployments:`` items with a ``manifest:`` block, ``image``, optional ``flavour``,
  ``selectors`` (``type:`` or ``kind:``) and a large ``inspection`` (arkitektio-apps/kare,
  alexschroeter/tensorflow-test, jhnnsrs/helloworld);
- ``app_images:`` items (arkitekt_next / kabinet): ``flavourName``,
  ``image: {imageString, buildAt}``, ``manifest``, ``selectors``, ``inspection``, plus a
  top-level ``latest_app_image`` (arkitektio-apps/ome, jhnnsrs/starmist), and since the
  spec is published as ``arkitekt-spec``, a top-level ``spec_version``: a newer one than
  :data:`SPEC_VERSION` is an error of the whole file, never half-read.

Each entry is one (identifier, version, flavour) with its image. A bad entry (version
not semver, no image, an invalid selector...) is an error of that entry and is skipped;
its neighbours still count. Unknown keys are tolerated everywhere except in selectors
and capabilities.

Order and duplicates: the Arkitekt CLIs *append* to these lists (``deployments.append``
/ ``app_images.append``), so files run oldest first. Entries sharing (identifier,
version) merge into one release; when the same flavour appears again, the later entry
is a rebuild and its image and selectors replace the earlier ones, keeping the flavour's
first position. The app metadata of a release comes from its last entry, the newest.

``inspection`` blocks (the app's function signatures, often 100 KB+) are neither
validated nor kept; only the service requirements are read from them when the manifest
has none, as arkitekt_next moved them there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from manifests.bounds import MAX_BYTES
from manifests.capabilities import (
    CAPABILITIES,
    AnyCapability,
    CapabilityList,
    validate_capabilities,
)
from manifests.diagnostics import describe, validation_errors
from manifests.errors import ManifestError
from manifests.fields import (
    MAX_FLAVOURS,
    check_flavour_name,
    check_http_url,
    check_identifier,
    check_image,
    check_logo,
    check_shown_text,
)
from manifests.selectors import SELECTOR_LIST, Selector
from manifests.specs import AppSpec, FlavourSpec, Parsed, ReleaseSpec, Requirement
from manifests.versions import normalise_version
from manifests.yamlload import LoadedYaml, Path, YamlLoadError, load_yaml

LISTS = ("deployments", "app_images")
# arkitekt-spec's SPEC_VERSION that Port reads: it is bumped only for a change an older
# reader must refuse, so a newer file is an error of the whole file, never misread.
SPEC_VERSION = 1
_NOT_READ = "; the file is not read"
DEFAULT_FLAVOUR = "vanilla"
_SKIPPED = "; this entry is skipped"


@dataclass(frozen=True, slots=True)
class _Entry:
    app: AppSpec
    version: str
    flavour: FlavourSpec
    entrypoint: str | None


@dataclass(slots=True)
class _Release:
    app: AppSpec
    entrypoint: str | None
    flavours: dict[str, FlavourSpec] = field(default_factory=dict)


def parse_arkitekt_deployments(
    data: bytes | str, *, file: str, ref: str | None = None, max_bytes: int = MAX_BYTES
) -> Parsed:
    """Parse an Arkitekt ``deployments.yaml`` of any known shape; nothing raises."""
    try:
        loaded = load_yaml(data, file=file, ref=ref, max_bytes=max_bytes)
    except YamlLoadError as exc:
        return Parsed(errors=[exc.error])
    return parse_arkitekt_document(loaded)


def parse_arkitekt_document(loaded: LoadedYaml) -> Parsed:
    """:func:`parse_arkitekt_deployments` for an already loaded document."""
    present = [name for name in LISTS if name in loaded.data]
    if not present:
        message = "not an Arkitekt deployments file: expected a 'deployments' or 'app_images' list"
        return Parsed(errors=[loaded.error((), message)])
    newer = _spec_version_problem(loaded.data.get("spec_version", SPEC_VERSION))
    if newer is not None:  # a format Port does not know must not be half-read
        return Parsed(errors=[loaded.error(("spec_version",), newer)])
    releases: dict[tuple[str, str], _Release] = {}
    errors: list[ManifestError] = []
    for name in present:
        items = loaded.data[name]
        if items is None:
            continue
        if not isinstance(items, list):
            errors.append(
                loaded.error((name,), f"must be a list of entries, got {describe(items)}")
            )
            continue
        for index, item in enumerate(items):
            entry = _read_entry(item, (name, index), loaded, errors)
            if entry is None:
                continue
            held = releases.get((entry.app.identifier, entry.version))
            if (
                held
                and len(held.flavours) >= MAX_FLAVOURS
                and entry.flavour.name not in held.flavours
            ):
                message = (
                    f"{entry.app.identifier} {entry.version} has more than {MAX_FLAVOURS} "
                    f"flavours{_SKIPPED}"
                )
                errors.append(loaded.error((name, index), message))
                continue
            _merge(releases, entry)
    return Parsed(releases=[_release(key, value) for key, value in releases.items()], errors=errors)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A release descriptor read: its release (None when it is not one Port can run),
    its channel (a branch build, None for a release proper) and the source revision it
    was built from, when it names one."""

    release: ReleaseSpec | None
    channel: str | None
    errors: list[ManifestError]
    revision: str | None = None


def parse_release_descriptor(
    data: bytes, *, file: str, ref: str, max_bytes: int = MAX_BYTES
) -> Descriptor:
    """A release descriptor (``arkitekt_spec.release``: the JSON config of an OCI image
    manifest of media type ``application/vnd.arkitekt.release.v1+json``) as one release.

    The same tolerant reading as a deployments entry: the ``manifest`` block is the app
    and its version, each of ``flavours`` a flavour whose ``image`` must be pinned by
    digest (a descriptor names what it was inspected with, never a movable tag). A bad
    flavour is a located error and skipped; a release left with none is no release.
    """
    try:
        loaded = load_yaml(data, file=file, ref=ref, max_bytes=max_bytes)  # JSON is YAML
    except YamlLoadError as exc:
        return Descriptor(None, None, [exc.error])
    if not isinstance(loaded.data, dict) or not isinstance(loaded.data.get("manifest"), dict):
        message = "not an Arkitekt release descriptor: expected a 'manifest' mapping"
        return Descriptor(None, None, [loaded.error((), message)])
    newer = _spec_version_problem(loaded.data.get("spec_version", SPEC_VERSION))
    if newer is not None:
        return Descriptor(None, None, [loaded.error(("spec_version",), newer)])
    errors: list[ManifestError] = []
    channel = loaded.data.get("channel")
    if channel is not None and not isinstance(channel, str):
        errors.append(loaded.error(("channel",), f"must be a string, got {describe(channel)}"))
        return Descriptor(None, None, errors)
    revision = loaded.data.get("revision")
    revision = revision if isinstance(revision, str) and revision.strip() else None
    identity = loaded.data["manifest"]

    def problem(path: Path, message: str) -> None:
        errors.append(loaded.error(path, message))

    identifier = _checked(identity, "identifier", ("manifest",), check_identifier, problem)
    version = _checked(identity, "version", ("manifest",), normalise_version, problem)
    raw = loaded.data.get("flavours")
    if not isinstance(raw, list) or not raw:
        problem(("flavours",), f"must be a list of flavours, got {describe(raw)}")
        return Descriptor(None, channel, errors)
    if identifier is None or version is None:
        return Descriptor(None, channel, errors)
    flavours: dict[str, FlavourSpec] = {}
    for index, item in enumerate(raw[: MAX_FLAVOURS + 1]):
        base: Path = ("flavours", index)
        if index == MAX_FLAVOURS:
            problem(base, f"more than {MAX_FLAVOURS} flavours{_SKIPPED}")
            break
        flavour = _descriptor_flavour(item, base, loaded, errors)
        if flavour is not None and flavour.name in flavours:
            problem((*base, "name"), f"a second flavour {flavour.name!r}{_SKIPPED}")
        elif flavour is not None:
            flavours[flavour.name] = flavour
    requirements_from = raw[0] if isinstance(raw[0], dict) else {}
    release = ReleaseSpec(
        app=_app(identifier, identity, requirements_from),
        version=version,
        flavours=tuple(flavours.values()),
        entrypoint=_text(identity.get("entrypoint")),
    )
    return Descriptor(release if flavours else None, channel, errors, revision)


def _descriptor_flavour(
    item: object, base: Path, loaded: LoadedYaml, errors: list[ManifestError]
) -> FlavourSpec | None:
    before = len(errors)

    def problem(path: Path, message: str) -> None:
        errors.append(loaded.error(base + path, message + _SKIPPED))

    if not isinstance(item, dict):
        problem((), f"a flavour must be a mapping, got {describe(item)}")
        return None
    name = _checked(item, "name", (), check_flavour_name, problem)
    image = _image(item, problem)
    if image is not None and "@sha256:" not in image:
        problem(("image",), f"image {image} is not pinned by digest (name@sha256:...)")
        image = None
    selectors = _selectors(item, base, loaded, errors)
    capabilities = _capabilities(item, base, loaded, errors)
    if name is None or image is None or selectors is None or capabilities is None:
        return None
    if len(errors) > before:
        return None
    return FlavourSpec(name=name, image=image, selectors=selectors, capabilities=capabilities)


def _spec_version_problem(value: object) -> str | None:
    """Why a file of ``spec_version`` ``value`` cannot be read, or None when it can."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"spec_version must be a whole number from 1, got {describe(value)}{_NOT_READ}"
    if value > SPEC_VERSION:
        return (
            f"spec_version {value} is newer than the Arkitekt spec Port reads "
            f"({SPEC_VERSION}){_NOT_READ}"
        )
    return None


def _merge(releases: dict[tuple[str, str], _Release], entry: _Entry) -> None:
    key = (entry.app.identifier, entry.version)
    release = releases.get(key)
    if release is None:
        releases[key] = release = _Release(app=entry.app, entrypoint=entry.entrypoint)
    else:  # a later entry is newer: its metadata wins
        release.app = entry.app
        release.entrypoint = entry.entrypoint or release.entrypoint
    release.flavours[entry.flavour.name] = entry.flavour  # a rebuild keeps its position


def _release(key: tuple[str, str], release: _Release) -> ReleaseSpec:
    return ReleaseSpec(
        app=release.app,
        version=key[1],
        flavours=tuple(release.flavours.values()),
        entrypoint=release.entrypoint,
    )


def _read_entry(
    item: object, base: Path, loaded: LoadedYaml, errors: list[ManifestError]
) -> _Entry | None:
    """One entry, or None after appending its errors."""
    before = len(errors)

    def problem(path: Path, message: str) -> None:
        errors.append(loaded.error(base + path, message + _SKIPPED))

    if not isinstance(item, dict):
        problem((), f"an entry must be a mapping, got {describe(item)}")
        return None
    where: Path = ()
    identity: dict[Any, Any] = item
    if "manifest" in item:
        if not isinstance(item["manifest"], dict):
            problem(("manifest",), f"must be a mapping, got {describe(item['manifest'])}")
            return None
        identity, where = item["manifest"], ("manifest",)

    identifier = _checked(identity, "identifier", where, check_identifier, problem)
    version = _checked(identity, "version", where, normalise_version, problem)
    image = _image(item, problem)
    flavour = _flavour_name(item, problem)
    selectors = _selectors(item, base, loaded, errors)
    capabilities = _capabilities(item, base, loaded, errors)
    if identifier is None or version is None or image is None or flavour is None:
        return None
    if selectors is None or capabilities is None or len(errors) > before:
        return None
    return _Entry(
        app=_app(identifier, identity, item),
        version=version,
        flavour=FlavourSpec(
            name=flavour, image=image, selectors=selectors, capabilities=capabilities
        ),
        entrypoint=_text(identity.get("entrypoint")) or _text(item.get("entrypoint")),
    )


Problem = Callable[[Path, str], None]


def _checked(
    source: dict[Any, Any], key: str, where: Path, check: Callable[[Any], str], problem: Problem
) -> str | None:
    value = source.get(key)
    if value is None:
        problem((*where, key), f"missing {key!r}")
        return None
    if not isinstance(value, str) and key != "version":
        problem((*where, key), f"{key} must be a string, got {describe(value)}")
        return None
    try:
        return check(value)
    except ValueError as exc:
        problem((*where, key), str(exc))
        return None


def _image(item: dict[Any, Any], problem: Problem) -> str | None:
    """``image: str``, ``image: {imageString: str}`` or ``deployed: {docker: str}``."""
    image = item.get("image")
    path: Path = ("image",)
    if isinstance(image, dict):
        key = "imageString" if "imageString" in image else "image_string"
        image, path = image.get(key), ("image", key)
    elif image is None and isinstance(item.get("deployed"), dict):
        image, path = item["deployed"].get("docker"), ("deployed", "docker")
    if image is None:
        problem(path, "no image: expected 'image' (or 'deployed: {docker: ...}')")
        return None
    if not isinstance(image, str):
        problem(path, f"the image must be a string, got {describe(image)}")
        return None
    try:
        return check_image(image)
    except ValueError as exc:
        problem(path, str(exc))
        return None


def _flavour_name(item: dict[Any, Any], problem: Problem) -> str | None:
    for key in ("flavour", "flavourName", "flavour_name"):
        value = item.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            problem((key,), f"the flavour name must be a string, got {describe(value)}")
            return None
        try:
            return check_flavour_name(value)
        except ValueError as exc:
            problem((key,), str(exc))
            return None
    return DEFAULT_FLAVOUR


def _selectors(
    item: dict[Any, Any], base: Path, loaded: LoadedYaml, errors: list[ManifestError]
) -> tuple[Selector, ...] | None:
    raw = item.get("selectors")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        message = f"selectors must be a list, got {describe(raw)}{_SKIPPED}"
        errors.append(loaded.error((*base, "selectors"), message))
        return None
    try:
        return tuple(SELECTOR_LIST.validate_python(raw))
    except ValidationError as exc:
        where = (*base, "selectors")
        errors.extend(
            validation_errors(exc, loaded, root=list[Selector], base=where, suffix=_SKIPPED)
        )
        return None


def _capabilities(
    item: dict[Any, Any], base: Path, loaded: LoadedYaml, errors: list[ManifestError]
) -> tuple[AnyCapability, ...] | None:
    """What the entry's image must be granted; None after a located error (skipped:
    an image must never run without what it asks for, nor be shown asking less)."""
    raw = item.get("capabilities")
    if raw is None:
        return ()
    where = (*base, "capabilities")
    if not isinstance(raw, list):
        errors.append(loaded.error(where, f"must be a list, got {describe(raw)}{_SKIPPED}"))
        return None
    try:
        return validate_capabilities(raw)
    except ValidationError as exc:
        errors.extend(
            validation_errors(
                exc, loaded, root=CapabilityList, base=where, suffix=_SKIPPED, kinds=CAPABILITIES
            )
        )
    except ValueError as exc:  # two of one name
        errors.append(loaded.error(where, f"{exc}{_SKIPPED}"))
    return None


def _app(identifier: str, identity: dict[Any, Any], item: dict[Any, Any]) -> AppSpec:
    """App metadata is informational: well-formed values are kept, others ignored."""
    return AppSpec(
        identifier=identifier,
        name=_text(identity.get("name")) or identifier,
        description=_text(identity.get("description"), limit=10_000) or "",
        logo=_valid(identity.get("logo"), check_logo),
        homepage=_valid(identity.get("homepage"), check_http_url),
        license=_text(identity.get("license")),
        author=_text(identity.get("author")),
        categories=_words(identity.get("categories")),
        scopes=_words(identity.get("scopes")),
        requirements=_requirements(identity.get("requirements"))
        or _requirements(_inspection_requirements(item)),
    )


def _inspection_requirements(item: dict[Any, Any]) -> object:
    inspection = item.get("inspection")
    return inspection.get("requirements") if isinstance(inspection, dict) else None


def _requirements(raw: object) -> tuple[Requirement, ...]:
    """Requirements as a list of mappings, or a mapping key -> {service, ...}.

    Plain strings (arkitekt 0.4's ``- gpu``) are hardware hints, not services: skipped.
    """
    pairs: list[tuple[object, object]] = []
    if isinstance(raw, list):
        pairs = [(r.get("key"), r) for r in raw if isinstance(r, dict)]
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    out = []
    for key, spec in pairs:
        if not isinstance(spec, dict):
            continue
        service = _text(spec.get("service"))
        if isinstance(key, str) and key and service:
            optional = spec.get("optional")
            out.append(
                Requirement(
                    key=key,
                    service=service,
                    optional=optional if isinstance(optional, bool) else False,
                    description=_text(spec.get("description"), limit=2000),
                )
            )
    return tuple(out)


def _text(value: object, limit: int = 200) -> str | None:
    """Informational text, or None when absent, empty or longer than ``limit`` characters
    (the same bounds the native format enforces, so both fit the catalogue's columns)."""
    if isinstance(value, str) and value.strip() and len(value) <= limit:
        try:
            return check_shown_text(value)
        except ValueError:
            return None  # control characters: dropped like any malformed informational value
    return None


def _words(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(word for word in value if isinstance(word, str) and word.strip())


def _valid(value: object, check: Callable[[str], str]) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return check(value)
    except ValueError:
        return None
