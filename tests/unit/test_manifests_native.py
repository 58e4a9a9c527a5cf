"""port.yaml: the happy path, the version rules and what a repo author sees on errors."""

from __future__ import annotations

import pytest

from manifests.errors import ManifestError
from manifests.native import parse_port_manifest
from manifests.selectors import CpuSelector, CudaSelector, RamSelector
from manifests.specs import (
    AppSpec,
    FlavourSpec,
    Parsed,
    ReleaseSpec,
    Requirement,
    Resources,
    Sandbox,
)

DESIGN_EXAMPLE = """\
apiVersion: port/v1
app:
  identifier: stardist            # [a-z0-9][a-z0-9._-]{0,99}, stable forever
  name: Stardist
  description: Star-convex object detection
  logo: docs/logo.png             # path in the repo or https URL
  homepage: https://example.org/stardist
  license: BSD-3-Clause
  categories: [segmentation]
  scopes: [read]
  requirements:
    - {key: mikro, service: live.arkitekt.mikro, optional: true}
entrypoint: app
flavours:
  cuda:
    image: ghcr.io/acme/stardist:0.4.10-cuda
    selectors: [{kind: cuda, min_version: "11.8"}]
    resources: {cpus: 2, memory: 8g}
  cpu:
    image: ghcr.io/acme/stardist:0.4.10-cpu
    selectors: [{kind: cpu, min_count: 2}, {kind: ram, min: 4096}]
"""

MINIMAL = """\
apiVersion: port/v1
app:
  identifier: tiny
flavours:
  vanilla:
    image: localhost:5000/tiny:1.0.0
"""


def parse(text: str, tag_version: str | None = "0.4.10") -> Parsed:
    return parse_port_manifest(text, file="port.yaml", ref="v0.4.10", tag_version=tag_version)


def only_error(text: str, tag_version: str | None = "0.4.10") -> ManifestError:
    parsed = parse(text, tag_version)
    assert parsed.releases == []
    assert len(parsed.errors) == 1, parsed.errors
    return parsed.errors[0]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_design_example_becomes_a_release_spec() -> None:
    parsed = parse(DESIGN_EXAMPLE)
    assert parsed.errors == []
    assert parsed.releases == [
        ReleaseSpec(
            app=AppSpec(
                identifier="stardist",
                name="Stardist",
                description="Star-convex object detection",
                logo="docs/logo.png",
                homepage="https://example.org/stardist",
                license="BSD-3-Clause",
                categories=("segmentation",),
                scopes=("read",),
                requirements=(
                    Requirement(key="mikro", service="live.arkitekt.mikro", optional=True),
                ),
            ),
            version="0.4.10",
            flavours=(
                FlavourSpec(
                    name="cuda",
                    image="ghcr.io/acme/stardist:0.4.10-cuda",
                    selectors=(CudaSelector(min_version="11.8"),),
                    resources=Resources(cpus=2.0, memory=8 * 1024**3),
                ),
                FlavourSpec(
                    name="cpu",
                    image="ghcr.io/acme/stardist:0.4.10-cpu",
                    selectors=(CpuSelector(min_count=2), RamSelector(min=4096)),
                ),
            ),
            entrypoint="app",
        )
    ]


def test_bytes_and_text_give_the_same_result() -> None:
    assert parse_port_manifest(DESIGN_EXAMPLE.encode(), tag_version="1.0.0") == (
        parse_port_manifest(DESIGN_EXAMPLE, tag_version="1.0.0")
    )


def test_defaults_name_from_identifier_and_keep_flavour_order() -> None:
    text = MINIMAL + "  b-second:\n    image: x/y:2\n  a.third:\n    image: x/z\n"
    (release,) = parse(text, "1.0.0").releases
    assert release.app.name == "tiny"
    assert release.app.description == ""
    assert [flavour.name for flavour in release.flavours] == ["vanilla", "b-second", "a.third"]
    assert release.flavours[0].resources == Resources()
    assert release.entrypoint is None


def test_a_version_field_equal_to_the_tag_is_fine_even_with_a_v() -> None:
    text = MINIMAL + "version: v0.4.10\n"
    assert [r.version for r in parse(text).releases] == ["0.4.10"]


def test_a_version_field_that_differs_from_the_tag_is_a_located_error_naming_both() -> None:
    text = MINIMAL.replace("app:", "version: 0.4.11\napp:")
    error = only_error(text)
    assert error == ManifestError(
        file="port.yaml",
        ref="v0.4.10",
        line=2,
        column=10,
        path="version",
        message="version '0.4.11' does not match '0.4.10', the version of the tag; "
        "remove the field or set it to '0.4.10'",
    )


