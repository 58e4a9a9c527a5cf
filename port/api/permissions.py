"""Who may do what. Resolvers call these first; the checks raise coded errors."""

from __future__ import annotations

from port.accounts.principal import Principal
from port.api.context import Info
from port.errors import Forbidden, Unauthenticated


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
    """Who may create, change, scan and delete repositories (admins, unless opened up)."""
    if info.context.state.settings.repo_admin_only:
        return admin(info)
    return caller(info)


def repo_changer(principal: Principal, added_by: int | None) -> None:
    """FORBIDDEN unless ``principal`` may change a repository ``added_by`` registered:
    admins any, other managers (PORT_REPO_ADMIN_ONLY off) only their own."""
    if principal.is_admin:
        return
    if added_by is None or not principal.owns(added_by):
        raise Forbidden("only the user who registered this repository, or an admin, may change it")


def catalogue_reader(info: Info) -> None:
    """Catalogue reads are public unless PORT_PUBLIC_CATALOGUE=false."""
    if not info.context.state.settings.public_catalogue:
        caller(info)
