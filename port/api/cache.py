"""A response cache for catalogue reads, shared by every caller.

The catalogue changes only when an index run or a repository mutation commits, while
anonymous browsing asks the same few queries again and again. Executing them costs
Strawberry about ten times what sending the bytes costs, so the finished responses are
kept, keyed on (catalogue generation, query, variables, operation name).

- Only operations whose root fields all read the catalogue are cached: ``apps``,
  ``app``, ``repos`` (whose types hold nothing that depends on the caller), and for
  anonymous callers ``node`` too (which shows them catalogue objects only). A caller
  with a credential shares the answers of every other caller with one, once the
  middleware verified it: ``node``, ``me``, Setups, Pods, users and tokens are never
  shared. Anonymous and signed-in answers are kept apart (with PORT_PUBLIC_CATALOGUE
  off, only the signed-in may read the catalogue).
- Only successful answers (HTTP 200, no ``errors``) are kept.
- A burst of requests for an answer not kept yet executes the query once; the others
  wait for it. An answer past its lifetime is still sent while one request refreshes it.
- This process bumps the generation whenever it changes the catalogue; changes made by
  another Port process are seen after at most ``ttl`` seconds (PORT_CACHE_SECONDS).
- Bounded by total bytes; the least recently used answers go first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from functools import lru_cache

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse

CATALOGUE_FIELDS = frozenset({"apps", "app", "repos", "__typename"})
# ``node(id:)`` of a Setup, Pod, User or Token answers a signed-in caller with their own.
ANONYMOUS_FIELDS = CATALOGUE_FIELDS | {"node"}


@lru_cache(maxsize=256)
def cacheable(query: str, operation_name: str | None, signed_in: bool = False) -> bool:
    """Does this document's chosen operation only read the catalogue, as anyone sees it?"""
    try:
        document = parse(query, no_location=True, max_tokens=2000)
    except GraphQLError:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        o
        for o in operations
        if operation_name is None or (o.name and o.name.value == operation_name)
    ]
    if len(chosen) != 1 or chosen[0].operation != OperationType.QUERY:
        return False
    # Plain fields only: a fragment spread at the top could hide any field behind a name.
    selections = chosen[0].selection_set.selections
    fields = CATALOGUE_FIELDS if signed_in else ANONYMOUS_FIELDS
    return all(isinstance(s, FieldNode) and s.name.value in fields for s in selections)


def reads_catalogue(body: dict[str, object], *, signed_in: bool = False) -> bool:
    """Is this request body a well-formed operation that only reads the catalogue?"""
    query, variables = body.get("query"), body.get("variables") or {}
    operation = body.get("operationName")
    if not isinstance(query, str) or not isinstance(variables, dict):
        return False
    if operation is not None and not isinstance(operation, str):
        return False
    return cacheable(query, operation, signed_in)


class ResponseCache:
    def __init__(self, *, max_bytes: int = 32 << 20, ttl: float = 5.0) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.generation = 0
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._size = 0
        self._computing: dict[str, asyncio.Future[bytes | None]] = {}

    def bump(self) -> None:
        """The catalogue changed here: every kept answer is stale."""
        self.generation += 1
        self._entries.clear()
        self._size = 0

    def key(self, body: dict[str, object], *, signed_in: bool = False) -> str | None:
        """The cache key of a request body, or None when it must not be cached."""
        if self.ttl <= 0 or not reads_catalogue(body, signed_in=signed_in):
            return None  # PORT_CACHE_SECONDS=0: caching off
        material = json.dumps(
            [
                self.generation,
                signed_in,
                body.get("query"),
                body.get("variables") or {},
                body.get("operationName"),
            ],
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()

    def get(self, key: str) -> tuple[bytes | None, bool]:
        """(kept answer or None, whether it is fresh). A stale answer may still be sent
        while one request computes the fresh one."""
        entry = self._entries.get(key)
        if entry is None:
            return None, False
        stored, payload = entry
        self._entries.move_to_end(key)
        return payload, time.monotonic() - stored <= self.ttl

    def put(self, key: str, payload: bytes) -> None:
        if len(payload) > self.max_bytes // 4:
            return
        self._drop(key)
        self._entries[key] = (time.monotonic(), payload)
        self._size += len(payload)
        while self._size > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def computing(self, key: str) -> asyncio.Future[bytes | None] | None:
        """The answer another request is computing now, to wait for instead of
        computing it again (a burst of misses executes the query once)."""
        return self._computing.get(key)

    def start(self, key: str) -> asyncio.Future[bytes | None]:
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._computing[key] = future
        return future

    def finish(self, key: str, payload: bytes | None) -> None:
        """The computation of ``key`` ended; ``payload`` None when it is not cacheable."""
        future = self._computing.pop(key, None)
        if payload is not None:
            self.put(key, payload)
        if future is not None and not future.done():
            future.set_result(payload)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._size -= len(entry[1])
