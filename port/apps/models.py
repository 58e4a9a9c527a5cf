"""The entries of a signed-in browser into app origins; the host ports of tcp ports."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from port.orm import Base, UTCDateTime, utcnow


class AppSession(Base):
    """One browser's entry into one Setup's origin, part of its Port session.

    Made with a single-use ``code`` (its SHA-256; gone once redeemed or expired) on
    Port's origin; redeeming it on the app's origin sets that origin's cookie, whose
    SHA-256 is ``secret_hash``. It ends with the Port session it belongs to (sign-out,
    password change, expiry), with the Setup and with the user.
    """

    __tablename__ = "app_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    web_session_id: Mapped[int] = mapped_column(
        ForeignKey("web_sessions.id", ondelete="CASCADE"), index=True
    )
    setup_id: Mapped[int] = mapped_column(ForeignKey("setups.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    secret_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PublishedPort(Base):
    """A host port (of PORT_PUBLISH_PORTS) that leads to one port of a Setup,
    whichever Pod serves it: kept for the Setup's life, gone with it."""

    __tablename__ = "published_ports"
    __table_args__ = (UniqueConstraint("setup_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    setup_id: Mapped[int] = mapped_column(ForeignKey("setups.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))  # the manifest's port name
    protocol: Mapped[str] = mapped_column(String(8))  # "tcp", or "http" (PORT_PUBLISH_HTTP)
    container_port: Mapped[int] = mapped_column(Integer)
    host_port: Mapped[int] = mapped_column(Integer, unique=True)
