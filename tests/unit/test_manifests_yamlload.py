"""Safe YAML loading: limits, refusals and lazy positions."""

from __future__ import annotations

import pytest

from manifests.bounds import MAX_DEPTH
from manifests.errors import ManifestError
from manifests.yamlload import YamlLoadError, format_path, load_yaml

DOC = """\
apiVersion: port/v1
app:
  identifier: stardist
flavours:
  cuda:
    image: ghcr.io/acme/stardist:1.0.0
    selectors:
      - {kind: cuda, cudaVersion: "11.8"}
      - kind: cpu
        min_count: 2
"""


def refused(data: bytes | str, **limits: int) -> ManifestError:
    with pytest.raises(YamlLoadError) as caught:
        load_yaml(data, file="port.yaml", ref="v1.0.0", **limits)
    error = caught.value.error
    assert error.file == "port.yaml"
    assert error.ref == "v1.0.0"
    assert error.message
    return error


def test_loads_a_mapping_without_composing_nodes() -> None:
    loaded = load_yaml(DOC, file="port.yaml", ref=None)
    assert loaded.data["app"] == {"identifier": "stardist"}
    assert loaded._root is None  # positions are only computed when an error needs them


def test_bytes_and_str_load_the_same() -> None:
    as_bytes = load_yaml(DOC.encode(), file="f", ref=None)
    as_text = load_yaml(DOC, file="f", ref=None)
    assert as_bytes.data == as_text.data


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    assert load_yaml(b"\xef\xbb\xbfa: 1\n", file="f", ref=None).data == {"a": 1}


def test_locate_values_keys_and_sequence_items() -> None:
    loaded = load_yaml(DOC, file="port.yaml", ref=None)
    assert loaded.locate(("app", "identifier"))[:2] == (3, 15)
    assert loaded.locate(("app", "identifier"), key=True)[:2] == (3, 3)
    item = loaded.locate(("flavours", "cuda", "selectors", 1))
    assert (item.line, item.column, item.found) == (9, 9, True)
    assert loaded.locate(("flavours", "cuda", "selectors", 1, "min_count"))[:2] == (10, 20)


def test_locating_a_missing_field_points_at_the_nearest_parent_key() -> None:
    loaded = load_yaml(DOC, file="port.yaml", ref=None)
    where = loaded.locate(("app", "name"))
    assert (where.line, where.column, where.path, where.found) == (2, 1, ("app",), False)
    inside_item = loaded.locate(("flavours", "cuda", "selectors", 1, "weight"))
    assert (inside_item.line, inside_item.found) == (9, False)
    assert loaded.locate(("nope",))[:2] == (1, 1)


def test_locate_can_match_renamed_keys_and_reports_their_spelling() -> None:
    loaded = load_yaml(DOC, file="port.yaml", ref="v1")

    def renamed(written: str, wanted: str) -> bool:
        return (written, wanted) == ("cudaVersion", "min_version")

    path = ("flavours", "cuda", "selectors", 0, "min_version")
    assert not loaded.locate(path).found
    error = loaded.error(path, "bad", same_key=renamed)
    assert error == ManifestError(
        file="port.yaml",
        ref="v1",
        line=8,
        column=35,
        path="flavours.cuda.selectors[0].cudaVersion",
        message="bad",
    )


def test_format_path_quotes_keys_that_are_not_plain() -> None:
    assert format_path(("flavours", "cuda", "selectors", 0, "kind")) == (
        "flavours.cuda.selectors[0].kind"
    )
    assert format_path(("flavours", "gpu.v2", "image")) == 'flavours["gpu.v2"].image'
    assert format_path(()) == ""


def test_a_syntax_error_carries_the_problem_line_and_column() -> None:
    error = refused("a: 1\nb: [1, 2\nc: 3\n")
    assert (error.line, error.column) == (3, 2)
    assert error.message.startswith("YAML syntax error: did not find expected ','")
    assert str(error).startswith("port.yaml@v1.0.0:3:2: YAML syntax error")


def test_tabs_for_indentation_are_a_located_syntax_error() -> None:
    error = refused("a:\n\tb: 1\n")
    assert error.line == 2
    assert "cannot start any token" in error.message


