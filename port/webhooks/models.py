"""Deliveries seen: a forge's delivery id answered once, replays acknowledged and ignored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from port.orm import Base, UTCDateTime, utcnow


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("forge", "delivery", name="uq_webhook_deliveries_forge"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    forge: Mapped[str] = mapped_column(String(16))
    delivery: Mapped[str] = mapped_column(String(255))
    repo_id: Mapped[int | None] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
