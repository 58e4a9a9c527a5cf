"""Which queries the response cache may keep, and how it forgets."""

from __future__ import annotations

import time

import pytest

from port.api.cache import ResponseCache, cacheable


@pytest.mark.parametrize(
    ("query", "operation", "expected"),
    [
        ("{ apps { totalCount } }", None, True),
        ('query A { app(identifier: "x") { name } repos { totalCount } }', None, True),
        ("{ me { name } }", None, False),  # per caller
        ("{ apps { totalCount } me { name } }", None, False),
        ('mutation { createToken(input: {name: "x"}) { secret } }', None, False),
        ('subscription { indexRuns(repoId: "x") { status } }', None, False),
        ("query A { apps { totalCount } } query B { me { name } }", "B", False),
        ("query A { apps { totalCount } } query B { me { name } }", "A", True),
        ("query A { apps { totalCount } } query B { me { name } }", None, False),  # ambiguous
        ("{ apps { ", None, False),  # does not parse
        ("{ ...apps } fragment apps on Query { me { name } }", None, False),  # a name hides me
        ("{ ... on Query { apps { totalCount } } }", None, False),
    ],
)
def test_only_catalogue_reads_are_cacheable(
    query: str, operation: str | None, expected: bool
) -> None:
    assert cacheable(query, operation) is expected


def test_bump_and_ttl_forget_answers() -> None:
    cache = ResponseCache(ttl=0.05)
    key = cache.key({"query": "{ apps { totalCount } }", "variables": {"x": 1}})
    assert key is not None
    assert key != cache.key({"query": "{ apps { totalCount } }", "variables": {"x": 2}})
    cache.put(key, b"{}")
    assert cache.get(key) == (b"{}", True)
    cache.bump()
    assert cache.get(key) == (None, False)
    assert cache.key({"query": "{ apps { totalCount } }", "variables": {"x": 1}}) != key
    cache.put(key, b"{}")
    time.sleep(0.06)
    assert cache.get(key) == (b"{}", False)  # stale: sent only while someone refreshes


def test_size_is_bounded_least_recently_used_first() -> None:
    cache = ResponseCache(max_bytes=400)
    for name in "abcd":
        cache.put(name, b"x" * 100)
    assert cache.get("a")[0] == b"x" * 100  # used: kept
    cache.put("e", b"x" * 100)
    assert cache.get("b")[0] is None
    assert cache.get("a")[0] is not None
    cache.put("huge", b"x" * 200)  # over a quarter of the budget: never kept
    assert cache.get("huge")[0] is None


async def test_a_burst_of_misses_computes_once() -> None:
    cache = ResponseCache()
    assert cache.computing("k") is None
    future = cache.start("k")
    assert cache.computing("k") is future
    cache.finish("k", b"answer")
    assert await future == b"answer"
    assert cache.get("k") == (b"answer", True)
    assert cache.computing("k") is None


def test_a_lifetime_of_zero_turns_caching_off() -> None:
    assert ResponseCache(ttl=0).key({"query": "{ apps { totalCount } }"}) is None
