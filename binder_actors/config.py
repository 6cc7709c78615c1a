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
    SecretsSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from binder_actors import config_checks

# The source checkout (tests, manifests, node_modules); an installed wheel has no such folder.
PROJECT_DIR = Path(__file__).resolve().parent.parent
# The embedded hub's JupyterHub config: package data, so it ships in the wheel.
EMBEDDED_HUB_CONFIG = Path(__file__).resolve().parent / "hub_config" / "jupyterhub_config.py"
# The env vars naming the file sources: a YAML file of settings, a folder of secret files.
FILE_SOURCES = ("BINDER_CONFIG_FILE", "BINDER_SECRETS_DIR")


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "binder-actors"


class ConfigError(ValueError):
    """Settings that cannot work, each named by its env var with what is wrong."""


class _YamlFileSource(YamlConfigSettingsSource):
    """pydantic-settings' YAML source, refusing a file that is not a mapping of setting: value."""

    def _read_file(self, file_path: Path) -> dict[str, Any]:
        content = super()._read_file(file_path)
        if not isinstance(content, dict):
            raise ConfigError(f"BINDER_CONFIG_FILE: {file_path} must hold a mapping of setting: value")
        return content


class SpecConfig(BaseModel):
    """An override for the specs a pattern matches (BinderHub's spec_config)."""

    pattern: str
    quota: int | None = Field(None, ge=0)


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
    hydroshare_url: str = Field("https://www.hydroshare.org", description="Web URL and API of HydroShare.")
    swh_url: str = Field("https://archive.softwareheritage.org", description="Software Heritage (API at /api/1).")
    swh_token: SecretStr = Field(SecretStr(""), description="Software Heritage API bearer token.")
    head_fallback: bool = Field(
        True, description="Retry a `master` or `main` ref that no longer exists with HEAD (BinderHub's fallback)."
    )


