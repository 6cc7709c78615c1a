"""The Binder spawner contract is checked once per spawn, before the local session is prepared."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from tornado import web

from binder_actors.registries.local import LocalImage, LocalImageStore
from binder_actors.spawners import LocalBinderSpawner

IMAGE = "local/requirements-abc:0123456789ab"


class CountingSpawner(LocalBinderSpawner):
    """LocalBinderSpawner as JupyterHub runs it, counting the contract checks of one start."""

    checks = 0

    def check_binder_options(self) -> None:
        self.checks += 1
        super().check_binder_options()


def spawner(tmp_path: Path, user_options: dict[str, str]) -> CountingSpawner:
    store = LocalImageStore(tmp_path / "images")
    path = store.path_for(IMAGE)
    (path / "repo").mkdir(parents=True)
    store.record(
        LocalImage(
            image=IMAGE,
            path=path,
            repo_url="https://example.org/r",
            resolved_ref="0" * 40,
            python_version="3.10",
            stack_dir=tmp_path / "stack",
        )
    )
    return CountingSpawner(
        user=SimpleNamespace(name="someone"),  # JupyterHub's User: only its name is read before the process starts
        image_store=str(store.root),
        sessions_dir=str(tmp_path / "sessions"),
        user_options=user_options,
    )


def test_a_local_spawn_checks_the_binder_options_once(tmp_path):
    local = spawner(tmp_path, {"image": IMAGE, "token": "a-token"})
    with pytest.raises(AttributeError, match="public_host"):  # no hub behind it: the process cannot start
        asyncio.run(local.start())
    assert local.checks == 1
    assert (tmp_path / "sessions" / "someone-default").is_dir(), "the session was prepared after the check"


@pytest.mark.parametrize(("user_options", "missing"), [({"image": IMAGE}, "token"), ({"token": "t"}, "image")])
def test_a_local_spawn_without_image_or_token_is_refused_before_anything_is_made(tmp_path, user_options, missing):
    local = spawner(tmp_path, user_options)
    with pytest.raises(web.HTTPError, match=f"must include {missing}"):
        asyncio.run(local.start())
    assert not (tmp_path / "sessions").exists()
