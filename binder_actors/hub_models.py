"""The typed models of what JupyterHub's REST API answers (users, servers, spawn progress) and of the
Binder options a session's server carries: lenient, so fields a newer hub adds are ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from binder_actors.events import BinderEvent
from binder_actors.models import Session

# The hub group every user binder-actors creates joins. It stops, deletes and culls only its members,
# so on a hub shared with real users (BINDER_HUB_URL) theirs are never touched.
MANAGED_GROUP = "binder-actors"
# A pooled server's user is also in its deployment's pool group, and once a launch claims it, in that
# launch's claim group (hub_records.py): the hub holds the pool's state.
POOL_GROUP_PREFIX = "binder-actors-pool-"
CLAIM_GROUP_PREFIX = "binder-actors-claim-"


class _HubModel(BaseModel):
    """Lenient: fields the hub adds are ignored, and a missing or null optional field takes its default."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: Any) -> Any:
        if value is None and info.field_name:
            field = cls.model_fields[info.field_name]
            if not field.is_required() and field.default is not None:
                return field.get_default(call_default_factory=True)
        return value


class BinderOptions(_HubModel):
    """The Binder fields of a server's user_options: what SessionManager started it with.

    Servers binder-actors did not start may hold anything under these names: what is not text is
    read as absent, so one odd user on a shared hub cannot break admission or the culler.
    """

    image: str = ""
    token: str = Field("", repr=False)
    repo_url: str = ""
    binder_ref_url: str = ""
    binder_launch_host: str = ""
    binder_request: str = ""
    binder_persistent_request: str = ""
    binder_launch_key: str = Field("", repr=False)
    binder_pool: str = ""  # the pool group of a server started ahead of its launch ('' for any other)

    @field_validator("*", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        return value if isinstance(value, str) else ""

    def ready_event(self, url: str) -> BinderEvent:
        """BinderHub's ready event of a server at `url` started with these options."""
        return BinderEvent(
            phase="ready",
            message=f"server running at {url}\n",
            url=url,
            token=self.token,
            image=self.image,
            repo_url=self.repo_url,
            binder_ref_url=self.binder_ref_url,
            binder_launch_host=self.binder_launch_host,
            binder_request=self.binder_request,
            binder_persistent_request=self.binder_persistent_request,
        )


class HubServer(_HubModel):
    """One server of a hub user (the hub's server model)."""

    name: str = ""
    ready: bool = False
    pending: str | None = None  # "spawn" or "stop" while the hub is doing it
    url: str = ""
    started: datetime | None = None
    last_activity: datetime | None = None
    user_options: BinderOptions = Field(default_factory=BinderOptions)

    def ready_event(self, hub_url: str) -> BinderEvent | None:
        """The ready event of this server if it is a ready Binder session, else None."""
        if not self.ready or self.pending or not self.user_options.token:
            return None
        return self.user_options.ready_event(hub_url.rstrip("/") + self.url)


class HubUser(_HubModel):
    """A hub user (the hub's user model); a Binder session is a temporary user with a server."""

    name: str
    admin: bool = False
    created: datetime | None = None
    last_activity: datetime | None = None  # the latest of its servers' activity and its own
    groups: list[str] = []
    servers: dict[str, HubServer] = {}

    @property
    def managed(self) -> bool:
        """Whether binder-actors created it (it is in MANAGED_GROUP), so it may stop or delete it."""
        return MANAGED_GROUP in self.groups

    @property
    def pooled(self) -> bool:
        """Started ahead of a launch by a ServerPool (claimed or not)."""
        return any(group.startswith(POOL_GROUP_PREFIX) for group in self.groups)

    @property
    def waiting_in_pool(self) -> bool:
        """A pooled server no launch has claimed: not a session yet, the pool's alone."""
        return self.pooled and not any(group.startswith(CLAIM_GROUP_PREFIX) for group in self.groups)

    @property
    def claim_key(self) -> str:
        """The key of the launch that claimed this pooled server ('' if none did)."""
        prefix = CLAIM_GROUP_PREFIX
        claims = [group.removeprefix(prefix) for group in self.groups if group.startswith(prefix)]
        return claims[0] if self.pooled and claims else ""

    @property
    def launch_key(self) -> str:
        """The launch key its server was started with ('' if none)."""
        return next((s.user_options.binder_launch_key for s in self.servers.values()), "")

    def ready_event(self, hub_url: str) -> BinderEvent | None:
        """The ready event of its ready server, or None if it has none."""
        return next((e for s in self.servers.values() if (e := s.ready_event(hub_url))), None)

    def sessions(self, hub_url: str) -> list[Session]:
        """Its sessions, one per server."""
        return [
            Session(
                user=self.name,
                server=server_name,
                repo_url=server.user_options.repo_url,
                image=server.user_options.image,
                url=hub_url.rstrip("/") + server.url,
                ready=server.ready,
                started=server.started,
                last_activity=server.last_activity,
            )
            for server_name, server in self.servers.items()
        ]


class SpawnProgress(_HubModel):
    """One event of the hub's spawn progress stream."""

    progress: float | None = None
    message: str = ""
    ready: bool = False
    failed: bool = False
    url: str | None = None
