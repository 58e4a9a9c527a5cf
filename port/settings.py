"""Port's settings: one group of ``PORT_*`` environment variables, one default each."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.limits import Limits
from port import outbound, registries
from port.errors import PortError
from port.secretbox import check_key

_LIMITS = Limits()  # the indexer's defaults are Port's defaults

# Docker's default capability set minus NET_RAW (packet forging), MKNOD, AUDIT_WRITE,
# SETFCAP and SYS_CHROOT, which app containers do not need.
DEFAULT_CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "NET_BIND_SERVICE",
)
ENGINE_DEFAULT_CAPABILITIES = frozenset(
    (*DEFAULT_CAPABILITIES, "NET_RAW", "MKNOD", "AUDIT_WRITE", "SETFCAP", "SYS_CHROOT")
)


def _user_data_dir() -> Path:
    """The default data directory (``~/.local/share/port`` on Linux)."""
    from platformdirs import user_data_dir  # only when PORT_DATA_DIR is not set

    return Path(user_data_dir("port", appauthor=False))


class GpuDeclaration(BaseModel):
    """A GPU an admin declares where the engine cannot tell (``PORT_DOCKER_GPUS``)."""

    vendor: Literal["nvidia", "amd", "intel"] = "nvidia"
    cuda_version: str | None = None
    rocm_version: str | None = None
    oneapi_version: str | None = None
    compute_capability: str | None = None
    cuda_cores: int | None = None
    memory_mb: int | None = None
    architecture: str | None = None


class Settings(BaseSettings):
    """Read once per process from the environment (and a ``.env`` file if present)."""

    model_config = SettingsConfigDict(env_prefix="PORT_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default_factory=_user_data_dir,
        description="Where Port keeps its SQLite catalogue and git mirrors.",
    )
    database_url: SecretStr | None = Field(
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
    index_seconds: float = Field(
        default=_LIMITS.max_seconds,
        gt=0,
        description="Wall time budget of one index run, checked before each manifest; "
        "what is left unread is an error of the run (tags: read by the next run).",
    )
    index_max_read_mb: int = Field(
        default=_LIMITS.max_read_bytes >> 20,
        gt=0,
        description="Manifest bytes one index run reads at most.",
    )
    index_max_manifests: int = Field(
        default=_LIMITS.max_manifests,
        gt=0,
        description="Manifests one index run parses at most.",
    )
    index_max_history: int = Field(
        default=_LIMITS.max_history,
        ge=0,
        description="Older versions of each Arkitekt file an index run reads from the "
        "branch's history, newest first.",
    )
    logo_allowed_networks: list[str] = Field(
        default_factory=list,
        description="Networks (CIDR) that https logo URLs of manifests may be fetched "
        "from besides public addresses (a lab's own web server).",
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
        description="Only admins may create, change, scan or delete repos; off: any user "
        "may register one, and change, scan or delete those they registered.",
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
    api_catalogue_reads: int = Field(
        default=2,
        ge=1,
        description=(
            "Catalogue queries this process executes at once; more wait their turn. One "
            "process computes one at a time anyway: the bound keeps a burst of uncached "
            "reads from holding all their objects in memory together."
        ),
    )
    max_page_size: int = Field(default=100, ge=1, description="Largest `first:` of a connection.")
    max_query_depth: int = Field(default=12, ge=2, description="Deepest GraphQL selection.")
    max_query_cost: int = Field(
        default=20_000, ge=1, description="Most objects one GraphQL operation may return."
    )
    max_body_kb: int = Field(default=256, ge=1, description="Largest request body accepted.")
    max_subscriptions: int = Field(
        default=256,
        ge=1,
        description="Open GraphQL subscriptions one server process keeps at most; more "
        "are refused with BUSY (each polls the database).",
    )
    max_subscriptions_per_user: int = Field(
        default=32,
        ge=1,
        description="Open GraphQL subscriptions one user may hold in one server process "
        "(anonymous callers share half of PORT_MAX_SUBSCRIPTIONS); more are BUSY.",
    )

    # --- reaching apps: each Setup's address ------------------------------------------
    apps_domain: str = Field(
        default="apps.localhost",
        max_length=200,
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$",
        description="Each Setup's address is `<app>-<setup>.<this domain>`, on Port's "
        "scheme and port. `apps.localhost` needs no DNS on the machine itself; elsewhere "
        "a wildcard DNS name pointing at Port, best of a domain of its own.",
    )
    admins_enter_apps: bool = Field(
        default=False,
        description="Admins may open other users' apps (off: only a Setup's owner).",
    )
    publish_ports: str | None = Field(
        default=None,
        pattern=r"^[0-9]{4,5}-[0-9]{4,5}$",
        description="A range of host ports, e.g. `30000-30099`: each `tcp` port of a "
        "Setup gets one of them, on PORT_HOST, relayed by Port to its serving Pod. No "
        "sign-in guards them: anyone who reaches the host reaches the app. Off: none.",
    )
    publish_http: bool = Field(
        default=False,
        description="Publish `http` ports on PORT_PUBLISH_PORTS too, for sites without a "
        "wildcard DNS name: such a port has no sign-in, unlike the app's own address.",
    )

    # --- signing in to the pages (passwords and sessions) --------------------------------
    session_idle_minutes: int = Field(
        default=720,
        ge=1,
        description="A page session unused this long ends (sign in again).",
    )
    session_max_hours: int = Field(
        default=168,
        ge=1,
        description="A page session ends this long after sign-in, however busy.",
    )
    sign_in_free_failures: int = Field(
        default=5,
        ge=1,
        description="Failed sign-ins of one name or one address before each further "
        "attempt must wait (1 s, doubling, up to 5 minutes).",
    )

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

    # --- deployment: Setups become containers ----------------------------------------
    backend: str = Field(
        default="docker", description="Container backend, by entry point name (port.backends)."
    )
    instance: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9-]{0,30}$",
        description=(
            "Name of this Port installation: the `port.instance` label and the prefix of "
            "its engine objects, so two installations can share an engine. Default: "
            "`port-` and 8 random hex digits, made once and stored in the database."
        ),
    )
    server_url: str | None = Field(
        default=None,
        description="Port's public URL (default: http://host:port): webhookUrls, entry "
        "links and app pages are built from it; containers get it as PORT_SERVER_URL when "
        "they cannot reach Port at port.internal (a remote engine).",
    )
    pull_policy: Literal["if-not-present", "always", "never"] = Field(
        default="if-not-present", description="When to pull a Pod's image before starting it."
    )
    pull_timeout_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="Longest an image pull may take; a pull still running then fails its "
        "Pods (retried after their backoff). Pulls run in the background: a slow one "
        "delays only the Pods of its image.",
    )
    reconcile_seconds: float = Field(
        default=10.0,
        ge=0,
        description="Period of the reconciler in `port serve` (engine events wake it "
        "sooner); 0 turns the in-process reconciler off.",
    )
    restart_backoff_seconds: float = Field(
        default=2.0, gt=0, description="Wait before restarting a crashed Pod; doubles each time."
    )
    restart_backoff_max_seconds: float = Field(
        default=300.0, gt=0, description="Longest wait between two restarts of a Pod."
    )
    stop_timeout_seconds: float = Field(
        default=10.0, ge=0, description="SIGTERM, then SIGKILL after this long."
    )
    max_cpus: float | None = Field(
        default=None, gt=0, description="Most CPUs any Pod may use (caps the flavour's)."
    )
    max_memory_mb: int | None = Field(
        default=None, gt=0, description="Most memory any Pod may use (caps the flavour's)."
    )
    default_cpus: float = Field(
        default=1.0, gt=0, description="CPUs of a Pod whose flavour names none."
    )
    default_memory_mb: int = Field(
        default=1024, gt=0, description="Memory of a Pod whose flavour names none."
    )
    quota_pods: int | None = Field(
        default=10, ge=0, description="Most running Pods per user (none: no quota)."
    )
    quota_cpus: float | None = Field(
        default=None, ge=0, description="Most CPUs per user, summed over running Pods."
    )
    quota_memory_mb: int | None = Field(
        default=None, ge=0, description="Most memory per user, summed over running Pods."
    )
    read_only_apps: list[str] = Field(
        default_factory=list,
        description="Apps (identifiers, JSON list) whose Pods get a read-only root "
        "filesystem (with a writable /tmp).",
    )
    non_root_apps: list[str] = Field(
        default_factory=list,
        description="Apps (identifiers, JSON list) whose Pods run as user and group "
        "65534 (nobody) whatever their image says.",
    )
    docker_host: str | None = Field(
        default=None, description="Docker engine URL (default: DOCKER_HOST or the local socket)."
    )
    docker_network: str = Field(
        default="port",
        description="Name prefix of the Pods' networks: each Setup gets its own, "
        "`<prefix>-<instance>-s<setup>`, made when its first Pod starts.",
    )
    docker_subnets: str = Field(
        default="10.213.0.0/16",
        description="Address range the Setups' networks are cut from, a /28 each (13 "
        "Pods); Docker's own pools hold about 30 networks only.",
    )
    docker_firewall: bool = Field(
        default=True,
        description="Keep Pods from the host's own addresses and from loopback, private, "
        "link-local and metadata addresses with iptables chains of Port's (needs root "
        "on the engine's host). Off: Pods reach all of these.",
    )
    egress_allowed_networks: list[str] = Field(
        default_factory=list,
        description="Networks (CIDR, JSON list) Pods may reach although they are private "
        "or the host's, e.g. '[\"10.20.0.5/32\"]' for the lab's Arkitekt server.",
    )
    allowed_registries: list[str] = Field(
        default_factory=list,
        description="Registries (host[:port], JSON list) images may come from although "
        "they are on a private, loopback or link-local address, e.g. "
        "'[\"registry.lab:5000\"]'. Entries match exactly.",
    )
    offline_apps: list[str] = Field(
        default_factory=list,
        description="Apps (identifiers, JSON list) whose Pods get no route out at all, "
        "not even to the internet.",
    )
    docker_gpus: list[GpuDeclaration] = Field(
        default_factory=list,
        description='GPUs of the engine, as JSON: [{"vendor": "nvidia", "cuda_version": '
        '"12.2"}]. Docker cannot report them; without this, CUDA flavours never fit.',
    )
    docker_gpu_groups: list[int] = Field(
        default_factory=list,
        description="Numeric ids of the host groups owning /dev/kfd and /dev/dri "
        "(`getent group render video`), added to ROCm Pods so that a non-root user "
        "in the image may use the GPU.",
    )
    docker_mounts: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Admin allow-list of host mounts per app, as JSON: {"napari": '
        '["/data:/data:ro"]}. Manifests cannot ask for mounts.',
    )
    # --- secrets and Arkitekt (docs/arkitekt.md) ---------------------------------------
    secret_key: SecretStr | None = Field(
        default=None,
        description="The key Setups' secret variables are sealed with (`port secrets "
        "new-key` makes one). Without it no secret can be stored, and Port refuses to "
        "start while secrets are stored. Never logged.",
    )
    previous_secret_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Older keys (JSON list) that still open secrets during a rotation, "
        "until `port secrets rotate` has sealed them all with PORT_SECRET_KEY.",
    )
    arkitekt_url: str | None = Field(
        default=None,
        description="The Arkitekt server's URL, passed as FAKTS_URL to Pods of apps "
        "indexed from Arkitekt files (a Setup's own FAKTS_URL wins).",
    )

    # --- what owners may grant (docs/deploy.md#capabilities) --------------------------
    grantable_folders: list[str] = Field(
        default_factory=list,
        description="Host folders (JSON list) under which a Setup's owner may grant an "
        "app the folder it asks for, read-only; `/data:rw` also lets apps that ask to "
        "write get it writable. None: no folder can be granted.",
    )
    grantable_devices: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Host devices an owner may grant, by the class an app asks for "
        '(video, serial, usb, dri, other), as JSON: {"video": ["/dev/video*"]}; '
        "shell patterns. None: no device can be granted.",
    )
    grantable_shared_memory_mb: int = Field(
        default=1024,
        ge=0,
        description="Most shared memory (/dev/shm) an owner may grant a Pod, in MB; it "
        "counts against the Pod's memory limit.",
    )
    grantable_linux_capabilities: list[str] = Field(
        default_factory=list,
        description="Linux capabilities (JSON list, without CAP_) an owner may grant to "
        "apps that ask for them, e.g. '[\"SYS_NICE\"]'; never ALL or SYS_ADMIN.",
    )
    host_access_apps: list[str] = Field(
        default_factory=list,
        description="Apps (identifiers, JSON list) whose owners may grant them the host's "
        "network or the container engine's socket: root on the machine, in all but name.",
    )
    docker_capabilities: list[str] = Field(
        default=list(DEFAULT_CAPABILITIES),
        description="Linux capabilities a Pod keeps (all others are dropped); at most "
        "Docker's default set.",
    )
    docker_pids_limit: int = Field(default=1024, ge=16, description="Most processes per Pod.")
    docker_log_max_mb: int = Field(
        default=10, ge=1, description="A Pod's output file is rotated at this size."
    )
    docker_log_files: int = Field(
        default=3, ge=1, description="Rotated output files kept per Pod (the rest dropped)."
    )
    logs_max_kb: int = Field(
        default=1024,
        ge=1,
        description="Most output one `logs` read returns, whatever its `tail`: the newest.",
    )

    # --- jobs and polling (docs/jobs.md) ---------------------------------------------
    poll_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How often each repository's remote is polled for moved refs (one "
        "`git ls-remote` when nothing moved); webhooks make it rarely needed. 0: no polling.",
    )
    poll_jitter: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="Each poll interval is poll_seconds give or take this fraction of it, "
        "so repositories added together are not polled together forever.",
    )
    job_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long a claimed job stays a worker's without a heartbeat (sent "
        "every third of it): a job whose worker died is taken over after this long.",
    )
    worker_jobs: int = Field(
        default=4,
        ge=1,
        le=64,
        description="How many jobs one worker runs at once (index runs, rollouts, "
        "notices, reconcile passes).",
    )
    worker_index_jobs: int = Field(
        default=1,
        ge=1,
        le=64,
        description="How many of them may be index runs (CPU-bound: the rest of the "
        "slots stay free for rollouts and reconcile passes).",
    )
    job_timeout_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Longest a job may run; one still running then is cut short and its "
        "attempt fails (retried after its backoff).",
    )
    job_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How long an idle worker waits before looking for due jobs again "
        "(jobs queued by the same process wake it at once).",
    )
    job_keep_days: float = Field(
        default=7.0,
        ge=0,
        description="Succeeded and failed jobs are deleted this long after they ended "
        "(index runs keep each scan's history apart); 0 keeps them forever.",
    )

    # --- automatic updates -------------------------------------------------------------
    serve_worker: bool = Field(
        default=True,
        description="`port serve` runs a job worker beside the API (off: run `port worker`).",
    )
    update_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="An updated Pod whose image has no HEALTHCHECK must run this long "
        "before the old Pod is stopped.",
    )
    update_health_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="Longest wait for an updated Pod to become healthy; then it is rolled back.",
    )
    notify_url: str | None = Field(
        default=None,
        description="POST a signed JSON notice here on new releases and update results.",
    )
    notify_secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key of notices (header X-Port-Signature-256); never logged.",
    )
    repo_allowed_networks: list[str] = Field(
        default_factory=list,
        description="Networks (CIDR) that repository URLs may reach besides public "
        "addresses, e.g. '[\"10.20.0.0/16\"]' for the lab's own git server.",
    )
    notify_allowed_networks: list[str] = Field(
        default_factory=list,
        description="Networks (CIDR) that users' notice URLs may reach besides public "
        "addresses, e.g. '[\"10.20.0.0/16\"]' for receivers on the lab's own network.",
    )

    @field_validator("docker_capabilities")
    @classmethod
    def _no_wider_than_default(cls, value: list[str]) -> list[str]:
        caps = [c.upper().removeprefix("CAP_") for c in value]
        extra = sorted(set(caps) - ENGINE_DEFAULT_CAPABILITIES)
        if extra:
            raise ValueError(f"capabilities beyond Docker's default set are refused: {extra}")
        return caps

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_key(value.get_secret_value())
        return value

    @field_validator("previous_secret_keys")
    @classmethod
    def _previous_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            check_key(key.get_secret_value())
        return value

    @field_validator("grantable_linux_capabilities")
    @classmethod
    def _grantable_capabilities(cls, value: list[str]) -> list[str]:
        caps = [c.upper().removeprefix("CAP_") for c in value]
        if privileged := sorted({"ALL", "SYS_ADMIN"} & set(caps)):
            raise ValueError(
                f"{', '.join(privileged)}: privileged in all but name, never grantable"
            )
        return caps

    @field_validator("grantable_folders")
    @classmethod
    def _grantable_folders(cls, value: list[str]) -> list[str]:
        for entry in value:
            root, _, mode = entry.partition(":")
            if not root.startswith("/") or mode not in ("", "ro", "rw") or ".." in root.split("/"):
                raise ValueError(f"{entry!r}: use an absolute host path, /path or /path:rw")
        return value

    @field_validator(
        "notify_allowed_networks",
        "egress_allowed_networks",
        "logo_allowed_networks",
        "repo_allowed_networks",
    )
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return [str(n) for n in outbound.networks(value)]

    @field_validator("publish_ports")
    @classmethod
    def _publish_range(cls, value: str | None) -> str | None:
        if value is not None:
            low, high = (int(part) for part in value.split("-"))
            if not 1024 <= low <= high <= 65535:
                raise ValueError("give a range of ports from 1024 to 65535, low-high")
            if high - low >= 10_000:
                raise ValueError("at most 10000 ports")
        return value

    @property
    def publish_range(self) -> range | None:
        """PORT_PUBLISH_PORTS as the ports it holds."""
        if self.publish_ports is None:
            return None
        low, high = (int(part) for part in self.publish_ports.split("-"))
        return range(low, high + 1)

    @field_validator("allowed_registries")
    @classmethod
    def _registries(cls, value: list[str]) -> list[str]:
        return [registries.normalise(entry) for entry in value]

    @field_validator("docker_network")
    @classmethod
    def _pod_network(cls, value: str) -> str:
        # Any of these would put Pods on a network they share with the host or with each
        # other (Docker's names for the host's stack, no stack, another container's).
        if value in ("host", "none", "default", "bridge") or value.startswith("container:"):
            raise ValueError(
                f"{value!r} is not a network of Port's: Pods get a network of their own "
                "per Setup, named with this prefix (for example 'port')"
            )
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}", value):
            raise ValueError(f"{value!r}: letters, digits, '_', '.' and '-' only")
        return value

    @field_validator("docker_subnets")
    @classmethod
    def _subnets(cls, value: str) -> str:
        try:
            pool = ipaddress.IPv4Network(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IPv4 network: {exc}") from exc
        if pool.prefixlen > 28:
            raise ValueError(f"{value} is smaller than one Setup's /28")
        return str(pool)

    @field_validator("docker_mounts")
    @classmethod
    def _mounts_well_formed(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for app, mounts in value.items():
            for mount in mounts:
                if len(mount.split(":")) not in (2, 3) or not mount.startswith("/"):
                    raise ValueError(f"mount {mount!r} of {app}: use /host:/container[:ro]")
        return value

    @property
    def instance_name(self) -> str:
        """The instance, once resolved (``port.deploy.instance.resolved``)."""
        if self.instance is None:
            raise PortError("the instance name is not resolved yet (port.deploy.instance)")
        return self.instance

    @property
    def public_url(self) -> str:
        return self.server_url or f"http://{self.host}:{self.port}"

    @property
    def jwt_enabled(self) -> bool:
        return self.jwt_issuer is not None

    @property
    def mirrors_dir(self) -> Path:
        return self.data_dir / "mirrors"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with an async driver, whatever form was configured."""
        if self.database_url is not None:
            url = self.database_url.get_secret_value()
        else:
            url = f"sqlite+aiosqlite:///{self.data_dir / 'port.db'}"
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url


def secret_of(value: SecretStr | None) -> str | None:
    """The text of a secret setting, where it is used (never where it is shown)."""
    return None if value is None else value.get_secret_value()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after edits."""
    return Settings()
