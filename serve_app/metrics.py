"""Prometheus metrics: BinderHub's, observed by each ingress replica from the launch events it relays,
plus the cluster's own (build queue, caches, culls), read from the actors when /metrics is scraped.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from binder_actors.admission import refusal_kind
from binder_actors.config import BinderConfig
from binder_actors.events import BinderEvent
from binder_actors.models import BuildSchedulerStats, CullerStatus, ImageCacheStats, PoolStatus, ResolverStats
from binder_actors.providers import InvalidSpec, parse_spec

# The classic text format: every Prometheus reads it, and our metric names need nothing newer.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# BinderHub's buckets: builds and launches take very different times.
BUILD_BUCKETS = (60, 120, 300, 600, 1800, 3600, 7200, math.inf)
LAUNCH_BUCKETS = (2, 5, 10, 20, 30, 60, 120, 300, 600, math.inf)
BUILD_PHASES = {"fetching", "building", "pushing"}

# BinderHub labels metrics with its provider classes' `name`, not the prefix.
PROVIDER_NAMES = {
    "gh": "GitHub",
    "gist": "Gist",
    "gl": "GitLab",
    "git": "Git",
    "zenodo": "Zenodo",
    "figshare": "Figshare",
    "hydroshare": "Hydroshare",
    "dataverse": "Dataverse",
    "ckan": "CKAN",
    "swh": "Software Heritage",
}


def quota_status(event: BinderEvent) -> str:
    """BinderHub's launch_count status of a launch refused by a quota: the repository's or the whole hub's."""
    return "repo_quota" if refusal_kind(event.message) == "repo_quota" else "pod_quota"


def repo_labels(provider: str, spec: str, config: BinderConfig) -> dict[str, str] | None:
    """The provider and repo labels of a spec (BinderHub's: provider name, repository URL), None if it is bad."""
    try:
        parsed = parse_spec(provider, spec, settings=config.providers, allow_local_repos=config.allow_local_repos)
    except InvalidSpec:
        return None
    return {"provider": PROVIDER_NAMES.get(provider, provider), "repo": parsed.repo_url}


class ClusterStats(Collector):
    """The actors' counters as of the last scrape; the same on every replica (aggregate with max, not sum)."""

    COUNTERS = {
        "binder_image_cache_hits": "ImageCache lookups answered 'built' (cached or from the registry).",
        "binder_image_cache_misses": "ImageCache lookups answered 'not built'.",
        "binder_ref_cache_hits": "RefResolver resolutions answered from its cache.",
        "binder_ref_upstream_calls": "RefResolver resolutions that went upstream.",
        "binder_builds_started": "Builds BuildScheduler started.",
        "binder_culled_sessions": "Sessions ActivityMonitor culled.",
        "binder_pool_hits": "Launches that took a server ServerPool started ahead of them.",
        "binder_pool_misses": "Launches of a pool-enabled deployment that found no free pooled server of their image.",
        "binder_pool_claim_seconds": "Seconds the pool hits took to claim their server, summed (mean: / hits).",
    }
    GAUGES = {
        "binder_build_queue_length": "Builds waiting for a slot.",
        "binder_builds_running": "Builds running now.",
        "binder_pool_free_servers": "Pooled servers ready and unclaimed.",
        "binder_pool_starting_servers": "Pooled servers starting.",
    }

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def collect(self) -> Iterator[Metric]:
        for name, documentation in self.COUNTERS.items():
            if name in self.values:
                yield CounterMetricFamily(name, documentation, value=self.values[name])
        for name, documentation in self.GAUGES.items():
            if name in self.values:
                yield GaugeMetricFamily(name, documentation, value=self.values[name])

    def update(
        self,
        image_cache: ImageCacheStats | str,
        ref_resolver: ResolverStats | str,
        build_scheduler: BuildSchedulerStats | str,
        culler: CullerStatus | str,
        pool: PoolStatus | str = "",
    ) -> None:
        """Take each actor's stats (or the error string of one that did not answer: its metrics are left out)."""
        fresh: dict[str, float] = {}
        if isinstance(image_cache, ImageCacheStats):
            fresh["binder_image_cache_hits"] = image_cache.hits
            fresh["binder_image_cache_misses"] = image_cache.misses
        if isinstance(ref_resolver, ResolverStats):
            fresh["binder_ref_cache_hits"] = ref_resolver.cache_hits
            fresh["binder_ref_upstream_calls"] = ref_resolver.upstream_calls
        if isinstance(build_scheduler, BuildSchedulerStats):
            fresh["binder_builds_started"] = build_scheduler.builds_started
            fresh["binder_build_queue_length"] = build_scheduler.queued
            fresh["binder_builds_running"] = build_scheduler.building
        if isinstance(culler, CullerStatus):
            fresh["binder_culled_sessions"] = culler.culled_total
        if isinstance(pool, PoolStatus):
            fresh["binder_pool_hits"] = pool.hits
            fresh["binder_pool_misses"] = pool.misses
            fresh["binder_pool_claim_seconds"] = pool.claim_seconds_total
            fresh["binder_pool_free_servers"] = sum(pool.free.values())
            fresh["binder_pool_starting_servers"] = sum(pool.starting.values())
        self.values = fresh


