"""Pure: which quota a spec gets, from BinderHub's per_repo_quota, high_quota_specs and spec_config."""

from __future__ import annotations

import re

from binder_actors.config import BinderConfig


def matches(pattern: str, spec: str) -> bool:
    """BinderHub's rule: `re.match` (anchored at the start), case-insensitive."""
    return re.match(pattern, spec, re.IGNORECASE) is not None


def repo_quota(spec: str, config: BinderConfig) -> int:
    """Sessions one repository may have at once; 0 means no limit."""
    for override in config.spec_config:
        if matches(override.pattern, spec) and override.quota is not None:
            return override.quota
    if any(matches(pattern, spec) for pattern in config.high_quota_specs):
        return config.per_repo_quota_higher
    return config.per_repo_quota
