"""PORT_PUBLISH_PORTS: a range an admin can read at a glance, refused when it cannot work."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from port.settings import Settings


def test_a_range_holds_both_ends() -> None:
    assert Settings(publish_ports="30000-30002").publish_range == range(30000, 30003)
    assert Settings().publish_range is None  # off unless an admin opens a range


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("30002-30000", "from 1024 to 65535, low-high"),
        ("80-90", "pattern"),  # privileged ports: not Port's to hand out
        ("1000-2000", "from 1024"),
        ("60000-70000", "from 1024 to 65535"),
        ("20000-40000", "at most 10000"),
        ("30000", "pattern"),
    ],
)
def test_a_range_that_cannot_work_is_refused(value: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        Settings(publish_ports=value)
