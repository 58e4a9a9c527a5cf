"""docs/settings.md, generated from the settings themselves: one table per concern.

Settings are one flat ``PORT_*`` namespace (what operators set); ``GROUPS`` sorts them
by concern for people. ``python -m port.settings_docs`` rewrites the file; a test fails
when it is stale, when a setting has no group or no description, or when the docs name
a ``PORT_*`` variable that is not a setting.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from port.settings import Settings

DOCS_PATH = pathlib.Path(__file__).resolve().parents[1] / "docs" / "settings.md"

GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "Catalogue and indexing",
        "Where the catalogue lives and what an index run may fetch ([indexing.md](indexing.md)).",
        (
            "data_dir",
            "database_url",
            "allow_local_repos",
            "repo_allowed_networks",
            "git_timeout_seconds",
            "max_repo_mb",
            "max_manifest_kb",
            "index_seconds",
            "index_max_read_mb",
            "index_max_manifests",
            "index_max_history",
            "logo_allowed_networks",
        ),
    ),
    (
        "Server",
        "`port serve` and its GraphQL API ([api.md](api.md)).",
        (
            "host",
            "port",
            "public_catalogue",
            "repo_admin_only",
            "access_log",
            "cache_seconds",
            "api_catalogue_reads",
            "max_page_size",
            "max_query_depth",
            "max_query_cost",
            "max_body_kb",
            "max_subscriptions",
            "max_subscriptions_per_user",
        ),
    ),
    (
        "Sign-in",
        "Passwords and page sessions; JWTs of an identity provider in front of Port "
        "([auth.md](auth.md)).",
        (
            "session_idle_minutes",
            "session_max_hours",
            "sign_in_free_failures",
            "jwt_issuer",
            "jwt_audience",
            "jwt_public_key_file",
            "jwt_jwks_file",
            "jwt_admin_role",
        ),
    ),
    (
        "Reaching apps",
        "Each Setup's address behind Port's sign-in ([apps.md](apps.md)).",
        ("apps_domain", "admins_enter_apps", "publish_ports", "publish_http"),
    ),
    (
        "Deployment",
        "Setups become Pods; limits, quotas and isolation ([deploy.md](deploy.md)).",
        (
            "backend",
            "instance",
            "server_url",
            "pull_policy",
            "pull_timeout_seconds",
            "reconcile_seconds",
            "restart_backoff_seconds",
            "restart_backoff_max_seconds",
            "stop_timeout_seconds",
            "max_cpus",
            "max_memory_mb",
            "default_cpus",
            "default_memory_mb",
            "quota_pods",
            "quota_cpus",
            "quota_memory_mb",
            "read_only_apps",
            "non_root_apps",
            "offline_apps",
            "egress_allowed_networks",
            "allowed_registries",
            "logs_max_kb",
        ),
    ),
    (
        "Secrets and Arkitekt",
        "Setups' secret variables and the way Arkitekt apps reach their server "
        "([arkitekt.md](arkitekt.md)).",
        ("secret_key", "previous_secret_keys", "arkitekt_url"),
    ),
    (
        "Grants",
        "What a Setup's owner may grant the capabilities an app asks for "
        "([deploy.md](deploy.md#capabilities)).",
        (
            "grantable_folders",
            "grantable_devices",
            "grantable_shared_memory_mb",
            "grantable_linux_capabilities",
            "host_access_apps",
        ),
    ),
    (
        "Docker engine",
        "The Docker backend ([deploy.md](deploy.md#backends)).",
        (
            "docker_host",
            "docker_network",
            "docker_subnets",
            "docker_firewall",
            "docker_gpus",
            "docker_gpu_groups",
            "docker_mounts",
            "docker_capabilities",
            "docker_pids_limit",
            "docker_log_max_mb",
            "docker_log_files",
        ),
    ),
    (
        "Jobs and polling",
        "Durable background work ([jobs.md](jobs.md)).",
        (
            "serve_worker",
            "poll_seconds",
            "poll_jitter",
            "job_lease_seconds",
            "worker_jobs",
            "worker_index_jobs",
            "job_timeout_seconds",
            "job_poll_seconds",
            "job_keep_days",
        ),
    ),
    (
        "Updates and notices",
        "Automatic updates and the notices they send ([updates.md](updates.md)).",
        (
            "update_grace_seconds",
            "update_health_timeout_seconds",
            "notify_url",
            "notify_secret",
            "notify_allowed_networks",
        ),
    ),
)

# Defaults computed at start-up, said in words.
SHOWN_DEFAULTS = {
    "data_dir": "the per-user data folder (`~/.local/share/port`)",
    "database_url": "SQLite in the data directory",
    "instance": "made once per installation, stored in the database",
    "server_url": "`http://PORT_HOST:PORT_PORT`",
    "docker_host": "`DOCKER_HOST`, or the local socket",
}


def variable(name: str) -> str:
    return f"PORT_{name.upper()}"


def shown_default(name: str, field: FieldInfo) -> str:
    if name in SHOWN_DEFAULTS:
        return SHOWN_DEFAULTS[name]
    value: Any = field.default
    if value is PydanticUndefined and field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "set"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | dict | tuple):
        return f"`{json.dumps(list(value) if isinstance(value, tuple) else value)}`"
    return f"`{value}`"


def markdown() -> str:
    fields = Settings.model_fields
    lines = [
        "# Settings",
        "",
        "<!-- Generated by `python -m port.settings_docs` from port/settings.py; edit there. -->",
        "",
        "Every setting is an environment variable with the `PORT_` prefix (a `.env` file in",
        "the working directory works too). Lists and maps are JSON, e.g.",
        "`PORT_ALLOWED_REGISTRIES='[\"registry.lab:5000\"]'`. Secrets are never shown in",
        "logs or in `repr(Settings())`. The variables are one flat namespace, so that an",
        "operator's names never change when code moves; the groups below sort them by",
        "concern.",
    ]
    for title, blurb, names in GROUPS:
        lines += ["", f"## {title}", "", blurb, "", "| variable | default | meaning |"]
        lines.append("| --- | --- | --- |")
        for name in names:
            field = fields[name]
            meaning = " ".join((field.description or "").split()).replace("|", "\\|")
            lines.append(f"| `{variable(name)}` | {shown_default(name, field)} | {meaning} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    DOCS_PATH.write_text(markdown(), encoding="utf-8")
    print(f"wrote {DOCS_PATH}")


if __name__ == "__main__":
    main()
