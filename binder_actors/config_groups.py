"""The groups of BinderConfig's settings by concern (registry, docker, kubernetes, quotas, access, culling,
conda), and the one mapping, derived from them, from each setting's flat name (docker_network) to its group field.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from binder_actors import config_checks
from binder_actors.config_features import AuthSettings, CranSettings
from binder_actors.settings_group import SettingsGroup
from binder_actors.settings_group import flat_name as _flat


class SpecConfig(BaseModel):
    """An override for the specs a pattern matches (BinderHub's spec_config).

    Written flat (`{"pattern": ..., "quota": N}`) or in BinderHub's own shape
    (`{"pattern": ..., "config": {"quota": N}}`), so a BinderHub operator's values paste as they are.
    """

    model_config = ConfigDict(extra="forbid")

    pattern: str
    quota: int | None = Field(None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _binderhub_shape(cls, value: Any) -> Any:
        if isinstance(value, dict) and "config" in value:
            inner = value["config"]
            if not isinstance(inner, dict):
                raise ValueError('spec_config\'s `config` must be a mapping such as {"quota": 10}')
            return {**{k: v for k, v in value.items() if k != "config"}, **inner}
        return value


# BinderHub's provider classes, whose traitlets operators set per provider, by our prefix.
BINDERHUB_PROVIDER_CLASSES = {
    "GitHubRepoProvider": "gh",
    "GistRepoProvider": "gist",
    "GitLabRepoProvider": "gl",
    "GitRepoProvider": "git",
    "ZenodoProvider": "zenodo",
    "FigshareProvider": "figshare",
    "HydroshareProvider": "hydroshare",
    "DataverseProvider": "dataverse",
    "CKANProvider": "ckan",
}


class ProviderSpecRules(BaseModel):
    """One provider's own spec rules, as BinderHub sets them on each RepoProvider class."""

    model_config = ConfigDict(extra="forbid")

    banned_specs: list[str] = []
    allowed_specs: list[str] = []
    high_quota_specs: list[str] = []
    spec_config: list[SpecConfig] = []

    @model_validator(mode="after")
    def _patterns(self) -> ProviderSpecRules:
        config_checks.patterns([*self.banned_specs, *self.allowed_specs, *self.high_quota_specs])
        config_checks.patterns(override.pattern for override in self.spec_config)
        return self


class RegistrySettings(SettingsGroup):
    """Where images are pushed and looked up, and ImageCache's memory of the answers."""

    flat_prefix: ClassVar[str] = "registry_"

    kind: Literal["local", "oci", "docker"] = Field(
        "local",
        description="Where ImageCache looks images up: local (the store on disk), oci (registry_url) or docker "
        "(the Docker Engine's images; the default when builder is docker).",
        json_schema_extra=_flat("registry"),
    )
    image_prefix: str = Field(
        "", description="Prefix of every image name (a registry path).", json_schema_extra=_flat("image_prefix")
    )
    url: str = Field("", description="OCI distribution API registry, e.g. https://registry.example.org.")
    username: str = Field("", description="User for the registry (Basic auth or its token service).")
    password: SecretStr = Field(
        SecretStr(""), description="Password or access token of registry_username (never logged)."
    )
    token_url: str = Field(
        "", description="Token service URL to use instead of the realm the registry names (empty: the realm)."
    )
    cache_hit_ttl: float = Field(
        86400.0,
        ge=0,
        description="Seconds ImageCache trusts that an image exists.",
        json_schema_extra=_flat("image_cache_hit_ttl"),
    )
    cache_miss_ttl: float = Field(
        10.0,
        ge=0,
        description="Seconds ImageCache trusts that an image is missing (0: ask the registry every time).",
        json_schema_extra=_flat("image_cache_miss_ttl"),
    )
    cache_size: int = Field(
        10_000,
        ge=1,
        description="Images ImageCache keeps as found, and as missing, at most (each).",
        json_schema_extra=_flat("image_cache_size"),
    )
    store_max_gb: float = Field(
        0.0,
        ge=0,
        description="Gigabytes (10^9 bytes) the images of the local store or the Docker Engine may take; before a "
        "build that would pass it, the images launched least recently that no session runs are removed (0: no budget).",
        json_schema_extra=_flat("image_store_max_gb"),
    )

    @field_validator("url")
    @classmethod
    def _registry_url(cls, value: str) -> str:
        return config_checks.http_url(
            value,
            "https://registry.example.org",
            "put them in BINDER_REGISTRY_USERNAME and BINDER_REGISTRY_PASSWORD instead",
        )


class DockerSettings(SettingsGroup):
    """The docker builder and its session containers (builder: docker)."""

    flat_prefix: ClassVar[str] = "docker_"

    base_image: str = Field(
        "binder-base:bookworm", description="Image every docker build starts FROM (cluster/docker/setup-docker.sh)."
    )
    base_python: str = Field(
        "3.11", description="The Python (X.Y) of docker_base_image; repositories asking for another one fail."
    )
    network: str = Field(
        "binder-actors", description="Docker network of the session containers; the embedded hub listens on its gateway"
    )
    mem_limit: str = Field("", description="Memory limit of a session container (e.g. 2G; empty: none).")
    cpu_limit: float = Field(0.0, ge=0, description="CPUs a session container may use (e.g. 1.5; 0: no limit).")

    @field_validator("mem_limit")
    @classmethod
    def _docker_memory(cls, value: str) -> str:
        return config_checks.docker_memory(value)


class KubernetesSettings(SettingsGroup):
    """The kubernetes builder: where its build pods run and how each is made (builder: kubernetes)."""

    flat_prefix: ClassVar[str] = "build_"

    namespace: str = Field(
        "binder", description="Kubernetes namespace of the build pods.", json_schema_extra=_flat("kube_namespace")
    )
    image: str = Field(
        "quay.io/jupyterhub/repo2docker:2024.07.0", description="repo2docker image of the build pods, at a pinned tag."
    )
    push: bool = Field(True, description="Build pods push the image to the registry of image_prefix (--push).")
    push_secret: str = Field(
        "binder-build-docker-config",
        description="Secret holding a docker config.json, mounted at /root/.docker in build pods; empty: none.",
    )
    registry_credentials: SecretStr = Field(
        SecretStr(""),
        description="JSON {registry, username, password} given to build pods as CONTAINER_ENGINE_REGISTRY_CREDENTIALS.",
    )
    git_credentials: SecretStr = Field(
        SecretStr(""), description="git credential-helper lines (username=..., password=...) for private repositories."
    )
    docker_socket: Literal["host", "dind", "podman", "none"] = Field(
        "host", description="Container engine socket of build pods: the node's docker, a dind or podman daemonset, none"
    )
    docker_socket_path: str = Field(
        "", description="Node path of that socket; empty: the default of build_docker_socket."
    )
    memory_request: str = Field("", description="Memory request of a build pod (Kubernetes quantity, e.g. 1Gi).")
    memory_limit: str = Field("", description="Memory limit of a build pod and its docker build (e.g. 2Gi).")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels build pods require.")
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="Tolerations of build pods, as in a pod spec (key, operator, value, effect)."
    )
    service_account: str = Field("", description="Service account of build pods; empty: the namespace default.")
    appendix: str = Field("", description="Dockerfile lines appended to every build (repo2docker --appendix).")
    extra_args: list[str] = Field(default_factory=list, description="More repo2docker arguments, before the URL.")
    image_pull_secrets: list[str] = Field(
        default_factory=list, description="Secrets for pulling build_image from a private registry."
    )
    sticky_nodes: list[str] = Field(
        default_factory=list,
        description="Builder node names; each repository prefers one of them (rendezvous hashing) to reuse its cache.",
    )
    max_age: int = Field(14400, gt=0, description="Seconds after which a leftover build pod is deleted on restart.")

    @field_validator("memory_request", "memory_limit")
    @classmethod
    def _kube_quantity(cls, value: str) -> str:
        return config_checks.kube_quantity(value)

    @field_validator("tolerations")
    @classmethod
    def _tolerations(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return config_checks.tolerations(value)

    @model_validator(mode="after")
    def _request_within_limit(self) -> KubernetesSettings:
        config_checks.memory_request_within_limit(self.memory_request, self.memory_limit)
        return self


class QuotaSettings(SettingsGroup):
    """How many sessions may run, in total, per repository, and how many the hub starts at once."""

    max_sessions: int = Field(
        100, ge=0, description="Sessions running at once in total; 0 puts the service in maintenance (no launches)."
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

    @field_validator("high_quota_specs")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        config_checks.patterns(value)
        return value

    @field_validator("spec_config")
    @classmethod
    def _spec_patterns(cls, value: list[SpecConfig]) -> list[SpecConfig]:
        config_checks.patterns(override.pattern for override in value)
        return value


class AccessSettings(SettingsGroup):
    """Who may launch what, from where, how often, and from which web origins."""

    banned_specs: list[str] = Field(
        default_factory=list, description="Regexes (case-insensitive, matched at the start) of specs refused."
    )
    allowed_specs: list[str] = Field(
        default_factory=list, description="When set, only specs matching one of these regexes may launch."
    )
    provider_specs: dict[str, ProviderSpecRules] = Field(
        default_factory=dict,
        description="Per provider, as BinderHub sets them on each RepoProvider: JSON {provider: {banned_specs, "
        "allowed_specs, high_quota_specs, spec_config}}; provider is a prefix (gh) or class (GitHubRepoProvider).",
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

    @field_validator("ban_networks", "trusted_proxies")
    @classmethod
    def _networks(cls, value: dict[str, str] | list[str]) -> dict[str, str] | list[str]:
        config_checks.networks(value)  # a dict's keys are its networks
        return value

    @field_validator("banned_specs", "allowed_specs")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        config_checks.patterns(value)
        return value

    @field_validator("provider_specs", mode="before")
    @classmethod
    def _provider_names(cls, value: Any) -> Any:
        """Keys are our prefixes (gh, gl, ...) or BinderHub's class names (GitHubRepoProvider, ...)."""
        if not isinstance(value, dict):
            return value
        named = {}
        for key, rules in value.items():
            prefix = BINDERHUB_PROVIDER_CLASSES.get(key, key)
            if prefix not in set(BINDERHUB_PROVIDER_CLASSES.values()) | {"swh"}:
                known = ", ".join([*BINDERHUB_PROVIDER_CLASSES.values(), "swh", *BINDERHUB_PROVIDER_CLASSES])
                raise ValueError(f"{key!r} is not a provider; use one of {known}")
            named[prefix] = rules
        return named


class CullingSettings(SettingsGroup):
    """When idle or old servers go: swept by the culler, or shutting themselves down."""

    flat_prefix: ClassVar[str] = "cull_"

    timeout: int = Field(600, gt=0, description="Seconds a server may be idle before it is culled.")
    every: int = Field(60, gt=0, description="Seconds between two culling sweeps.")
    concurrency: int = Field(10, ge=1, description="Servers culled at once, at most.")
    max_age: int = Field(0, ge=0, description="Seconds after which a server is culled however active (0: never).")
    session_idle_timeout: int = Field(
        600,
        ge=0,
        description="Seconds without activity after which a server shuts itself down (0: never).",
        json_schema_extra=_flat("session_idle_timeout"),
    )
    kernel_idle_timeout: int = Field(
        600,
        ge=0,
        description="Seconds after which a server culls an idle kernel (0: never).",
        json_schema_extra=_flat("kernel_idle_timeout"),
    )


class CondaSettings(SettingsGroup):
    """Where the local builder finds the conda packages an environment.yml asks for."""

    flat_prefix: ClassVar[str] = "conda_"

    channels: list[str] = Field(
        ["conda-forge"],
        description="Channels of an environment.yml that names none (repo2docker's: conda-forge), as JSON.",
    )
    channel_alias: str = Field(
        "https://conda.anaconda.org/",
        description="URL a channel name is read under: conda-forge means <alias>/conda-forge (a mirror's URL).",
    )
    solve_timeout: int = Field(300, gt=0, description="Seconds the conda solver may take for one environment.")

    @field_validator("channel_alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        return config_checks.http_url(
            value, "https://conda.anaconda.org/", "a mirror needing credentials is not supported"
        )


# The groups of BinderConfig, by field name; each of their fields also loads from its flat name.
GROUPS: dict[str, type[SettingsGroup]] = {
    "registry": RegistrySettings,
    "docker": DockerSettings,
    "kubernetes": KubernetesSettings,
    "quotas": QuotaSettings,
    "access": AccessSettings,
    "culling": CullingSettings,
    "conda": CondaSettings,
    "auth": AuthSettings,
    "cran": CranSettings,
}
# {flat name: (group, field)} and back: the names users write, and where each setting lives now.
FLAT_SETTINGS: dict[str, tuple[str, str]] = {
    flat: (group, name) for group, model in GROUPS.items() for name, flat in model.flat_names().items()
}
FLAT_NAMES: dict[tuple[str, str], str] = {place: flat for flat, place in FLAT_SETTINGS.items()}


def fold_flat(values: Any) -> Any:
    """Flat settings (docker_network: x) moved into their group (docker: {network: x}); a flat one wins.

    A group given whole as a string is its flat setting of the same name (registry: oci is the kind).
    """
    if not isinstance(values, dict):
        return values
    folded = {}
    groups: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key in GROUPS and isinstance(value, dict):
            groups.setdefault(key, {}).update({k: v for k, v in value.items() if k not in groups.get(key, {})})
        elif key in GROUPS and isinstance(value, BaseModel):
            groups.setdefault(key, {}).update(
                {k: getattr(value, k) for k in value.model_fields_set if k not in groups.get(key, {})}
            )
        elif key in FLAT_SETTINGS:
            group, name = FLAT_SETTINGS[key]
            groups.setdefault(group, {})[name] = value
        else:
            folded[key] = value
    return folded | groups
