"""Turn pydantic validation errors into located, readable :class:`ManifestError` s.

Pydantic's ``loc`` mixes field names with union tags (``selectors, 0, "cuda",
min_version``) and its messages speak Python ("Input should be a valid integer"). Here
the loc is walked along the model types, so tags are dropped, the model that owns an
unknown key is known (to list what is allowed), and selector keys renamed during
normalisation are found again in the file.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from manifests.errors import ManifestError
from manifests.selectors import SELECTOR_KINDS, BaseSelector, same_key
from manifests.yamlload import LoadedYaml, Path, PathPart, format_path

_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}


class _Resolved(NamedTuple):
    path: Path  # the loc without union tags and "[key]" markers
    key: bool  # the error is about a mapping key, not a value
    owner: type[BaseModel] | None  # the model holding the last path element
    in_selector: bool


def validation_errors(
    exc: ValidationError,
    loaded: LoadedYaml,
    *,
    root: Any,
    base: Path = (),
    suffix: str = "",
    kinds: Vocabulary | None = None,
) -> list[ManifestError]:
    """One located :class:`ManifestError` per pydantic error of validating ``root``.

    ``base`` is where the validated value sits in the file; ``suffix`` is appended to
    each message (the Arkitekt reader says the entry was skipped). ``kinds`` names the
    vocabulary a ``kind`` picks from (default: selectors), for its messages.
    """
    vocabulary = kinds or SELECTORS
    out = []
    for error in exc.errors(include_url=False):
        where = _resolve(root, error["loc"])
        kind = error["type"]
        point_at_key = where.key or kind in ("extra_forbidden", "invalid_key")
        matcher = same_key if where.in_selector and kind != "missing" else None
        found = loaded.locate(base + where.path, key=point_at_key, same_key=matcher)
        shown = found.path + (base + where.path)[len(found.path) :]
        written = shown[-1] if shown else ""
        out.append(
            ManifestError(
                file=loaded.file,
                ref=loaded.ref,
                line=found.line,
                column=found.column,
                path=format_path(shown),
                message=_message(error, where, written, vocabulary) + suffix,
            )
        )
    out.sort(key=lambda error: (error.line or 0, error.column or 0))  # file order
    return out


@dataclass(frozen=True)
class Vocabulary:
    """Models picked by ``kind``, as messages name them: "selector", "capability"."""

    word: str
    kinds: tuple[str, ...]


SELECTORS = Vocabulary("selector", tuple(SELECTOR_KINDS))


def describe(value: object) -> str:
    """A short description of a YAML value for messages: ``number 3``, ``a list``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}" if len(repr(value)) <= 40 else "a long number"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"string {text!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _message(
    error: ErrorDetails, where: _Resolved, written: PathPart, vocabulary: Vocabulary
) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    name = where.path[-1] if where.path else ""
    if kind == "missing":
        return f"missing required field {name!r}"
    if kind == "extra_forbidden":
        return _unknown_key(str(written), str(name), where, vocabulary.word)
    if kind == "invalid_key":
        return f"keys must be strings, got {describe(value)}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    if kind == "union_tag_invalid":
        return (
            f"unknown {vocabulary.word} kind {ctx.get('tag')!r}; "
            f"expected one of {ctx.get('expected_tags')}"
        )
    if kind == "union_tag_not_found":
        listed = ", ".join(repr(k) for k in vocabulary.kinds)
        return f"a {vocabulary.word} needs a 'kind': one of {listed}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {describe(value)}"
    if kind == "too_short" and isinstance(value, dict | list):
        return f"must not be empty (at least {ctx.get('min_length', 1)} item)"
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}, got {describe(value)}"
    text = error["msg"]
    return f"{text[:1].lower()}{text[1:]}, got {describe(value)}"


def _unknown_key(written: str, name: str, where: _Resolved, word: str) -> str:
    owner = where.owner
    if owner is None:
        return f"unknown field {written!r}"
    allowed = [field.alias or key for key, field in owner.model_fields.items()]
    what = ""
    tag = owner.model_fields.get("kind")
    if tag is not None and isinstance(tag.default, str):  # a member of a kind vocabulary
        what = f" for a {tag.default} {word}"
        allowed.remove("kind")
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown field {written!r}{what}{hint} (allowed: {', '.join(allowed)})"


def _resolve(root: Any, loc: Sequence[PathPart]) -> _Resolved:
    """Walk ``loc`` along the types, dropping what is not a path in the document."""
    path: list[PathPart] = []
    key = in_selector = False
    owner: type[BaseModel] | None = None
    current: Any = root
    for part in loc:
        if part == "[key]":
            key = True
            continue
        current = _unwrap(current)
        tagged = _tagged_members(current)
        if isinstance(part, str) and part in tagged:
            current = tagged[part]
            continue
        path.append(part)
        owner = None
        if isinstance(current, type) and issubclass(current, BaseModel):
            owner = current
            in_selector = in_selector or issubclass(current, BaseSelector)
            current = _field_type(current, part)
        elif get_origin(current) in (list, tuple):
            current = (get_args(current) or (None,))[0]
        elif get_origin(current) is dict:
            current = (get_args(current) or (None, None))[-1]
        else:
            current = None
    return _Resolved(tuple(path), key, owner, in_selector)


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``Optional`` wrappers."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        if get_origin(tp) in (Union, types.UnionType):
            members = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _tagged_members(tp: Any) -> dict[str, type[BaseModel]]:
    """For a union of models discriminated on ``kind``: tag -> model."""
    if get_origin(tp) not in (Union, types.UnionType):
        return {}
    out: dict[str, type[BaseModel]] = {}
    for member in get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = member.model_fields.get("kind")
            if field is not None and isinstance(field.default, str):
                out[field.default] = member
    return out


def _field_type(model: type[BaseModel], name: PathPart) -> Any:
    for key, field in model.model_fields.items():
        if name in (key, field.alias):
            return field.annotation
    return None
