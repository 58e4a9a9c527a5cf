"""Arkitekt deployments.yaml in every shape seen in real repositories.

The fixtures are written after real files (arkitektio-apps/stdlib, arkitektio-apps/omero,
arkitektio-apps/kare, alexschroeter/tensorflow-test, jhnnsrs/starmist, arkitektio-apps/ome)
with shortened metadata; the big ``inspection`` blocks are generated here.
"""

from __future__ import annotations

import functools
import textwrap
from typing import Any

import pytest
import yaml

from manifests.arkitekt import parse_arkitekt_deployments
from manifests.errors import ManifestError
from manifests.selectors import CpuSelector, CudaSelector, RocmSelector
from manifests.specs import FlavourSpec, Parsed, Requirement

INSPECTION_BYTES = 150 * 1024
SEARCH_QUERY = (
    "query SearchImages($search: String, $values: [ID!]) {\n  options: images(\n"
    "    filters: {name: {contains: $search}, ids: $values}\n    pagination: {limit: 10}\n"
    "  ) {\n    value: id\n    label: name\n  }\n}"
)


def port(key: str, kind: str = "STRUCTURE") -> dict[str, Any]:
    return {
        "assignWidget": {"kind": "SEARCH", "query": SEARCH_QUERY, "ward": "mikro"},
        "description": f"The {key} to work on, as the rekuest definition describes it.",
        "effects": [],
        "identifier": "@mikro/image",
        "key": key,
        "kind": kind,
        "nullable": False,
        "scope": "GLOBAL",
        "validators": [],
    }


def template(n: int) -> dict[str, Any]:
    """One function's definition, shaped like arkitekt_next's inspection templates."""
    return {
        "definition": {
            "args": [port("image"), port("mask"), port("labels", "INT")],
            "collections": ["segmentation", "prediction"],
            "description": f"Function {n}: segments cells with a pretrained model.",
            "interfaces": [],
            "isDev": False,
            "isTestFor": [],
            "kind": "FUNCTION",
            "name": f"Segment {n}",
            "portGroups": [],
            "returns": [port("return0")],
            "stateful": False,
        },
        "dependencies": [],
        "dynamic": False,
        "interface": f"segment_{n}",
    }


def inspection(size: int, requirements: Any) -> dict[str, Any]:
    """An inspection like arkitekt_next writes it, grown to about 150 KB of YAML."""
    count = INSPECTION_BYTES // len(dump({"templates": [template(0)]})) + 1
    return {
        "requirements": requirements,
        "size": size,
        "templates": [template(n) for n in range(count)],
    }


def dump(value: Any) -> str:
    return yaml.dump(value, Dumper=yaml.CSafeDumper, sort_keys=True)


@functools.cache
def inspection_block(size: int, requirements: str) -> str:
    """The ``inspection:`` field of an entry; ``requirements`` names a style."""
    styles: dict[str, Any] = {
        "mapping": {
            "lok": {"description": "Lok", "optional": False, "service": "live.arkitekt.lok"},
            "mikro": {"description": "Mikro", "optional": True, "service": "live.arkitekt.mikro"},
        },
        "list": [
            {"description": "Lok", "key": "lok", "optional": False, "service": "live.arkitekt.lok"},
            {
                "description": "Mikro",
                "key": "mikro",
                "optional": True,
                "service": "live.arkitekt.mikro",
            },
        ],
    }
    return textwrap.indent(dump({"inspection": inspection(size, styles[requirements])}), "  ")


def parse(text: str, file: str = ".arkitekt/deployments.yaml") -> Parsed:
    return parse_arkitekt_deployments(text, file=file, ref="main")


def line_of(text: str, needle: str, nth: int = 0) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[nth]


def summary(parsed: Parsed) -> list[tuple[str, str, list[tuple[str, str]]]]:
    return [
        (r.app.identifier, r.version, [(f.name, f.image) for f in r.flavours])
        for r in parsed.releases
    ]


# arkitekt 0.4 (arkitektio-apps/stdlib): identity flat on the item, oldest first
FLAT = """\
deployments:
- author: jhnnsrs
  command: arkitekt run port
  created_at: '2023-04-11T15:35:45.540213'
  definitions: []
  entrypoint: app
  identifier: stdlib
  image: jhnnsrs/stdlib:dev
  requirements: []
  scopes:
  - read
  version: dev
- author: jhnnsrs
  command: arkitekt run port
  created_at: '2023-04-18T12:10:21.713343'
  definitions: []
  entrypoint: app
  identifier: stdlib
  image: jhnnsrs/stdlib:0.0.1
  requirements:
  - gpu
  scopes:
  - read
  version: 0.0.1
- author: jhnnsrs
  identifier: stdlib
  image: jhnnsrs/stdlib:0.0.2
  scopes: [read]
  version: 0.0.2
latest_deployment: '2023-05-02T14:37:22.412978'
"""

