"""Cached launch latency in containers (BINDER_BUILDER=docker) against the embedded default, same run.

For each backend: the real stack on loopback, one repository built by a first launch, then LAUNCHES
launches of that built image over HTTP, request to `ready`, each session stopped (untimed) before the next.
"""

from __future__ import annotations

import statistics
from typing import Literal

from docker.errors import DockerException

from bench.harness import bench_stack, summary
from binder_actors.config import BinderConfig
from binder_actors.docker_engine import SETUP_HINT, DockerUnavailable, engine_client

LAUNCHES = 20
REPOSITORY = {"requirements.txt": "tabulate==0.9.0\n"}


def available() -> bool:
    """dockerd answers and has the base image: `make bench` includes this benchmark only then."""
    try:
        engine_client(timeout=10).images.get(BinderConfig().docker.base_image)
    except (DockerUnavailable, DockerException):
        return False
    return True


def cached_launches(builder: Literal["local", "docker"]) -> tuple[float, list[float]]:
    """Seconds of the first launch (with its build) and of LAUNCHES cached ones, on a fresh stack."""
    with bench_stack(f"binder-bench-{builder}-", builder=builder) as stack:
        spec = stack.add_repo(f"cached-{builder}", REPOSITORY)
        first = stack.launch(spec).seconds
        stack.stop_sessions()
        cached = []
        for _ in range(LAUNCHES):
            cached.append(stack.launch(spec).seconds)
            stack.stop_sessions()
    return first, cached


def run() -> dict[str, object]:
    if not available():
        raise DockerUnavailable(
            f"The docker benchmark needs dockerd and {BinderConfig().docker.base_image}; {SETUP_HINT}."
        )
    record: dict[str, object] = {"repository": REPOSITORY}
    medians = {}
    for builder in ("local", "docker"):
        first, cached = cached_launches(builder)
        medians[builder] = statistics.median(cached)
        record[builder] = {
            "first_launch_with_build_s": round(first, 2),
            "cached_launch_s": {"launches": LAUNCHES, **summary(cached)},
            "cached_launch_runs_s": [round(value, 3) for value in cached],
        }
    record["docker_vs_local_median"] = round(medians["docker"] / medians["local"], 2)
    return record
