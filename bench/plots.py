"""PNG charts of the recorded benchmark figures, written beside them in bench/results/.

`python -m bench.plots [results.json]` draws from the given file, or the newest bench/results/*.json:
launch latency by stage, latency at 1 and 20 users, fan-in, memory, and latency against load (scale).
A benchmark missing from the file is skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)
from matplotlib.axes import Axes  # noqa: E402

RESULTS = Path(__file__).parent / "results"
STAGES = {
    "resolve": "resolve (RefResolver)",
    "cache_check": "cache check (ImageCache)",
    "spawn_control_plane": "spawn, hub and spawner",
    "rest_ingress_sse": "ingress, SSE, client",
    "server_start_hub_reported": "server start, as the hub times it",
}
CONDITIONS = {"users_1": "1 user", "users_20": "20 concurrent users"}


def _stacked(ax: Axes, labels: list[str], parts: dict[str, list[float]]) -> None:
    bottoms = [0.0] * len(labels)
    for name, values in parts.items():
        shown = [max(value, 0.0) for value in values]  # a stage measured as negative (noise) draws as nothing
        ax.bar(labels, shown, bottom=bottoms, label=name)
        bottoms = [bottom + value for bottom, value in zip(bottoms, shown, strict=True)]


def plot_stages(stages: dict[str, Any], out: Path) -> None:
    conditions = [key for key in CONDITIONS if key in stages]
    labels = [CONDITIONS[key] for key in conditions]
    by_stage = [stages[key]["by_stage_median_ms"] for key in conditions]
    fig, (whole, control) = plt.subplots(1, 2, figsize=(12, 5))
    _stacked(whole, labels, {label: [s[key] for s in by_stage] for key, label in STAGES.items()})
    whole.set_title("Cached launch, request to ready: median by stage")
    whole.set_ylabel("ms")
    whole.legend(fontsize=8)
    control_stages = {key: label for key, label in STAGES.items() if key != "server_start_hub_reported"}
    _stacked(control, labels, {label: [s[key] for s in by_stage] for key, label in control_stages.items()})
    target = stages.get("control_plane_target_ms")
    if target:
        control.axhline(target, color="black", linestyle="--", label=f"target {target} ms")
    control.set_title("Control plane only (without the server's start)")
    control.set_ylabel("ms")
    control.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_latency(stages: dict[str, Any], out: Path) -> None:
    conditions = [key for key in CONDITIONS if key in stages]
    labels = [CONDITIONS[key] for key in conditions]
    fig, ax = plt.subplots(figsize=(7, 5))
    positions = range(len(conditions))
    for offset, (statistic, colour) in zip((-0.2, 0.2), (("median", "tab:blue"), ("p95", "tab:orange")), strict=True):
        values = [stages[key]["end_to_end_http_s"][statistic] for key in conditions]
        ax.bar([p + offset for p in positions], values, width=0.4, label=f"cached launch, {statistic}", color=colour)
    ax.set_xticks(list(positions), labels)
    uncached = stages.get("uncached_first_click_s")
    if uncached:
        ax.axhline(uncached, color="tab:red", linestyle="--", label=f"uncached first click ({uncached} s)")
    ax.set_ylabel("seconds, request to ready")
    ax.set_title("Launch latency over HTTP /build, cached image")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_fanin(fanin: dict[str, Any], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    for attempt in fanin["attempts"]:
        times = attempt["ready_times_s"]
        held = "" if attempt["all_ready"] else " (not all ready)"
        label = f"{attempt['clicks']} clicks: {attempt['ready']} ready, {attempt['builds_started']} build(s){held}"
        ax.step([0.0, *times], range(len(times) + 1), where="post", label=label)
    single = fanin.get("single_first_click_s")
    if single:
        ax.axvline(single, color="black", linestyle=":", label=f"one click alone ({single} s)")
    ax.set_xlabel("seconds since the clicks")
    ax.set_ylabel("sessions ready")
    ax.set_title("Fan-in: concurrent first clicks on one uncached repository")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_memory(memory: dict[str, Any], out: Path) -> None:
    snapshots = {key: memory[key] for key in memory if isinstance(memory[key], dict) and "by_component" in memory[key]}
    apart = {"session servers", "git daemon (test upstream)"}
    components = sorted({name for s in snapshots.values() for name in s["by_component"] if name not in apart})
    labels = [key.replace("_", " ") for key in snapshots]
    fig, ax = plt.subplots(figsize=(11, 5))
    parts = {
        name: [s["by_component"].get(name, {}).get("rss_mb", 0.0) for s in snapshots.values()] for name in components
    }
    _stacked(ax, labels, parts)
    servers = memory.get("session_servers_rss_mb", {}).get("total")
    if servers:
        ax.bar(["the 20 sessions' own servers"], [servers], color="lightgrey", hatch="//", label="session servers")
    ax.set_ylabel("resident memory, MB (RSS summed over processes)")
    ax.set_title("Embedded stack memory, without the sessions' servers")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    plt.setp(ax.get_xticklabels(), rotation=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_scale(runs: dict[str, Any], out: Path) -> None:
    """`bench scale`: launch latency (p50 solid, p95 dashed) against the sessions live, one line per run."""
    fig, ax = plt.subplots(figsize=(10, 5))
    for run in runs.values():
        series = run.get("latency_against_load") or []
        if not series:
            continue
        label = f"{run['mode']}, {run['target_rate_per_min']:g}/min"
        sessions = [window["sessions_before"] for window in series]
        (line,) = ax.plot(sessions, [window["p50"] for window in series], marker="o", label=f"{label}, p50")
        ax.plot(sessions, [window["p95"] for window in series], linestyle="--", color=line.get_color(), label="p95")
    ax.set_xlabel("sessions live when the launches began")
    ax.set_ylabel("request to ready, s (servers answer at once: all control plane)")
    ax.set_title("Launch latency against load (bench scale, loopback servers)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(arguments: list[str]) -> int:
    source = Path(arguments[0]) if arguments else max(RESULTS.glob("*.json"))
    record = json.loads(source.read_text())
    charts = {
        "stages": [(plot_stages, "launch_by_stage.png"), (plot_latency, "launch_latency_users.png")],
        "fanin": [(plot_fanin, "fanin.png")],
        "memory": [(plot_memory, "memory.png")],
        "scale": [(plot_scale, "scale_latency_load.png")],
    }
    for benchmark, drawings in charts.items():
        if benchmark not in record:
            print(f"no {benchmark} figures in {source}: skipped")
            continue
        for draw, name in drawings:
            draw(record[benchmark], RESULTS / name)
            print(f"drew {RESULTS / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