# arkitektio-apps/omero: no `image`, the image under `deployed.docker`; tag-like versions
DEPLOYED = """\
deployments:
- builder: arkitekt.builder.port
  definitions: []
  deployed:
    docker: jhnnsrs/omero:latest
    runtime: standard
  deployer: arkitekt.deployers.port.dockerbuild
  identifier: omero
  scopes:
  - read
  version: latest
- deployed:
    docker: jhnnsrs/omero:beta2
  identifier: omero
  version: beta2
- deployed:
    docker: jhnnsrs/omero:10
  identifier: omero
  version: '10'
- deployed:
    docker: jhnnsrs/omero:3
  identifier: omero
  version: 3
- deployed:
    docker: jhnnsrs/omero:0.1.0
    runtime: standard
  identifier: omero
  version: v0.1.0
latest_deployment: '2023-03-21T09:19:02.443002'
"""


def manifest_deployments() -> str:
    """alexschroeter/tensorflow-test: `manifest:` blocks, flavours, inspections."""
    entries = []
    for flavour, version, selectors in [
        ("intel", "0.0.1", "  selectors: []\n"),
        ("rocm", "0.0.1", "  selectors:\n  - min: 1\n    required: true\n    kind: rocm\n"),
        (
            "cuda",
            "0.0.1",
            "  selectors:\n  - compute_capability: '3.5'\n    cuda_version: '10.2'\n"
            "    required: true\n    type: cuda\n",
        ),
        ("cuda", "0.0.2", "  selectors:\n  - {kind: cuda, cudaCores: 1000, cudaVersion: '11'}\n"),
    ]:
        entries.append(
            "- build_id: 500c9c9c-15ca-4725-8cb8-03639319ac13\n"
            "  deployed_at: '2024-10-23T12:22:26.570888'\n"
            "  deployment_run: d3b467c5-9301-4d23-8c30-c55913b7a582\n"
            f"  flavour: {flavour}\n"
            f"  image: alexanderschroeter/tensorflow-test:{version}-{flavour}\n"
            + inspection_block(37_076_681_653, "mapping")
            + "  manifest:\n"
            "    author: Alexander Wilhelmi\n"
            "    created_at: '2024-10-23T12:21:20.567859'\n"
            "    entrypoint: app\n"
            "    identifier: tensorflow-test\n"
            "    scopes:\n"
            "    - read\n"
            f"    version: {version}\n" + selectors
        )
    return "deployments:\n" + "".join(entries) + "latest_deployment_run: 9c0c0b25\n"


def app_images() -> str:
    """jhnnsrs/starmist and arkitektio-apps/ome: kabinet `app_images`."""
    entries = []
    for n, version in enumerate(["0.0.1", "0.0.2", "dev", "0.0.3"]):
        entries.append(
            f"- appImageId: f9f6d8a2d8f0422789cac7c3178ca3{n:02d}\n"
            "  flavourName: vanilla\n"
            "  image:\n"
            "    buildAt: '2024-10-29T09:44:19.422773'\n"
            f"    imageString: jhnnsrs/starmist:{version}-vanilla\n"
            + inspection_block(8_453_014_780 + n, "list")
            + "  manifest:\n"
            "    author: jhnnsrs\n"
            "    entrypoint: app\n"
            "    identifier: starmist\n"
            "    scopes:\n"
            "    - read\n"
            f"    version: {version}\n"
            "  selectors:\n"
            "  - cudaCores: 1000\n"
            "    cudaVersion: '5'\n"
            "    kind: cuda\n"
        )
    return (
        "app_images:\n" + "".join(entries) + "latest_app_image: f9f6d8a2d8f0422789cac7c3178ca303\n"
    )


def test_the_generated_inspections_are_as_big_as_real_ones() -> None:
    assert len(inspection_block(1, "list")) >= INSPECTION_BYTES
    assert len(app_images()) > 4 * INSPECTION_BYTES


