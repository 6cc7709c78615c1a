"""The one configuration model: every setting of binder-actors, from BINDER_* env vars, secret files or a
YAML file, checked when it loads. Actors, Serve replicas and the embedded hub all get this model (the
hub through `config_environment`), so every part of one deployment agrees.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import to_json
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from binder_actors import config_checks
from binder_actors.config_checks import ConfigError
from binder_actors.config_features import AuthSettings, CranSettings
from binder_actors.config_groups import (
    FLAT_NAMES,
    AccessSettings,
    CondaSettings,
    CullingSettings,
    DockerSettings,
    KubernetesSettings,
    QuotaSettings,
    RegistrySettings,
    SpecConfig,
    fold_flat,
)
from binder_actors.config_sources import (
    REMOVED_SETTINGS,
    FoldedSource,
    GroupEnvSource,
    GroupSecretsSource,
    YamlFileSource,
    flat_env_source,
    flat_secrets_source,
)

__all__ = ["BinderConfig", "ConfigError", "ProviderSettings", "SpecConfig", "config_environment"]

# The source checkout (tests, manifests, node_modules); an installed wheel has no such folder.
PROJECT_DIR = Path(__file__).resolve().parent.parent
# The embedded hub's JupyterHub config: package data, so it ships in the wheel.
EMBEDDED_HUB_CONFIG = Path(__file__).resolve().parent / "hub_config" / "jupyterhub_config.py"
# The env vars naming the file sources: a YAML file of settings, a folder of secret files.
FILE_SOURCES = ("BINDER_CONFIG_FILE", "BINDER_SECRETS_DIR")


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "binder-actors"


class ProviderSettings(BaseModel):
    """Where each repository provider's upstream lives, and its credentials (never logged).

    Every base URL is configurable, for GitHub Enterprise, self-hosted GitLab, and tests.
    """

    github_url: str = Field("https://github.com", description="Web URL of GitHub; repositories are cloned from it.")
    github_api_url: str = Field("https://api.github.com", description="GitHub's REST API.")
    github_access_token: SecretStr = Field(SecretStr(""), description="GitHub token for the API and clones.")
    github_client_id: str = Field("", description="GitHub OAuth app id (with the secret: higher rate limit).")
    github_client_secret: SecretStr = Field(SecretStr(""), description="GitHub OAuth app secret.")
    gist_url: str = Field("https://gist.github.com", description="Web URL of GitHub gists.")
    allow_secret_gist: bool = Field(False, description="Launch secret (unlisted) gists too.")
    gitlab_url: str = Field("https://gitlab.com", description="Web URL of the GitLab instance (API under /api/v4).")
    gitlab_private_token: SecretStr = Field(SecretStr(""), description="GitLab private token for the API.")
    doi_resolver_url: str = Field("https://doi.org", description="DOI resolver whose redirects lead to the record.")
    figshare_api_url: str = Field(
        "https://api.figshare.com/v2", description="Figshare's API, where an article's files are listed."
    )
    hydroshare_url: str = Field("https://www.hydroshare.org", description="Web URL and API of HydroShare.")
    swh_url: str = Field("https://archive.softwareheritage.org", description="Software Heritage (API at /api/1).")
    swh_token: SecretStr = Field(SecretStr(""), description="Software Heritage API bearer token.")
    head_fallback: bool = Field(
        True, description="Retry a `master` or `main` ref that no longer exists with HEAD (BinderHub's fallback)."
    )


class BinderConfig(BaseSettings):
    """Settings of one deployment: the service-wide ones here, the rest in groups by concern.

    Each group field also loads from its flat name (BINDER_DOCKER_NETWORK, YAML docker_network, a
    secret file docker_network, BinderConfig(docker_network=...)): those are the names users write.
    """

    model_config = SettingsConfigDict(env_prefix="BINDER_", env_nested_delimiter="__", extra="forbid")

    host: str = Field("127.0.0.1", description="Address Serve's HTTP proxy binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the Binder HTTP service (Serve's proxy).")
    public_url: str = Field(
        "",
        description="URL users reach this service at (binder_launch_host); empty means http://<host>:<port>/.",
    )
    base_url: str = Field("/", description="Path every route is served under (Serve's route_prefix), e.g. /binder/.")
    event_log: str = Field(
        "",
        description="Where BinderHub's launch events go as JSON lines: stdout, a file's absolute path "
        "(or file:///path) or an http(s) URL each event is POSTed to; empty: none.",
    )
    api_only: bool = Field(
        False,
        description="API-only mode (BinderHub's enable_api_only_mode): no web pages; /build accepts build_only=true.",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where all state lives: built environments, hub database, logs, build locks.",
    )
    namespace: str = Field("binder", description="Ray namespace of the named actors.")
    ray_address: str = Field("", description="Ray cluster to join; empty starts a local Ray (the embedded default).")
    ray_num_cpus: int = Field(2, ge=1, description="CPUs a local Ray offers (embedded default only).")

    ref_cache_ttl: float = Field(60.0, ge=0, description="Seconds a resolved ref is reused.")
    ref_miss_ttl: float = Field(30.0, ge=0, description="Seconds a ref that could not be found is answered from cache.")
    ref_cache_size: int = Field(
        10_000, ge=1, description="Resolved refs (and GitHub ETags) RefResolver keeps at most; the oldest go first."
    )
    ref_miss_cache_size: int = Field(
        10_000, ge=1, description="Refs not found that RefResolver keeps at most; bounds its memory under bad specs."
    )
    providers: ProviderSettings = Field(
        default_factory=ProviderSettings,
        description="Upstream URLs and credentials per provider (env: BINDER_PROVIDERS__GITHUB_API_URL, ...).",
    )
    upstream_timeout: float = Field(30.0, gt=0, description="Seconds an upstream call (git, APIs) may take.")
    allow_local_repos: bool = Field(
        False, description="Accept file:// URLs and local paths as repositories (development only)."
    )

    builder: Literal["local", "kubernetes", "docker"] = Field(
        "local",
        description="Build backend: local (uv environments), kubernetes (repo2docker build pods) or docker "
        "(images in the local Docker Engine, sessions in containers).",
    )
    python_version: str = Field("3.10", description="Python of a repository that does not ask.")
    build_timeout: int = Field(1800, gt=0, description="Seconds a build may run before it is killed.")
    content_max_bytes: int = Field(
        2 * 1024**3,
        gt=0,
        description="Bytes a record's or archive's content (zenodo, figshare, dataverse, hydroshare, ckan, swh) "
        "may take, downloaded and again unpacked; a larger one fails its build.",
    )
    max_concurrent_builds: int = Field(2, ge=1, description="Builds running at once; the rest queue.")

    hub_url: str = Field(
        "",
        description="URL of an external JupyterHub (its public URL); empty starts the embedded hub.",
    )
    hub_api_token: SecretStr = Field(
        SecretStr(""), description="API token of the binder service in the hub (never logged)."
    )
    hub_port: int = Field(0, ge=0, le=65535, description="Port of the embedded hub's public proxy (0: pick one).")
    launch_timeout: float = Field(600, gt=0, description="Seconds a server may take to become ready.")
    named_servers: bool = Field(
        False, description="Start each session as a named server of its temporary user (BinderHub's use_named_servers)."
    )

    registry: RegistrySettings = Field(default_factory=RegistrySettings, description="Image registry and its cache.")
    docker: DockerSettings = Field(default_factory=DockerSettings, description="The docker builder and sessions.")
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings, description="Build pods.")
    quotas: QuotaSettings = Field(default_factory=QuotaSettings, description="Sessions allowed at once.")
    access: AccessSettings = Field(default_factory=AccessSettings, description="Who may launch, from where.")
    culling: CullingSettings = Field(default_factory=CullingSettings, description="When servers go.")
    conda: CondaSettings = Field(default_factory=CondaSettings, description="Conda channels of environment.yml.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="Authenticated mode: hub users log in.")
    cran: CranSettings = Field(default_factory=CranSettings, description="CRAN snapshots of R repositories.")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ConfigError(config_checks.describe(error, FLAT_NAMES)) from None

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_settings(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for removed in REMOVED_SETTINGS.keys() & values.keys():
                raise ValueError(f"{removed}: {REMOVED_SETTINGS[removed]}")
        return fold_flat(values)

    @field_validator("hub_url")
    @classmethod
    def _hub_url(cls, value: str) -> str:
        return config_checks.http_url(value, "https://hub.example.org/", "the hub's token goes in BINDER_HUB_API_TOKEN")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return config_checks.http_url(value, "https://binder.example.org/", "users reach the service without one")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return config_checks.url_path(value)

    @field_validator("event_log")
    @classmethod
    def _event_log(cls, value: str) -> str:
        value = value.strip()
        if value in ("", "stdout") or value.startswith(("http://", "https://", "file:///", "/")):
            return value
        raise ValueError(f"{value!r} is not stdout, an absolute file path (or file:///path) or an http(s) URL")

    @model_validator(mode="after")
    def _settings_agree(self) -> BinderConfig:
        if self.registry.kind == "oci" and not self.registry.url:
            raise ValueError(
                "BINDER_REGISTRY_URL is empty; BINDER_REGISTRY=oci needs one, e.g. https://registry.example.org"
            )
        return self

    @model_validator(mode="after")
    def _docker_images_live_in_the_engine(self) -> BinderConfig:
        # The docker builder tags images in the local Engine; looking them up in the local (uv) store
        # could never find one, so builder=docker means registry=docker unless a registry is named.
        if self.builder == "docker" and "kind" not in self.registry.model_fields_set:
            self.registry.kind = "docker"
        return self

    @model_validator(mode="after")
    def _auth_has_named_servers(self) -> BinderConfig:
        if self.auth.named_server_limit_per_user and not self.auth.enabled:
            raise ValueError(
                "BINDER_AUTH_NAMED_SERVER_LIMIT_PER_USER counts logged-in users' servers: set BINDER_AUTH_ENABLED=true"
            )
        return self

    @model_validator(mode="after")
    def _budget_has_a_store(self) -> BinderConfig:
        if self.registry.store_max_gb and self.registry.kind == "oci":
            raise ValueError(
                "BINDER_IMAGE_STORE_MAX_GB bounds the local store and the Docker Engine's images; an OCI registry's "
                "space is for its own garbage collection: unset it with BINDER_REGISTRY=oci"
            )
        return self

    def with_settings(self, **settings: Any) -> BinderConfig:
        """A copy with `settings` changed (flat or group names, as BinderConfig(...) takes), checked again."""
        values = fold_flat({name: getattr(self, name) for name in self.model_fields_set})
        for name, value in fold_flat(settings).items():
            group = values.get(name)
            values[name] = group | value if isinstance(group, dict) and isinstance(value, dict) else value
        try:
            return type(self).model_validate(values)
        except ValidationError as error:
            raise ConfigError(config_checks.describe(error, FLAT_NAMES)) from None

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def launch_host(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}{self.base_path}"

    @property
    def base_path(self) -> str:
        """base_url with exactly one leading and one trailing slash: `/`, `/binder/`."""
        inner = self.base_url.strip("/")
        return f"/{inner}/" if inner else "/"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then BINDER_* env vars, then secret files, then the YAML file, then the defaults.

        Each group setting also comes by its flat name: folded into its group in arguments and the YAML
        file, read by its flat name from env vars and secret files.
        """
        # Within a source the flat name, the documented one, beats the group form (BINDER_DOCKER__NETWORK).
        sources = [FoldedSource(init_settings), flat_env_source(settings_cls), GroupEnvSource(settings_cls)]
        secrets_dir = os.environ.get("BINDER_SECRETS_DIR")
        if secrets_dir:
            if not Path(secrets_dir).is_dir():
                raise ConfigError(f"BINDER_SECRETS_DIR: {secrets_dir} is not a folder")
            # One file per setting, named as the setting (hub_api_token): a Kubernetes secret mounted as a volume.
            sources.append(flat_secrets_source(settings_cls, Path(secrets_dir)))
            sources.append(GroupSecretsSource(settings_cls, secrets_dir=secrets_dir, env_prefix=""))
        config_file = os.environ.get("BINDER_CONFIG_FILE")
        if config_file:
            if not Path(config_file).is_file():
                raise ConfigError(f"BINDER_CONFIG_FILE: {config_file} is not a file")
            sources.append(FoldedSource(YamlFileSource(settings_cls, yaml_file=config_file)))
        return tuple(sources)


