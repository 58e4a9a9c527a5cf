"""The Docker backend's pure parts, as tables: what `docker inspect` means for a Pod,
image references for the pull API, engine timestamps, and pull failures in Port's words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from port.deploy.backends.base import BackendError, ImageNotFound, PodState, PodStatus
from port.deploy.backends.docker import DockerBackend, parse_time, split_image, state_from_inspect

T0 = "2024-05-01T10:00:00.000000000Z"
T1 = "2024-05-01T10:00:05.500000000Z"
NEVER = "0001-01-01T00:00:00Z"
AT0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
AT1 = datetime(2024, 5, 1, 10, 0, 5, 500000, tzinfo=UTC)


def state(**fields: Any) -> dict[str, Any]:
    base = {"Status": "running", "ExitCode": 0, "StartedAt": T0, "FinishedAt": NEVER}
    return {"State": {**base, **fields}}


@pytest.mark.parametrize(
    ("inspected", "expected"),
    [
        (state(), PodState(PodStatus.RUNNING, started_at=AT0)),
        (
            state(Status="created", StartedAt=NEVER),
            PodState(PodStatus.STARTING),
        ),
        (state(Status="restarting"), PodState(PodStatus.STARTING, started_at=AT0)),
        (state(Status="paused"), PodState(PodStatus.RUNNING, started_at=AT0, message="paused")),
        (state(Status="removing"), PodState(PodStatus.STOPPING, started_at=AT0)),
        (
            state(Status="exited", ExitCode=0, FinishedAt=T1),
            PodState(PodStatus.STOPPED, exit_code=0, started_at=AT0, finished_at=AT1),
        ),
        (
            state(Status="exited", ExitCode=3, FinishedAt=T1),
            PodState(PodStatus.FAILED, exit_code=3, started_at=AT0, finished_at=AT1),
        ),
        (
            state(Status="exited", ExitCode=137, OOMKilled=True, FinishedAt=T1),
            PodState(
                PodStatus.FAILED,
                exit_code=137,
                started_at=AT0,
                finished_at=AT1,
                message="out of memory (OOM killed)",
            ),
        ),
        (
            state(Status="dead", ExitCode=1, Error="driver failed"),
            PodState(PodStatus.FAILED, exit_code=1, started_at=AT0, message="driver failed"),
        ),
        (
            state(Health={"Status": "healthy"}),
            PodState(PodStatus.RUNNING, started_at=AT0, ready=True, checked=True),
        ),
        (  # finished "before" it started: an instant exit; it ran ~0 s, not < 0
            state(Status="exited", ExitCode=1, StartedAt=T1, FinishedAt=T0),
            PodState(PodStatus.FAILED, exit_code=1, started_at=AT1, finished_at=AT1),
        ),
        (state(Status="something new"), PodState(PodStatus.UNKNOWN, started_at=AT0)),
        ({}, PodState(PodStatus.UNKNOWN)),
    ],
    ids=lambda value: (
        value.get("State", {}).get("Status", "empty") if isinstance(value, dict) else ""
    ),
)
def test_what_docker_inspect_means_for_a_pod(inspected: dict[str, Any], expected: PodState) -> None:
    assert state_from_inspect(inspected) == expected


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("busybox", ("busybox", "latest")),
        ("port-test/forever:1.2", ("port-test/forever", "1.2")),
        ("127.0.0.1:5000/port-test/app", ("127.0.0.1:5000/port-test/app", "latest")),
        ("127.0.0.1:5000/port-test/app:v2", ("127.0.0.1:5000/port-test/app", "v2")),
        ("reg:5000/app@sha256:" + "a" * 64, ("reg:5000/app", "sha256:" + "a" * 64)),
        ("reg:5000/app:v2@sha256:" + "b" * 64, ("reg:5000/app", "sha256:" + "b" * 64)),
    ],
)
def test_image_references_keep_the_registry_port_out_of_the_tag(
    image: str, expected: tuple[str, str]
) -> None:
    assert split_image(image) == expected


def test_engine_timestamps() -> None:
    parsed = parse_time("2024-05-01T10:00:00.123456789Z")  # nanoseconds, as Docker writes
    assert parsed == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert parse_time(NEVER) is None  # Docker's "never"
    assert parse_time("") is None
    assert parse_time("not a time") is None
    assert parse_time("2024-05-01T10:00:00+02:00") == datetime.fromisoformat(
        "2024-05-01T10:00:00+02:00"
    )


@pytest.mark.parametrize(
    ("engine_said", "kind", "meaning"),
    [
        (
            "manifest for r/x:1 not found: manifest unknown: SECRET",
            ImageNotFound,
            "the registry has no such image",
        ),
        ("pull access denied for x, repository does not exist", ImageNotFound, "no such image"),
        ("unauthorized: SECRET", ImageNotFound, "refused access"),
        ("dial tcp: lookup reg.lab on 10.0.0.1:53: no such host", BackendError, "not resolve"),
        (
            "Get https://r/v2/: http: server gave HTTP response to HTTPS client",
            BackendError,
            "HTTPS",
        ),
        ("dial tcp 127.0.0.1:9: connect: connection refused", BackendError, "could not be reached"),
        ("received unexpected HTTP status: 500 SECRET", BackendError, "in Port's log"),
    ],
)
def test_pull_failures_are_said_in_ports_words(
    engine_said: str, kind: type[BackendError], meaning: str
) -> None:
    error = DockerBackend._pull_error("r/x:1", engine_said)
    assert type(error) is kind
    assert str(error).startswith("image r/x:1 cannot be pulled: ")
    assert meaning in str(error)
    assert "SECRET" not in str(error)  # a registry's words never reach the user
