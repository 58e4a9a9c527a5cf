"""Validate a manifest file on disk, whatever its format: the ``port manifest validate`` check.

The format is read from the content, not the file name: repositories name and place
these files freely (``port.yaml``, ``.arkitekt/deployments.yaml``, ...).
"""

from __future__ import annotations

import pathlib
from typing import Literal

from manifests.arkitekt import LISTS, parse_arkitekt_document
from manifests.bounds import MAX_BYTES
from manifests.errors import ManifestError
from manifests.native import parse_port_document
from manifests.specs import Parsed
from manifests.yamlload import LoadedYaml, YamlLoadError, load_yaml

Format = Literal["port", "arkitekt"]


def detect_format(document: dict[object, object]) -> Format | None:
    """``port`` for a mapping with ``apiVersion``, ``arkitekt`` for one with a
    ``deployments`` or ``app_images`` list, None otherwise."""
    if "apiVersion" in document:
        return "port"
    if any(name in document for name in LISTS):
        return "arkitekt"
    return None


def parse_document(loaded: LoadedYaml, *, tag_version: str | None = None) -> Parsed:
    """Parse a loaded document with the parser its content calls for."""
    found = detect_format(loaded.data)
    if found == "port":
        return parse_port_document(loaded, tag_version=tag_version)
    if found == "arkitekt":
        return parse_arkitekt_document(loaded)
    message = (
        "not a manifest Port knows: a port.yaml starts with 'apiVersion: port/v1', an "
        "Arkitekt deployments.yaml has a 'deployments' or 'app_images' list"
    )
    return Parsed(errors=[loaded.error((), message)])


def validate_path(path: pathlib.Path) -> Parsed:
    """Read and parse one file; problems (unreadable, too big, invalid) are errors.

    Without a git tag there is no tag version: a native file's release, if any, takes
    the ``version`` field. ``ManifestError.file`` is ``str(path)`` as given.
    """
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            message = f"the file is {size} bytes, more than the limit of {MAX_BYTES} bytes"
            return Parsed(errors=[ManifestError(file=file, message=message)])
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return Parsed(errors=[ManifestError(file=file, message=f"cannot read the file: {reason}")])
    try:
        loaded = load_yaml(data, file=file, ref=None)
    except YamlLoadError as exc:
        return Parsed(errors=[exc.error])
    return parse_document(loaded)
