"""BINDER_IMAGE_STORE_MAX_GB on the local store: a deployment of its own (actors in their own namespace, a
hub of its own, a store sized so that three images fit and a fourth does not) builds, launches and
prunes real images; the session running through it all keeps its image.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import ray
from pydantic import SecretStr

from binder_actors.actors import ActorHandles, ensure_actors, kill_actors
from binder_actors.builders.local import LocalBuildExecutor
from binder_actors.cli import main
from binder_actors.client import BinderClient
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from binder_actors.image_budget import GB
from binder_actors.models import BuildRequest
from binder_actors.registries.local import LocalImageStore
from serve_app.embedded import EmbeddedHub, EmbeddedStack, hub_api_token, start_hub
from tests.conftest import REQUIREMENTS_REPO
from tests.docker_stack import resolved_ref
from tests.helpers import GitServer, git_spec

NAMESPACE = "binder-budget"
REPOS = ("budget-a", "budget-b", "budget-c", "budget-d")


@dataclass
class BudgetStack:
    config: BinderConfig
    hub: EmbeddedHub
    actors: ActorHandles
    client: BinderClient
    store: LocalImageStore
    images: dict[str, str]  # repository -> image
    image_bytes: int  # the size of the first image, on which the budget is set


@pytest.fixture(scope="module")
def budget_stack(stack: EmbeddedStack, git_server: GitServer, tmp_path_factory) -> Iterator[BudgetStack]:
    """The first image built in this process to learn an image's size, then a deployment whose budget holds
    3.5 such images: a third build fits, a fourth has to make room (room for the mean image is kept free)."""
    data_dir = tmp_path_factory.mktemp("binder-budget-data")
    shared_stacks = stack.config.data_dir / "stacks"
    shared_stacks.mkdir(exist_ok=True)
    (data_dir / "stacks").symlink_to(shared_stacks)  # the shared server stack, built once
    images = {}
    for name in REPOS:
        # 4 MB of data in each checkout: the bytecode a session writes into its image is small beside it.
        sha = git_server.add(name, {**REQUIREMENTS_REPO, "data.txt": f"{name}\n" * 400_000})
        images[name] = BuildRequest.for_ref(resolved_ref(git_server.url(name), sha)).image
    config = BinderConfig(data_dir=data_dir, namespace=NAMESPACE, cull_every=3600)
    store = LocalImageStore(config.images_dir)

    async def ignore(event: BinderEvent) -> None:
        pass

    first = BuildRequest.for_ref(resolved_ref(git_server.url(REPOS[0]), images[REPOS[0]].rsplit(":", 1)[1]))
    asyncio.run(LocalBuildExecutor(config, store).build(first, ignore))
    (built,) = store.stored_images()
    config = config.with_settings(image_store_max_gb=3.5 * built.size / GB)
    (data_dir / "hub").mkdir()
    token = hub_api_token(data_dir / "hub")
    hub = start_hub(config, token)
    config = config.model_copy(update={"hub_url": hub.url, "hub_api_token": SecretStr(token)})
    try:
        actors = ensure_actors(config)
        yield BudgetStack(config, hub, actors, BinderClient(actors), store, images, built.size)
    finally:
        hub.stop_all_sessions(token)
        kill_actors(NAMESPACE)
        hub.stop()


def link(git_server: GitServer, name: str) -> str:
    return f"git/{git_spec(git_server.url(name), 'main')}"


def build(budget: BudgetStack, git_server: GitServer, name: str) -> None:
    events = list(budget.client.build(link(git_server, name)))
    assert events[-1].phase == "built", events[-1]


def test_a_build_past_the_budget_removes_the_least_recently_launched_image_no_session_runs(
    budget_stack: BudgetStack, git_server: GitServer
) -> None:
    budget, images = budget_stack, budget_stack.images
    build(budget, git_server, "budget-b")
    running = budget.client.start(link(git_server, "budget-a"))  # a: launched first, and still running
    stopped = budget.client.start(link(git_server, "budget-b"))  # b: launched after a, then stopped
    budget.client.stop(stopped)
    build(budget, git_server, "budget-c")  # three images fit: nothing goes
    assert budget.store.list_images() == sorted(images[n] for n in ("budget-a", "budget-b", "budget-c"))

    build(budget, git_server, "budget-d")  # a fourth does not: b goes, never the running session's a
    assert budget.store.list_images() == sorted(images[n] for n in ("budget-a", "budget-c", "budget-d"))
    assert running.run("print(6 * 7)").strip() == "42"  # a's session still runs from its image
    # ImageCache forgot b: a launch of b builds it again instead of starting a server on a missing image.
    assert ray.get(budget.actors.image_cache.exists.remote(images["budget-b"])) is False


def test_prune_dry_run_lists_and_prune_removes_saying_how_much(
    budget_stack: BudgetStack, git_server: GitServer, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    budget, images = budget_stack, budget_stack.images
    if images["budget-d"] not in budget.store.list_images():
        pytest.skip("runs after the build test, on the store it left (a running, then c and d built)")
    monkeypatch.setenv("BINDER_NAMESPACE", NAMESPACE)  # the CLI finds the deployment by its namespace
    held = budget.store.list_images()

    assert main(["prune", "--dry-run"]) == 0
    said = capsys.readouterr().out
    assert said.startswith("would remove 1 image(s), "), said
    assert f"  {images['budget-c']}\n" in said  # the oldest image that runs nowhere: c, built before d
    assert budget.store.list_images() == held

    assert main(["prune"]) == 0
    said = capsys.readouterr().out
    assert said.startswith("removed 1 image(s), ") and " MB; the store now holds " in said, said
    assert "(1 image(s) in use kept)" in said
    assert budget.store.list_images() == sorted(images[n] for n in ("budget-a", "budget-d"))

    assert main(["prune", "--json"]) == 0
    assert '"removed": []' in capsys.readouterr().out  # within the budget now: nothing more goes