def config_environment(config: BinderConfig) -> dict[str, str]:
    """BINDER_* env vars under which BinderConfig() loads the same settings as `config`, secrets left out.

    The embedded hub's process loads its settings this way; a secret it needs is passed on its own.
    """
    environment = {}
    for name in BinderConfig.model_fields:
        value = getattr(config, name)
        if name == "providers":  # one variable per provider setting
            environment.update({f"BINDER_{name.upper()}__{inner.upper()}": _env_value(v) for inner, v in value})
        elif isinstance(value, BaseModel):  # a group: its settings by their flat names, as users write them
            environment.update({f"BINDER_{FLAT_NAMES[(name, inner)].upper()}": _env_value(v) for inner, v in value})
        else:
            environment[f"BINDER_{name.upper()}"] = _env_value(value)
    # The files keep supplying what the child reads from them (secrets), from any working folder.
    for name in FILE_SOURCES:
        if os.environ.get(name):
            environment[name] = str(Path(os.environ[name]).resolve())
    return {name: value for name, value in environment.items() if value is not None}


def _env_value(value: Any) -> str | None:
    if isinstance(value, SecretStr):
        return None
    # pydantic-settings takes a string as it is, and anything else (numbers, lists, dicts) as JSON.
    return str(value) if isinstance(value, (str, Path)) else to_json(value).decode()
