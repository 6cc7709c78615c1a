import asyncio
import json

import pytest

from binder_actors.events import BinderEvent, failed
from binder_actors.providers import InvalidSpec
from serve_app.paths import provider_and_spec
from serve_app.sse import event_stream


def test_event_on_the_wire_is_data_json_blank_line():
    event = BinderEvent(phase="built", message="Found built image, launching...\n", image_name="i:t")
    wire = event.to_sse()
    assert wire.startswith("data: ") and wire.endswith("\n\n")
    assert json.loads(wire[6:]) == {
        "phase": "built",
        "message": "Found built image, launching...\n",
        "imageName": "i:t",
    }


def test_failed_event_carries_status_and_one_trailing_newline():
    assert failed("boom\n", 404).to_wire() == {"phase": "failed", "message": "boom\n", "status_code": 404}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/build/git/https%3A%2F%2Fx%2Fr/HEAD", ("git", "https%3A%2F%2Fx%2Fr/HEAD")),
        ("/prefix/v2/gh/org/repo/main", ("gh", "org/repo/main")),
    ],
)
def test_spec_is_taken_from_the_encoded_path(raw, expected):
    marker = "build" if "/build/" in raw else "v2"
    assert provider_and_spec(raw, marker) == expected


@pytest.mark.parametrize("raw", ["/build/git", "/build/git/", "/other/git/x", "/build/git/" + "a" * 5000])
def test_malformed_paths_raise_invalid_spec(raw):
    with pytest.raises(InvalidSpec):
        provider_and_spec(raw, "build")


def test_stream_sends_keepalive_while_a_producer_is_quiet():
    async def scenario() -> list[str]:
        release = asyncio.Event()

        async def producer():
            yield "launch.0", BinderEvent(phase="waiting", message="queued\n")
            await release.wait()
            yield "launch.1", BinderEvent(phase="ready", message="done\n")

        chunks = []
        async for chunk in event_stream(producer(), keepalive=0.01):
            chunks.append(chunk)
            if chunk == ":keepalive\n\n":
                release.set()
        return chunks

    chunks = asyncio.run(scenario())
    assert chunks[0].startswith("id: launch.0\ndata: ") and chunks[-1].startswith("id: launch.1\ndata: ")
    assert ":keepalive\n\n" in chunks


def test_oversized_specs_are_refused_before_any_parsing():
    with pytest.raises(InvalidSpec, match="longer than 4096"):
        provider_and_spec("/build/gh/" + "a/" * 3000 + "HEAD", "build")
