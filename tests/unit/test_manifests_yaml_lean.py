"""The lean YAML walk gives what PyYAML's own safe constructor gives: data and errors.

``load_yaml`` builds plain documents with a walk of its own and remembers the tags of
plain scalars (see manifests.yamlload); its reference here is the same function with
both switched off, so every document goes through PyYAML's own resolver and
constructor. Both must agree, value for value (types included: ``1``, ``1.0`` and
``True`` are different answers) and error for error, on the bundled examples, on every
YAML text the test suite holds, and on fuzzed input.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

import manifests.yamlload as yamlload
from manifests.yamlload import YamlLoadError, load_yaml
from tests.unit.test_manifests_fuzz import STRUCTURES, YAMLISH, dump

ROOT = pathlib.Path(__file__).resolve().parents[2]


def outcome(text: str | bytes) -> tuple[str, str]:
    """What a caller sees: the data (as its repr: types and NaN compare), or the error."""
    try:
        return "data", repr(load_yaml(text, file="port.yaml", ref="v1.0.0").data)
    except YamlLoadError as exc:
        return "error", repr(exc.error)


def reference(text: str | bytes) -> tuple[str, str]:
    """``outcome`` with every document built by PyYAML's own loader and constructor."""

    def unusual(*_: Any) -> Any:
        raise yamlload._Unusual

    walk, loader = yamlload._lean, yamlload._Loader
    yamlload._lean = unusual  # type: ignore[assignment]
    yamlload._Loader = yaml.CSafeLoader  # type: ignore[misc,assignment] # its own resolver
    try:
        return outcome(text)
    finally:
        yamlload._lean = walk
        yamlload._Loader = loader  # type: ignore[misc]


def same(text: str | bytes) -> None:
    assert outcome(text) == reference(text)


def yaml_texts_in_the_suite() -> Iterator[str]:
    """Every string literal of the tests that loads as a YAML mapping of a manifest's
    kind (it has a key line), and every YAML file of the repository."""
    for path in sorted((ROOT / "manifests").rglob("*.yaml")):
        yield path.read_text()
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and ":" in text and "\n" in text:
                yield text


SUITE = list(yaml_texts_in_the_suite())


def test_the_suite_holds_many_manifests() -> None:
    loaded = [t for t in SUITE if outcome(t)[0] == "data"]
    assert len(loaded) > 100
    assert any("apiVersion: port/v1" in t for t in loaded)
    assert any("deployments:" in t for t in loaded)


@pytest.mark.parametrize("index", range(len(SUITE)))
def test_every_yaml_text_of_the_suite_loads_the_same(index: int) -> None:
    same(SUITE[index])


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: 1.0\nc: true\nd: yes\ne: ~\nf: 0x1F\ng: 1_000\nh: 1:30\ni: .inf\nj: .nan\n",
        "built: 2024-05-01\nat: 2024-05-01T10:00:00Z\nblob: !!binary aGk=\n",
        "1: one\n2.5: two\ntrue: three\nnull: four\n2024-01-01: five\n",
        "base: {a: 1}\nmerged:\n  <<: {a: 2, b: 3}\n  c: 4\n",
        "s: !!set {a, b}\no: !!omap [{a: 1}, {b: 2}]\np: !!pairs [{a: 1}]\n",
        "? [a, b]\n: c\n",
        "? {a: 1}\n: c\n",
        "a: !!str 12\nb: !!int '7'\nc: !!float '1'\n",
        "a: !!str [1]\n",
        "a: !custom x\n",
        "a: =\n",
        "dup: 1\ndup: 2\n",
        "deep: " + "[" * 64 + "]" * 64 + "\n",
        "deep: " + "[" * 63 + "]" * 63 + "\n",
        "deep: " + "{a: " * 64 + "1" + "}" * 64 + "\n",
        "a: &x [1]\nb: *x\n",
        "- a\n- b\n",
        "just text\n",
        "",
        "a: b\x07\n",
        "built: 2024-13-45\n",
        "blob: !!binary '%%%'\n",
        "a: 1\n---\nb: 2\n",
    ],
)
def test_unusual_documents_load_the_same(text: str) -> None:
    same(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
def test_yaml_ish_text_loads_the_same(text: str) -> None:
    same(text)
    same("root:\n  " + text.replace("\n", "\n  "))  # the same text inside a mapping


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STRUCTURES)
def test_random_structures_load_the_same(value: Any) -> None:
    same(dump({"root": value}))
