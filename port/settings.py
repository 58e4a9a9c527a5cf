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

    # --- the API server -------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address `port serve` listens on.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port `port serve` listens on.")
    public_catalogue: bool = Field(
        default=True,
        description="Anonymous callers may browse repos, apps and releases (off: token needed).",
    )
    repo_admin_only: bool = Field(
        default=True,
        description="Only admins may create, change, scan or delete repos; off: any user.",
    )
    access_log: bool = Field(default=True, description="Log every HTTP request (uvicorn).")
    cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "Lifetime of a cached anonymous catalogue answer: how late this process sees "
            "catalogue changes made by another Port process (its own are seen at once)."
        ),
    )
    max_page_size: int = Field(default=100, ge=1, description="Largest `first:` of a connection.")
    max_query_depth: int = Field(default=12, ge=2, description="Deepest GraphQL selection.")
    max_query_cost: int = Field(
        default=20_000, ge=1, description="Most objects one GraphQL operation may return."
    )
    max_body_kb: int = Field(default=256, ge=1, description="Largest request body accepted.")

    # --- optional JWT validation (an identity provider in front of Port) --------------
    jwt_issuer: str | None = Field(default=None, description="Accept JWTs from this issuer.")
    jwt_audience: str | None = Field(default=None, description="Required `aud` of a JWT.")
    jwt_public_key_file: Path | None = Field(
        default=None, description="PEM public key that signs JWTs (or use a JWKS file)."
    )
    jwt_jwks_file: Path | None = Field(default=None, description="JWKS file of signing keys.")
    jwt_admin_role: str = Field(
        default="port-admin", description="A JWT whose `roles` claim holds this is an admin."
    )

    @property
    def jwt_enabled(self) -> bool:
        return self.jwt_issuer is not None

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