class BinderMetrics:
    """One replica's registry: BinderHub's launch and build metrics, and the actors' stats."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.build_time = Histogram(
            "binderhub_build_time_seconds",
            "Histogram of build times",
            ["status"],
            buckets=BUILD_BUCKETS,
            registry=self.registry,
        )
        self.launch_time = Histogram(
            "binderhub_launch_time_seconds",
            "Histogram of launch times",
            ["status", "retries"],
            buckets=LAUNCH_BUCKETS,
            registry=self.registry,
        )
        self.build_count = Counter(
            "binderhub_build_count", "Counter of builds by repo", ["status", "provider", "repo"], registry=self.registry
        )
        self.launch_count = Counter(
            "binderhub_launch_count",
            "Counter of launches by repo",
            ["status", "provider", "repo"],
            registry=self.registry,
        )
        self.builds_in_progress = Gauge(
            "binderhub_inprogress_builds", "Builds currently in progress", registry=self.registry
        )
        self.launches_in_progress = Gauge(
            "binderhub_inprogress_launches", "Launches currently in progress", registry=self.registry
        )
        self.cluster = ClusterStats()
        self.registry.register(self.cluster)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    async def observed(
        self,
        events: AsyncIterator[BinderEvent],
        labels: dict[str, str] | None,
        *,
        build_only: bool = False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> AsyncIterator[BinderEvent]:
        """`events` unchanged, each one fed to a LaunchObserver; a stream cut short leaves the gauges right."""
        observer = LaunchObserver(self, labels, clock, build_only=build_only)
        try:
            async for event in events:
                observer.see(event)
                yield event
        finally:
            observer.close()


class LaunchObserver:
    """Turns one launch's events into BinderHub's metrics.

    A build runs from its first fetching/building/pushing event to `built` (or `failed`); a launch
    from the image being available (`built`) to `ready` (or `failed`): BinderHub's launch time
    excludes the build, so dashboards made for BinderHub read the same.
    """

    def __init__(
        self,
        metrics: BinderMetrics,
        labels: dict[str, str] | None,
        clock: Callable[[], float],
        *,
        build_only: bool = False,
    ) -> None:
        self.metrics = metrics
        self.build_only = build_only  # the stream ends at `built`: no launch follows
        self.labels = labels  # None: a spec that does not parse is not counted per repository
        self.clock = clock
        self.build_started: float | None = None
        self.launch_started: float | None = None

    def see(self, event: BinderEvent) -> None:
        now = self.clock()
        if event.phase in BUILD_PHASES and self.build_started is None and self.launch_started is None:
            self.build_started = now
            self.metrics.builds_in_progress.inc()
        elif event.phase == "built":
            self._end_build("success", now)
            if not self.build_only:
                self.launch_started = now
                self.metrics.launches_in_progress.inc()
        elif event.phase == "ready" and self.launch_started is not None:
            self._end_launch(now, "success", retries="0")
        elif event.phase == "failed":
            if self.build_started is not None:
                self._end_build("failure", now)
            elif self.launch_started is not None:
                quota = event.status_code == 429
                self._end_launch(None if quota else now, quota_status(event) if quota else "failure", retries="-1")

    def close(self) -> None:
        """The stream ended (or was cut short): nothing of it is in progress any more."""
        if self.build_started is not None:
            self.metrics.builds_in_progress.dec()
            self.build_started = None
        if self.launch_started is not None:
            self.metrics.launches_in_progress.dec()
            self.launch_started = None

    def _end_build(self, status: str, now: float) -> None:
        if self.build_started is None:
            return
        self.metrics.build_time.labels(status=status).observe(now - self.build_started)
        if self.labels is not None:
            self.metrics.build_count.labels(status=status, **self.labels).inc()
        self.metrics.builds_in_progress.dec()
        self.build_started = None

    def _end_launch(self, now: float | None, status: str, retries: str) -> None:
        """`now` None: refused before it started (a quota), counted but not timed, as BinderHub does."""
        if self.launch_started is None:
            return
        if now is not None:
            self.metrics.launch_time.labels(status=status, retries=retries).observe(now - self.launch_started)
        if self.labels is not None:
            self.metrics.launch_count.labels(status=status, **self.labels).inc()
        self.metrics.launches_in_progress.dec()
        self.launch_started = None
