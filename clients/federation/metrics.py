"""The federation's Prometheus metrics, collected at scrape time from the monitor (the state file, the
cached lag and reachability), for the /metrics of the node that shows the links (the hub)."""

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from taxii_federation.clients.federation.monitor import FederationMonitor
from taxii_federation.clients.federation.status import STATES


class LinkCollector(Collector):
    def __init__(self, monitor: FederationMonitor):
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        link = ["link"]
        state = GaugeMetricFamily(
            "taxii_fed_link_state", "1 for the link's current state", labels=[*link, "state"]
        )
        lag = GaugeMetricFamily(
            "taxii_fed_link_lag_objects", "Objects at the source after the link's checkpoint", labels=link
        )
        lag_seconds = GaugeMetricFamily(
            "taxii_fed_link_lag_seconds", "How long the oldest unmirrored object has waited", labels=link
        )
        last_success = GaugeMetricFamily(
            "taxii_fed_link_last_success_timestamp_seconds", "When a pass last succeeded", labels=link
        )
        errors = CounterMetricFamily("taxii_fed_link_errors", "Failed passes", labels=link)
        seen = CounterMetricFamily("taxii_fed_link_objects_seen", "Objects read at the source", labels=link)
        stored = CounterMetricFamily(
            "taxii_fed_link_objects_stored", "Objects the destination stored as new", labels=link
        )
        held = CounterMetricFamily(
            "taxii_fed_link_held_back", "Objects held back, by kind of reason", labels=[*link, "reason"]
        )
        for report in self.monitor.links():
            name = report.link
            for each in STATES:
                state.add_metric([name, each], 1.0 if report.health == each else 0.0)
            if report.lag_objects is not None:
                lag.add_metric([name], report.lag_objects)
                lag_seconds.add_metric([name], report.lag_seconds or 0.0)
            if report.state.last_success:
                last_success.add_metric([name], report.state.last_success)
            errors.add_metric([name], report.state.errors)
            seen.add_metric([name], report.state.objects_seen)
            stored.add_metric([name], report.state.objects_stored)
            for kind, count in sorted(report.held_back_by_kind().items()):
                held.add_metric([name, kind], count)
        member_up = GaugeMetricFamily(
            "taxii_fed_member_up", "1 when the member answers the mirror account with 200", labels=["member"]
        )
        response = GaugeMetricFamily(
            "taxii_fed_member_response_seconds", "Time the member took to answer", labels=["member"]
        )
        for member in self.monitor.members():
            member_up.add_metric([member.name], 1.0 if member.healthy else 0.0)
            if member.response_ms is not None:
                response.add_metric([member.name], member.response_ms / 1000)
        yield from (state, lag, lag_seconds, last_success, errors, seen, stored, held, member_up, response)


def members_ready(monitor: FederationMonitor) -> str | None:
    """A readiness check: every member that is not paused answers the mirror account."""
    down = [m for m in monitor.members() if not m.paused and not m.healthy]
    return "; ".join(f"member {m.name}: {m.detail}" for m in down) or None
