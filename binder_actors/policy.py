"""Pure: which quota a spec gets (per_repo_quota, high_quota_specs, spec_config) and whether it may launch
(banned_specs, allowed_specs): the global settings, then its provider's own (BINDER_PROVIDER_SPECS)."""

from __future__ import annotations

import re

from binder_actors.config import BinderConfig
from binder_actors.config_groups import ProviderSpecRules

_NO_RULES = ProviderSpecRules()


def matches(pattern: str, spec: str) -> bool:
    """BinderHub's rule: `re.match` (anchored at the start), case-insensitive."""
    return re.match(pattern, spec, re.IGNORECASE) is not None


def _rules(provider: str, config: BinderConfig) -> ProviderSpecRules:
    return config.access.provider_specs.get(provider, _NO_RULES)


def repo_quota(spec: str, config: BinderConfig, provider: str = "") -> int:
    """Sessions one repository may have at once; 0 means no limit.

    As BinderHub: high_quota_specs pick the higher default, then every spec_config entry that
    matches overrides it in order, so the last match wins (the provider's entries come last).
    """
    own = _rules(provider, config)
    quota = config.quotas.per_repo_quota
    if any(matches(pattern, spec) for pattern in [*config.quotas.high_quota_specs, *own.high_quota_specs]):
        quota = config.quotas.per_repo_quota_higher
    for override in [*config.quotas.spec_config, *own.spec_config]:
        if matches(override.pattern, spec) and override.quota is not None:
            quota = override.quota
    return quota


def refusal(spec: str, config: BinderConfig, provider: str = "") -> str | None:
    """Why `spec` may not launch here (banned_specs, allowed_specs; global and the provider's), or None."""
    own = _rules(provider, config)
    if any(matches(pattern, spec) for pattern in [*config.access.banned_specs, *own.banned_specs]):
        return f"Sorry, {spec} has been temporarily disabled from launching. Please contact admins for more info!"
    for allowed in (config.access.allowed_specs, own.allowed_specs):
        if allowed and not any(matches(pattern, spec) for pattern in allowed):
            return (
                f"Sorry, {spec} is not allowed to launch on this Binder: it is not in the list of allowed repositories."
            )
    return None
