"""Host ports for Setups' ``tcp`` ports, and ``http`` ones with PORT_PUBLISH_HTTP
(PORT_PUBLISH_PORTS): which Setup holds which.

A Setup's ports are those of its newest settled Pod (not an update's candidate, not
retired). Each gets a host port of the range the first time Port sees it, and keeps it
for the Setup's life (the rows go with the Setup), so its address does not move with
updates. A range too small leaves the newest ones without (logged); a port outside a
changed range is given up.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from manifests.specs import Run
from port.apps.models import PublishedPort
from port.deploy.backends.base import PodStatus
from port.deploy.models import Pod
from port.settings import Settings

log = logging.getLogger(__name__)


def published_address(settings: Settings, row: PublishedPort) -> str:
    """Where a client dials it: Port's public host name and the held port (``host:port``,
    or an ``http://`` URL for an http port)."""
    where = f"{urlsplit(settings.public_url).hostname}:{row.host_port}"
    return f"http://{where}/" if row.protocol == "http" else where


async def allocate(
    session: AsyncSession, ports: range, protocols: frozenset[str] = frozenset({"tcp"})
) -> list[PublishedPort]:
    """Every published port, after giving each port of ``protocols`` of a Setup that
    lacks one a free host port of ``ports``. Ports of other protocols are given up."""
    # Read first, write only what changed: this runs every second.
    rows = list(await session.scalars(select(PublishedPort).order_by(PublishedPort.id)))
    wanted: dict[tuple[int, str], tuple[str, int]] = {}
    unwanted: set[tuple[int, str]] = set()  # ports of a protocol not (or no longer) published
    settled = await session.execute(
        select(Pod.setup_id, Pod.run)
        .where(Pod.retired.is_(False), Pod.candidate.is_(False))
        .order_by(Pod.id)
    )
    for setup_id, run in settled:  # the newest Pod of a Setup comes last: its ports win
        for port in Run.from_json(run).ports:
            if port.protocol in protocols:
                wanted[(setup_id, port.name)] = (port.protocol, port.port)
            else:
                unwanted.add((setup_id, port.name))
    # Given up: an http port once publishing http is turned off, a port outside the range.
    for row in [r for r in rows if (r.setup_id, r.name) in unwanted or r.host_port not in ports]:
        await session.delete(row)
        rows.remove(row)
    held = {(row.setup_id, row.name) for row in rows}
    taken = {row.host_port for row in rows}
    free = (number for number in ports if number not in taken)
    for (setup_id, name), (protocol, container_port) in sorted(wanted.items()):
        if (setup_id, name) in held:
            continue
        host_port = next(free, None)
        if host_port is None:
            log.warning("no free port in PORT_PUBLISH_PORTS for setup %s (%s)", setup_id, name)
            break
        row = PublishedPort(
            setup_id=setup_id,
            name=name,
            protocol=protocol,
            container_port=container_port,
            host_port=host_port,
        )
        session.add(row)
        rows.append(row)
    await session.flush()
    return rows


async def serving_addresses(session: AsyncSession, setup_ids: Collection[int]) -> dict[int, str]:
    """The address of each Setup's serving Pod (running, settled, with an address)."""
    found = await session.execute(
        select(Pod.setup_id, Pod.address)
        .where(
            Pod.setup_id.in_(list(setup_ids)),
            Pod.retired.is_(False),
            Pod.candidate.is_(False),
            Pod.status == PodStatus.RUNNING,
            Pod.address.is_not(None),
        )
        .order_by(Pod.id)
    )
    return {setup_id: address for setup_id, address in found if address}


async def published_of(
    session: AsyncSession, setup_ids: Collection[int]
) -> dict[int, list[PublishedPort]]:
    """Each Setup's published ports, by name."""
    rows = await session.scalars(
        select(PublishedPort)
        .where(PublishedPort.setup_id.in_(list(setup_ids)))
        .order_by(PublishedPort.name)
    )
    found: dict[int, list[PublishedPort]] = {}
    for row in rows:
        found.setdefault(row.setup_id, []).append(row)
    return found
