"""Manifest blobs parsed once: by blob id within a run, and across runs.

A repository can point a hundred tags at one big blob, or carry the same Arkitekt file
in many commits; parsing is the costly part of an index run (YAML construction), so:

- within a run, a blob's YAML is loaded once, however many reads name it;
- each result (a ``Parsed``) is kept in a small process-wide cache keyed by what it
  depends on (format, blob id, path, tag version), so a rescan that must read a blob
  again (a moved tag, a force-push) does not parse it again.

Results are computed without a ref and take the ref of each read on the way out: the
same blob at two tags gives the same releases and the same errors, each located at its
own tag.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Literal

from indexer.limits import Limits
from manifests.arkitekt import parse_arkitekt_document
from manifests.errors import ManifestError
from manifests.native import parse_port_document
from manifests.specs import Parsed
from manifests.yamlload import LoadedYaml, YamlLoadError, load_yaml

log = logging.getLogger(__name__)

KEPT_RESULTS = 512  # results kept across runs (each bounded: flavours, sizes)
KEPT_LOADED_BYTES = 8 << 20  # YAML text whose loaded documents one run keeps for reuse

Format = Literal["port", "arkitekt"]
_Key = tuple[Format, str, str, str | None]  # format, blob id, path, tag version

_results: OrderedDict[_Key, Parsed] = OrderedDict()
_results_lock = threading.Lock()  # index runs run on threads, several at once


def _kept(key: _Key) -> Parsed | None:
    with _results_lock:
        found = _results.get(key)
        if found is not None:
            _results.move_to_end(key)
        return found


def _keep(key: _Key, parsed: Parsed) -> None:
    with _results_lock:
        _results[key] = parsed
        _results.move_to_end(key)
        while len(_results) > KEPT_RESULTS:
            _results.popitem(last=False)


def forget_all() -> None:
    """Empty the cache across runs (tests that count parses)."""
    with _results_lock:
        _results.clear()


class RunParser:
    """Parses the manifests of one index run."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        # Loaded documents, newest last, while their text adds up to KEPT_LOADED_BYTES.
        self._loaded: OrderedDict[tuple[str, str], tuple[LoadedYaml | ManifestError, int]]
        self._loaded = OrderedDict()
        self._loaded_bytes = 0

    def native(self, blob: str, data: bytes, path: str, tag: str, version: str) -> Parsed:
        """``port.yaml`` ``blob`` at tag ``tag`` of ``version``."""
        return self._parse(("port", blob, path, version), data, tag)

    def arkitekt(self, blob: str, data: bytes, path: str, ref: str) -> Parsed:
        """An Arkitekt file ``blob`` at ``ref`` (a branch or a commit)."""
        return self._parse(("arkitekt", blob, path, None), data, ref)

    def _parse(self, key: _Key, data: bytes, ref: str) -> Parsed:
        parsed = _kept(key)
        if parsed is None:
            parsed = self._fresh(key, data)
            _keep(key, parsed)
        return Parsed(
            releases=list(parsed.releases),
            errors=[e if e.ref is not None else replace(e, ref=ref) for e in parsed.errors],
        )

    def _fresh(self, key: _Key, data: bytes) -> Parsed:
        kind, blob, path, version = key
        loaded = self._load(blob, path, data)
        if isinstance(loaded, ManifestError):
            return Parsed(errors=[loaded])
        try:
            if kind == "port":
                return parse_port_document(loaded, tag_version=version)
            return parse_arkitekt_document(loaded)
        except Exception as exc:  # a parser bug must not end the run
            log.exception("parsing %s (blob %s) failed", path, blob)
            message = f"could not be parsed ({type(exc).__name__})"
            return Parsed(errors=[ManifestError(file=path, message=message)])

    def _load(self, blob: str, path: str, data: bytes) -> LoadedYaml | ManifestError:
        key = (blob, path)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key][0]
        found: LoadedYaml | ManifestError
        try:
            found = load_yaml(data, file=path, ref=None, max_bytes=self.limits.max_manifest_bytes)
        except YamlLoadError as exc:
            found = exc.error
        except Exception as exc:  # a loader bug must not end the run
            log.exception("loading %s (blob %s) failed", path, blob)
            found = ManifestError(file=path, message=f"could not be read ({type(exc).__name__})")
        self._loaded[key] = (found, len(data))
        self._loaded_bytes += len(data)
        while self._loaded_bytes > KEPT_LOADED_BYTES and len(self._loaded) > 1:
            _key, (_doc, size) = self._loaded.popitem(last=False)
            self._loaded_bytes -= size
        return found