def test_flat_entries() -> None:
    parsed = parse(FLAT)
    assert summary(parsed) == [
        ("stdlib", "0.0.1", [("vanilla", "jhnnsrs/stdlib:0.0.1")]),
        ("stdlib", "0.0.2", [("vanilla", "jhnnsrs/stdlib:0.0.2")]),
    ]
    release = parsed.releases[0]
    assert release.app.name == "stdlib"
    assert release.app.author == "jhnnsrs"
    assert release.app.scopes == ("read",)
    assert release.app.requirements == ()  # `- gpu` is a hardware hint, not a service
    assert release.entrypoint == "app"
    assert parsed.errors == [
        ManifestError(
            file=".arkitekt/deployments.yaml",
            ref="main",
            line=12,
            column=12,
            path="deployments[0].version",
            message="version 'dev' is not semver: expected MAJOR.MINOR.PATCH such as '1.2.3' "
            "or '1.3.0-rc.1'; this entry is skipped",
        )
    ]


def test_flat_entries_with_the_image_under_deployed_docker() -> None:
    parsed = parse(DEPLOYED)
    assert summary(parsed) == [("omero", "0.1.0", [("vanilla", "jhnnsrs/omero:0.1.0")])]
    assert [(e.path, e.line) for e in parsed.errors] == [
        ("deployments[0].version", line_of(DEPLOYED, "version: latest")),
        ("deployments[1].version", line_of(DEPLOYED, "version: beta2")),
        ("deployments[2].version", line_of(DEPLOYED, "version: '10'")),
        ("deployments[3].version", line_of(DEPLOYED, "version: 3")),
    ]
    assert parsed.errors[3].message.startswith("version '3' is not semver")
    assert "(quote it in YAML)" in parsed.errors[3].message


def test_manifest_entries_merge_flavours_of_one_release() -> None:
    text = manifest_deployments()
    parsed = parse(text, file=".arkitekt_next/deployments.yaml")
    assert parsed.errors == []
    assert summary(parsed) == [
        (
            "tensorflow-test",
            "0.0.1",
            [
                ("intel", "alexanderschroeter/tensorflow-test:0.0.1-intel"),
                ("rocm", "alexanderschroeter/tensorflow-test:0.0.1-rocm"),
                ("cuda", "alexanderschroeter/tensorflow-test:0.0.1-cuda"),
            ],
        ),
        ("tensorflow-test", "0.0.2", [("cuda", "alexanderschroeter/tensorflow-test:0.0.2-cuda")]),
    ]
    first, second = parsed.releases
    assert [f.selectors for f in first.flavours] == [
        (),
        (RocmSelector(count=1),),
        (CudaSelector(min_version="10.2", compute_capability="3.5"),),
    ]
    assert second.flavours[0].selectors == (CudaSelector(min_version="11", cuda_cores=1000),)
    # requirements come from the inspection when the manifest has none
    assert first.app.requirements == (
        Requirement(key="lok", service="live.arkitekt.lok", description="Lok"),
        Requirement(key="mikro", service="live.arkitekt.mikro", optional=True, description="Mikro"),
    )
    assert first.app.author == "Alexander Wilhelmi"


def test_app_images_with_big_inspections() -> None:
    text = app_images()
    parsed = parse(text, file=".arkitekt_next/deployments.yaml")
    assert summary(parsed) == [
        ("starmist", version, [("vanilla", f"jhnnsrs/starmist:{version}-vanilla")])
        for version in ("0.0.1", "0.0.2", "0.0.3")
    ]
    assert [(e.path, e.line) for e in parsed.errors] == [
        ("app_images[2].manifest.version", line_of(text, "version: dev")),
    ]
    release = parsed.releases[0]
    assert release.flavours[0].selectors == (CudaSelector(min_version="5", cuda_cores=1000),)
    assert [r.key for r in release.app.requirements] == ["lok", "mikro"]
    assert "inspection" not in repr(parsed)  # read for requirements only, never kept


def test_a_missing_flavour_is_vanilla_and_snake_case_app_image_keys_work() -> None:
    text = """\
app_images:
- flavour_name: null
  image: {image_string: 'jhnnsrs/ome:0.4.0-vanilla', build_at: '2025-10-26'}
  manifest: {identifier: ome, version: 0.4.0}
- image: {imageString: 'jhnnsrs/ome:0.4.0-gpu'}
  flavourName: gpu
  manifest: {identifier: ome, version: 0.4.0}
"""
    assert summary(parse(text)) == [
        (
            "ome",
            "0.4.0",
            [("vanilla", "jhnnsrs/ome:0.4.0-vanilla"), ("gpu", "jhnnsrs/ome:0.4.0-gpu")],
        )
    ]


