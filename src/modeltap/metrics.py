"""Prometheus metrics of the process's collection pipeline (see docs/metrics.md).

`REGISTRY` is a registry of modeltap's own (never prometheus_client's global one): a
custom collector reads the current runtime's counters at every scrape, and a
histogram of commit latencies is fed by each runtime's commit listener. `MetricsApp`
is a pure ASGI app answering with them; `modeltap serve` and `modeltap agent` mount it
at `/metrics`, `modeltap proxy` at `/-/modeltap/metrics`.

Every series carries the labels `endpoint`, `deployment` and `pid`: each process
(each `serve` worker, the agent sidecar) has its own pipeline and counts its own.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import Receive, Scope, Send

from modeltap import runtime
from modeltap.pipeline import Counters

__all__ = [
    "COUNTERS",
    "GAUGES",
    "METRICS_PATH",
    "PROXY_METRICS_PATH",
    "REGISTRY",
    "MetricsApp",
    "PipelineCollector",
    "render",
    "watch",
]

METRICS_PATH = "/metrics"
PROXY_METRICS_PATH = "/-/modeltap/metrics"  # the proxy's: /metrics may be the upstream's
LABELS = ("endpoint", "deployment", "pid")

# stats() key -> (metric name, help). Keys not listed here still show up: a counter of
# Counters.FIELDS as modeltap_<key>_total, any other key as the gauge modeltap_<key>.
COUNTERS: dict[str, tuple[str, str]] = {
    "accepted": ("modeltap_records_accepted_total", "Records accepted into the buffer."),
    "written": ("modeltap_records_written_total", "Records landed in storage."),
    "dropped": (
        "modeltap_records_dropped_total",
        "Records lost: buffer full, not encodable, or not written before shutdown.",
    ),
    "sampled_out": (
        "modeltap_records_sampled_out_total",
        "Records left out by the deployment's sampling_rate.",
    ),
    "spooled": ("modeltap_records_spooled_total", "Records put on the local disk spool."),
    "bytes_written": (
        "modeltap_bytes_written_total",
        "Bytes written to storage (JSON lines and payload objects).",
    ),
    "objects_written": ("modeltap_objects_written_total", "JSON-lines objects committed."),
    "lines_written": ("modeltap_lines_written_total", "JSON lines committed."),
    "storage_errors": (
        "modeltap_storage_errors_total",
        "Failed storage writes (each is retried).",
    ),
}
GAUGES: dict[str, tuple[str, str]] = {
    "buffered": ("modeltap_buffer_records", "Records waiting in the buffer."),
    "spool_bytes": ("modeltap_spool_bytes", "Bytes waiting in the local disk spool."),
}
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _name(key: str) -> str:
    return "modeltap_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def _labels(rt: runtime.Runtime) -> list[str]:
    return [rt.deployment.endpoint, rt.deployment.deployment, str(os.getpid())]


class PipelineCollector(Collector):
    """The counters and gauges of `modeltap.stats()`, read at every scrape."""

    def collect(self) -> Iterator[Metric]:
        rt = runtime.reporting()
        if rt is None:  # collection not configured (yet) in this process
            return
        labels = _labels(rt)
        for key, value in runtime.stats().items():
            family: Metric
            if key in COUNTERS or key in Counters.FIELDS:
                name, doc = COUNTERS.get(key, (_name(key) + "_total", f"modeltap counter {key}."))
                family = CounterMetricFamily(name, doc, labels=LABELS)
            else:
                name, doc = GAUGES.get(key, (_name(key), f"modeltap gauge {key}."))
                family = GaugeMetricFamily(name, doc, labels=LABELS)
            family.add_metric(labels, value)
            yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names depend on the runtime; nothing to check at registration


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(PipelineCollector())
COMMIT_SECONDS = Histogram(
    "modeltap_commit_seconds",
    "Seconds to write one committed object to storage.",
    LABELS,
    buckets=COMMIT_BUCKETS,
    registry=REGISTRY,
)

_watched: weakref.WeakSet[runtime.Runtime] = weakref.WeakSet()


def watch(rt: runtime.Runtime) -> None:
    """Time this runtime's commits in `modeltap_commit_seconds` (once per runtime)."""
    if rt in _watched:
        return
    _watched.add(rt)
    child = COMMIT_SECONDS.labels(*_labels(rt))
    rt.pipeline.add_commit_listener(lambda seconds, _nbytes, _records: child.observe(seconds))


# Every runtime configured from now on, and the one already running.
runtime.on_configure.append(watch)
_configured = runtime.active()
if _configured is not None:
    watch(_configured)


def render() -> tuple[bytes, str]:
    """The metrics page: (body, content type)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class MetricsApp:
    """A pure ASGI app: GET (or HEAD) answers with the metrics page, other methods 405."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            status, body, ctype = 405, b"method not allowed; use GET\n", "text/plain"
            headers = [(b"allow", b"GET, HEAD")]
        else:
            (body, ctype), status, headers = render(), 200, []
        headers += [
            (b"content-type", ctype.encode("latin-1")),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )
