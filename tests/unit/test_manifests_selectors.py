"""Selectors: every known spelling normalised to Port's, strict validation, stored JSON."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from manifests.selectors import (
    SELECTOR_KINDS,
    CpuSelector,
    CudaSelector,
    LabelSelector,
    OneApiSelector,
    RamSelector,
    RocmSelector,
    normalise_selector,
    same_key,
    snake_case,
    stored_form,
    validate_selector,
)


def dumped(raw: Any) -> dict[str, Any]:
    """The stored form; the cached one is the serialiser's, twice in a row."""
    selector = validate_selector(raw)
    stored = stored_form(selector)
    assert stored == stored_form(selector) == selector.model_dump(mode="json")
    return stored


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        # arkitekt 0.4 CLI (e.g. jhnnsrs/beta): `type:`, snake_case, Arkitekt names
        (
            {"compute_capability": "3.5", "cuda_version": "10.2", "required": True, "type": "cuda"},
            {
                "kind": "cuda",
                "required": True,
                "weight": 1,
                "min_version": "10.2",
                "compute_capability": "3.5",
            },
        ),
        # arkitekt_next app_images (e.g. jhnnsrs/starmist): camelCase
        (
            {"cudaCores": 1000, "cudaVersion": "5", "kind": "cuda"},
            {"kind": "cuda", "required": True, "weight": 1, "min_version": "5", "cuda_cores": 1000},
        ),
        # alexschroeter/tensorflow-test: rocm with a GPU count as `min`
        (
            {"min": 1, "required": True, "kind": "rocm"},
            {"kind": "rocm", "required": True, "weight": 1, "count": 1},
        ),
        (
            {"kind": "rocm", "apiVersion": "6.0"},
            {"kind": "rocm", "required": True, "weight": 1, "min_version": "6.0"},
        ),
        (
            {"type": "cpu", "min": 4, "frequency": 2400},
            {"kind": "cpu", "required": True, "weight": 1, "min_count": 4, "frequency": 2400},
        ),
        (
            {"kind": "cpu", "minCount": "2"},
            {"kind": "cpu", "required": True, "weight": 1, "min_count": 2},
        ),
        (
            {"type": "ram", "min": "4096"},
            {"kind": "ram", "required": True, "weight": 1, "min": 4096},
        ),
        (
            {"kind": "cuda", "minVersion": 11.8, "computeCapability": 8.6, "memory": "24576"},
            {
                "kind": "cuda",
                "required": True,
                "weight": 1,
                "min_version": "11.8",
                "compute_capability": "8.6",
                "memory": 24576,
            },
        ),
        (
            {"kind": "label", "key": "zone", "value": "lab-2", "required": "false", "weight": "5"},
            {"kind": "label", "required": False, "weight": 5, "key": "zone", "value": "lab-2"},
        ),
        (
            {"kind": "label", "key": "display"},
            {"kind": "label", "required": True, "weight": 1, "key": "display"},
        ),
        ({"kind": " CUDA "}, {"kind": "cuda", "required": True, "weight": 1}),
    ],
)
def test_every_known_spelling_gives_the_canonical_stored_dict(
    raw: dict[str, Any], stored: dict[str, Any]
) -> None:
    assert dumped(raw) == stored


def test_integers_beyond_32_bits_survive_up_to_their_bounds() -> None:
    """Repro (issue 16, 5): numbers were unbounded; 2**50 is the most memory now, and
    beyond a bound a number is a located error, never a stored one."""
    most = 1 << 50
    assert dumped({"kind": "ram", "min": most})["min"] == most
    assert dumped({"kind": "cuda", "memory": str(most)})["memory"] == most
    assert errors_of({"kind": "ram", "min": most + 1})[0][:2] == (("ram", "min"), "less_than_equal")
    assert errors_of({"kind": "cuda", "cudaCores": 2**63 + 1})[0][1] == "less_than_equal"
    assert errors_of({"kind": "cpu", "min_count": 10**7})[0][1] == "less_than_equal"
    assert errors_of({"kind": "cpu", "weight": 2**40})[0][1] == "less_than_equal"


def test_the_stored_dict_validates_back_to_the_same_selector() -> None:
    selector = validate_selector({"type": "cuda", "cudaVersion": "12", "required": False})
    assert validate_selector(selector.model_dump(mode="json")) == selector
    assert validate_selector(selector) == selector


def test_the_stored_form_is_a_fresh_dict_each_time() -> None:
    selector = validate_selector({"kind": "cpu", "min_count": 2})
    stored_form(selector)["min_count"] = 99  # a caller's change stays its own
    assert stored_form(selector)["min_count"] == 2
    assert stored_form(RamSelector(min=1)) != stored_form(RamSelector(min=1, required=False))


def test_selectors_are_frozen_and_hashable() -> None:
    first = validate_selector({"kind": "cpu", "min_count": 2})
    second = CpuSelector(min_count=2)
    assert first == second
    assert len({first, second}) == 1
    with pytest.raises(ValidationError):
        first.min_count = 3  # type: ignore[misc]


def test_kinds_map_to_their_models() -> None:
    expected = {
        "cpu": CpuSelector,
        "ram": RamSelector,
        "cuda": CudaSelector,
        "rocm": RocmSelector,
        "oneapi": OneApiSelector,
        "label": LabelSelector,
    }
    assert expected == SELECTOR_KINDS


def errors_of(raw: Any) -> list[tuple[tuple[Any, ...], str, str]]:
    with pytest.raises(ValidationError) as caught:
        validate_selector(raw)
    return [(e["loc"], e["type"], e["msg"]) for e in caught.value.errors()]


def test_unknown_keys_are_errors() -> None:
    assert errors_of({"kind": "cuda", "cudaCorez": 3}) == [
        (("cuda", "cuda_corez"), "extra_forbidden", "Extra inputs are not permitted")
    ]


def test_arkitekt_names_that_do_not_belong_to_the_kind_stay_unknown() -> None:
    # `min` means cores for cpu and GPUs for rocm, but nothing for cuda
    assert errors_of({"kind": "cuda", "min": 1})[0][:2] == (("cuda", "min"), "extra_forbidden")


def test_unknown_kinds_and_missing_kinds_are_errors() -> None:
    assert errors_of({"kind": "opencl"})[0][1] == "union_tag_invalid"
    assert errors_of({"min": 1})[0][1] == "union_tag_not_found"


def test_a_ram_selector_may_leave_its_minimum_out() -> None:
    # arkitekt-spec's RamSelector: `min` is optional; such a selector holds everywhere.
    assert dumped({"kind": "ram"}) == {"kind": "ram", "required": True, "weight": 1}


def test_a_label_selector_needs_its_key() -> None:
    assert errors_of({"kind": "label"}) == [(("label", "key"), "missing", "Field required")]


def test_a_clock_keeps_its_fraction_and_a_whole_one_stays_whole() -> None:
    assert dumped({"kind": "cpu", "frequency": 2400.5})["frequency"] == 2400.5
    written_as_float = dumped({"kind": "cpu", "frequency": 2400.0})["frequency"]
    assert (written_as_float, type(written_as_float)) == (2400.0, float)
    # Equal to the float above, so the stored-form cache must tell them apart by type.
    whole = dumped({"kind": "cpu", "frequency": 2400})["frequency"]
    assert (whole, type(whole)) == (2400, int)


def test_oneapi_selectors_take_the_spec_spelling() -> None:
    assert dumped({"kind": "oneapi", "oneapiVersion": "2024.1"}) == {
        "kind": "oneapi",
        "required": True,
        "weight": 1,
        "min_version": "2024.1",
    }


def test_wrong_values_are_errors() -> None:
    assert errors_of({"kind": "cpu", "min_count": "two"})[0][:2] == (
        ("cpu", "min_count"),
        "int_parsing",
    )
    assert errors_of({"kind": "cpu", "min_count": -1})[0][1] == "greater_than_equal"
    assert errors_of({"kind": "cuda", "min_version": [11]})[0][1] == "string_type"
    assert errors_of({"kind": "label", "key": ""})[0][1] == "string_too_short"


def test_the_same_field_twice_is_an_error_naming_both_spellings() -> None:
    (error,) = errors_of({"kind": "cuda", "cudaVersion": "11", "min_version": "12"})
    assert error[1] == "value_error"
    assert "gives both 'cudaVersion' and 'min_version'" in error[2]
    (error,) = errors_of({"kind": "cuda", "type": "cuda"})
    assert "gives 'kind' twice (as 'kind' and 'type')" in error[2]


def test_a_selector_must_be_a_mapping() -> None:
    (error,) = errors_of(["cuda"])
    assert error[1] == "value_error"
    assert "a selector must be a mapping" in error[2]


def test_normalise_selector_renames_without_validating() -> None:
    assert normalise_selector({"type": "CPU", "min": "2", "someThing": 1, 3: "x"}) == {
        "kind": "cpu",
        "min_count": "2",
        "some_thing": 1,
        3: "x",
    }
    with pytest.raises(ValueError, match="must be a mapping"):
        normalise_selector("cuda")


def test_snake_case_and_same_key() -> None:
    assert snake_case("cudaVersion") == "cuda_version"
    assert snake_case("computeCapability") == "compute_capability"
    assert snake_case("min-count") == "min_count"
    assert same_key("cudaVersion", "min_version")
    assert same_key("apiVersion", "min_version")
    assert same_key("type", "kind")
    assert same_key("min", "min_count")
    assert not same_key("memory", "min_version")
