"""What the reconciler does with one Pod: a pure decision over what it knows.

``decide`` reads the Pod, its Setup's wish, whether an update job is pending and the
container the engine reported, and names one ``Step``; the reconciler applies it (the
engine calls, the events). Its rows, in order, are the table in docs/deploy.md
("The reconciler"); the first row that matches decides.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from port.deploy.backends.base import ManagedContainer, PodStatus
from port.deploy.models import EventKind, Pod

# Statuses in which a Pod's container should be there and alive.
LIVE = (PodStatus.STARTING, PodStatus.RUNNING)


class Step(enum.StrEnum):
    STOP = "stop"  # the Setup does not want to run: stop the container, retire the Pod
    ABANDON = "abandon"  # an update's Pod whose rollout job is gone: stop, retire
    RESTART = "restart"  # a user asked for a restart: stop, count it, launch
    WAIT = "wait"  # nothing to do now (until ``at``, when set)
    LAUNCH = "launch"  # no container: record ``event`` if any, launch
    RELAUNCH = "relaunch"  # created but never started (Port died in between): afresh
    LIVE = "live"  # starting or running: take the engine's status
    CRASHED = "crashed"  # exited while wanted: FAILED, restart after a backoff
    RETRY = "retry"  # a crash's backoff is over: stop, count it, launch


@dataclass(frozen=True, slots=True)
class Decision:
    step: Step
    at: datetime | None = None  # WAIT: when to look again
    event: EventKind | None = None  # LAUNCH: POD_RESTARTED after a failure, POD_RECREATED
    adopt: bool = False  # the container is the Pod's, under an id it did not record


def decide(
    pod: Pod,
    wants_running: bool,
    rollout_pending: bool,
    container: ManagedContainer | None,
    now: datetime,
) -> Decision:
    """The one step for ``pod`` now. ``rollout_pending`` matters for update candidates
    only; ``container`` is the Pod's own (identity checked), or None."""
    if not wants_running:
        return Decision(Step.STOP)
    if pod.candidate:
        # The updater starts a candidate and judges its health; the reconciler only
        # clears one whose rollout job is gone for good (failed, or deleted).
        return Decision(Step.WAIT) if rollout_pending else Decision(Step.ABANDON)
    if pod.restart_requested:
        return Decision(Step.RESTART)
    backing_off = pod.next_attempt_at is not None and pod.next_attempt_at > now
    if container is None:
        if backing_off:
            return Decision(Step.WAIT, at=pod.next_attempt_at)
        if pod.status == PodStatus.FAILED:
            return Decision(Step.LAUNCH, event=EventKind.POD_RESTARTED)
        if pod.container_id is not None and pod.status in LIVE:
            return Decision(Step.LAUNCH, event=EventKind.POD_RECREATED)
        return Decision(Step.LAUNCH)
    adopt = pod.container_id != container.id
    state = container.state
    if state.status is PodStatus.STARTING and state.started_at is None:
        return Decision(Step.RELAUNCH, adopt=adopt)
    if state.status in LIVE:
        return Decision(Step.LIVE, adopt=adopt)
    if state.status in (PodStatus.UNKNOWN, PodStatus.STOPPING):
        return Decision(Step.WAIT, adopt=adopt)
    # It exited while wanted: a crash (exit code 0 too, as a service should not end).
    if pod.status != PodStatus.FAILED or pod.next_attempt_at is None:
        return Decision(Step.CRASHED, adopt=adopt)
    if backing_off:
        return Decision(Step.WAIT, at=pod.next_attempt_at, adopt=adopt)
    return Decision(Step.RETRY, adopt=adopt)
