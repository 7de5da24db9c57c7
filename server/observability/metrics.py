"""A node's Prometheus metrics: one CollectorRegistry per node, so several nodes in one process each
expose only their own numbers at their own /metrics.

Labels are bounded: `endpoint` is the route template (`/<api_root>/collections/<collection_id>/objects/`),
never the raw path; `collection` is a catalogue alias or id.
"""

import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from taxii_federation.server.config import NodeConfig
from taxii_federation.server.storage.base import CollectionSize, Storage

# Counting a large collection reads an index range: not on every scrape. This node's own writes recount at
# the next scrape; writes by another process on the same store show within this time.
COLLECTION_SIZES_SECONDS = 15
UNROUTED = "(no route)"


def collection_label(config: NodeConfig, collection_id: str) -> str:
    for api_root in config.api_roots:
        collection = api_root.find_collection(collection_id)
        if collection is not None:
            return collection.alias or collection.id
    return collection_id


class CollectionSizeCollector(Collector):
    """Versions and objects per collection, counted by the storage."""

    def __init__(self, config: NodeConfig, storage: Storage):
        self.config, self.storage = config, storage
        self._lock = threading.Lock()
        self._sizes: dict[str, CollectionSize] = {}
        self._counted_at = float("-inf")

    def invalidate(self) -> None:
        with self._lock:
            self._counted_at = float("-inf")

    def _current(self) -> dict[str, CollectionSize]:
        with self._lock:
            if time.monotonic() - self._counted_at >= COLLECTION_SIZES_SECONDS:
                self._sizes = self.storage.collection_sizes()
                self._counted_at = time.monotonic()
            return self._sizes

    def collect(self) -> Iterator[Metric]:
        versions = GaugeMetricFamily(
            "taxii_collection_versions", "Object versions stored per collection", labels=["collection"]
        )
        objects = GaugeMetricFamily(
            "taxii_collection_objects", "Distinct objects stored per collection", labels=["collection"]
        )
        for collection_id, size in sorted(self._current().items()):
            label = collection_label(self.config, collection_id)
            versions.add_metric([label], size.versions)
            objects.add_metric([label], size.objects)
        yield versions
        yield objects


class NodeMetrics:
    def __init__(self, config: NodeConfig, storage: Storage, collectors: tuple[Collector, ...] = ()):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "taxii_requests",
            "HTTP requests by route template, method and status code",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "taxii_request_duration_seconds",
            "Time to answer a request, by route template and method",
            ["endpoint", "method"],
            registry=self.registry,
        )
        self.objects = Counter(
            "taxii_objects",
            "Objects of POSTed envelopes by collection and outcome (stored, already_present, refused)",
            ["collection", "outcome"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "taxii_auth_failures",
            "Refused credentials (wrong password, unknown user)",
            registry=self.registry,
        )
        self.collection_sizes = CollectionSizeCollector(config, storage)
        self.registry.register(self.collection_sizes)
        for collector in collectors:
            self.registry.register(collector)

    def observe_request(self, endpoint: str | None, method: str, status: int, seconds: float) -> None:
        endpoint = endpoint or UNROUTED
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint, method).observe(seconds)
