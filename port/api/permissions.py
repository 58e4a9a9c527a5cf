"""Who may do what. Resolvers call these first; the checks raise coded errors."""

from __future__ import annotations

from port.api.context import Info
from port.catalogue.repos import check_manager
from port.errors import Forbidden, Unauthenticated
from port.principal import Principal


def caller(info: Info) -> Principal:
    """The authenticated caller, or UNAUTHENTICATED."""
    principal = info.context.principal
    if principal is None:
        raise Unauthenticated("this needs a token: send `Authorization: Bearer <token>`")
    return principal


def admin(info: Info) -> Principal:
    """An authenticated admin, or UNAUTHENTICATED / FORBIDDEN."""
    principal = caller(info)
    if not principal.is_admin:
        raise Forbidden("only an admin may do this")
    return principal


def repo_manager(info: Info) -> Principal:
    """Who may create, change, scan and delete repositories (``repos.check_manager``)."""
    principal = caller(info)
    check_manager(principal, info.context.state.settings)
    return principal


def catalogue_reader(info: Info) -> None:
    """Catalogue reads are public unless PORT_PUBLIC_CATALOGUE=false."""
    if not info.context.state.settings.public_catalogue:
        caller(info)
