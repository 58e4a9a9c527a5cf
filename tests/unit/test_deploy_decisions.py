"""The reconciler's decision table: one case per row of docs/deploy.md's table, in order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from port.deploy.backends.base import ManagedContainer, PodState, PodStatus
from port.deploy.decisions import Decision, Step, decide
from port.deploy.models import EventKind, Pod

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=8)
EARLIER = NOW - timedelta(seconds=1)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def container(status: PodStatus, *, started: bool = True, id: str = "c1") -> ManagedContainer:
    state = PodState(status=status, started_at=EARLIER if started else None, exit_code=1)
    return ManagedContainer(id=id, name="n", labels={}, state=state)


@dataclass(frozen=True)
class Row:
    pod: dict[str, Any]
    container: ManagedContainer | None
    expected: Decision
    wants_running: bool = True
    rollout_pending: bool = False


RUNNING = container(PodStatus.RUNNING)
EXITED = container(PodStatus.STOPPED)
ROWS = {
    1: Row(
        {"status": PodStatus.RUNNING, "container_id": "c1"},
        RUNNING,
        Decision(Step.STOP),
        wants_running=False,
    ),
    2: Row({"candidate": True}, RUNNING, Decision(Step.WAIT), rollout_pending=True),
    3: Row({"candidate": True}, RUNNING, Decision(Step.ABANDON)),
    4: Row({"restart_requested": True, "container_id": "c1"}, RUNNING, Decision(Step.RESTART)),
    5: Row(
        {"status": PodStatus.FAILED, "next_attempt_at": LATER}, None, Decision(Step.WAIT, at=LATER)
    ),
    6: Row(
        {"status": PodStatus.FAILED, "next_attempt_at": EARLIER},
        None,
        Decision(Step.LAUNCH, event=EventKind.POD_RESTARTED),
    ),
    7: Row(
        {"status": PodStatus.RUNNING, "container_id": "c1"},
        None,
        Decision(Step.LAUNCH, event=EventKind.POD_RECREATED),
    ),
    8: Row({"status": PodStatus.PENDING}, None, Decision(Step.LAUNCH)),
    9: Row(
        {"status": PodStatus.STARTING, "container_id": "c1"},
        container(PodStatus.STARTING, started=False),
        Decision(Step.RELAUNCH),
    ),
    10: Row({"status": PodStatus.STARTING, "container_id": "c1"}, RUNNING, Decision(Step.LIVE)),
    11: Row(
        {"status": PodStatus.RUNNING, "container_id": "c1"},
        container(PodStatus.UNKNOWN),
        Decision(Step.WAIT),
    ),
    12: Row({"status": PodStatus.RUNNING, "container_id": "c1"}, EXITED, Decision(Step.CRASHED)),
    13: Row(
        {"status": PodStatus.FAILED, "container_id": "c1", "next_attempt_at": LATER},
        EXITED,
        Decision(Step.WAIT, at=LATER),
    ),
    14: Row(
        {"status": PodStatus.FAILED, "container_id": "c1", "next_attempt_at": EARLIER},
        EXITED,
        Decision(Step.RETRY),
    ),
}


def pod(**values: Any) -> Pod:
    defaults: dict[str, Any] = {
        "status": PodStatus.PENDING,
        "candidate": False,
        "restart_requested": False,
        "next_attempt_at": None,
        "container_id": None,
    }
    return Pod(**{**defaults, **values})


@pytest.mark.parametrize("number", sorted(ROWS))
def test_each_row_of_the_table_decides_its_step(number: int) -> None:
    row = ROWS[number]
    decision = decide(pod(**row.pod), row.wants_running, row.rollout_pending, row.container, NOW)
    assert decision == row.expected


def test_a_container_under_an_id_the_pod_did_not_record_is_adopted() -> None:
    """Port died between create and record: the labelled container is the Pod's."""
    found = container(PodStatus.RUNNING, id="new")
    decision = decide(pod(status=PodStatus.STARTING), True, False, found, NOW)
    assert decision == Decision(Step.LIVE, adopt=True)
    decision = decide(pod(status=PodStatus.STARTING, container_id="new"), True, False, found, NOW)
    assert decision.adopt is False


def test_the_docs_table_has_the_same_rows_and_steps() -> None:
    """docs/deploy.md and the table above say the same, row for row."""
    rows = re.findall(r"^\| (\d+) \|[^|]*\|[^|]*\| `(\w+)` \|", DOCS.read_text(), re.MULTILINE)
    documented = {int(number): Step(step) for number, step in rows}
    assert documented == {number: row.expected.step for number, row in ROWS.items()}
