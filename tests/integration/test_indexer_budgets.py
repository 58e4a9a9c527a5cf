"""An index run's budgets: bytes, manifests, history; each blob parsed once.

Repro (issue 16, item 2): a 212 KB repository of 200 commits of a 0.85 MB
``deployments.yaml`` took a scan 9 minutes of CPU, and 100 tags pointing at one blob
parsed it 100 times. These build the same shapes, small, over a real git remote.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

import indexer.parsing
from indexer.parsing import forget_all
from manifests.yamlload import load_yaml
from tests.integration.gitfixtures import Remote, deployment, deployments_yaml, port_yaml

pytestmark = pytest.mark.git

NEXT = ".arkitekt_next/deployments.yaml"


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths whose YAML the indexer loaded, one entry per load."""
    forget_all()
    seen: list[str] = []

    def counting(data: bytes | str, **options: Any) -> Any:
        seen.append(options["file"])
        return load_yaml(data, **options)

    monkeypatch.setattr(indexer.parsing, "load_yaml", counting)
    return seen


def bulky(version: str, padding: int) -> str:
    """A deployments file of one entry, made big by a long description."""
    entry = deployment("bomb", version)
    entry["manifest"] = {**entry["manifest"], "description": "x" * padding}  # type: ignore[dict-item]
    return deployments_yaml(entry)


def test_a_history_of_big_files_stops_at_the_byte_budget_and_the_head_stands(
    remote: Remote, loads: list[str]
) -> None:
    for n in range(12):
        remote.work.commit(f"v{n}", {NEXT: bulky(f"0.0.{n}", 20_000)})
    remote.work.commit("a release", {"port.yaml": port_yaml("tagged")})
    remote.work.tag("1.0.0")

    result = remote.scan(limits=replace(remote.limits, max_read_bytes=100_000))

    found = {(f.spec.app.identifier, f.spec.version) for f in result.releases}
    assert ("bomb", "0.0.11") in found  # the head file: read first
    assert ("tagged", "1.0.0") in found  # tags come before history
    assert len(loads) <= 7  # about 100 KB of 20 KB files, not all twelve
    [budget] = [e for e in result.errors if "budget" in e.message]
    assert budget.file == NEXT
    assert budget.message.startswith("not read: this index run reached its budget of ")
    assert "read (PORT_INDEX_MAX_READ_MB); " in budget.message
    assert result.head is not None  # the history is what is left out, not the branch


def test_history_is_read_newest_first_up_to_its_cap(remote: Remote) -> None:
    for n in range(5):
        remote.work.commit(f"v{n}", {NEXT: deployments_yaml(deployment("capped", f"0.0.{n}"))})

    result = remote.scan(limits=replace(remote.limits, max_history=2))

    versions = sorted(f.spec.version for f in result.releases)
    assert versions == ["0.0.2", "0.0.3", "0.0.4"]  # the head and its two predecessors
    [capped] = result.errors
    assert capped.file == NEXT
    assert capped.message == (
        "has 4 older versions in the branch's history; only the newest 2 were read "
        "(PORT_INDEX_MAX_HISTORY)"
    )


def test_a_hundred_tags_of_one_blob_load_it_once(remote: Remote, loads: list[str]) -> None:
    remote.work.commit("one file", {"port.yaml": port_yaml("shared")})
    for n in range(100):
        remote.work.tag(f"1.0.{n}")

    result = remote.scan()

    assert len(result.releases) == 100
    assert loads == ["port.yaml"]


def test_a_blob_seen_by_an_earlier_run_is_not_parsed_again(
    remote: Remote, loads: list[str]
) -> None:
    remote.work.commit("release", {"port.yaml": port_yaml("again")})
    remote.work.tag("1.0.0")
    first = remote.scan()
    assert loads == ["port.yaml"]
    second = remote.scan()  # from scratch: every tag is read again, none is parsed
    assert loads == ["port.yaml"]
    assert [f.spec for f in second.releases] == [f.spec for f in first.releases]


def test_errors_of_a_shared_blob_name_each_tag(remote: Remote, loads: list[str]) -> None:
    remote.work.commit("broken", {"port.yaml": "apiVersion: port/v1\napp: [\n"})
    remote.work.tag("1.0.0")
    remote.work.tag("1.0.1")

    result = remote.scan()

    assert sorted(e.ref or "" for e in result.errors) == ["1.0.0", "1.0.1"]
    assert loads == ["port.yaml"]


def test_tags_a_budget_left_unread_are_read_by_the_next_run(remote: Remote) -> None:
    for n in range(10):
        remote.work.commit(f"release {n}", {"port.yaml": port_yaml("many", f"1.0.{n}")})
        remote.work.tag(f"1.0.{n}")
    limits = replace(remote.limits, max_manifests=4)

    first = remote.scan(limits=limits)
    assert len(first.releases) == 4
    [budget] = first.errors
    assert budget.message == (
        "not read: this index run reached its budget of 4 manifests "
        "(PORT_INDEX_MAX_MANIFESTS); 5 more manifests were not read either"
    )
    second = remote.scan(first, limits=limits)
    third = remote.scan(second, limits=limits)
    versions = {f.spec.version for run in (first, second, third) for f in run.releases}
    assert versions == {f"1.0.{n}" for n in range(10)}
    assert third.errors == []
