"""Safe YAML loading with limits, and lazy positions for error messages.

The indexer parses about a thousand manifest blobs per run, so the happy path is lean:
libyaml's ``CSafeLoader`` composes the node tree, and a plain recursive walk builds the
data from it (strings as they are, other scalars through PyYAML's own safe constructors),
checking the depth on the way. A document the walk does not cover (anchors, merge keys,
explicit collection tags such as ``!!set``, non-scalar keys) is built by PyYAML's
constructor from the same tree, so both give the same data and the same errors.
Positions are only needed when something is wrong: :meth:`LoadedYaml.locate` composes
the node tree again (it keeps line/column marks) the first time an error has to be
placed, and reuses it afterwards.

Untrusted input is refused early: files over a byte limit, bytes that are not UTF-8,
several documents in one stream, a top level that is not a mapping, alias bombs (the
expanded size of the document is measured, not just its text) and deep nesting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml

from manifests.bounds import MAX_ALIASES, MAX_BYTES, MAX_DEPTH, MAX_NODES
from manifests.errors import ManifestError

# libyaml when present (always, with the wheels we install); the pure-Python loader
# gives the same results, only slower.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_IMPLICIT_TAGS: dict[str, str] = {}  # plain scalar -> its tag, see _Loader.resolve
_IMPLICIT_TAGS_KEPT = 10_000


class _Loader(_SafeLoader):  # type: ignore[misc,valid-type]
    """The safe loader, with the implicit tag of each plain scalar remembered: a run's
    thousand manifests spell the same keys and values, and the tag of a plain scalar
    depends on its text alone (no path resolvers are registered)."""

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is not yaml.ScalarNode or not implicit[0]:
            return str(super().resolve(kind, value, implicit))
        tag = _IMPLICIT_TAGS.get(value)
        if tag is None:
            tag = str(super().resolve(kind, value, implicit))
            if len(_IMPLICIT_TAGS) < _IMPLICIT_TAGS_KEPT and len(value) <= 100:
                _IMPLICIT_TAGS[value] = tag
        return tag


PathPart = str | int
Path = tuple[PathPart, ...]
KeyMatcher = Callable[[str, str], bool]
"""``(key as written in the file, key the validator used) -> same field?``"""
_Position = tuple[int | None, int | None]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


class YamlLoadError(Exception):
    """The file could not be loaded at all; ``error`` says where and why."""

    def __init__(self, error: ManifestError) -> None:
        super().__init__(str(error))
        self.error = error


class Location(NamedTuple):
    """Where a field path points to in the file.

    ``path`` is the part of the requested path that exists in the file, spelled as the
    file spells its keys; ``found`` tells whether all of it exists.
    """

    line: int | None
    column: int | None
    path: Path
    found: bool


def format_path(path: Sequence[PathPart]) -> str:
    """Render ``("flavours", "cuda", "selectors", 0)`` as ``flavours.cuda.selectors[0]``."""
    out = ""
    for part in path:
        text = str(part)
        if isinstance(part, int):
            out += f"[{text}]"
        elif _PLAIN_KEY.fullmatch(text):
            out += f".{text}" if out else text
        else:
            out += '["' + text.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out


@dataclass(slots=True)
class LoadedYaml:
    """A loaded document (always a mapping) and what is needed to locate its fields."""

    data: dict[Any, Any]
    text: str
    file: str
    ref: str | None
    _root: yaml.Node | None = field(default=None, init=False, repr=False)

    def _node_tree(self) -> yaml.Node | None:
        if self._root is None:
            try:
                self._root = yaml.compose(self.text, Loader=_Loader)
            except yaml.YAMLError:  # pragma: no cover - the text loaded once already
                return None
        return self._root

    def locate(
        self, path: Sequence[PathPart], *, key: bool = False, same_key: KeyMatcher | None = None
    ) -> Location:
        """Find the 1-based position of ``path``, or of its nearest existing parent.

        ``key=True`` points at the last mapping key instead of its value (for unknown
        keys). ``same_key`` lets a caller match keys the validator renamed
        (``cudaVersion`` in the file, ``min_version`` in the error).
        """
        node = self._node_tree()
        if node is None:
            return Location(None, None, (), False)
        found: list[PathPart] = []
        key_node: yaml.Node | None = None
        for part in path:
            child, child_key, spelled = _child(node, part, same_key)
            if child is None:
                # a missing field: point at the parent's key line ("app:"), else its start
                mark = (key_node or node).start_mark
                return Location(mark.line + 1, mark.column + 1, tuple(found), False)
            found.append(spelled)
            node, key_node = child, child_key
        mark = key_node.start_mark if key and key_node is not None else node.start_mark
        return Location(mark.line + 1, mark.column + 1, tuple(found), True)

    def error(
        self,
        path: Sequence[PathPart],
        message: str,
        *,
        key: bool = False,
        same_key: KeyMatcher | None = None,
    ) -> ManifestError:
        """A :class:`ManifestError` for ``path``, located and spelled as in the file."""
        where = self.locate(path, key=key, same_key=same_key)
        shown = where.path + tuple(path[len(where.path) :])
        return ManifestError(
            file=self.file,
            ref=self.ref,
            line=where.line,
            column=where.column,
            path=format_path(shown),
            message=message,
        )


def _child(
    node: yaml.Node, part: PathPart, same_key: KeyMatcher | None
) -> tuple[yaml.Node | None, yaml.Node | None, PathPart]:
    """The child of ``node`` at ``part``: (value node, key node or None, spelling)."""
    if isinstance(node, yaml.SequenceNode):
        if isinstance(part, int) and 0 <= part < len(node.value):
            return node.value[part], None, part
        return None, None, part
    if not isinstance(node, yaml.MappingNode):
        return None, None, part
    wanted = str(part)
    pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
    for key_node, value_node in pairs:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == wanted:
            return value_node, key_node, part
    if same_key is not None and isinstance(part, str):
        for key_node, value_node in pairs:
            if isinstance(key_node, yaml.ScalarNode) and same_key(key_node.value, part):
                return value_node, key_node, key_node.value
    return None, None, part


def load_yaml(
    data: bytes | str,
    *,
    file: str,
    ref: str | None,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_aliases: int = MAX_ALIASES,
) -> LoadedYaml:
    """Load one YAML document that must be a mapping, or raise :class:`YamlLoadError`."""

    def fail(message: str, line: int | None = None, column: int | None = None) -> YamlLoadError:
        return YamlLoadError(
            ManifestError(file=file, ref=ref, line=line, column=column, message=message)
        )

    text = _decode(data, max_bytes, fail)
    try:
        doc, problem = _construct(text, max_depth, max_aliases)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, fail) from None
    except yaml.reader.ReaderError as exc:
        line, column = _position(text, exc.position)
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "?")
        raise fail(f"YAML: {exc.reason} (U+{char:04X})", line, column) from None
    except yaml.YAMLError as exc:
        raise fail(f"YAML: {exc}") from None
    except RecursionError:  # only the pure-Python loader recurses
        raise fail(f"the YAML nests deeper than {max_depth} levels") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a timestamp 2024-13-45
        raise fail(f"YAML: a value could not be read ({exc})") from None
    if not isinstance(doc, dict):
        found = "an empty document" if doc is None else f"a {_kind(doc)}"
        raise fail(f"the top level must be a mapping (key: value lines), found {found}", 1, 1)
    if problem is not None:
        message, what = problem
        raise fail(message, *_find_event(text, what, max_depth, max_aliases))
    return LoadedYaml(data=doc, text=text, file=file, ref=ref)


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
# Scalars PyYAML's safe constructor builds with a plain function of the node.
_SCALARS = {
    tag: yaml.SafeLoader.yaml_constructors[tag]
    for tag in ("null", "bool", "int", "float", "binary", "timestamp")
    for tag in [f"tag:yaml.org,2002:{tag}"]
}
_Problem = tuple[str, str] | None  # (message, "depth" or "alias"), see _check_shape


class _Unusual(Exception):
    """The lean walk met a node it leaves to PyYAML's constructor."""


