"""`binder-actors`: run the service, launch repositories, plan, build and run images from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import threading

from binder_actors.config import BinderConfig, ConfigError
from binder_actors.hub import HubError


def _serve(args: argparse.Namespace) -> int:
    # The CLI entry point calls the composition root, which lives above both packages (it starts the hub,
    # Ray, the actors and Serve); imported here so that the other commands need no Serve app.
    from serve_app.embedded import start_embedded

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


PHASES = ("waiting", "fetching", "building", "launching")


def _client(args: argparse.Namespace):  # -> BinderClient; imported late: Ray is slow to import
    from binder_actors.client import BinderClient

    return BinderClient.connect(address=args.address, namespace=BinderConfig().namespace, token=args.token)


def _launch(args: argparse.Namespace) -> int:
    """Launch with a progress bar per phase and the log's tail; print the session URL."""
    import webbrowser
    from collections import deque

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from binder_actors.client import LaunchedSession

    client = _client(args)
    if args.json:
        for item in client.launch(args.link):
            if isinstance(item, LaunchedSession):
                continue
            print(json.dumps(item.to_wire()), flush=True)
            if item.phase == "failed":
                return 1
        return 0
    console = Console(stderr=True)
    tail: deque[str] = deque(maxlen=8)
    with Progress(
        TextColumn("{task.description:<10}"), BarColumn(), TimeElapsedColumn(), console=console, transient=False
    ) as progress:
        tasks = {phase: progress.add_task(phase, total=1, start=False) for phase in PHASES}
        current: str | None = None
        for item in client.launch(args.link):
            if isinstance(item, LaunchedSession):
                print(item.browser_url, flush=True)
                if args.open:
                    webbrowser.open(item.browser_url)
                return 0
            phase = "building" if item.phase in ("built", "pushing") else item.phase
            if phase in tasks and phase != current:
                if current is not None:
                    progress.update(tasks[current], completed=1)
                progress.start_task(tasks[phase])
                current = phase
            if item.phase == "failed":
                console.print("[red]" + "\n".join(tail))
                console.print(f"[bold red]failed:[/] {item.message.rstrip()}")
                return 1
            for line in item.message.splitlines():
                tail.append(line)
                progress.console.print(f"[dim]{line}")
    return 1


def _sessions(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    sessions = _client(args).sessions()
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in sessions], indent=2))
        return 0
    table = Table("user", "server", "repository", "image", "started", "last activity", "url")
    for session in sessions:
        table.add_row(
            session.user,
            session.server,
            session.repo_url,
            session.image.split(":")[0],
            str(session.started or ""),
            str(session.last_activity or ""),
            session.url,
        )
    Console().print(table)
    return 0


def _stop(args: argparse.Namespace) -> int:
    try:
        _client(args).stop(args.user)
    except (HubError, PermissionError) as error:  # e.g. its server is still stopping: say so, no traceback
        print(f"could not stop {args.user}: {error}", file=sys.stderr)
        return 1
    print(f"stopped {args.user}")
    return 0


