"""`make bench`: every benchmark in one run, printed and recorded in bench/results/<date>.json.

Exits non-zero only when a benchmark could not run; targets are compared in the README. `docker`
runs in `make bench` only where dockerd and the base image are there; `python -m bench docker` runs it alone.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

from bench import build, conda, docker, fanin, launch, load, memory, pool, sessions, stages, throughput

RESULTS = Path(__file__).parent / "results"
# One at a time: each starts and stops its own stack. throughput includes resolve.py's figures.
BENCHMARKS = {
    "build": build.run,
    "conda": conda.run,
    "launch": launch.run,
    "sessions": sessions.run,
    "stages": stages.run,
    "fanin": fanin.run,
    "throughput": throughput.run,
    "memory": memory.run,
    "load": load.run,
    "docker": docker.run,
    "pool": pool.run,
}


def main(selected: list[str]) -> int:
    record: dict[str, object] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    default = [name for name in BENCHMARKS if name != "docker" or docker.available()]
    for name in selected or default:
        record[name] = BENCHMARKS[name]()
        print(f"{name}: {json.dumps(record[name])}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.date.today().isoformat()}.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**previous, **record}, indent=2) + "\n")
    print(f"recorded in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
