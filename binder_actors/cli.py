"""`binder-actors`: run the service, launch repositories, build and run images from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import threading

from binder_actors.config import BinderConfig


def _serve(args: argparse.Namespace) -> int:
    from binder_actors.embedded import start_embedded

    overrides = {"port": args.port} if args.port else {}
    config = BinderConfig(**overrides)
    print(f"Starting binder-actors (data in {config.data_dir}) ...", flush=True)
    stack = start_embedded(config)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    example = "v2/git/https%3A%2F%2Fexample.org%2Fyou%2Frepo.git/HEAD"
    print(
        f"binder-actors is running at {stack.url}\n  open {stack.url} to make a link, or "
        f"{stack.url}{example}\n  JupyterHub: {stack.hub.url if stack.hub else stack.config.hub_url}"
        "\nPress Ctrl-C to stop.",
        flush=True,
    )
    stopping.wait()
    print("Stopping servers, JupyterHub and Ray ...", flush=True)
    stack.stop()
    print("Stopped.", flush=True)
    return 0


def _launch(args: argparse.Namespace) -> int:
    from binder_actors.client import BinderClient

    provider, _, spec = args.spec.partition("/")
    client = BinderClient.connect()

    async def run() -> int:
        async for event in client.launch(provider, spec):
            if args.json:
                print(json.dumps(event.to_wire()), flush=True)
            elif event.phase == "ready":
                print(f"ready: {event.url}?token={event.token}", flush=True)
            else:
                print(f"[{event.phase}] {event.message.rstrip()}", flush=True)
            if event.phase == "failed":
                return 1
        return 0

    return asyncio.run(run())


def _build(args: argparse.Namespace) -> int:
    """Build in this process, into the same store the service uses (BINDER_DATA_DIR)."""
    from pathlib import Path
    from urllib.parse import quote

    from binder_actors.builders import BuildFailed, BuildRequest
    from binder_actors.builders.local import LocalBuildExecutor
    from binder_actors.events import BinderEvent
    from binder_actors.names import build_name, image_name
    from binder_actors.providers import InvalidSpec, ResolveError
    from binder_actors.providers.git import GitProvider
    from binder_actors.registries.local import LocalImageStore

    config = BinderConfig(allow_local_repos=True)
    repo = Path(args.repo).resolve().as_uri() if Path(args.repo).exists() else args.repo
    provider = GitProvider()
    try:
        parsed = provider.parse(f"{quote(repo, safe='')}/{quote(args.ref, safe='')}", allow_local_repos=True)
        resolved = asyncio.run(provider.resolve(parsed, timeout=config.upstream_timeout, allow_local_repos=True))
    except (InvalidSpec, ResolveError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    image = image_name(config.image_prefix, resolved.build_slug, resolved.resolved_ref)
    store = LocalImageStore(config.images_dir)
    if store.read(image) is None:

        async def show(event: BinderEvent) -> None:
            print(event.message, end="", file=sys.stderr, flush=True)

        request = BuildRequest(
            image=image, build_name=build_name(resolved.build_slug, resolved.resolved_ref), resolved=resolved
        )
        try:
            asyncio.run(LocalBuildExecutor(config, store).build(request, show))
        except BuildFailed as error:
            print("\n".join([f"error: {error}", *error.log_tail]), file=sys.stderr)
            return 1
    print(image)
    return 0


def _exec(args: argparse.Namespace) -> int:
    from binder_actors.builders.local import run_in_image
    from binder_actors.registries.local import LocalImageStore

    store = LocalImageStore(BinderConfig().images_dir)
    image = store.read(args.image)
    if image is None:
        known = "\n  ".join(store.images()) or "(none yet: `binder-actors build <repo>` makes one)"
        print(f"error: no built image {args.image!r} in {store.root}. Built images:\n  {known}", file=sys.stderr)
        return 2
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("error: give a command after --, e.g. `binder-actors exec IMAGE -- python -V`", file=sys.stderr)
        return 2
    return run_in_image(image, command)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="binder-actors", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the embedded service until Ctrl-C")
    serve_cmd.add_argument("--port", type=int, help="HTTP port (default BINDER_PORT or 8000)")
    serve_cmd.set_defaults(run=_serve)
    launch_cmd = commands.add_parser("launch", help="launch <provider>/<spec> on a running service")
    launch_cmd.add_argument("spec", help="e.g. git/https%%3A%%2F%%2Fexample.org%%2Frepo.git/HEAD")
    launch_cmd.add_argument("--json", action="store_true", help="one JSON event per line")
    launch_cmd.set_defaults(run=_launch)
    build_cmd = commands.add_parser("build", help="build a repository (URL or local path); prints the image")
    build_cmd.add_argument("repo", help="git URL or path of a local git repository")
    build_cmd.add_argument("--ref", default="HEAD", help="branch, tag or commit (default HEAD)")
    build_cmd.set_defaults(run=_build)
    exec_cmd = commands.add_parser("exec", help="run a command in a built image, as its server would run")
    exec_cmd.add_argument("image", help="an image name printed by `build` or a launch")
    exec_cmd.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    exec_cmd.set_defaults(run=_exec)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
