"""The federation at run time: agreements become links, and a link runs when there is something to carry.

- A link reading a taxii-federation node is woken by the source: per source collection, one watch holds a
  read open there (server/held_reads.py) from the lowest checkpoint of the links that are caught up, and
  wakes them when the source answers with news. Between our own nodes nothing polls, and the hub holds one
  read per agreed collection whatever the number of members.
- A link reading any other server (medallion, OpenTAXII) polls it every `poll_interval_seconds`, and a link
  that delivers to such a server wakes that server's readers at once.
- Passes run on a pool of worker threads (`link_workers`), not a thread per link: most links are idle.
  By default the pool is as large as the most links one commit wakes (the hub's links to every member), so
  a publication goes to every member at once, and the links that read one source collection share its
  page reads (clients/taxii.py): the hub serves, and this process parses, one read per page, not one per
  member.
- A failing link backs off exponentially with jitter, so a member that is down delays only its own links.
  A member that cannot be reached at all is probed every second, independent of the backoff, and its links
  run at once when it answers again: they catch up from their checkpoints at full speed.
"""

import heapq
import itertools
import logging
import queue
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from taxii_federation.clients.federation.config import FederationConfig, Member
from taxii_federation.clients.federation.mirror import Link, LinkRun, Mirror, link_name
from taxii_federation.clients.federation.state import FederationState
from taxii_federation.clients.taxii import RemoteCollection, RemoteError
from taxii_federation.server.timestamps import parse_micros

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 60.0
MIN_LINK_WORKERS, MAX_LINK_WORKERS = 8, 64  # the pool's default size is between these
PROBE_SECONDS = 1.0  # how often a member that could not be reached is asked whether it is back
HELD_READ_SECONDS = 25  # asked of a source per held read; the source caps it (held_read_seconds)


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


def holds_reads(member: Member) -> bool:
    """taxii-federation nodes hold reads for mirrors; other servers are polled."""
    return member.server == "taxii-fed"


def default_link_workers(links: list[Link]) -> int:
    """Enough workers for every link that reads one source collection to run at once: a commit at the hub
    wakes all its links to the members, and the posts to the members then go out together."""
    readers = defaultdict(int)
    for link in links:
        readers[(link.source.name, link.agreement.collection)] += 1
    return max(MIN_LINK_WORKERS, min(MAX_LINK_WORKERS, max(readers.values(), default=0) + 2))


@dataclass(eq=False)
class _Task:
    """One link and where it stands; every field is guarded by the federation's lock."""

    mirror: Mirror
    queued: bool = False
    running: bool = False
    again: bool = False  # woken while running: pass once more, the wake may be about what it just missed
    failures: int = 0
    caught_up: bool = False  # the last pass succeeded and read the source to its end
    checkpoint: str | None = None
    timer: int = 0  # the pending timer's number; an older timer firing is ignored
    started: float = 0.0  # when the current or last pass began (time.monotonic)
    watch: "_Watch | None" = None  # the watch that wakes it, for a source that holds reads

    @property
    def link(self) -> Link:
        return self.mirror.link

    @property
    def waiting_for_news(self) -> bool:
        return self.caught_up and not (self.queued or self.running)


