"""What binder-actors writes into JupyterHub besides its users: a launch's user_options, and the pool's groups.

A pooled server's user is in MANAGED_GROUP and its deployment's pool group; a launch that takes it adds it
to a claim group named by the launch. Creating a group is atomic in the hub (a second creation is a 409),
so the claim group is the record that a server went to one launch, found again by a restarted actor.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from binder_actors.hub import HubClient, HubError
from binder_actors.hub_models import CLAIM_GROUP_PREFIX, POOL_GROUP_PREFIX, BinderOptions
from binder_actors.models import LaunchRequest
from binder_actors.providers.base import ResolvedRef

_PAGINATION = "application/jupyterhub-pagination+json"


def launch_options(request: LaunchRequest, *, token: str, launch_host: str, pool: str = "") -> BinderOptions:
    """The Binder user_options of a server started for `request` (`pool`: its pool group, if pooled)."""
    resolved = request.resolved
    return BinderOptions(
        image=request.image,
        token=token,
        repo_url=resolved.repo_url,
        binder_ref_url=resolved.ref_url,
        binder_launch_host=launch_host,
        binder_request=request.binder_request,
        binder_persistent_request=request.binder_persistent_request,
        binder_launch_key=request.launch_key,
        binder_pool=pool,
    )


def template_of(options: BinderOptions) -> LaunchRequest | None:
    """The launch a pooled server was started for, read back from its user_options (a restarted pool's
    memory of what to start); None if they do not say. Build slug and unresolved ref are not kept there:
    the pool needs neither, it starts servers of an image already built."""
    provider, _, spec = options.binder_request.removeprefix("v2/").partition("/")
    persistent = options.binder_persistent_request.removeprefix("v2/").partition("/")[2]
    if not (provider and spec and options.image and options.repo_url):
        return None
    resolved = ResolvedRef(
        provider=provider,
        spec=spec,
        repo_url=options.repo_url,
        unresolved_ref="",
        resolved_ref=options.image.rsplit(":", 1)[-1],
        build_slug="",
        ref_url=options.binder_ref_url,
        persistent_spec=persistent or spec,
    )
    return LaunchRequest(
        image=options.image,
        resolved=resolved,
        binder_request=options.binder_request,
        binder_persistent_request=options.binder_persistent_request,
    )


def pool_group(namespace: str) -> str:
    """The group of one deployment's pooled servers (deployments sharing a hub keep their pools apart)."""
    return POOL_GROUP_PREFIX + namespace


def claim_key_of(request: LaunchRequest) -> str:
    """The key of the claim group of a pooled server `request` takes: its launch key, else its user."""
    return request.launch_key or request.user


def hub_user_of(url: str) -> str:
    """The hub user of a server URL (`.../user/<name>/...`)."""
    return url.partition("/user/")[2].partition("/")[0]


def claim_group(claim_key: str) -> str:
    """The group recording which launch took a pooled server: the launch's key (a hash of its id)."""
    return CLAIM_GROUP_PREFIX + claim_key


def _group_path(group: str) -> str:
    return f"groups/{quote(group, safe='')}"


async def join_group(hub: HubClient, group: str, user: str) -> None:
    """Add `user` to `group`, made first if the hub has no such group."""
    try:
        await hub.request("POST", _group_path(group) + "/users", body={"users": [user]})
    except HubError as error:
        if error.status_code != 404:
            raise
        await hub.request("POST", _group_path(group), body={"users": [user]}, ok=(200, 201, 409))
        await hub.request("POST", _group_path(group) + "/users", body={"users": [user]})


async def create_claim(hub: HubClient, group: str, user: str) -> str:
    """Make `group` holding `user`; if the group was made already (by an earlier call of the same launch),
    the user it holds. Raises HubError when the hub did not answer either way."""
    try:
        await hub.request("POST", _group_path(group), body={"users": [user]}, ok=(200, 201))
        return user
    except HubError as error:
        if error.status_code != 409:
            raise
    holders = await group_users(hub, group)
    if not holders:  # made empty by a call that died between the group and its member: ours now
        await hub.request("POST", _group_path(group) + "/users", body={"users": [user]})
        return user
    return holders[0]


async def group_users(hub: HubClient, group: str) -> list[str]:
    try:
        answer = await hub.request("GET", _group_path(group))
    except HubError as error:
        if error.status_code == 404:
            return []
        raise
    users = answer.get("users", []) if isinstance(answer, dict) else []
    return [str(user) for user in users]


async def delete_group(hub: HubClient, group: str) -> None:
    await hub.request("DELETE", _group_path(group), ok=(200, 204, 404))


async def groups_named(hub: HubClient, prefix: str, page_size: int = 200) -> dict[str, list[str]]:
    """{group: its users} of every hub group whose name starts with `prefix`."""
    found: dict[str, list[str]] = {}
    offset = 0
    while True:
        page: Any = await hub.request(
            "GET", f"groups?offset={offset}&limit={page_size}", headers={"Accept": _PAGINATION}
        )
        items = page["items"] if isinstance(page, dict) else page
        for item in items:
            name = str(item.get("name", ""))
            if name.startswith(prefix):
                found[name] = [str(user) for user in item.get("users", [])]
        following = page.get("_pagination", {}).get("next") if isinstance(page, dict) else None
        if not following or not items:
            return found
        offset = int(following["offset"])


async def report_activity(hub: HubClient, user: str, server_name: str) -> None:
    """Tell the hub `user`'s server was active now: a server claimed long after it started is not idle."""
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    await hub.request(
        "POST",
        f"users/{quote(user, safe='')}/activity",
        body={"last_activity": now, "servers": {server_name: {"last_activity": now}}},
    )
