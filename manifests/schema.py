"""The JSON Schema of ``port.yaml``, generated from the pydantic models.

Editors use it for completion and inline checks (``# yaml-language-server: $schema=``).
The checked-in ``port.schema.json`` is regenerated with ``python -m manifests.schema``;
a unit test fails when it is stale. The schema describes Port's canonical spelling; the
parser also accepts the Arkitekt selector spellings (``type``, ``cudaVersion``...).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from manifests.native import PortManifest

SCHEMA_PATH = pathlib.Path(__file__).with_name("port.schema.json")
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def native_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``port.yaml`` document."""
    schema = PortManifest.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": DIALECT, **schema}


def render() -> str:
    """The exact text of ``port.schema.json``."""
    return json.dumps(native_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Write ``manifests/port.schema.json``."""
    SCHEMA_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
