"""A repository's own Dockerfile, as repo2docker's Dockerfile build pack builds it (the docker builder runs the build).

What the engine is asked (build arguments, labels), how its output tells where a build stands (the running
step's container, the images it committed, the instruction a failure belongs to), what a user reads when
the Dockerfile cannot make a Binder image, and the engine calls only such a build needs. Its steps carry no
label of ours, so the layers it commits are also written to a journal (BINDER_DATA_DIR/docker-builds/<build>),
which is how a restarted scheduler finds what an interrupted build left.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

from docker.errors import APIError, DockerException, NotFound

from binder_actors.builders import BuildFailed
from binder_actors.docker_engine import BUILDING_LABEL

# The user repo2docker (as BinderHub runs it) builds for; the docker builder's own images use the same.
NB_USER = "jovyan"
NB_UID = 1000
SINGLEUSER = "jupyterhub-singleuser"
# What a container gets when its image sets no PATH (the engine's default).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
JOURNALS = "docker-builds"  # under BINDER_DATA_DIR: one file per running build, the layers it committed

# The classic builder's progress lines: a step's instruction, its container, the image it committed.
_STEP_RE = re.compile(r"^Step \d+/\d+ : (?P<instruction>\S+)\s*(?P<arguments>.*)$")
_RUNNING_RE = re.compile(r"^ ---> Running in (?P<container>[0-9a-f]{12,64})$")
_COMMITTED_RE = re.compile(r"^ ---> (?P<image>[0-9a-f]{12,64})$")


def build_args() -> dict[str, str]:
    """The build arguments repo2docker passes every Dockerfile (a Dockerfile declares them with ARG)."""
    return {"NB_USER": NB_USER, "NB_UID": str(NB_UID)}


def image_labels(labels: dict[str, str]) -> dict[str, str]:
    """The labels of an image built from a repository's Dockerfile: ours, and BUILDING_LABEL empty.

    The engine appends build-time labels after the last instruction, so its step containers never carry
    them; the image does, and its session containers inherit them: empty, so that no sweep of leftover
    build steps ever takes a session, whatever label the FROM image had.
    """
    return {**labels, BUILDING_LABEL: ""}


def from_image(arguments: str) -> str:
    """The image of a FROM instruction's arguments (`--platform=...` and `AS name` left out)."""
    words = [word for word in arguments.split() if not word.startswith("--")]
    return words[0] if words else arguments


@dataclass
class BuildSteps:
    """Where one classic-builder build stands, read from its output lines, for a build whose steps carry
    no label of ours: its containers to stop, the images it committed to remove if it fails."""

    dockerfile: str  # as the repository names it, for messages
    instruction: str = ""
    arguments: str = ""
    containers: set[str] = field(default_factory=set)
    images: set[str] = field(default_factory=set)
    journal: Path | None = None  # where committed layers are written as they come, one a line

    def read(self, line: str) -> None:
        if match := _STEP_RE.match(line):
            self.instruction, self.arguments = match["instruction"].upper(), match["arguments"].strip()
        elif match := _RUNNING_RE.match(line):
            self.containers.add(match["container"][:12])
        elif (match := _COMMITTED_RE.match(line)) and match["image"][:12] not in self.images:
            self.images.add(match["image"][:12])
            if self.journal is not None:
                with self.journal.open("a") as journal:
                    journal.write(match["image"][:12] + "\n")

    def failure(self, error: str) -> str:
        """What the user reads when the engine reports `error` for the current step."""
        error = error.strip()
        if self.instruction == "FROM":
            image = from_image(self.arguments)
            return (
                f"The image {image} that {self.dockerfile} builds FROM could not be pulled ({error}): "
                "the Docker Engine pulls a FROM image it does not have, so it must be reachable from dockerd "
                "(or already in the engine)."
            )
        return f"docker build failed: {error}"


def missing_singleuser(dockerfile: str) -> str:
    """Why an image without jupyterhub-singleuser cannot be a Binder session (BinderHub's documentation says it too)."""
    return (
        f"The image built from {dockerfile} has no {SINGLEUSER} on its PATH: sessions run {SINGLEUSER}, as "
        f"BinderHub's do, so the Dockerfile must install jupyterhub (e.g. `RUN pip install "
        f"jupyterhub=={installed_version('jupyterhub')}`, the hub's version, with notebook or jupyterlab)."
    )


def search_path(env: list[str] | None) -> list[str]:
    """The folders of an image's PATH (its config's `Env`), where a session's command is looked for."""
    values = dict(item.split("=", 1) for item in env or [] if "=" in item)
    return [folder for folder in values.get("PATH", DEFAULT_PATH).split(":") if folder.startswith("/")]


def has_singleuser(client: Any, image: str, build_name: str) -> bool:
    """Is jupyterhub-singleuser in a folder of the image's PATH? Read from a container that never runs (no
    shell or `which` needed in the image), labelled with the build so a stopped build's sweep takes it too."""
    try:
        config = client.api.inspect_image(image)["Config"] or {}
        container = client.api.create_container(image, command=[SINGLEUSER], labels={BUILDING_LABEL: build_name})
    except DockerException as error:
        raise BuildFailed(f"The Docker Engine failed: {error}") from None
    try:
        for folder in search_path(config.get("Env")):
            try:
                client.api.get_archive(container["Id"], f"{folder}/{SINGLEUSER}")[0].close()
                return True
            except NotFound:
                continue
        return False
    finally:
        with contextlib.suppress(DockerException):
            client.api.remove_container(container["Id"], force=True)


def journaled_steps(data_dir: Path, build_name: str, dockerfile: str) -> BuildSteps:
    """The steps of a build starting now, its journal created empty."""
    journal = data_dir / JOURNALS / build_name
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text("")
    return BuildSteps(dockerfile, journal=journal)


def finish_steps(client: Any, steps: BuildSteps) -> None:
    """A build ended (built or not): its untagged layers removed, then its journal."""
    remove_step_images(client, steps)
    if steps.journal is not None:
        steps.journal.unlink(missing_ok=True)


def sweep_journals(client: Any, data_dir: Path) -> list[str]:
    """The builds whose journaled layers this sweep removed (a dead scheduler's builds); the journals stay
    until `forget_journals`, since dockerd may still be winding such a build down."""
    return [
        journal.name
        for journal in sorted((data_dir / JOURNALS).glob("*"))
        if remove_step_images(client, BuildSteps(journal.name, images=set(journal.read_text().split())))
    ]


def forget_journals(data_dir: Path) -> None:
    for journal in (data_dir / JOURNALS).glob("*"):
        journal.unlink(missing_ok=True)


def remove_step_images(client: Any, steps: BuildSteps) -> bool:
    """The untagged images a build committed (an unfinished build's, or the stages of a multi-stage one),
    newest first, one layer a pass; tagged images and the layers other images build on stay. Removed any?"""
    removed = False
    for _ in range(100):  # a Dockerfile has far fewer steps
        try:
            dangling = client.api.images(filters={"dangling": True})
        except DockerException:
            return removed
        doomed = [entry["Id"] for entry in dangling if entry["Id"].removeprefix("sha256:")[:12] in steps.images]
        if not doomed:
            return removed
        for image_id in doomed:
            with contextlib.suppress(NotFound, APIError):
                client.api.remove_image(image_id, noprune=True)
                removed = True
    return removed
