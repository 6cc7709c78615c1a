"""Pure: which quota a spec gets, from BinderHub's per_repo_quota, high_quota_specs and spec_config."""

from __future__ import annotations

import re

from binder_actors.config import BinderConfig


def matches(pattern: str, spec: str) -> bool:
    """BinderHub's rule: `re.match` (anchored at the start), case-insensitive."""
    return re.match(pattern, spec, re.IGNORECASE) is not None


def repo_quota(spec: str, config: BinderConfig) -> int:
    """Sessions one repository may have at once; 0 means no limit.

    As BinderHub: high_quota_specs pick the higher default, then every spec_config entry that
    matches overrides it in order, so the last match wins.
    """
    quota = config.quotas.per_repo_quota
    if any(matches(pattern, spec) for pattern in config.quotas.high_quota_specs):
        quota = config.quotas.per_repo_quota_higher
    for override in config.quotas.spec_config:
        if matches(override.pattern, spec) and override.quota is not None:
            quota = override.quota
    return quota


def refusal(spec: str, config: BinderConfig) -> str | None:
    """Why `spec` may not launch here (banned_specs, allowed_specs), or None when it may."""
    if any(matches(pattern, spec) for pattern in config.access.banned_specs):
        return f"Sorry, {spec} has been temporarily disabled from launching. Please contact admins for more info!"
    if config.access.allowed_specs and not any(matches(pattern, spec) for pattern in config.access.allowed_specs):
        return f"Sorry, {spec} is not allowed to launch on this Binder: it is not in the list of allowed repositories."
    return None
