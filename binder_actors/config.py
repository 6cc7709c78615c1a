"""The one configuration model: every setting of binder-actors, from BINDER_* env vars or a YAML file.

Actors and Serve replicas receive the model itself, so every part of one deployment agrees.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "binder-actors"


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads settings from the YAML file named by BINDER_CONFIG_FILE (env vars win over it)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("BINDER_CONFIG_FILE")
        if not path:
            return {}
        content = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(content, dict):
            raise ValueError(f"{path}: the config file must hold a mapping of setting: value")
        return content


class SpecConfig(BaseModel):
    """An override for the specs a pattern matches (BinderHub's spec_config)."""

    pattern: str
    quota: int | None = None


class BinderConfig(BaseSettings):
    """Settings of one binder-actors deployment."""

    model_config = SettingsConfigDict(env_prefix="BINDER_", extra="forbid")

    host: str = Field("127.0.0.1", description="Address Serve's HTTP proxy binds to.")
    port: int = Field(8000, description="Port of the Binder HTTP service (Serve's proxy).")
    public_url: str = Field(
        "",
        description="URL users reach this service at (binder_launch_host); empty means http://<host>:<port>/.",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where all state lives: built environments, hub database, logs, build locks.",
    )
    namespace: str = Field("binder", description="Ray namespace of the named actors.")
    ray_address: str = Field("", description="Ray cluster to join; empty starts a local Ray (the embedded default).")
    ray_num_cpus: int = Field(2, description="CPUs a local Ray offers (embedded default only).")

    cull_timeout: int = Field(600, description="Seconds a server may be idle before it is culled.")
    cull_every: int = Field(60, description="Seconds between two culling sweeps.")
    cull_concurrency: int = Field(10, description="Servers culled at once, at most.")

    ref_cache_ttl: float = Field(60.0, description="Seconds a resolved ref is reused.")
    upstream_timeout: float = Field(30.0, description="Seconds an upstream call (git, APIs) may take.")
    allow_local_repos: bool = Field(
        False, description="Accept file:// URLs and local paths as repositories (development only)."
    )

    builder: Literal["local"] = Field("local", description="Build backend: local (uv environments).")
    image_prefix: str = Field("", description="Prefix of every image name (a registry path).")
    python_version: str = Field("3.10", description="Python of a repository that does not ask.")
    build_timeout: int = Field(1800, description="Seconds a build may run before it is killed.")
    max_concurrent_builds: int = Field(2, description="Builds running at once; the rest queue.")

    hub_url: str = Field(
        "",
        description="URL of an external JupyterHub (its public URL); empty starts the embedded hub.",
    )
    hub_api_token: SecretStr = Field(
        SecretStr(""), description="API token of the binder service in the hub (never logged)."
    )
    hub_port: int = Field(0, description="Port of the embedded hub's public proxy (0: pick one).")
    launch_timeout: int = Field(600, description="Seconds a server may take to become ready.")
    max_sessions: int = Field(
        100, description="Sessions running at once in total; 0 puts the service in maintenance (no launches)."
    )
    named_servers: bool = Field(
        False, description="Start each session as a named server of its temporary user (BinderHub's use_named_servers)."
    )
    per_repo_quota: int = Field(0, description="Sessions of one repository at once (0: no limit).")
    per_repo_quota_higher: int = Field(0, description="Per-repository quota of specs in high_quota_specs.")
    high_quota_specs: list[str] = Field(
        default_factory=list, description="Regexes (case-insensitive) of specs that get per_repo_quota_higher."
    )
    spec_config: list[SpecConfig] = Field(
        default_factory=list, description="Per-spec overrides: [{pattern: regex, quota: N}], first match wins."
    )
    cull_max_age: int = Field(0, description="Seconds after which a server is culled however active (0: never).")
    session_idle_timeout: int = Field(
        600, description="Seconds without activity after which a server shuts itself down (0: never)."
    )
    kernel_idle_timeout: int = Field(600, description="Seconds after which a server culls an idle kernel (0: never).")

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def launch_host(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}/"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlFileSource(settings_cls))
