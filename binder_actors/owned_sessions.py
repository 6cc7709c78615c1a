"""Pure: which hub servers are Binder sessions of logged-in users (authenticated mode), and who owns them.

In authenticated mode a launch starts a named server of the logged-in user; the user is theirs, not
binder-actors', so it is never deleted: only the servers binder-actors started (their user_options
name this deployment as binder_launch_host) are listed, stopped and culled.
"""

from __future__ import annotations

from collections.abc import Iterable

from binder_actors.hub_models import HubServer, HubUser


def named_server_limit_message(user: str, limit: int) -> str:
    """BinderHub's words (JupyterHub's) when a user already has `limit` servers."""
    return (
        f"User {user} already has the maximum of {limit} named servers."
        "  One must be deleted before a new server can be created"
    )


def session_key(user: str, server: str) -> str:
    """What admission and SessionManager count a session of a logged-in user under: `user/server`."""
    return f"{user}/{server}"


def is_binder_server(server: HubServer, launch_host: str) -> bool:
    """Whether this deployment started `server` (a user may have servers of their own beside)."""
    options = server.user_options
    return bool(options.image) and options.binder_launch_host == launch_host


def owned_servers(user: HubUser, launch_host: str) -> HubUser | None:
    """`user` with only the Binder servers this deployment started for them, or None if it has none.

    Users binder-actors created (its temporary users) are not logged-in users: None.
    """
    if user.managed:
        return None
    servers = {name: server for name, server in user.servers.items() if is_binder_server(server, launch_host)}
    return user.model_copy(update={"servers": servers}) if servers else None


def binder_users(users: Iterable[HubUser], launch_host: str, *, logged_in: bool) -> list[HubUser]:
    """The users whose servers are Binder sessions: binder-actors' own temporary users, and, only
    when `logged_in` (BINDER_AUTH_ENABLED), logged-in users with just their Binder servers."""
    chosen = []
    for user in users:
        if user.managed:
            chosen.append(user)
        elif logged_in and (owned := owned_servers(user, launch_host)) is not None:
            chosen.append(owned)
    return chosen


def session_repos(user: HubUser) -> dict[str, str]:
    """{session key: repo_url} of `user`'s servers: a temporary user counts once, by its name;
    a logged-in user once per server."""
    if user.managed:
        return dict((user.name, s.user_options.repo_url) for s in user.servers.values())  # noqa: C402
    return {session_key(user.name, name): s.user_options.repo_url for name, s in user.servers.items()}


def server_scope(user: str, server: str) -> str:
    """The one scope a session's token carries: access to this server only."""
    return f"access:servers!server={user}/{server}" if server else f"access:servers!user={user}"