def _cull(args: argparse.Namespace) -> int:
    report = _client(args).cull(timeout=args.timeout, dry_run=args.dry_run)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        verb = "would cull" if args.dry_run else "culled"
        print(f"checked {report.checked} users; {verb} {len(report.culled)}: {' '.join(report.culled) or '-'}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from binder_actors.image_budget import describe

    report = _client(args).prune(dry_run=args.dry_run)
    print(report.model_dump_json(indent=2) if args.json else describe(report), end="\n" if args.json else "")
    return 0


def _status(args: argparse.Namespace) -> int:
    """What is running: Ray, the hub, the actors, builds, sessions."""
    try:
        client = _client(args)
    except ConnectionError as error:
        print(json.dumps({"running": False, "error": str(error)}) if args.json else f"not running: {error}")
        return 1
    status = client.status().model_dump(mode="json")
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for key, value in status.items():
            print(f"{key:>9}: {value}")
    return 0


def _build(args: argparse.Namespace) -> int:
    """Build in this process, into the same store the service uses (BINDER_DATA_DIR)."""
    from pathlib import Path
    from urllib.parse import quote

    from binder_actors.builders import BuildFailed, BuildRequest
    from binder_actors.builders.local import LocalBuildExecutor
    from binder_actors.events import BinderEvent
    from binder_actors.providers import InvalidSpec, ResolveError, resolve_once
    from binder_actors.registries.local import LocalImageStore

    config = BinderConfig(allow_local_repos=True)
    repo = Path(args.repo).resolve().as_uri() if Path(args.repo).exists() else args.repo
    try:
        resolved = asyncio.run(resolve_once("git", f"{quote(repo, safe='')}/{quote(args.ref, safe='')}", config))
    except (InvalidSpec, ResolveError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    request = BuildRequest.for_ref(resolved, config.registry.image_prefix)
    image = request.image
    store = LocalImageStore(config.images_dir)
    if store.read(image) is None:

        async def show(event: BinderEvent) -> None:
            print(event.message, end="", file=sys.stderr, flush=True)

        try:
            asyncio.run(LocalBuildExecutor(config, store).build(request, show))
        except BuildFailed as error:
            print("\n".join([f"error: {error}", *error.log_tail]), file=sys.stderr)
            return 1
    print(image)
    return 0


def _plan(args: argparse.Namespace) -> int:
    """What a build of a checkout would do on the configured backend (BINDER_BUILDER), without building."""
    from pathlib import Path

    from binder_actors.builders.plan_report import describe_checkout, render_text

    repo_dir = Path(args.dir)
    if not repo_dir.is_dir():
        print(f"error: {args.dir} is not a folder; give the path of a checked-out repository.", file=sys.stderr)
        return 2
    try:
        plan = describe_checkout(repo_dir, BinderConfig())
    except (OSError, UnicodeDecodeError) as error:  # a folder or file we may not read, or not as text
        print(f"error: cannot read the checkout {args.dir}: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(plan.model_dump_json(indent=2) + "\n" if args.json else render_text(plan, repo_dir.resolve()))
    return 0


def _exec(args: argparse.Namespace) -> int:
    from binder_actors.builders.local import run_in_image
    from binder_actors.registries.local import LocalImageStore

    store = LocalImageStore(BinderConfig().images_dir)
    image = store.read(args.image)
    if image is None:
        known = "\n  ".join(store.list_images()) or "(none yet: `binder-actors build <repo>` makes one)"
        print(f"error: no built image {args.image!r} in {store.root}. Built images:\n  {known}", file=sys.stderr)
        return 2
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("error: give a command after --, e.g. `binder-actors exec IMAGE -- python -V`", file=sys.stderr)
        return 2
    return run_in_image(image, command)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="binder-actors", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the embedded service until Ctrl-C")
    serve_cmd.add_argument("--port", type=int, help="HTTP port (default BINDER_PORT or 8000)")
    serve_cmd.set_defaults(run=_serve)

    def client_command(name: str, run, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--address", default="auto", help="Ray address of binder-actors (default: the local one)")
        command.add_argument("--json", action="store_true", help="machine-readable output")
        command.add_argument(
            "--token",
            help="authenticated mode: a hub user's API token, to act as that user (default $JUPYTERHUB_API_TOKEN)",
        )
        command.set_defaults(run=run)
        return command

    launch_cmd = client_command("launch", _launch, "launch a Binder link on the running service")
    launch_cmd.add_argument("link", help="a Binder URL (https://host/v2/git/...) or <provider>/<spec>")
    launch_cmd.add_argument("--open", action="store_true", help="open the session in a browser")
    client_command("sessions", _sessions, "list the running sessions")
    stop_cmd = client_command("stop", _stop, "stop a session and delete its temporary user")
    stop_cmd.add_argument("user", help="the session's user (see `sessions`); with --token, the session's server")
    cull_cmd = client_command("cull", _cull, "run one culling sweep now")
    cull_cmd.add_argument("--dry-run", action="store_true", help="only say who would be culled")
    cull_cmd.add_argument("--timeout", type=float, help="idle seconds (default BINDER_CULL_TIMEOUT)")
    prune_cmd = client_command("prune", _prune, "remove the least recently launched images beyond the store's budget")
    prune_cmd.add_argument("--dry-run", action="store_true", help="only say which images would go")
    client_command("status", _status, "what is running: Ray, the hub, the actors, builds, sessions")
    build_cmd = commands.add_parser("build", help="build a repository (URL or local path); prints the image")
    build_cmd.add_argument("repo", help="git URL or path of a local git repository")
    build_cmd.add_argument("--ref", default="HEAD", help="branch, tag or commit (default HEAD)")
    build_cmd.set_defaults(run=_build)
    plan_cmd = commands.add_parser(
        "plan", help="print what a build of a checkout would do on the configured backend, without building"
    )
    plan_cmd.add_argument("dir", help="a checked-out repository")
    plan_cmd.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    plan_cmd.set_defaults(run=_plan)
    exec_cmd = commands.add_parser("exec", help="run a command in a built image, as its server would run")
    exec_cmd.add_argument("image", help="an image name printed by `build` or a launch")
    exec_cmd.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    exec_cmd.set_defaults(run=_exec)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as error:  # a setting that cannot work: say which, without a traceback
        print(f"binder-actors: {error}", file=sys.stderr)
        return 2
    except PermissionError as error:  # the hub refused --token
        print(f"binder-actors: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
