"""Prometheus metrics computed from the database (and the broker's queues) at scrape time.

Counting from the stored rows, not from in-process counters, gives the same numbers whichever gunicorn
process Prometheus reaches, and survives restarts. Every query is an aggregate over indexed columns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from annotation.models import Rating
from evalhub.ops.checks import broker_embedded
from evalhub.runs.models import Output, Run, RunChunk, RunStatus

log = logging.getLogger(__name__)


def queue_depths() -> dict[str, int]:
    """Messages waiting in each of the project's queues (Redis brokers: the list's length)."""
    if broker_embedded() or not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return {}
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
        return {queue: int(client.llen(f"{prefix}{queue}")) for queue in settings.EVALHUB_READY_QUEUES}
    finally:
        client.close()


class EvalhubCollector(Collector):
    def collect(self) -> Iterator[Any]:
        hour_ago = timezone.now() - timedelta(hours=1)

        runs = GaugeMetricFamily("evalhub_runs", "Runs by status.", labels=["status"])
        counts = dict(Run.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
        for status in RunStatus.values:
            runs.add_metric([status], counts.get(status, 0))
        yield runs
        yield CounterMetricFamily(
            "evalhub_run_failures", "Runs that failed (all time).", value=counts.get(RunStatus.FAILED, 0)
        )
        expiries = RunChunk.objects.aggregate(n=Sum("lease_expiries"))["n"] or 0
        yield CounterMetricFamily(
            "evalhub_chunk_lease_expiries", "Chunk leases the watchdog found expired without progress.",
            value=expiries,
        )
        yield GaugeMetricFamily(
            "evalhub_outputs_last_hour", "Outputs stored in the last hour.",
            value=Output.objects.filter(created_at__gte=hour_ago).count(),
        )
        yield GaugeMetricFamily(
            "evalhub_ratings_last_hour", "Ratings submitted in the last hour.",
            value=Rating.objects.filter(created_at__gte=hour_ago).count(),
        )
        yield self._tokens_per_second(hour_ago)
        yield from self._queues()

    def _tokens_per_second(self, since: Any) -> GaugeMetricFamily:
        active = Run.objects.filter(status=RunStatus.RUNNING) | Run.objects.filter(finished_at__gte=since)
        totals = active.aggregate(tokens=Sum("output_tokens"), seconds=Sum("generation_seconds"))
        seconds = totals["seconds"] or 0.0
        return GaugeMetricFamily(
            "evalhub_generation_tokens_per_second",
            "Generated tokens per second of generation, over running runs and runs finished in the last hour.",
            value=(totals["tokens"] or 0) / seconds if seconds else 0.0,
        )

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        try:
            depths = queue_depths()
        except Exception as exc:  # the broker is away: /readyz says so; metrics go on without this family
            log.warning("queue depth unavailable: %r", exc)
            return
        family = GaugeMetricFamily("evalhub_queue_depth", "Messages waiting per Celery queue.", labels=["queue"])
        for queue, depth in depths.items():
            family.add_metric([queue], depth)
        yield family


_registry: CollectorRegistry | None = None


def registry() -> CollectorRegistry:
    global _registry
    if _registry is None:
        _registry = CollectorRegistry(auto_describe=False)
        _registry.register(EvalhubCollector())
    return _registry
