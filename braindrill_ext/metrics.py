"""Prometheus metrics, served by Jupyter Server's own ``/metrics`` endpoint.

They live in ``prometheus_client``'s default registry (the one Jupyter Server exposes), so they are
process-wide by nature: several engines in one process (tests) add to the same series.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EXECUTIONS = Counter(
    "braindrill_executions",
    "Executions finished, by language and status.",
    ["language", "status"],
)
LATENCY = Histogram(
    "braindrill_execution_seconds",
    "Time from a request's arrival to its result (queue wait included), by language.",
    ["language"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
REJECTED = Counter(
    "braindrill_rejected",
    "Requests refused with 503: the queue was full, the wait ran out, or no host was healthy.",
    ["reason"],
)
QUEUE_DEPTH = Gauge("braindrill_queue_depth", "Executions waiting for a free slot.")
HOST_HEALTHY = Gauge(
    "braindrill_host_healthy", "1 if the worker host answers its pings, else 0.", ["host"]
)
HOST_RUNNING = Gauge("braindrill_host_running", "Executions running on the worker host.", ["host"])


def record(result, seconds: float) -> None:
    """Count one finished execution. Called by the engine."""
    EXECUTIONS.labels(result.language, result.status.value).inc()
    LATENCY.labels(result.language).observe(seconds)


def host_health(name: str, healthy: bool) -> None:
    """Called by the worker host whenever its health is established."""
    HOST_HEALTHY.labels(name).set(1 if healthy else 0)


def slots(scheduler) -> None:
    """Update the queue depth and per-host running gauges. Called by the scheduler."""
    QUEUE_DEPTH.set(scheduler.queued)
    for host in scheduler.hosts:
        HOST_RUNNING.labels(host.name).set(host.running)