def test_a_rebuilt_flavour_replaces_the_older_build_in_place() -> None:
    text = """\
deployments:
- {flavour: cuda, image: 'acme/app:1.0.0-cuda', manifest: {identifier: app, version: 1.0.0}}
- {flavour: cpu, image: 'acme/app:1.0.0-cpu', manifest: {identifier: app, version: 1.0.0}}
- flavour: cuda
  image: acme/app:1.0.0-cuda-rebuilt
  manifest: {identifier: app, version: 1.0.0, name: App, description: newer}
  selectors: [{kind: cuda, min_version: '12'}]
"""
    parsed = parse(text)
    assert parsed.errors == []
    (release,) = parsed.releases
    assert release.flavours == (
        FlavourSpec(
            name="cuda",
            image="acme/app:1.0.0-cuda-rebuilt",
            selectors=(CudaSelector(min_version="12"),),
        ),
        FlavourSpec(name="cpu", image="acme/app:1.0.0-cpu"),
    )
    assert (release.app.name, release.app.description) == ("App", "newer")


def test_a_bad_selector_skips_its_entry_only() -> None:
    text = """\
deployments:
- image: acme/app:1.0.0
  manifest: {identifier: app, version: 1.0.0}
  selectors:
  - {kind: cpu, min: '4', frequency: 3000}
- image: acme/app:1.0.1
  manifest: {identifier: app, version: 1.0.1}
  selectors:
  - kind: cuda
    cudaVersion: '11'
    cudaCorez: 1000
- image: acme/app:1.0.2
  manifest: {identifier: app, version: 1.0.2}
  selectors: [{kind: ram, min: 68719476736}]
"""
    parsed = parse(text)
    assert [r.version for r in parsed.releases] == ["1.0.0", "1.0.2"]
    assert parsed.releases[0].flavours[0].selectors == (CpuSelector(min_count=4, frequency=3000),)
    assert parsed.releases[1].flavours[0].selectors[0].model_dump(mode="json") == {
        "kind": "ram",
        "required": True,
        "weight": 1,
        "min": 68719476736,
    }
    (error,) = parsed.errors
    assert (error.path, error.line, error.column) == (
        "deployments[1].selectors[0].cudaCorez",
        11,
        5,
    )
    assert error.message.startswith("unknown field 'cudaCorez' for a cuda selector; did you mean")
    assert error.message.endswith("; this entry is skipped")


def test_unknown_keys_in_entries_and_manifests_are_tolerated() -> None:
    text = """\
deployments:
- image: acme/app:1.0.0
  something_new: {nested: [1, 2]}
  manifest: {identifier: app, version: 1.0.0, future_field: true, logo: null}
"""
    parsed = parse(text)
    assert parsed.errors == []
    assert parsed.releases[0].app.logo is None


@pytest.mark.parametrize(
    ("entry", "path", "message"),
    [
        ("{manifest: {identifier: app, version: 1.0.0}}", "deployments[0].image", "no image"),
        (
            "{image: {buildAt: x}, manifest: {identifier: app, version: 1.0.0}}",
            "deployments[0].image.image_string",
            "no image",
        ),
        (
            "{image: [a], manifest: {identifier: app, version: 1.0.0}}",
            "deployments[0].image",
            "the image must be a string, got a list",
        ),
        (
            "{image: 'Acme/App', manifest: {identifier: app, version: 1.0.0}}",
            "deployments[0].image",
            "image 'Acme/App' is not a valid image reference",
        ),
        (
            "{image: a/b, manifest: {version: 1.0.0}}",
            "deployments[0].manifest.identifier",
            "missing 'identifier'",
        ),
        (
            "{image: a/b, manifest: {identifier: My App, version: 1.0.0}}",
            "deployments[0].manifest.identifier",
            "identifier 'My App' must be",
        ),
        (
            "{image: a/b, manifest: {identifier: [x], version: 1.0.0}}",
            "deployments[0].manifest.identifier",
            "identifier must be a string, got a list",
        ),
        (
            "{image: a/b, manifest: {identifier: app}}",
            "deployments[0].manifest.version",
            "missing 'version'",
        ),
        (
            "{image: a/b, manifest: {identifier: app, version: 2024-01-01}}",
            "deployments[0].manifest.version",
            "a version must be a string like '1.2.3', got date",
        ),
        ("{image: a/b, manifest: [x]}", "deployments[0].manifest", "must be a mapping, got a list"),
        (
            "{image: a/b, flavour: CUDA!, manifest: {identifier: app, version: 1.0.0}}",
            "deployments[0].flavour",
            "flavour name 'CUDA!' must be",
        ),
        (
            "{image: a/b, flavourName: 3, manifest: {identifier: app, version: 1.0.0}}",
            "deployments[0].flavourName",
            "the flavour name must be a string, got number 3",
        ),
        (
            "{image: a/b, selectors: {kind: cpu}, manifest: {identifier: app, version: 1.0.0}}",
            "deployments[0].selectors",
            "selectors must be a list, got a mapping",
        ),
        (
            "just a string",
            "deployments[0]",
            "an entry must be a mapping, got string 'just a string'",
        ),
    ],
)
def test_entry_errors_are_located_and_skip_the_entry(entry: str, path: str, message: str) -> None:
    good = "{image: ok/ok, manifest: {identifier: ok, version: 0.1.0}}"
    text = f"deployments:\n- {entry}\n- {good}\n"
    parsed = parse(text)
    assert summary(parsed) == [("ok", "0.1.0", [("vanilla", "ok/ok")])]
    (error,) = parsed.errors
    assert (error.file, error.ref, error.path, error.line) == (
        ".arkitekt/deployments.yaml",
        "main",
        path,
        2,
    )
    assert error.message.startswith(message)
    assert error.message.endswith("; this entry is skipped")


