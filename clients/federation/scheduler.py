"""The federation: agreements become links, and each link runs in its own thread so that a member that is
down delays only its own links. When a link delivers objects to a node, the links that read from that node
are woken at once, so an object crosses the hub without waiting for another poll interval."""

import logging
import random
import threading
from collections import defaultdict
from dataclasses import dataclass

from taxii_federation.clients.federation.config import FederationConfig
from taxii_federation.clients.federation.mirror import Link, LinkRun, Mirror
from taxii_federation.clients.federation.state import FederationState
from taxii_federation.clients.taxii import RemoteError

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 60.0


def build_links(config: FederationConfig) -> list[Link]:
    """Links into the hub first, then out of it: one pass in this order carries a publication from any
    member to every other (what `mirror --once` relies on)."""
    hub = config.members[config.hub]
    inbound, outbound = [], []
    for agreement in config.agreements:
        for name in agreement.members:
            member = config.members[name]
            if agreement.direction in ("to-hub", "both"):
                inbound.append(Link(member, hub, agreement))
            if agreement.direction in ("from-hub", "both"):
                outbound.append(Link(hub, member, agreement))
    return inbound + outbound


def backoff_seconds(failures: int, base: float) -> float:
    """Exponential backoff with jitter, so members coming back are not hit by every link at once."""
    ceiling = min(MAX_BACKOFF_SECONDS, base * 2 ** min(failures, 16))
    return ceiling * (0.5 + random.random() / 2)


@dataclass
class _Worker:
    mirror: Mirror
    wake: threading.Event
    thread: threading.Thread | None = None


class Federation:
    """Runs every link continuously until stopped."""

    def __init__(self, config: FederationConfig, state: FederationState | None = None):
        self.config = config
        self.state = state or FederationState(config.state_path)
        self._stop = threading.Event()
        self._workers = [_Worker(Mirror(link, self.state), threading.Event()) for link in build_links(config)]
        self._readers_of: dict[str, list[_Worker]] = defaultdict(list)
        for worker in self._workers:
            self._readers_of[worker.mirror.link.source.name].append(worker)

    @property
    def links(self) -> list[Link]:
        return [worker.mirror.link for worker in self._workers]

    def run_once(self) -> dict[str, LinkRun | Exception]:
        """One pass over every link, in order, each to the end of what its source holds."""
        results: dict[str, LinkRun | Exception] = {}
        for worker in self._workers:
            try:
                results[worker.mirror.link.name] = worker.mirror.run_once()
            except RemoteError as error:
                self.state.record_error(worker.mirror.link.name, str(error))
                results[worker.mirror.link.name] = error
        return results

    def start(self) -> None:
        for worker in self._workers:
            worker.thread = threading.Thread(
                target=self._loop, args=(worker,), daemon=True, name=f"link {worker.mirror.link.name}"
            )
            worker.thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.wake.set()
        for worker in self._workers:
            if worker.thread is not None:
                worker.thread.join(timeout)

    def _loop(self, worker: _Worker) -> None:
        link, failures = worker.mirror.link, 0
        while not self._stop.is_set():
            worker.wake.clear()
            try:
                run = worker.mirror.run_once()
                failures = 0
                if run.stored:
                    for reader in self._readers_of[link.destination.name]:
                        reader.wake.set()
                # A pass that found objects may have raced new ones in: look again at once, and rest only
                # when the source had nothing new.
                delay = 0 if run.seen else self.config.poll_interval
            except RemoteError as error:
                failures += 1
                self.state.record_error(link.name, str(error))
                delay = backoff_seconds(failures, self.config.poll_interval)
                log.warning("link %s: %s (retrying in %.1f s)", link.name, error, delay)
            except Exception as error:  # a bug must not silently stop a link: log it and keep retrying
                failures += 1
                self.state.record_error(link.name, f"unexpected: {error!r}")
                delay = backoff_seconds(failures, self.config.poll_interval)
                log.exception("link %s failed unexpectedly", link.name)
            worker.wake.wait(delay)
