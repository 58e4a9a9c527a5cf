"""Fuzzing both parsers: whatever the input, errors come back, exceptions never do."""

from __future__ import annotations

import pathlib
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifests.arkitekt import parse_arkitekt_deployments
from manifests.native import parse_port_manifest
from manifests.specs import Parsed

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "manifests" / "examples"

# Keys the parsers look at, so random structures reach deep into the validation.
KEYS = [
    "apiVersion", "app", "identifier", "name", "description", "logo", "homepage", "license",
    "categories", "scopes", "requirements", "key", "service", "optional", "version",
    "entrypoint", "flavours", "cuda", "cpu", "vanilla", "image", "selectors", "resources",
    "cpus", "memory", "kind", "type", "min", "min_count", "min_version", "cudaVersion",
    "cudaCores", "compute_capability", "required", "weight", "value", "deployments",
    "app_images", "manifest", "flavour", "flavourName", "imageString", "deployed", "docker",
    "inspection", "size", "latest_app_image",
]  # fmt: skip

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["port/v1", "1.2.3", "v0.4.10", "dev", "cuda", "ram", "8g", "a/b:1", ""]),
    st.text(max_size=20),
)
STRUCTURES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5
        ),
    ),
    max_leaves=20,
)
YAMLISH = st.text(
    alphabet=st.sampled_from(list("ab1.:- \n\t[]{},'\"&*!|>#%@`?~\\vé\x00")), max_size=120
)


MANIFESTS = st.fixed_dictionaries(
    {},
    optional={
        "identifier": st.one_of(st.sampled_from(["app", "App", "a b"]), SCALARS),
        "version": st.one_of(st.sampled_from(["1.0.0", "v2.0.0-rc.1", "dev", "1.0"]), SCALARS),
        "requirements": STRUCTURES,
        "scopes": STRUCTURES,
        "logo": STRUCTURES,
    },
)
ENTRIES = st.fixed_dictionaries(
    {},
    optional={
        "manifest": st.one_of(MANIFESTS, STRUCTURES),
        "identifier": st.sampled_from(["app", "x"]),
        "version": st.sampled_from(["1.0.0", "latest"]),
        "image": st.one_of(st.sampled_from(["a/b:1", "A B"]), STRUCTURES),
        "deployed": st.one_of(st.just({"docker": "a/b:2"}), STRUCTURES),
        "flavour": st.one_of(st.sampled_from(["cuda", "Bad!"]), SCALARS),
        "flavourName": SCALARS,
        "selectors": st.one_of(st.lists(STRUCTURES, max_size=3), STRUCTURES),
        "inspection": STRUCTURES,
    },
)


def dump(value: Any) -> str:
    return yaml.dump(value, Dumper=yaml.CSafeDumper, allow_unicode=True)


def check(parsed: Parsed, file: str, *, located: bool) -> None:
    """Never an exception; every error names its file and says something; on YAML that
    loads, every error also has its line (the reader must be able to find it)."""
    assert isinstance(parsed, Parsed)
    for error in parsed.errors:
        assert error.file == file
        assert error.message.strip()
        assert error.line is None or error.line >= 1
        assert error.column is None or error.column >= 1
        if located:
            assert error.line is not None, error
    for release in parsed.releases:
        assert release.flavours
        str(release)  # every value renders


def both(data: bytes | str, *, located: bool = False) -> None:
    tagged = parse_port_manifest(data, file="port.yaml", ref="v1.0.0", tag_version="1.0.0")
    check(tagged, "port.yaml", located=located)
    assert tagged.releases or tagged.errors  # at a tag, a file is a release or an error
    check(parse_port_manifest(data, file="port.yaml"), "port.yaml", located=located)
    arkitekt = parse_arkitekt_deployments(data, file="deployments.yaml", ref="main")
    check(arkitekt, "deployments.yaml", located=located)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
def test_yaml_ish_text(text: str) -> None:
    both(text)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    both(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STRUCTURES)
def test_random_structures_dumped_to_yaml(value: Any) -> None:
    both(dump(value), located=True)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["deployments", "app_images"]), st.lists(ENTRIES, max_size=3))
def test_random_arkitekt_entries(key: str, entries: list[Any]) -> None:
    both(dump({key: entries}), located=True)


def mutate(document: Any, path: list[Any], value: Any) -> Any:
    """Replace the node at ``path`` (indexes taken modulo the sizes) with ``value``."""
    if not path or not isinstance(document, dict | list) or not document:
        return value
    head, *rest = path
    if isinstance(document, dict):
        key = list(document)[head % len(document)]
        return {**document, key: mutate(document[key], rest, value)}
    index = head % len(document)
    return [*document[:index], mutate(document[index], rest, value), *document[index + 1 :]]


EXAMPLE_DOCUMENTS = [yaml.safe_load(path.read_text()) for path in sorted(EXAMPLES.rglob("*.yaml"))]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(EXAMPLE_DOCUMENTS),
    st.lists(st.integers(min_value=0, max_value=50), max_size=6),
    STRUCTURES,
)
def test_valid_documents_with_one_wrong_value(document: Any, path: list[int], value: Any) -> None:
    both(dump(mutate(document, path, value)), located=True)
