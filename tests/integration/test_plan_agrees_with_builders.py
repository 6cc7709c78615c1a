"""The plan and the builders cannot disagree: a checkout a builder refuses fails its real build with exactly
the refusal `binder-actors plan` shows (the local builder, and the docker builder against the real dockerd)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from binder_actors.builders import BuildExecutor, BuildFailed
from binder_actors.builders.docker import DockerBuildExecutor
from binder_actors.builders.local import LocalBuildExecutor
from binder_actors.builders.plan_report import describe_checkout
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from binder_actors.models import BuildRequest
from binder_actors.registries.local import LocalImageStore
from tests.docker_stack import resolved_ref
from tests.helpers import GitServer

_names = itertools.count()


def executor_for(config: BinderConfig) -> BuildExecutor:
    if config.builder == "docker":
        return DockerBuildExecutor(config)
    return LocalBuildExecutor(config, LocalImageStore(config.images_dir))


async def ignore(event: BinderEvent) -> None:
    pass


@pytest.mark.parametrize(
    ("files", "builder"),
    [
        ({"requirements.txt": "tabulate\n", "apt.txt": "jq\n"}, "local"),
        ({"Dockerfile": "FROM busybox\n"}, "local"),
        ({"default.nix": "{}\n"}, "docker"),
        ({"install.R": 'install.packages("x")\n'}, "local"),
        ({"runtime.txt": "r-4.3-2023-06-01\n"}, "local"),
        ({"DESCRIPTION": "Package: x\n"}, "local"),
        ({"runtime.txt": "r-2017-06-01\n"}, "docker"),  # before the first snapshot
        ({"install.R": "", "environment.yml": "dependencies: [numpy]\n"}, "docker"),  # no R runtime.txt
        ({"runtime.txt": "python-3.99\n"}, "local"),  # a Python this machine does not have
        ({"runtime.txt": "python-3.12\n"}, "docker"),  # a Python the base image does not have
        ({"runtime.txt": "python-3.7.3\n"}, "docker"),
        ({"runtime.txt": "python-2.7\n"}, "docker"),  # a kernel beside the server: the local builder's only
        ({"runtime.txt": "python-3.4\n"}, "local"),  # a kernel Python this machine does not have
        ({"binder/requirements.txt": "a\n", ".binder/requirements.txt": "b\n"}, "local"),
    ],
)
def test_a_refused_build_fails_with_the_plans_refusal(tmp_path: Path, git_server: GitServer, files, builder):
    name = f"plan-refusal-{next(_names)}"
    sha = git_server.add(name, files)
    config = BinderConfig(builder=builder, data_dir=tmp_path / "data", docker_base_python="3.11")
    plan = describe_checkout(git_server.root / name, config)
    assert not plan.builds and plan.refusal

    resolved = resolved_ref(git_server.url(name), sha)
    with pytest.raises(BuildFailed) as failed:
        asyncio.run(executor_for(config).build(BuildRequest.for_ref(resolved), ignore))
    assert str(failed.value) == plan.refusal
