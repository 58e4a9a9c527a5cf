"""validate_path (the CLI's check), the checked-in JSON Schema and the example manifests."""

from __future__ import annotations

import json
import pathlib

import pytest

from manifests import schema
from manifests.native import parse_port_manifest
from manifests.selectors import CpuSelector, LabelSelector
from manifests.validate import detect_format, validate_path

EXAMPLES = pathlib.Path(schema.__file__).with_name("examples")


def test_a_native_file_is_validated_with_its_version_field(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "port.yaml"
    path.write_text(
        "apiVersion: port/v1\nversion: v2.0.0\napp: {identifier: demo}\n"
        "flavours: {cpu: {image: 'localhost:5000/demo:2.0.0'}}\n"
    )
    parsed = validate_path(path)
    assert parsed.errors == []
    assert [(r.app.identifier, r.version) for r in parsed.releases] == [("demo", "2.0.0")]


def test_an_arkitekt_file_is_recognised_by_its_content(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "anything.yml"
    path.write_text(
        "deployments:\n- {identifier: kare, version: 0.0.1, image: 'jhnnsrs/kare:0.0.1'}\n"
    )
    assert [r.version for r in validate_path(path).releases] == ["0.0.1"]


def test_errors_name_the_path_as_given(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "port.yaml"
    path.write_text("apiVersion: port/v1\napp: {identifier: Demo}\nflavours: {cpu: {image: x}}\n")
    (error,) = validate_path(path).errors
    assert (error.file, error.ref, error.line, error.path) == (str(path), None, 2, "app.identifier")


def test_a_file_of_no_known_format_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  web: {image: nginx}\n")
    (error,) = validate_path(path).errors
    assert error.message.startswith("not a manifest Port knows: a port.yaml starts with")
    assert error.line == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"apiVersion: port/v1\napp: [\n", "YAML syntax error"),
        (b"- a\n", "the top level must be a mapping"),
        (b"\xff\xfe", "the file is not UTF-8 text"),
    ],
)
def test_unloadable_files(tmp_path: pathlib.Path, content: bytes, message: str) -> None:
    path = tmp_path / "port.yaml"
    path.write_bytes(content)
    (error,) = validate_path(path).errors
    assert error.message.startswith(message)


def test_unreadable_and_oversized_files(tmp_path: pathlib.Path) -> None:
    (missing,) = validate_path(tmp_path / "nope.yaml").errors
    assert missing.message == "cannot read the file: No such file or directory"
    (directory,) = validate_path(tmp_path).errors
    assert directory.message.startswith("cannot read the file: ")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 * 1024 * 1024 + 1))
    (error,) = validate_path(big).errors
    assert error.message == "the file is 2097153 bytes, more than the limit of 2097152 bytes"


def test_detect_format() -> None:
    assert detect_format({"apiVersion": "port/v1"}) == "port"
    assert detect_format({"deployments": []}) == "arkitekt"
    assert detect_format({"app_images": None, "latest_app_image": None}) == "arkitekt"
    assert detect_format({"kind": "Deployment"}) is None


def test_the_checked_in_schema_is_current() -> None:
    assert schema.SCHEMA_PATH.read_text(encoding="utf-8") == schema.render(), (
        "manifests/port.schema.json is stale: run `python -m manifests.schema`"
    )


def test_the_schema_describes_the_native_format() -> None:
    generated = schema.native_schema()
    assert generated["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert generated["required"] == ["apiVersion", "app", "flavours"]
    assert generated["additionalProperties"] is False
    assert generated["properties"]["apiVersion"]["const"] == "port/v1"
    flavours = generated["properties"]["flavours"]
    assert flavours["minProperties"] == 1
    assert flavours["additionalProperties"] is False
    assert list(flavours["patternProperties"]) == ["^[a-z0-9][a-z0-9._-]{0,62}$"]
    cuda = generated["$defs"]["CudaSelector"]
    assert cuda["required"] == ["kind"]
    assert cuda["additionalProperties"] is False
    assert json.loads(json.dumps(generated)) == generated


def test_main_writes_the_schema(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "port.schema.json"
    monkeypatch.setattr(schema, "SCHEMA_PATH", target)
    schema.main()
    assert json.loads(target.read_text()) == schema.native_schema()


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES.rglob("*.yaml")), ids=lambda p: str(p.relative_to(EXAMPLES))
)
def test_every_example_is_valid(path: pathlib.Path) -> None:
    parsed = validate_path(path)
    assert parsed.errors == []
    for release in parsed.releases:
        for flavour in release.flavours:
            assert flavour.image.startswith("localhost:5000/port-examples/")


def test_the_examples_hold_what_the_demo_needs() -> None:
    assert sorted(str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.yaml")) == [
        "arkitekt/deployments.yaml",
        "napari/port.yaml",
        "stardist/port.yaml",
    ]
    (stardist,) = parse_port_manifest(
        (EXAMPLES / "stardist" / "port.yaml").read_bytes(), tag_version="0.4.10"
    ).releases
    assert [f.name for f in stardist.flavours] == ["cuda", "cpu"]
    assert {f.selectors[0].kind for f in stardist.flavours} == {"cuda", "cpu"}
    (napari,) = parse_port_manifest(
        (EXAMPLES / "napari" / "port.yaml").read_bytes(), tag_version="0.5.0"
    ).releases
    assert napari.flavours[0].selectors == (
        CpuSelector(min_count=1),
        LabelSelector(key="display", required=False),
    )
    arkitekt = validate_path(EXAMPLES / "arkitekt" / "deployments.yaml")
    assert [(r.app.identifier, r.version) for r in arkitekt.releases] == [
        ("fiji", "0.1.0"),
        ("fiji", "0.2.0"),
        ("renamer", "0.0.3"),
    ]
    assert all(f.name == "vanilla" for r in arkitekt.releases for f in r.flavours)
