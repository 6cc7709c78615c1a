"""The progress events of a launch: BinderHub's EventSource protocol as one pydantic model.

Every event on the wire is `data: <json>\n\n`; these models are also what the Python client yields.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Phase = Literal["waiting", "fetching", "building", "pushing", "built", "launching", "ready", "failed"]


class BinderEvent(BaseModel):
    """One progress event; which optional fields are set depends on the phase."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    phase: Phase
    message: str = ""
    status_code: int | None = Field(None, description="HTTP-like status of a failed event.")
    image_name: str | None = Field(None, alias="imageName", description="Set on `built`.")
    # The ready payload, with BinderHub's field names.
    url: str | None = None
    token: str | None = None
    image: str | None = None
    repo_url: str | None = None
    binder_ref_url: str | None = None
    binder_launch_host: str | None = None
    binder_request: str | None = None
    binder_persistent_request: str | None = None

    def to_wire(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, exclude_none=True)

    def to_sse(self) -> str:
        return f"data: {json.dumps(self.to_wire())}\n\n"


def failed(message: str, status_code: int = 500) -> BinderEvent:
    """A `failed` event; the message ends with a newline as BinderHub's do."""
    return BinderEvent(phase="failed", message=message.rstrip("\n") + "\n", status_code=status_code)


def progress(phase: Phase, message: str) -> BinderEvent:
    return BinderEvent(phase=phase, message=message if message.endswith("\n") else message + "\n")