def test_without_a_tag_the_version_field_is_the_release_version() -> None:
    (release,) = parse(MINIMAL + "version: 1.3.0-rc.1\n", tag_version=None).releases
    assert release.version == "1.3.0-rc.1"


def test_without_a_tag_or_a_version_field_there_is_no_release_and_no_error() -> None:
    assert parse(MINIMAL, tag_version=None) == Parsed()


@pytest.mark.parametrize("version", ["1.0", "dev", "latest", "3", "1.2.3.4", "01.2.3"])
def test_a_version_field_that_is_not_semver_is_an_error(version: str) -> None:
    error = only_error(MINIMAL + f"version: {version}\n", tag_version=None)
    assert error.path == "version"
    assert error.line == 7
    assert f"version {version!r} is not semver" in error.message


def test_an_unquoted_float_version_gets_a_hint() -> None:
    error = only_error(MINIMAL + "version: 1.0\n", tag_version=None)
    assert error.message.endswith("(quote it in YAML)")


@pytest.mark.parametrize("identifier", ["Stardist", "-stardist", "star dist", "a" * 101, "é"])
def test_a_bad_identifier_is_a_located_error(identifier: str) -> None:
    error = only_error(MINIMAL.replace("identifier: tiny", f"identifier: '{identifier}'"))
    assert error.path == "app.identifier"
    assert (error.line, error.column) == (3, 15)
    assert error.message.startswith(f"identifier {identifier!r} must be 1-100 characters")


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/acme/stardist:0.4.10 cuda",
        "-rm",
        "Acme/Stardist:1",
        "acme/stardist:",
        "acme//stardist",
        "acme/stardist:" + "x" * 200,
        "a/" + "b" * 600,
        "",
        "acme/stardist@sha256:abc",
        "https://ghcr.io/acme/stardist",
        # Repro (issue 16, 10): what the engine refuses, accepted before.
        "sec/bb:éé",
        "[::1]:5000/x:1",
    ],
)
def test_a_bad_image_is_a_located_error(image: str) -> None:
    error = only_error(MINIMAL.replace("localhost:5000/tiny:1.0.0", repr(image)))
    assert error.path == "flavours.vanilla.image"
    assert (error.line, error.column) == (6, 12)
    assert "is not a valid image reference" in error.message


@pytest.mark.parametrize("port", ["99999999999999999999", "0", "65536"])
def test_a_registry_port_out_of_range_is_a_located_error(port: str) -> None:
    error = only_error(MINIMAL.replace("localhost:5000", f"localhost:{port}"))
    assert error.path == "flavours.vanilla.image"
    assert "the registry's port must be 1 to 65535" in error.message


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "library/busybox:1.36",
        "localhost:5000/port-examples/stardist:0.4.10-cpu",
        "ghcr.io/acme/stardist:0.4.10-cuda",
        "registry.example.org:443/a/b/c:v1_2.3",
        "acme/stardist@sha256:" + "a" * 64,
        "acme/stardist:1.0@sha256:" + "0" * 64,
        "jhnnsrs/stdlib:0-3-10-vanilla",
        "my__app.name-x/y",
    ],
)
def test_sane_image_references_are_accepted(image: str) -> None:
    text = MINIMAL.replace("localhost:5000/tiny:1.0.0", f"'{image}'")
    assert parse(text).releases[0].flavours[0].image == image


def test_flavours_must_not_be_empty() -> None:
    error = only_error(MINIMAL.split("flavours:")[0] + "flavours: {}\n")
    assert (error.path, error.line) == ("flavours", 4)
    assert error.message == "must not be empty (at least 1 item)"


def test_a_bad_flavour_name_points_at_the_key() -> None:
    error = only_error(MINIMAL.replace("  vanilla:", "  Vanilla Cuda:"))
    assert error.path == 'flavours["Vanilla Cuda"]'
    assert (error.line, error.column) == (5, 3)
    assert error.message.startswith("flavour name 'Vanilla Cuda' must be 1-63 characters")


def test_unknown_keys_are_errors_with_a_suggestion() -> None:
    error = only_error(MINIMAL.replace("  identifier: tiny", "  identifier: tiny\n  nmae: Tiny"))
    assert (error.path, error.line, error.column) == ("app.nmae", 4, 3)
    assert error.message.startswith("unknown field 'nmae'; did you mean 'name'? (allowed: ")


def test_camel_case_is_only_accepted_where_the_format_says_so() -> None:
    missing, unknown = parse(MINIMAL.replace("apiVersion", "api_version")).errors
    assert (missing.path, missing.line) == ("apiVersion", 1)
    assert missing.message == "missing 'apiVersion: port/v1' at the top level"
    assert (unknown.path, unknown.line) == ("api_version", 1)
    assert unknown.message.startswith("unknown field 'api_version'; did you mean 'apiVersion'?")
    parsed = parse(MINIMAL.replace("    image:", "    Image:"))
    assert [e.path for e in parsed.errors] == ["flavours.vanilla.image", "flavours.vanilla.Image"]


