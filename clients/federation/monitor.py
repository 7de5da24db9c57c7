"""What a hub operator looks at, measured when asked: each link's state from the state file, its lag at the
source, each member's reachability and the objects carried per minute. Read at dashboard refresh, scrape
or `federation status` time, never from inside the link loop; measurements that cost the members a
request are cached for a few seconds, so a dashboard left open or a scrape every 15 s costs them little.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from taxii_federation.clients.federation.config import FederationConfig, Member
from taxii_federation.clients.federation.mirror import Link
from taxii_federation.clients.federation.reload import FederationConfigFiles
from taxii_federation.clients.federation.scheduler import build_links
from taxii_federation.clients.federation.state import FederationState, LinkState
from taxii_federation.clients.federation.status import LinkReport, measure_lag
from taxii_federation.clients.taxii import RemoteError

CACHE_SECONDS = 5.0
REACH_TIMEOUT_SECONDS = 3.0
LAG_TIMEOUT_SECONDS = 10.0
CHART_MINUTES = 60


@dataclass(frozen=True)
class MemberReport:
    name: str
    url: str
    reachable: bool  # the node answered at all
    healthy: bool  # it answered the mirror account's request with 200
    detail: str  # in words: "reachable", "refused the credentials of user 'mirror' (401)", ...
    response_ms: float | None
    paused: bool = False


@dataclass(frozen=True)
class Throughput:
    """Objects stored per minute, oldest minute first: `into_hub` from the member, `from_hub` to it."""

    member: str
    into_hub: tuple[int, ...]
    from_hub: tuple[int, ...]


def probe_member(member: Member) -> MemberReport:
    """One request to the member's API root with the mirror's account."""
    started = time.perf_counter()
    try:
        response = requests.get(
            member.api_root_url,
            **member.requests_options(),
            headers={"Accept": "application/taxii+json;version=2.1"},
            timeout=REACH_TIMEOUT_SECONDS,
        )
    except requests.RequestException as error:
        reason = "connection refused" if isinstance(error, requests.ConnectionError) else str(error)
        return MemberReport(
            member.name, member.url, False, False, f"unreachable: {reason}", None, member.paused
        )
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code == 200:
        detail = "reachable"
    elif response.status_code in (401, 403):
        detail = f"refused the credentials of user '{member.user}' ({response.status_code})"
    else:
        detail = f"answered {response.status_code} at {member.api_root_url}"
    return MemberReport(
        member.name, member.url, True, response.status_code == 200, detail, elapsed, member.paused
    )


class FederationMonitor:
    def __init__(
        self, config_path: str | Path, cache_seconds: float = CACHE_SECONDS, demo_pki: Path | None = None
    ):
        self.files = FederationConfigFiles(config_path, demo_pki)
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._lags: dict[str, tuple[float, str | None, LinkReport]] = {}
        self._members: tuple[float, list[MemberReport]] | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="federation monitor")
        self._state: FederationState | None = None

    def _state_file(self) -> FederationState:
        """One FederationState (a connection per server thread), opened again if the config moves it."""
        path = self.config.state_path
        if self._state is None or self._state.path != path:
            self._state = FederationState(path)
        return self._state

    @property
    def config(self) -> FederationConfig:
        return self.files.current()

    def _states(self) -> dict[str, LinkState]:
        return self._state_file().links()

    def members(self) -> list[MemberReport]:
        with self._lock:
            if self._members is None or time.monotonic() - self._members[0] > self.cache_seconds:
                reports = list(self._pool.map(probe_member, self.config.members.values()))
                self._members = (time.monotonic(), reports)
            return self._members[1]

    def links(self) -> list[LinkReport]:
        """Every link of the config (paused ones too), in the order links run."""
        config, states = self.config, self._states()
        links = build_links(config)
        with self._lock:
            stale = [
                link
                for link in links
                if not self._fresh(link.name, states.get(link.name, LinkState(link.name)).checkpoint)
            ]
            measured = self._pool.map(lambda link: self._measure(link, states), stale)
            for link, report in zip(stale, measured, strict=True):
                self._lags[link.name] = (time.monotonic(), report.state.checkpoint, report)
            reports = []
            for link in links:
                cached = self._lags[link.name][2]
                # Health comes from the state file as it is now; only the lag is the cached measurement.
                reports.append(
                    LinkReport(
                        link.name,
                        states.get(link.name, LinkState(link.name)),
                        cached.lag_objects,
                        cached.lag_count_capped,
                        cached.lag_seconds,
                        cached.source_error,
                        paused=link.source.paused or link.destination.paused,
                        lagging_after_seconds=config.lagging_after_seconds,
                    )
                )
            return reports

    def _fresh(self, link: str, checkpoint: str | None) -> bool:
        cached = self._lags.get(link)
        return (
            cached is not None
            and cached[1] == checkpoint
            and time.monotonic() - cached[0] <= self.cache_seconds
        )

    @staticmethod
    def _measure(link: Link, states: dict[str, LinkState]) -> LinkReport:
        state = states.get(link.name, LinkState(link.name))
        try:
            lag, capped, seconds = measure_lag(link, state.checkpoint, LAG_TIMEOUT_SECONDS)
            return LinkReport(link.name, state, lag, capped, seconds)
        except RemoteError as error:
            return LinkReport(link.name, state, None, False, None, str(error))

    def throughput(self, minutes: int = CHART_MINUTES) -> list[Throughput]:
        config = self.config
        now_minute = int(time.time() // 60)
        first = now_minute - minutes + 1
        stored = self._state_file().stored_per_minute(first * 60)
        per_member = {name: ([0] * minutes, [0] * minutes) for name in config.members if name != config.hub}
        for link in build_links(config):
            into_hub = link.destination.name == config.hub
            member = link.source.name if into_hub else link.destination.name
            series = per_member[member][0 if into_hub else 1]
            for minute, count in stored.get(link.name, {}).items():
                if first <= minute <= now_minute:
                    series[minute - first] += count
        return [Throughput(name, tuple(into), tuple(out)) for name, (into, out) in per_member.items()]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._state is not None:
            self._state.close()
