"""`taxii-fed federation status`: per link, its checkpoint, lag, last success, last error and what it held
back. Lag is measured at the source: the objects added after the checkpoint, and how long the oldest of
them has waited."""

import time
from dataclasses import dataclass

from taxii_federation.clients.federation.config import FederationConfig
from taxii_federation.clients.federation.mirror import Link
from taxii_federation.clients.federation.scheduler import build_links
from taxii_federation.clients.federation.state import FederationState, LinkState
from taxii_federation.clients.taxii import RemoteCollection, RemoteError
from taxii_federation.server.timestamps import parse_micros

LAG_COUNT_LIMIT = 10_000  # beyond this the exact backlog is not worth reading the whole source for


@dataclass
class LinkReport:
    link: str
    state: LinkState
    lag_objects: int | None  # None: the source could not be read
    lag_count_capped: bool
    lag_seconds: float | None
    source_error: str | None = None


def measure_lag(link: Link, checkpoint: str | None) -> tuple[int, bool, float]:
    source = RemoteCollection(link.source, link.agreement.collection, timeout=10)
    count = 0
    for page in source.pages(checkpoint, page_size=1000):
        count += len(page.objects)
        if count >= LAG_COUNT_LIMIT:
            break
    oldest = source.first_date_added(checkpoint) if count else None
    waited = max(0.0, time.time() - parse_micros(oldest) / 1_000_000) if oldest else 0.0
    return count, count >= LAG_COUNT_LIMIT, waited


def federation_report(config: FederationConfig) -> list[LinkReport]:
    state = FederationState(config.state_path)
    try:
        states = state.links()
    finally:
        state.close()
    reports = []
    for link in build_links(config):
        link_state = states.get(link.name, LinkState(link.name))
        try:
            lag, capped, seconds = measure_lag(link, link_state.checkpoint)
            reports.append(LinkReport(link.name, link_state, lag, capped, seconds))
        except RemoteError as error:
            reports.append(LinkReport(link.name, link_state, None, False, None, str(error)))
    return reports


def _when(moment: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moment)) + "Z" if moment else "never"


def format_report(reports: list[LinkReport]) -> str:
    lines = []
    for report in reports:
        state = report.state
        if report.lag_objects is None:
            lag = f"unknown (source unreachable: {report.source_error})"
        else:
            count = f"{report.lag_objects}{'+' if report.lag_count_capped else ''}"
            lag = f"{count} objects, {report.lag_seconds:.1f} s"
        healthy = report.lag_objects is not None and (state.last_error_at or 0) <= (state.last_success or 0)
        lines.append(f"{'OK  ' if healthy else 'FAIL'} {report.link}")
        lines.append(f"     checkpoint {state.checkpoint or 'none (nothing mirrored yet)'}; lag {lag}")
        lines.append(
            f"     last success {_when(state.last_success)}; seen {state.objects_seen}, "
            f"stored {state.objects_stored}"
        )
        if state.last_error:
            lines.append(f"     last error {_when(state.last_error_at)}: {state.last_error}")
        for reason, count in sorted(state.held_back.items()):
            lines.append(f"     held back {count}: {reason}")
    return "\n".join(lines)
