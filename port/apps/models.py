"""The entries of a signed-in browser into app origins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
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
