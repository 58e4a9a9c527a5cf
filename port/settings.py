"""Port's settings: one group of ``PORT_*`` environment variables, one default each."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.limits import Limits

_LIMITS = Limits()  # the indexer's defaults are Port's defaults


class Settings(BaseSettings):
    """Read once per process from the environment (and a ``.env`` file if present)."""

    model_config = SettingsConfigDict(env_prefix="PORT_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("port", appauthor=False)),
        description="Where Port keeps its SQLite catalogue and git mirrors.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the catalogue. Default: SQLite in the data directory. "
            "postgresql:// URLs use the asyncpg driver."
        ),
    )
    allow_local_repos: bool = Field(
        default=False,
        description=(
            "Allow file:// URLs and plain paths as repositories. Off on servers, so "
            "strangers cannot make Port read its own disk; tests and demos turn it on."
        ),
    )
    git_timeout_seconds: float = Field(
        default=_LIMITS.timeout_seconds, gt=0, description="Upper bound for any single git call."
    )
    max_repo_mb: int = Field(
        default=_LIMITS.max_repo_bytes >> 20,
        gt=0,
        description="A mirror larger than this is refused and removed.",
    )
    max_manifest_kb: int = Field(
        default=_LIMITS.max_manifest_bytes >> 10,
        gt=0,
        description="A manifest file larger than this is an error of the run.",
    )

    @property
    def mirrors_dir(self) -> Path:
        return self.data_dir / "mirrors"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with an async driver, whatever form was configured."""
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'port.db'}"
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after edits."""
    return Settings()