def test_files_over_the_size_limit_are_refused() -> None:
    error = refused(b"a: 1\n" * 100, max_bytes=64)
    assert error.message == "the file is 500 bytes, more than the limit of 64 bytes"
    assert error.line is None


def test_the_default_size_limit_is_two_megabytes() -> None:
    big = b"a: '" + b"x" * (2 * 1024 * 1024) + b"'\n"
    assert "more than the limit of 2097152 bytes" in refused(big).message


def test_text_that_is_not_utf8_is_refused_with_its_position() -> None:
    error = refused(b"a: 1\nb: caf\xe9\n")
    assert error.message == "the file is not UTF-8 text (byte 0xe9 at offset 11)"
    assert (error.line, error.column) == (2, 7)


def test_utf16_is_not_utf8() -> None:
    assert "not UTF-8" in refused("a: 1\n".encode("utf-16")).message


def test_several_documents_are_refused() -> None:
    error = refused("a: 1\n---\nb: 2\n")
    assert error.message.startswith("the file holds more than one YAML document")
    assert error.line == 2


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("- 1\n- 2\n", "a list"),
        ("just text\n", "a string"),
        ("42\n", "a number"),
        ("", "an empty document"),
        ("# only a comment\n", "an empty document"),
    ],
)
def test_the_top_level_must_be_a_mapping(text: str, found: str) -> None:
    error = refused(text)
    assert error.message == f"the top level must be a mapping (key: value lines), found {found}"
    assert error.line == 1


def test_billion_laughs_is_refused_and_located() -> None:
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        refs = ", ".join([f"*lol{level - 1}"] * 9)
        lines.append(f"lol{level}: &lol{level} [{refs}]")
    error = refused("\n".join(lines) + "\n")
    assert "aliases expand the YAML to more than" in error.message
    assert error.line == 2  # the first alias


def test_too_many_aliases_are_refused_at_the_first_one_over_the_limit() -> None:
    text = "base: &b {x: 1}\n" + "".join(f"k{i}: *b\n" for i in range(20))
    error = refused(text, max_aliases=5)
    assert error.message == "the YAML uses more than 5 aliases (*anchor)"
    assert error.line == 7


def test_a_few_aliases_are_fine() -> None:
    loaded = load_yaml("base: &b {x: 1}\none: *b\ntwo: *b\n", file="f", ref=None)
    assert loaded.data["two"] == {"x": 1}


def test_a_recursive_alias_is_refused() -> None:
    error = refused("name: x\nloop: &a [1, *a]\n")
    assert "contains itself through an alias" in error.message
    assert error.line == 2


def test_nesting_deeper_than_the_limit_is_refused_and_located() -> None:
    depth = MAX_DEPTH + 5
    error = refused("a: " + "[" * depth + "]" * depth + "\n")
    assert error.message == f"the YAML nests deeper than {MAX_DEPTH} levels"
    assert (error.line, error.column) == (1, MAX_DEPTH + 3)


def test_nesting_beyond_libyaml_limits_is_refused_too() -> None:
    error = refused("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert error.message == "the YAML nests too deeply"
    assert error.line == 1


def test_python_tags_are_refused() -> None:
    error = refused("a: !!python/object/apply:os.system [echo hi]\n")
    assert "could not determine a constructor" in error.message
    assert error.message.endswith("only plain YAML data is accepted")
    assert error.line == 1


def test_control_characters_are_refused() -> None:
    error = refused("a: b\x07\n")
    assert error.message == "YAML: control characters are not allowed (U+0007)"
    assert (error.line, error.column) == (1, 5)


def test_an_impossible_timestamp_is_an_error_not_a_crash() -> None:
    assert "month must be in 1..12" in refused("built: 2024-13-45\n").message


def test_depth_is_checked_through_aliases_too() -> None:
    # an anchor anywhere switches to the alias-aware walk; the depth rule still holds
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    error = refused(f"base: &b {deep}\nuse: *b\n")
    assert error.message == f"the YAML nests deeper than {MAX_DEPTH} levels"
    assert error.line == 1
    assert load_yaml("company: R&D\n", file="f", ref=None).data == {"company": "R&D"}