class _Timers:
    """Calls functions later, from one thread that sleeps until the next is due."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._changed = threading.Condition()
        self._order = itertools.count()
        self._stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True, name="federation timers")

    def call_later(self, delay: float, function: Callable[[], None]) -> None:
        with self._changed:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), function))
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopped and (not self._due or self._due[0][0] > time.monotonic()):
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._stopped:
                    return
                _, _, function = heapq.heappop(self._due)
            function()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()


class _Watch:
    """Holds a read open at one taxii-federation source collection for the links that read it, and wakes
    them when the source has news. It waits from the lowest checkpoint of the links that are caught up: a
    link is caught up when its last read saw nothing after its checkpoint, so anything committed since then
    comes after the position waited from, and the held read answers for it. A link whose pass began before
    the read was held, and ended behind the position waited from, passes once more (`missed`)."""

    def __init__(self, federation: "Federation", source: Member, collection: str, tasks: list[_Task]):
        self.federation, self.source, self.tasks = federation, source, tasks
        self.remote = RemoteCollection(source, collection, timeout=30)
        self.not_news = _echoes(source.name, collection, tasks)
        # Shares the federation's lock: notified only when one of its own links changed, so a pass that
        # ends wakes the one watch it concerns, not every watch of the federation.
        self.changed = threading.Condition(federation.lock)
        self.thread = threading.Thread(
            target=self._run, daemon=True, name=f"watch {source.name}:{collection}"
        )
        # The read held now, guarded by the federation's lock: since when, and from which position.
        self.holding, self.held_since, self.held_after = False, 0.0, None
        for task in tasks:
            task.watch = self

    def missed(self, task: _Task) -> bool:
        """Whether a link that just ended a pass may have missed a commit the held read will not report:
        its last read came before the read was held, and its checkpoint is behind the position held from."""
        if not self.holding or task.started >= self.held_since or self.held_after is None:
            return False
        return task.checkpoint is None or parse_micros(task.checkpoint) < parse_micros(self.held_after)

    def _run(self) -> None:
        federation, failures = self.federation, 0
        while True:
            with self.changed:
                self.changed.wait_for(lambda: federation.stopping or self._ready())
                if federation.stopping:
                    return
                checkpoints = [task.checkpoint for task in self.tasks if task.waiting_for_news]
                after = None if None in checkpoints else min(checkpoints, key=parse_micros)
                self.holding, self.held_since, self.held_after = True, time.monotonic(), after
            try:
                answer = self.remote.wait_for_news(after, HELD_READ_SECONDS, self.not_news)
                failures = 0
            except RemoteError as error:
                with federation.lock:
                    self.holding = False
                failures += 1
                if error.unreachable:
                    federation.mark_down(self.source.name)  # the probe wakes everything when it is back
                else:
                    log.warning("watch on %s: %s", self.source.name, error)
                    federation.sleep(backoff_seconds(failures, federation.config.poll_interval))
                continue
            with federation.lock:
                self.holding = False
                waiting = [task for task in self.tasks if task.waiting_for_news]
                if answer.passed:
                    self._skip_what_is_not_news(waiting, after, answer.passed)
            if answer.news:
                for task in waiting:
                    federation.wake(task)
            elif not answer.held:
                # The source answered at once (its held reads are all taken, or it does not hold reads):
                # ask again after a poll interval rather than at once.
                federation.sleep(federation.config.poll_interval)

    def _skip_what_is_not_news(self, waiting: list[_Task], after: str | None, passed: str) -> None:
        """The source looked from `after` to `passed` and found only what is not news to these links (their
        echoes, which they would read and drop): their checkpoints move there without reading it. A link
        whose checkpoint is behind `after` was not looked for, and keeps it."""
        for task in waiting:
            checkpoint = task.checkpoint
            if after is not None and (checkpoint is None or parse_micros(checkpoint) < parse_micros(after)):
                continue
            if checkpoint is not None and parse_micros(checkpoint) >= parse_micros(passed):
                continue
            self.federation.state.advance(task.link.name, passed, 0, 0, Counter(), True)
            task.checkpoint = passed

    def _ready(self) -> bool:
        return self.source.name not in self.federation.down and any(
            task.waiting_for_news for task in self.tasks
        )


def _echoes(source: str, collection: str, tasks: list[_Task]) -> frozenset[str]:
    """What no link of a watch would carry, so a commit of only that is not news to it: when all its links
    go to one node, the versions first published there or delivered from there (a member's watch, whose one
    link goes to the hub, is not woken by the hub's own deliveries to that member)."""
    destinations = {task.link.destination.name for task in tasks}
    if len(destinations) != 1:
        return frozenset()
    (destination,) = destinations
    return frozenset({destination, link_name(destination, source, collection)})


class Federation:
    """Runs every link until stopped."""

    def __init__(self, config: FederationConfig, state: FederationState | None = None):
        self.config = config
        self.state = state or FederationState(config.state_path)
        self.lock = threading.RLock()  # guards every _Task, the watches' positions, `down` and `stopping`
        self.stopping = False
        self.down: set[str] = set()  # members that could not be reached, probed every PROBE_SECONDS
        links = build_links(config)
        self.link_workers = config.link_workers or default_link_workers(links)
        sources: dict[tuple[str, str], RemoteCollection] = {}
        for link in links:
            key = (link.source.name, link.agreement.collection)
            if key not in sources:
                sources[key] = RemoteCollection(link.source, link.agreement.collection)
        self._tasks = [
            _Task(Mirror(link, self.state, source=sources[(link.source.name, link.agreement.collection)]))
            for link in links
        ]
        self._readers_of: dict[str, list[_Task]] = defaultdict(list)
        self._links_of: dict[str, list[_Task]] = defaultdict(list)
        watched: dict[tuple[str, str], list[_Task]] = defaultdict(list)
        for task in self._tasks:
            source, destination = task.link.source, task.link.destination
            self._readers_of[source.name].append(task)
            self._links_of[source.name].append(task)
            self._links_of[destination.name].append(task)
            if holds_reads(source):
                watched[(source.name, task.link.agreement.collection)].append(task)
        self._watches = [
            _Watch(self, config.members[source], collection, tasks)
            for (source, collection), tasks in watched.items()
        ]
        self._probes = {
            name: RemoteCollection(config.members[name], tasks[0].link.agreement.collection, timeout=5)
            for name, tasks in self._links_of.items()
        }
        self._work: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._timers = _Timers()
        self._probing = False
        self._stopped = threading.Event()

    @property
    def links(self) -> list[Link]:
        return [task.link for task in self._tasks]

    def run_once(self) -> dict[str, LinkRun | Exception]:
        """One pass over every link, in order, each to the end of what its source holds."""
        results: dict[str, LinkRun | Exception] = {}
        for task in self._tasks:
            try:
                results[task.link.name] = task.mirror.run_once()
            except RemoteError as error:
                self.state.record_error(task.link.name, str(error))
                results[task.link.name] = error
        return results

    def start(self) -> None:
        self._workers = [
            threading.Thread(target=self._work_loop, daemon=True, name=f"link worker {number}")
            for number in range(self.link_workers)
        ]
        for thread in self._workers:
            thread.start()
        self._timers.thread.start()
        for watch in self._watches:
            watch.thread.start()
        for task in self._tasks:
            self.wake(task, force=True)  # catch up from the checkpoints

    def stop(self, timeout: float = 30) -> None:
        """Stop starting passes and wait for those running. A watch blocked in a held read ends when the
        read answers (at once when its node stops) and starts nothing after this."""
        with self.lock:
            self.stopping = True
            self._notify_watches(self._watches)
        self._stopped.set()
        self._timers.stop()
        for _ in self._workers:
            self._work.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))

    def sleep(self, seconds: float) -> None:
        """For a watch: rest, unless the federation stops."""
        self._stopped.wait(seconds)

    def wake(self, task: _Task, force: bool = False) -> None:
        """Run a pass of the link soon. A link that is failing waits for its backoff or for the probe of
        its member, unless `force`d."""
        with self.lock:
            if self.stopping or (task.failures and not force):
                return
            task.timer += 1  # a pending timer is now moot
            if task.running:
                task.again = True
            elif not task.queued:
                task.queued = True
                self._work.put(lambda: self._pass(task))

    def mark_down(self, member: str) -> None:
        with self.lock:
            if member in self.down:
                return
            self.down.add(member)
            log.warning("member %s cannot be reached; probing it every %g s", member, PROBE_SECONDS)
            if not self._probing:
                self._probing = True
                self._timers.call_later(PROBE_SECONDS, lambda: self._work.put(self._probe_down_members))

    def _work_loop(self) -> None:
        while (job := self._work.get()) is not None:
            job()

    def _pass(self, task: _Task) -> None:
        with self.lock:
            task.queued, task.running, task.again = False, True, False
            task.started = time.monotonic()
        run, error = None, None
        try:
            run = task.mirror.run_once()
        except RemoteError as failure:
            error = failure
        except Exception as failure:  # a bug must not silently stop a link: log it and keep retrying
            log.exception("link %s failed unexpectedly", task.link.name)
            error = failure
        with self.lock:
            task.running = False
            if run is not None:
                task.failures, task.caught_up, task.checkpoint = 0, True, run.checkpoint
                task.again = task.again or (task.watch is not None and task.watch.missed(task))
            else:
                task.failures, task.caught_up = task.failures + 1, False
            again, failures = task.again, task.failures
            if task.watch is not None:
                task.watch.changed.notify()  # it may wait from a new checkpoint now
        if error is not None:
            self._failed(task, error, failures)
            return
        if run.stored and not holds_reads(task.link.destination):
            for reader in self._readers_of[task.link.destination.name]:
                self.wake(reader)
        if again:
            self.wake(task)
        elif not holds_reads(task.link.source):
            # A pass that found objects may have raced new ones in: look again at once, and rest a poll
            # interval only when the source had nothing new.
            self._schedule(task, 0 if run.seen else self.config.poll_interval)

    def _failed(self, task: _Task, error: Exception, failures: int) -> None:
        message = str(error) if isinstance(error, RemoteError) else f"unexpected: {error!r}"
        self.state.record_error(task.link.name, message)
        delay = backoff_seconds(failures, self.config.poll_interval)
        log.warning("link %s: %s (retrying in %.1f s)", task.link.name, message, delay)
        if isinstance(error, RemoteError) and error.unreachable and error.member:
            self.mark_down(error.member)
        self._schedule(task, delay)

    def _schedule(self, task: _Task, delay: float) -> None:
        with self.lock:
            task.timer += 1
            number = task.timer
        self._timers.call_later(delay, lambda: self._timer_fired(task, number))

    def _timer_fired(self, task: _Task, number: int) -> None:
        with self.lock:
            current = task.timer == number
        if current:
            self.wake(task, force=True)

    def _probe_down_members(self) -> None:
        with self.lock:
            down = sorted(self.down)
        back = [name for name in down if self._probes[name].reachable()]
        with self.lock:
            self.down.difference_update(back)
            self._probing = bool(self.down) and not self.stopping
            if self._probing:
                self._timers.call_later(PROBE_SECONDS, lambda: self._work.put(self._probe_down_members))
            for name in back:
                for task in self._links_of[name]:
                    task.failures = 0
            self._notify_watches(watch for watch in self._watches if watch.source.name in back)
        for name in back:
            log.warning("member %s answers again; its links catch up now", name)
            for task in self._links_of[name]:
                self.wake(task, force=True)

    def _notify_watches(self, watches: Iterable[_Watch]) -> None:
        for watch in watches:
            watch.changed.notify()
