"""`make bench`: every benchmark in one run, printed and recorded in bench/results/<date>.json.

Exits non-zero only when a benchmark could not run; targets are compared in the README. `docker`
runs in `make bench` only where dockerd and the base image are there; `python -m bench docker` runs it alone.
`python -m bench scale --sessions N --rate R --minutes M [--bare]` (bench/scale.py, a load test tool
with loopback servers) runs alone, with its arguments, and is recorded under `scale`.
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
    if selected[:1] == ["scale"]:
        from bench import scale

        result = scale.main(selected[1:])  # prints its JSON line
        mode = "bare" if "--bare" in selected else "actors"
        key = f"scale_{mode}_{result['target_sessions']}_at_{result['target_rate_per_min']:g}"
        runs = record.setdefault("scale", {})
        assert isinstance(runs, dict)
        runs[key] = result
        return _record(record)
    default = [name for name in BENCHMARKS if name != "docker" or docker.available()]
    for name in selected or default:
        record[name] = BENCHMARKS[name]()
        print(f"{name}: {json.dumps(record[name])}", flush=True)
    return _record(record)


def _record(record: dict[str, object]) -> int:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.date.today().isoformat()}.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    if isinstance(record.get("scale"), dict) and isinstance(previous.get("scale"), dict):
        record["scale"] = {**previous["scale"], **record["scale"]}  # scale runs add up, one key each
    out.write_text(json.dumps({**previous, **record}, indent=2) + "\n")
    print(f"recorded in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
