"""Where a Setup's address leads: the serving Pod, or why there is none.

The serving Pod is the Setup's active Pod that is not an update's candidate, running,
with an address. A candidate serves only once the updater promoted it (after its health
gate), and a rolled-back candidate never did: the address follows the Setup.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from manifests.specs import Run
from port.apps.addresses import AppOrigins, slug
from port.catalogue.models import Flavour
from port.deploy.backends.base import PodStatus
from port.deploy.models import Pod, Setup
from port.deploy.setups import setup_status


@dataclass(frozen=True, slots=True)
class Target:
    """A Setup as its address sees it."""

    setup_id: int
    slug: str
    app_name: str
    status: PodStatus  # the Setup's, as the API shows it
    message: str | None  # why its newest Pod failed or waits
    upstream: str | None  # "host:port" of the serving Pod's http port, if one serves
    path: str  # the app's start page

    @property
    def serving(self) -> bool:
        return self.upstream is not None


async def find_target(session: AsyncSession, setup_id: int) -> Target | None:
    """The Setup's target, or None when there is no such Setup."""
    setup = await session.scalar(
        select(Setup).options(joinedload(Setup.app)).where(Setup.id == setup_id)
    )
    if setup is None:
        return None
    pods = list(
        await session.scalars(
            select(Pod).where(Pod.setup_id == setup_id, Pod.retired.is_(False)).order_by(Pod.id)
        )
    )
    serving = next(
        (
            p
            for p in reversed(pods)
            if not p.candidate and p.status is PodStatus.RUNNING and p.address
        ),
        None,
    )
    settled = [p for p in pods if not p.candidate]
    newest = settled[-1] if settled else None
    served = Run.from_json(serving.run).http if serving is not None else None
    shown = served or (Run.from_json(newest.run).http if newest is not None else None)
    return Target(
        setup_id=setup.id,
        slug=slug(setup.app.identifier, setup.id),
        app_name=setup.app.name,
        status=setup_status(settled, setup.wants_running),
        message=newest.message if newest is not None else None,
        upstream=f"{serving.address}:{served.port}" if serving and served else None,
        path=shown.path if shown is not None else "/",
    )


def setup_address(
    origins: AppOrigins, identifier: str, setup_id: int, pods: list[Pod], flavours: list[Run]
) -> str | None:
    """The address the API and pages show for a Setup of app ``identifier``: by its
    newest active settled Pod's ports; without one, by the first of its release's
    ``flavours`` that serves http (where it would lead once started)."""
    settled = [p for p in pods if not p.candidate and not p.retired]
    runs = [Run.from_json(settled[-1].run)] if settled else flavours
    served = next((run for run in runs if run.http is not None), None)
    if served is None:
        return None
    return origins.address(slug(identifier, setup_id), served)


async def address_of(session: AsyncSession, origins: AppOrigins, setup: Setup) -> str | None:
    """:func:`setup_address` of a Setup loaded with its app and Pods."""
    runs: list[Run] = []
    if not any(not p.retired and not p.candidate for p in setup.pods):
        runs = [
            Run.from_json(run)
            for run in await session.scalars(
                select(Flavour.run)
                .where(Flavour.release_id == setup.release_id)
                .order_by(Flavour.position)
            )
        ]
    return setup_address(origins, setup.app.identifier, setup.id, list(setup.pods), runs)