class _TooDeep(Exception):
    """A collection nests deeper than the limit."""


def _construct(text: str, max_depth: int, max_aliases: int) -> tuple[Any, _Problem]:
    """The document's data, and the first shape problem (depth, aliases) if any."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        # No anchor, so no alias: every node is built once, and only depth can be wrong.
        if "&" not in text and type(root) is yaml.MappingNode:
            try:
                return _lean(loader, root, 1, max_depth), None
            except _TooDeep:  # a mapping at the top: the depth is what is wrong
                return {}, (f"the YAML nests deeper than {max_depth} levels", "depth")
            except _Unusual:
                pass
        doc = loader.construct_document(root)
    finally:
        loader.dispose()
    if not isinstance(doc, dict):
        return doc, None
    if "&" in text:  # anchors, so maybe aliases: measure the expanded document
        return doc, _check_shape(doc, max_depth, max_aliases)
    return doc, _check_depth(doc, max_depth)


def _lean(loader: yaml.SafeLoader, node: yaml.Node, depth: int, max_depth: int) -> Any:
    """Build ``node`` as PyYAML's safe constructor would, for plain trees only."""
    kind, tag = type(node), node.tag
    if kind is yaml.ScalarNode:
        if tag == _STR:
            return node.value
        build = _SCALARS.get(tag)
        if build is None:
            raise _Unusual
        return build(loader, node)
    if depth > max_depth:
        raise _TooDeep
    if kind is yaml.MappingNode and tag == _MAP:
        mapping = {}
        for key, value in node.value:
            if type(key) is not yaml.ScalarNode or key.tag not in _PLAIN_KEY_TAGS:
                raise _Unusual  # merge keys (<<), collections as keys, ...
            name = key.value if key.tag == _STR else _lean(loader, key, depth, max_depth)
            if type(value) is yaml.ScalarNode and value.tag == _STR:  # most values
                mapping[name] = value.value
            else:
                mapping[name] = _lean(loader, value, depth + 1, max_depth)
        return mapping
    if kind is yaml.SequenceNode and tag == _SEQ:
        return [_lean(loader, item, depth + 1, max_depth) for item in node.value]
    raise _Unusual


