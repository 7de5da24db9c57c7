"""A link's health as an operator reads it (`taxii-fed federation status`, the dashboard, /metrics): its
state (ok, lagging, failing, paused), checkpoint, lag, last success, last error and what it held back.
Lag is measured at the source: the objects added after the checkpoint, and how long the oldest of them has
waited. The numbers are gathered by monitor.py."""

import time
from dataclasses import dataclass

from taxii_federation.clients.federation.mirror import REASON_REFUSED, Link
from taxii_federation.clients.federation.policy import REASON_AMBER_STRICT, REASON_RED, REASON_UNMARKED
from taxii_federation.clients.federation.state import LinkState
from taxii_federation.clients.taxii import RemoteCollection
from taxii_federation.server.timestamps import parse_micros

LAG_COUNT_LIMIT = 10_000  # beyond this the exact backlog is not worth reading the whole source for
STATES = ("ok", "lagging", "failing", "paused")
# Held-back reasons by kind, for labels and the dashboard; a refusal carries the destination's words.
HELD_BACK_KINDS = {
    REASON_RED: "tlp:red",
    REASON_AMBER_STRICT: "tlp:amber+strict",
    REASON_UNMARKED: "unmarked",
}


def held_back_kind(reason: str) -> str:
    if reason in HELD_BACK_KINDS:
        return HELD_BACK_KINDS[reason]
    if reason.startswith(REASON_REFUSED):
        return "refused by the destination"
    if "max_tlp" in reason:
        return "above max_tlp"
    return "other"


@dataclass
class LinkReport:
    link: str
    state: LinkState
    lag_objects: int | None  # None: the source could not be read
    lag_count_capped: bool
    lag_seconds: float | None
    source_error: str | None = None
    paused: bool = False
    lagging_after_seconds: float = 60.0

    @property
    def failing(self) -> bool:
        """The source cannot be read, or the link's last pass failed."""
        last_error, last_success = self.state.last_error_at or 0, self.state.last_success or 0
        return self.lag_objects is None or last_error > last_success

    @property
    def health(self) -> str:
        if self.paused:
            return "paused"
        if self.failing:
            return "failing"
        if (self.lag_seconds or 0) > self.lagging_after_seconds:
            return "lagging"
        return "ok"

    @property
    def error(self) -> str | None:
        """What is wrong, in words: why the source cannot be read, else the last pass's error if it failed."""
        if self.source_error:
            return self.source_error
        return self.state.last_error if self.failing else None

    def held_back_by_kind(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for reason, count in self.state.held_back.items():
            kinds[held_back_kind(reason)] = kinds.get(held_back_kind(reason), 0) + count
        return kinds

    def as_json(self) -> dict:
        state = self.state
        return {
            "link": self.link,
            "state": self.health,
            "checkpoint": state.checkpoint,
            "lag_objects": self.lag_objects,
            "lag_count_capped": self.lag_count_capped,
            "lag_seconds": self.lag_seconds,
            "last_success": _when(state.last_success, None),
            "last_error": state.last_error,
            "last_error_at": _when(state.last_error_at, None),
            "error": self.error,
            "errors": state.errors,
            "objects_seen": state.objects_seen,
            "objects_stored": state.objects_stored,
            "held_back": dict(sorted(state.held_back.items())),
        }


def measure_lag(link: Link, checkpoint: str | None, timeout: float = 10) -> tuple[int, bool, float]:
    source = RemoteCollection(link.source, link.agreement.collection, timeout=timeout)
    count = 0
    for page in source.pages(checkpoint, page_size=1000):
        count += len(page.objects)
        if count >= LAG_COUNT_LIMIT:
            break
    oldest = source.first_date_added(checkpoint) if count else None
    waited = max(0.0, time.time() - parse_micros(oldest) / 1_000_000) if oldest else 0.0
    return count, count >= LAG_COUNT_LIMIT, waited


def _when(moment: float | None, never: str | None = "never") -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment)) if moment else never


def format_report(reports: list[LinkReport]) -> str:
    lines = []
    for report in reports:
        state = report.state
        if report.lag_objects is None:
            lag = f"unknown (source unreachable: {report.source_error})"
        else:
            count = f"{report.lag_objects}{'+' if report.lag_count_capped else ''}"
            lag = f"{count} objects, {report.lag_seconds:.1f} s"
        label = {"ok": "OK  ", "lagging": "LAG ", "failing": "FAIL", "paused": "PAUS"}[report.health]
        lines.append(f"{label} {report.link}")
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
