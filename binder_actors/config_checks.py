"""Pure checks of single setting values, run by BinderConfig when it loads, and the report of a failed load.

Each check returns the value unchanged or raises ValueError saying what is wrong and how to write it;
`describe` names the setting (its env var), so a bad value fails at start, not at first use.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

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


# Pod spec tolerations (core/v1 Toleration): its fields and the values Kubernetes accepts.
TOLERATION_FIELDS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})
TOLERATION_OPERATORS = frozenset({"Exists", "Equal"})
TOLERATION_EFFECTS = frozenset({"", "NoSchedule", "PreferNoSchedule", "NoExecute"})
# dockerspawner's mem_limit (JupyterHub's ByteSpecification): a number with a K, M, G or T suffix.
_DOCKER_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?[KMGT]$")


class ConfigError(ValueError):
    """Settings that cannot work, each named by its env var with what is wrong."""


def kube_quantity(value: str) -> str:
    """A Kubernetes memory quantity (512Mi, 2Gi, 1e9), checked with the kubernetes client's parser."""
    if not value:
        return value
    # Imported here: the kubernetes package takes seconds to import, and only its deployments set this.
    from kubernetes.utils.quantity import parse_quantity

    try:
        amount = parse_quantity(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a Kubernetes quantity; write it as 512Mi, 2Gi or 1e9") from None
    if amount <= 0:
        raise ValueError(f"{value!r} is not a positive amount of memory")
    return value


def memory_request_within_limit(request: str, limit: str) -> None:
    """Kubernetes refuses a pod whose memory request is more than its limit."""
    if request and limit:
        from kubernetes.utils.quantity import parse_quantity

        if parse_quantity(request) > parse_quantity(limit):
            raise ValueError(
                f"BINDER_BUILD_MEMORY_REQUEST {request} is more than BINDER_BUILD_MEMORY_LIMIT {limit}; "
                "Kubernetes refuses such a pod"
            )


def tolerations(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tolerations as a pod spec writes them: known fields, a known operator and effect."""
    for toleration in value:
        unknown = set(toleration) - TOLERATION_FIELDS
        if unknown:
            raise ValueError(f"unknown toleration fields {sorted(unknown)}; known: {sorted(TOLERATION_FIELDS)}")
        operator = toleration.get("operator", "Equal")
        if operator not in TOLERATION_OPERATORS:
            raise ValueError(f"toleration operator {operator!r} is not one of {sorted(TOLERATION_OPERATORS)}")
        if operator == "Exists" and toleration.get("value"):
            raise ValueError("a toleration with operator Exists takes no value")
        if toleration.get("effect", "") not in TOLERATION_EFFECTS:
            raise ValueError(f"toleration effect {toleration['effect']!r} is not one of {sorted(TOLERATION_EFFECTS)}")
        seconds = toleration.get("tolerationSeconds")
        if seconds is not None and (not isinstance(seconds, int) or isinstance(seconds, bool)):
            raise ValueError(f"tolerationSeconds must be a whole number of seconds, not {seconds!r}")
    return value


def networks(cidrs: Iterable[str]) -> None:
    """IPv4 or IPv6 networks, as serve_app/access.py reads them (host bits allowed)."""
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{cidr!r} is not a network; write it as 192.0.2.0/24 or 2001:db8::/32") from None


def patterns(value: Iterable[str]) -> None:
    """Regexes matched against specs (case-insensitive, as policy.py does)."""
    for pattern in value:
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as error:
            raise ValueError(f"{pattern!r} is not a regular expression: {error}") from None


def http_url(value: str, example: str, without_credentials: str) -> str:
    """Empty, or an http(s) URL with a host and no user or password (`without_credentials` says why not)."""
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The value is not repeated: a malformed URL may still hold a password.
        raise ValueError(f"not an http(s) URL; write it as {example}")
    if parts.username or parts.password:
        raise ValueError(f"the URL holds a user or password; {without_credentials}")
    return value


def url_path(value: str) -> str:
    """A path the service is served under (/ or /binder/): no scheme, host, query or fragment."""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.query or parts.fragment or any(ch.isspace() for ch in value):
        raise ValueError(f"{value!r} is not a URL path; write it as / or /binder/")
    return value


def docker_memory(value: str) -> str:
    """Empty, or a session container's memory limit as dockerspawner reads it: 512M, 2G, 1.5G."""
    if value and not _DOCKER_MEMORY.match(value):
        raise ValueError(f"{value!r} is not a memory size; write a number with K, M, G or T, e.g. 512M or 2G")
    return value


def env_var(location: tuple[str | int, ...], flat_names: Mapping[tuple[str, str], str]) -> str:
    """The env var of a setting, from a validation error's location: BINDER_PORT, BINDER_PROVIDERS__GITLAB_URL,
    and a group's setting by the flat name users write (("docker", "mem_limit"): BINDER_DOCKER_MEM_LIMIT).
    """
    name = f"BINDER_{str(location[0]).upper()}"
    rest = location[1:]
    if rest and (location[0], rest[0]) in flat_names:
        name, rest = f"BINDER_{flat_names[(location[0], rest[0])].upper()}", rest[1:]
    elif location[0] == "providers" and rest and isinstance(rest[0], str):
        name, rest = f"{name}__{rest[0].upper()}", rest[1:]
    return name + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in rest)


_BOUNDS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def describe(error: ValidationError, flat_names: Mapping[tuple[str, str], str]) -> str:
    """Every problem of a failed load, one line each, named by env var; secrets are never repeated.

    `flat_names` maps a group's setting (group, field) to the flat name its env var is made of.
    """
    problems = []
    for problem in error.errors(include_url=False):
        message = problem["msg"].removeprefix("Value error, ")
        groups = {group for group, _ in flat_names}
        if not problem["loc"] or (
            len(problem["loc"]) == 1 and problem["loc"][0] in groups and problem["type"] == "value_error"
        ):
            # a check across settings (of the service, or of one group) names them itself
            problems.append(message)
        elif problem["type"] == "extra_forbidden":
            setting = ".".join(str(part) for part in problem["loc"])
            problems.append(f"{setting}: not a setting of binder-actors (see the README's configuration)")
        elif problem["type"] in _BOUNDS:  # numbers only, so never a secret
            problems.append(f"{env_var(problem['loc'], flat_names)}: {message}, not {problem['input']}")
        else:
            problems.append(f"{env_var(problem['loc'], flat_names)}: {message}")
    return "invalid settings:\n  " + "\n  ".join(problems)