def test_a_wrong_api_version_says_what_is_expected() -> None:
    error = only_error(MINIMAL.replace("port/v1", "port/v2"))
    assert (error.path, error.line, error.column) == ("apiVersion", 1, 13)
    assert error.message == "expected 'port/v1', got string 'port/v2'"


def test_missing_fields_point_at_the_nearest_parent() -> None:
    text = "apiVersion: port/v1\napp:\n  name: X\nflavours:\n  cpu:\n    selectors: []\n"
    errors = parse(text).errors
    assert [(e.path, e.line, e.message) for e in errors] == [
        ("app.identifier", 2, "missing required field 'identifier'"),
        ("flavours.cpu.image", 5, "missing required field 'image'"),
    ]


def test_selector_errors_are_located_and_spelled_as_written() -> None:
    text = (
        MINIMAL
        + "    selectors:\n"
        + "      - {kind: cuda, cudaVersion: [11], cudaCorez: 3}\n"
        + "      - {type: gpu}\n"
        + "      - kind: label\n"
    )
    errors = parse(text).errors
    assert [(e.path, e.line, e.column, e.message) for e in errors] == [
        ("flavours.vanilla.selectors[0].cudaVersion", 8, 35, "must be a string, got a list"),
        (
            "flavours.vanilla.selectors[0].cudaCorez",
            8,
            41,
            "unknown field 'cudaCorez' for a cuda selector; did you mean 'cuda_cores'? "
            "(allowed: required, weight, min_version, compute_capability, cuda_cores, memory, "
            "count, architecture, frequency)",
        ),
        (
            "flavours.vanilla.selectors[1]",
            9,
            9,
            "unknown selector kind 'gpu'; expected one of 'cpu', 'ram', 'cuda', 'rocm', 'oneapi', "
            "'label'",
        ),
        ("flavours.vanilla.selectors[2].key", 10, 9, "missing required field 'key'"),
    ]


def test_arkitekt_selector_spellings_are_accepted_in_port_yaml() -> None:
    text = MINIMAL + "    selectors: [{type: cuda, cudaVersion: 12, cudaCores: '4096'}]\n"
    (flavour,) = parse(text).releases[0].flavours
    assert flavour.selectors == (CudaSelector(min_version="12", cuda_cores=4096),)


@pytest.mark.parametrize(
    ("memory", "size"),
    [
        ("8g", 8 * 1024**3),
        ("512m", 512 * 1024**2),
        ("512M", 512 * 1024**2),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("6144kb", 6 * 1024**2),  # the engine's least
        ("1t", 1024**4),
        ("6291456", 6 * 1024**2),
        (17179869184, 17179869184),
    ],
)
def test_memory_sizes(memory: object, size: int) -> None:
    text = MINIMAL + f"    resources: {{cpus: 0.5, memory: {memory}}}\n"
    resources = parse(text).releases[0].flavours[0].resources
    assert resources == Resources(cpus=0.5, memory=size)


@pytest.mark.parametrize(
    ("resources", "path", "message"),
    [
        ("{memory: lots}", "memory", "memory 'lots' must be a size like '8g', '512m'"),
        ("{memory: 0}", "memory", "memory 0 is less than 6 MiB"),
        ("{memory: 1}", "memory", "memory 1 is less than 6 MiB, the least the engine gives"),
        ("{memory: 64kb}", "memory", "memory '64kb' is less than 6 MiB"),
        (
            "{memory: 9223372036854775808}",
            "memory",
            "memory 9223372036854775808 is more than 1 PiB",
        ),
        ("{memory: 99999999999t}", "memory", "memory '99999999999t' is more than 1 PiB"),
        ("{memory: true}", "memory", "memory must be a size"),
        ("{cpus: 0}", "cpus", "input should be greater than 0, got number 0"),
        ("{cpus: many}", "cpus", "must be a number, got string 'many'"),
        ("{gpus: 1}", "gpus", "unknown field 'gpus'; did you mean 'cpus'?"),
    ],
)
def test_bad_resources(resources: str, path: str, message: str) -> None:
    error = only_error(MINIMAL + f"    resources: {resources}\n")
    assert error.path == f"flavours.vanilla.resources.{path}"
    assert error.line == 7
    assert error.message.startswith(message)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("logo", "http://example.org/logo.png", "logo URL 'http://example.org/logo.png' must be"),
        ("logo", "/etc/passwd", "logo '/etc/passwd' must be a path relative"),
        ("logo", "../outside.png", "logo '../outside.png' must be a path relative"),
        ("homepage", "ftp://example.org", "'ftp://example.org' is not an http:// or https:// URL"),
        ("homepage", "example.org", "'example.org' is not an http:// or https:// URL"),
        ("categories", "segmentation", "must be a list, got string"),
        ("requirements", "[{key: mikro}]", "missing required field 'service'"),
    ],
)
def test_bad_app_fields(field: str, value: str, message: str) -> None:
    text = MINIMAL.replace("  identifier: tiny", f"  identifier: tiny\n  {field}: {value}")
    error = only_error(text)
    assert error.path.startswith(f"app.{field}")
    assert error.line == 4
    assert error.message.startswith(message)


