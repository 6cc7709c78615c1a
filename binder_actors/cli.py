"""`binder-actors`: run the service (`serve`) and launch repositories from a terminal (`launch`)."""

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
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