_PLAIN_KEY_TAGS = frozenset({_STR, *_SCALARS})


def _decode(data: bytes | str, max_bytes: int, fail: Callable[..., YamlLoadError]) -> str:
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise fail("the text is not valid Unicode (lone surrogate characters)") from None
    else:
        raw = data
    if len(raw) > max_bytes:
        raise fail(f"the file is {len(raw)} bytes, more than the limit of {max_bytes} bytes")
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise fail(
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            line,
            column,
        ) from None


def _syntax_error(exc: yaml.MarkedYAMLError, fail: Callable[..., YamlLoadError]) -> YamlLoadError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    if isinstance(exc, yaml.composer.ComposerError) and "another document" in (exc.problem or ""):
        return fail(
            "the file holds more than one YAML document ('---'); a manifest is exactly one",
            line,
            column,
        )
    problem = exc.problem or "invalid YAML"
    if "maximum nesting depth" in (exc.context or "") + problem:
        return fail("the YAML nests too deeply", line, column)
    if isinstance(exc, yaml.constructor.ConstructorError):
        # well-formed YAML the safe loader will not build: python tags, list keys, ...
        context = f" ({exc.context})" if exc.context else ""
        return fail(f"YAML: {problem}{context}; only plain YAML data is accepted", line, column)
    context = f" ({exc.context})" if exc.context else ""
    return fail(f"YAML syntax error: {problem}{context}", line, column)


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _check_shape(root: dict[Any, Any], max_depth: int, max_aliases: int) -> tuple[str, str] | None:
    """Measure the document as a consumer would see it, aliases expanded.

    The safe loader builds an alias as a second reference to the same Python object, so
    a billion-laughs file loads quickly but explodes for anyone walking it. One pass over
    the object graph, memoised by identity, gives the expanded size and depth in linear
    time and catches recursive aliases (``&a [*a]``) too. Returns (message, what) for
    the first problem, ``what`` being "depth" or "alias".
    """
    done: dict[int, tuple[int, int]] = {}  # id -> (expanded collections, depth)
    active: set[int] = set()  # the collections on the current path: seeing one is a cycle
    shared = 0
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        ident = id(node)
        children = list(node.values()) if isinstance(node, dict) else node
        if finished:
            size, depth = 1, 0
            for child in children:
                if isinstance(child, dict | list):
                    child_size, child_depth = done[id(child)]
                    size += child_size
                    depth = max(depth, child_depth)
            active.discard(ident)
            done[ident] = (size, depth + 1)
            if depth + 1 > max_depth:
                return f"the YAML nests deeper than {max_depth} levels", "depth"
            if size > MAX_NODES:
                return f"aliases expand the YAML to more than {MAX_NODES} collections", "alias"
            continue
        if ident in done:
            shared += 1
            if shared > max_aliases:
                return f"the YAML uses more than {max_aliases} aliases (*anchor)", "alias"
            continue
        if ident in active:
            return "the YAML contains itself through an alias (&anchor ... *anchor)", "alias"
        active.add(ident)
        stack.append((node, True))
        stack.extend((child, False) for child in children if isinstance(child, dict | list))
    return None


def _check_depth(root: dict[Any, Any], max_depth: int) -> tuple[str, str] | None:
    """The depth check of :func:`_check_shape` for documents without anchors, faster."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return f"the YAML nests deeper than {max_depth} levels", "depth"
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return None


def _find_event(text: str, what: str, max_depth: int, max_aliases: int) -> _Position:
    """Place a shape problem: the first too-deep collection, or the offending alias.

    Only runs for files about to be refused; the event stream is flat (no recursion,
    aliases not expanded), so it is safe on hostile input.
    """
    depth = aliases = 0
    first: _Position = (None, None)
    for event in yaml.parse(text, Loader=_Loader):
        mark = event.start_mark
        here = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if what == "depth" and depth > max_depth:
                return here
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent) and what == "alias":
            aliases += 1
            if aliases > max_aliases:
                return here
            if aliases == 1:
                first = here
    return first
