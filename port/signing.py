"""HMAC signatures of bodies: how forges sign webhook deliveries, and Port its notices."""

from __future__ import annotations

import hashlib
import hmac


def hmac_sha256(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` under ``secret``."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