class BinderConfig(BaseSettings):
    """Settings of one binder-actors deployment."""

    model_config = SettingsConfigDict(env_prefix="BINDER_", env_nested_delimiter="__", extra="forbid")

    host: str = Field("127.0.0.1", description="Address Serve's HTTP proxy binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the Binder HTTP service (Serve's proxy).")
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
    ray_num_cpus: int = Field(2, ge=1, description="CPUs a local Ray offers (embedded default only).")

    cull_timeout: int = Field(600, gt=0, description="Seconds a server may be idle before it is culled.")
    cull_every: int = Field(60, gt=0, description="Seconds between two culling sweeps.")
    cull_concurrency: int = Field(10, ge=1, description="Servers culled at once, at most.")

    ref_cache_ttl: float = Field(60.0, ge=0, description="Seconds a resolved ref is reused.")
    ref_miss_ttl: float = Field(30.0, ge=0, description="Seconds a ref that could not be found is answered from cache.")
    ref_cache_size: int = Field(
        10_000, ge=1, description="Resolved refs (and GitHub ETags) RefResolver keeps at most; the oldest go first."
    )
    ref_miss_cache_size: int = Field(
        10_000, ge=1, description="Refs not found that RefResolver keeps at most; bounds its memory under bad specs."
    )
    image_cache_size: int = Field(
        10_000, ge=1, description="Images ImageCache keeps as found, and as missing, at most (each)."
    )
    providers: ProviderSettings = Field(
        default_factory=ProviderSettings,
        description="Upstream URLs and credentials per provider (env: BINDER_PROVIDERS__GITHUB_API_URL, ...).",
    )
    banned_specs: list[str] = Field(
        default_factory=list, description="Regexes (case-insensitive, matched at the start) of specs refused."
    )
    allowed_specs: list[str] = Field(
        default_factory=list, description="When set, only specs matching one of these regexes may launch."
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
    image_prefix: str = Field("", description="Prefix of every image name (a registry path).")
    registry: Literal["local", "oci", "docker"] = Field(
        "local",
        description="Where ImageCache looks images up: local (the store on disk), oci (registry_url) or docker "
        "(the Docker Engine's images; the default when builder is docker).",
    )
    registry_url: str = Field("", description="OCI distribution API registry, e.g. https://registry.example.org.")
    registry_username: str = Field("", description="User for the registry (Basic auth or its token service).")
    registry_password: SecretStr = Field(
        SecretStr(""), description="Password or access token of registry_username (never logged)."
    )
    registry_token_url: str = Field(
        "", description="Token service URL to use instead of the realm the registry names (empty: the realm)."
    )
    image_cache_hit_ttl: float = Field(86400.0, ge=0, description="Seconds ImageCache trusts that an image exists.")
    image_cache_miss_ttl: float = Field(
        10.0, ge=0, description="Seconds ImageCache trusts that an image is missing (0: ask the registry every time)."
    )
    python_version: str = Field("3.10", description="Python of a repository that does not ask.")
    build_timeout: int = Field(1800, gt=0, description="Seconds a build may run before it is killed.")
    max_concurrent_builds: int = Field(2, ge=1, description="Builds running at once; the rest queue.")
    kube_namespace: str = Field("binder", description="Kubernetes namespace of the build pods (builder: kubernetes).")
    build_image: str = Field(
        "quay.io/jupyterhub/repo2docker:2024.07.0", description="repo2docker image of the build pods, at a pinned tag."
    )
    build_push: bool = Field(True, description="Build pods push the image to the registry of image_prefix (--push).")
    build_push_secret: str = Field(
        "binder-build-docker-config",
        description="Secret holding a docker config.json, mounted at /root/.docker in build pods; empty: none.",
    )
    build_registry_credentials: SecretStr = Field(
        SecretStr(""),
        description="JSON {registry, username, password} given to build pods as CONTAINER_ENGINE_REGISTRY_CREDENTIALS.",
    )
    build_git_credentials: SecretStr = Field(
        SecretStr(""), description="git credential-helper lines (username=..., password=...) for private repositories."
    )
    build_docker_socket: Literal["host", "dind", "podman", "none"] = Field(
        "host", description="Container engine socket of build pods: the node's docker, a dind or podman daemonset, none"
    )
    build_docker_socket_path: str = Field(
        "", description="Node path of that socket; empty: the default of build_docker_socket."
    )
    build_memory_request: str = Field("", description="Memory request of a build pod (Kubernetes quantity, e.g. 1Gi).")
    build_memory_limit: str = Field("", description="Memory limit of a build pod and its docker build (e.g. 2Gi).")
    build_node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels build pods require.")
    build_tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="Tolerations of build pods, as in a pod spec (key, operator, value, effect)."
    )
    build_service_account: str = Field("", description="Service account of build pods; empty: the namespace default.")
    build_appendix: str = Field("", description="Dockerfile lines appended to every build (repo2docker --appendix).")
    build_extra_args: list[str] = Field(default_factory=list, description="More repo2docker arguments, before the URL.")
    build_image_pull_secrets: list[str] = Field(
        default_factory=list, description="Secrets for pulling build_image from a private registry."
    )
    build_sticky_nodes: list[str] = Field(
        default_factory=list,
        description="Builder node names; each repository prefers one of them (rendezvous hashing) to reuse its cache.",
    )
    build_max_age: int = Field(
        14400, gt=0, description="Seconds after which a leftover build pod is deleted on restart."
    )
    docker_base_image: str = Field(
        "binder-base:bookworm", description="Image every docker build starts FROM (cluster/docker/setup-docker.sh)."
    )
    docker_base_python: str = Field(
        "3.11", description="The Python (X.Y) of docker_base_image; repositories asking for another one fail."
    )
    docker_use_repo2docker: bool = Field(
        False, description="Build with `jupyter-repo2docker --no-run` (it must be installed) instead of our Dockerfile."
    )
    docker_network: str = Field(
        "binder-actors", description="Docker network of the session containers; the embedded hub listens on its gateway"
    )
    docker_mem_limit: str = Field("", description="Memory limit of a session container (e.g. 2G; empty: none).")
    docker_cpu_limit: float = Field(0.0, ge=0, description="CPUs a session container may use (e.g. 1.5; 0: no limit).")

    hub_url: str = Field(
        "",
        description="URL of an external JupyterHub (its public URL); empty starts the embedded hub.",
    )
    hub_api_token: SecretStr = Field(
        SecretStr(""), description="API token of the binder service in the hub (never logged)."
    )
    hub_port: int = Field(0, ge=0, le=65535, description="Port of the embedded hub's public proxy (0: pick one).")
    launch_timeout: int = Field(600, gt=0, description="Seconds a server may take to become ready.")
    max_sessions: int = Field(
        100, ge=0, description="Sessions running at once in total; 0 puts the service in maintenance (no launches)."
    )
    named_servers: bool = Field(
        False, description="Start each session as a named server of its temporary user (BinderHub's use_named_servers)."
    )
    max_concurrent_spawns: int = Field(
        10, ge=1, description="Servers SessionManager asks the hub to start at once; other admitted launches wait."
    )
    per_repo_quota: int = Field(0, ge=0, description="Sessions of one repository at once (0: no limit).")
    per_repo_quota_higher: int = Field(0, ge=0, description="Per-repository quota of specs in high_quota_specs.")
    high_quota_specs: list[str] = Field(
        default_factory=list, description="Regexes (case-insensitive) of specs that get per_repo_quota_higher."
    )
    spec_config: list[SpecConfig] = Field(
        default_factory=list, description="Per-spec overrides: [{pattern: regex, quota: N}]; the last match wins."
    )
    cull_max_age: int = Field(0, ge=0, description="Seconds after which a server is culled however active (0: never).")
    session_idle_timeout: int = Field(
        600, ge=0, description="Seconds without activity after which a server shuts itself down (0: never)."
    )
    kernel_idle_timeout: int = Field(
        600, ge=0, description="Seconds after which a server culls an idle kernel (0: never)."
    )

    base_url: str = Field("/", description="Path every route is served under (Serve's route_prefix), e.g. /binder/.")
    api_only: bool = Field(
        False,
        description="API-only mode (BinderHub's enable_api_only_mode): no web pages; /build accepts build_only=true.",
    )
    ban_networks: dict[str, str] | list[str] = Field(
        default_factory=dict,
        description="Networks refused with a 403: JSON {cidr: message shown} or [cidr, ...] (IPv4 and IPv6).",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs of reverse proxies whose X-Forwarded-For names the client; empty: the peer address counts.",
    )
    rate_limit: int = Field(0, ge=0, description="Launches (/build requests) per hour per client IP (0: no limit).")
    build_token_secret: SecretStr = Field(
        SecretStr(""),
        description="HS256 key of the build tokens /v2 pages embed (a valid one skips the rate limit); empty: none.",
    )
    build_token_expires: int = Field(600, gt=0, description="Seconds a build token is valid after its page was served.")
    build_token_check_origin: bool = Field(
        True, description="Refuse a build token used from another origin (Origin or Host) than the page's."
    )
    cors_allow_origin: str = Field(
        "", description="Access-Control-Allow-Origin of /build and the API routes (* or https://site); empty: none."
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ConfigError(config_checks.describe(error)) from None

    @field_validator("build_memory_request", "build_memory_limit")
    @classmethod
    def _kube_quantity(cls, value: str) -> str:
        return config_checks.kube_quantity(value)

    @field_validator("build_tolerations")
    @classmethod
    def _tolerations(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return config_checks.tolerations(value)

    @field_validator("ban_networks", "trusted_proxies")
    @classmethod
    def _networks(cls, value: dict[str, str] | list[str]) -> dict[str, str] | list[str]:
        config_checks.networks(value)  # a dict's keys are its networks
        return value

    @field_validator("banned_specs", "allowed_specs", "high_quota_specs")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        config_checks.patterns(value)
        return value

    @field_validator("spec_config")
    @classmethod
    def _spec_patterns(cls, value: list[SpecConfig]) -> list[SpecConfig]:
        config_checks.patterns(override.pattern for override in value)
        return value

    @field_validator("registry_url")
    @classmethod
    def _registry_url(cls, value: str) -> str:
        return config_checks.http_url(
            value,
            "https://registry.example.org",
            "put them in BINDER_REGISTRY_USERNAME and BINDER_REGISTRY_PASSWORD instead",
        )

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

    @field_validator("docker_mem_limit")
    @classmethod
    def _docker_memory(cls, value: str) -> str:
        return config_checks.docker_memory(value)

    @model_validator(mode="after")
    def _settings_agree(self) -> BinderConfig:
        config_checks.memory_request_within_limit(self.build_memory_request, self.build_memory_limit)
        if self.registry == "oci" and not self.registry_url:
            raise ValueError(
                "BINDER_REGISTRY_URL is empty; BINDER_REGISTRY=oci needs one, e.g. https://registry.example.org"
            )
        return self

    @model_validator(mode="after")
    def _docker_images_live_in_the_engine(self) -> BinderConfig:
        # The docker builder tags images in the local Engine; looking them up in the local (uv) store
        # could never find one, so builder=docker means registry=docker unless a registry is named.
        if self.builder == "docker" and "registry" not in self.model_fields_set:
            self.registry = "docker"
        return self

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
        """Arguments, then BINDER_* env vars, then secret files, then the YAML file, then the defaults."""
        sources = [init_settings, env_settings]
        secrets_dir = os.environ.get("BINDER_SECRETS_DIR")
        if secrets_dir:
            if not Path(secrets_dir).is_dir():
                raise ConfigError(f"BINDER_SECRETS_DIR: {secrets_dir} is not a folder")
            # One file per setting, named as the setting (hub_api_token): a Kubernetes secret mounted as a volume.
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir, env_prefix=""))
        config_file = os.environ.get("BINDER_CONFIG_FILE")
        if config_file:
            if not Path(config_file).is_file():
                raise ConfigError(f"BINDER_CONFIG_FILE: {config_file} is not a file")
            sources.append(_YamlFileSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def config_environment(config: BinderConfig) -> dict[str, str]:
    """BINDER_* env vars under which BinderConfig() loads the same settings as `config`, secrets left out.

    The embedded hub's process loads its settings this way; a secret it needs is passed on its own.
    """
    environment = {}
    for name in BinderConfig.model_fields:
        value = getattr(config, name)
        if isinstance(value, BaseModel):  # providers: one variable per nested setting
            environment.update({f"BINDER_{name.upper()}__{inner.upper()}": _env_value(v) for inner, v in value})
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