def test_good_logos() -> None:
    for logo in ("docs/logo.png", "https://example.org/logo.svg", "assets/my logo.png"):
        text = MINIMAL.replace("  identifier: tiny", f"  identifier: tiny\n  logo: {logo}")
        assert parse(text).releases[0].app.logo == logo


def test_errors_come_in_file_order() -> None:
    text = (
        "apiVersion: port/v1\n"
        "flavours:\n"
        "  cpu:\n"
        "    image: 'bad image'\n"
        "app:\n"
        "  identifier: Bad\n"
        "extra: 1\n"
    )
    assert [error.line for error in parse(text).errors] == [4, 6, 7]


def test_yaml_problems_become_errors_of_the_file() -> None:
    error = only_error("apiVersion: port/v1\napp: [\n")
    assert (error.file, error.ref, error.path) == ("port.yaml", "v0.4.10", "")
    assert error.line == 3
    assert error.message.startswith("YAML syntax error")
    assert only_error("- a list\n").message.startswith("the top level must be a mapping")


def test_a_key_that_is_not_a_string_is_an_error() -> None:
    error = only_error(MINIMAL + "1: one\n")
    assert (error.path, error.line) == ("[1]", 7)
    assert error.message == "keys must be strings, got number 1"


def test_a_flavour_says_what_its_image_supports() -> None:
    parsed = parse(MINIMAL + "    sandbox: {read_only: true, non_root: true}\n")
    [release] = parsed.releases
    assert release.flavours[0].sandbox == Sandbox(read_only=True, non_root=True)
    assert parse(MINIMAL).releases[0].flavours[0].sandbox == Sandbox()


@pytest.mark.parametrize(
    ("sandbox", "path", "message"),
    [
        ("{read_only: maybe}", "read_only", "must be true or false"),
        ("{rootless: true}", "rootless", "unknown field 'rootless'"),
    ],
)
def test_bad_sandbox(sandbox: str, path: str, message: str) -> None:
    error = only_error(MINIMAL + f"    sandbox: {sandbox}\n")
    assert error.path == f"flavours.vanilla.sandbox.{path}"
    assert error.line == 7
    assert message in error.message


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("name", "\\e[31mRed\\e[0m", "U+001B"),
        ("name", "good\\u202etxt.exe", "U+202E"),
        ("name", "two\\nlines", None),
        ("author", "\\0", "U+0000"),
        ("description", "fine\\nlines\\tand tabs, but \\x9b", "U+009B"),
    ],
)
def test_text_people_read_holds_no_control_characters(
    field: str, value: str, code: str | None
) -> None:
    """Repro (issue 16, 8): names with NUL, ESC and U+202E were accepted."""
    error = only_error(
        MINIMAL.replace("identifier: tiny", f'identifier: tiny\n  {field}: "{value}"')
    )
    assert error.path == f"app.{field}"
    assert error.line == 4
    assert (f"holds the control character {code}" if code else "one line") in error.message


def test_a_description_keeps_its_lines() -> None:
    parsed = parse(MINIMAL.replace("identifier: tiny", 'identifier: tiny\n  description: "a\\nb"'))
    assert parsed.releases[0].app.description == "a\nb"


def test_a_release_has_at_most_64_flavours() -> None:
    """Repro (issue 16, 3): a release of 5,000 flavours made one anonymous query return
    500,000 objects. Now a release holds 64 at most, a located error beyond."""
    flavours = "".join(f"  f{n}: {{image: 'localhost:5000/tiny:{n}'}}\n" for n in range(65))
    error = only_error(MINIMAL.split("flavours:")[0] + "flavours:\n" + flavours)
    assert error.path == "flavours"
    assert "at most 64" in error.message
    kept = MINIMAL.split("flavours:")[0] + "flavours:\n" + flavours.rsplit("  f64", 1)[0]
    assert len(parse(kept).releases[0].flavours) == 64