@pytest.mark.parametrize(
    ("requirements", "keys"),
    [
        ("[{key: lok, service: live.arkitekt.lok}, gpu, 3, {key: x}]", ["lok"]),
        ("{lok: {service: live.arkitekt.lok, optional: true}, bad: 3}", ["lok"]),
        ("gpu", []),
    ],
)
def test_requirements_in_any_shape(requirements: str, keys: list[str]) -> None:
    text = (
        "deployments:\n- image: a/b\n"
        f"  manifest: {{identifier: app, version: 1.0.0, requirements: {requirements}}}\n"
    )
    (release,) = parse(text).releases
    assert [r.key for r in release.app.requirements] == keys


def test_file_level_problems() -> None:
    assert parse("deployments:\n") == Parsed()
    assert parse("app_images: []\nlatest_app_image: null\n") == Parsed()
    (error,) = parse("deployments: {a: 1}\n").errors
    assert (error.path, error.line, error.message) == (
        "deployments",
        1,
        "must be a list of entries, got a mapping",
    )
    (error,) = parse("builds: []\n").errors
    assert (error.path, error.line) == ("", 1)
    assert error.message.startswith("not an Arkitekt deployments file")
    (error,) = parse("deployments: [\n").errors
    assert error.message.startswith("YAML syntax error")
    assert error.file == ".arkitekt/deployments.yaml"


def test_both_lists_in_one_file_are_read() -> None:
    text = (
        "deployments: [{image: a/b:1, identifier: a, version: 1.0.0}]\n"
        "app_images: [{image: {imageString: 'a/b:2'}, manifest: {identifier: a, version: 2.0.0}}]\n"
    )
    assert [r.version for r in parse(text).releases] == ["1.0.0", "2.0.0"]


def test_a_file_over_the_size_limit_is_one_error() -> None:
    text = manifest_deployments() * 4
    assert len(text) > 2 * 1024 * 1024
    (error,) = parse(text).errors
    assert "more than the limit" in error.message


def test_informational_text_with_control_characters_is_dropped() -> None:
    """Arkitekt metadata is informational (kept when well-formed): a name or author with
    terminal escapes or bidi controls is dropped, never stored."""
    text = FLAT.replace("author: jhnnsrs", 'author: "\\e[31mjhnnsrs"').replace(
        "identifier: stdlib", 'identifier: stdlib\n  name: "std\\u202elib"'
    )
    release = parse(text).releases[0]
    assert release.app.name == "stdlib"  # the identifier stands in
    assert release.app.author is None


def test_a_release_with_more_than_64_flavours_keeps_64_and_says_so() -> None:
    entries = "".join(
        f"- {{identifier: bomb, version: 1.0.0, flavour: f{n}, image: 'a/b:{n}'}}\n"
        for n in range(66)
    )
    parsed = parse("deployments:\n" + entries)
    [release] = parsed.releases
    assert len(release.flavours) == 64
    assert [e.path for e in parsed.errors] == ["deployments[64]", "deployments[65]"]
    assert parsed.errors[0].message == "bomb 1.0.0 has more than 64 flavours; this entry is skipped"
    rebuilt = entries + "- {identifier: bomb, version: 1.0.0, flavour: f3, image: 'a/b:new'}\n"
    assert parse("deployments:\n" + rebuilt).releases[0].flavours[3].image == "a/b:new"
