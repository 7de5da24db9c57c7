"""Held reads: how a mirror learns of a commit without polling.

TAXII 2.1 has no push (it reserves Channels for a later version), so between taxii-federation nodes a
mirror asks an ordinary `GET objects/` to wait: a federation account (role `federation`) sends
`X-TAXII-Fed-Wait: SECONDS`, and when nothing matches yet the node holds the request until a commit in that
collection matches it or the time is up. The answer is the normal TAXII envelope either way (an empty page
is `{"more": false}`); a read that found nothing at first answers with how long the node agreed to hold it
(`X-TAXII-Fed-Wait: 0` when it declined), so a mirror knows whether to poll instead. Standard clients and
other accounts never see any of it: the header is ignored for them.

A mirror may also say what is not news to it (`X-TAXII-Fed-Not-News`: node and link names): the objects
first published at those nodes or delivered here by those links, which its links would not carry back (the
federation's echoes: the hub's own deliveries to this member). The node then keeps holding while only such
objects arrive, looking at each once (ids and provenance, no bodies), and answers when news arrives or the
time is up; `X-TAXII-Fed-Passed: DATE_ADDED` then says how far everything after the position asked from was
not news, so the mirror moves its checkpoint past the echoes without reading them.

A held read keeps a worker thread of the HTTP server, so a node holds at most `max_held_reads` at once and
each for at most `held_read_seconds`; beyond the bound a read is answered at once, and normal requests are
never starved. Commits made by this process wake the waiters at once. Commits made by another process that
shares the store (a second node process on the same SQLite file or MongoDB database) are seen by re-reading
once a second: one index probe a second per held read.
"""

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from taxii_federation.server.storage.base import ObjectQuery, Page, StoredVersion

WAIT_HEADER = "X-TAXII-Fed-Wait"
NOT_NEWS_HEADER = "X-TAXII-Fed-Not-News"
PASSED_HEADER = "X-TAXII-Fed-Passed"
RECHECK_SECONDS = 1.0  # how soon a commit by another process sharing the store is seen by a held read


class HeldReads:
    """One node's commit notifications and the reads held open for them."""

    def __init__(self, max_held: int, max_seconds: float):
        self.max_held, self.max_seconds = max_held, max_seconds
        self._changed = threading.Condition()
        self._commits: Counter[str] = Counter()  # per collection, how many commits this process has made
        self._held = 0
        self._closed = False

    @property
    def held(self) -> int:
        """How many reads are held open right now."""
        with self._changed:
            return self._held

    def committed(self, collection_id: str) -> None:
        """Called once a write to the collection has committed: held reads on it look again."""
        with self._changed:
            self._commits[collection_id] += 1
            self._changed.notify_all()

    def generation(self, collection_id: str) -> int:
        """Taken before a read, so that a commit racing the read still wakes the wait that follows it."""
        with self._changed:
            return self._commits[collection_id]

    def hold(
        self,
        query: ObjectQuery,
        generation: int,
        seconds: float,
        read: Callable[[ObjectQuery], Page],
        not_news: "NotNews | None" = None,
        seen: Page | None = None,
    ) -> "HeldAnswer":
        """Wait until what `read(query)` finds has news (an item not `not_news`), at most `seconds` (capped
        by the node's bound); `seen` is what the caller's own read found (nothing, or nothing new)."""
        not_news = not_news or NotNews()
        seen = seen or Page([], more=False)
        granted = min(seconds, self.max_seconds)
        with self._changed:
            if self._closed or granted <= 0 or self._held >= self.max_held:
                return HeldAnswer(seen, 0, None)
            self._held += 1
        try:
            deadline = time.monotonic() + granted
            # How far the held read has looked: what it saw once is not read again at each commit.
            scan = _past(replace(query, with_bodies=False), seen.items)
            news = False
            if seen.more:  # what the caller read filled its page: what follows may be news already
                scan, news = self._look(scan, read, not_news, deadline)
            while not news:
                generation = self._wait_for_commit(query.collection_id, generation, deadline)
                if generation is None:
                    return HeldAnswer(Page([], more=False), granted, _passed(query, scan))
                scan, news = self._look(scan, read, not_news, deadline)
            return HeldAnswer(read(replace(query, after=scan.after)), granted, _passed(query, scan))
        finally:
            with self._changed:
                self._held -= 1

    def _look(
        self, scan: ObjectQuery, read: Callable[[ObjectQuery], Page], not_news: "NotNews", deadline: float
    ) -> tuple[ObjectQuery, bool]:
        """Read on from `scan` through what is new since; returns where the look ended and whether it found
        news there. Bounded by what was committed and by the deadline."""
        while time.monotonic() < deadline:
            page = read(scan)
            news_at = next((n for n, item in enumerate(page.items) if not not_news.covers(item)), None)
            if news_at is not None:
                return _past(scan, page.items[:news_at]), True
            scan = _past(scan, page.items)
            if not page.more:
                break
        return scan, False

    def _wait_for_commit(self, collection_id: str, generation: int, deadline: float) -> int | None:
        """Wait for a commit after `generation`, or RECHECK_SECONDS for other processes' commits; returns
        the generation to wait after next, None once the deadline has passed or the node is stopping."""
        with self._changed:
            remaining = deadline - time.monotonic()
            if self._closed or remaining <= 0:
                return None
            self._changed.wait_for(
                lambda: self._closed or self._commits[collection_id] != generation,
                timeout=min(remaining, RECHECK_SECONDS),
            )
            return None if self._closed else self._commits[collection_id]

    def close(self) -> None:
        """Answer every held read now (the node is stopping) and hold no more."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()


class NotNews:
    """What a mirror says is not news to it: versions first published at `nodes` or delivered here by
    `links` (the names in X-TAXII-Fed-Origin and X-TAXII-Fed-Link)."""

    def __init__(self, names: frozenset[str] = frozenset()):
        self.names = names

    @classmethod
    def parse(cls, text: str | None) -> "NotNews":
        return cls(frozenset(name.strip() for name in (text or "").split(",") if name.strip()))

    def covers(self, version: StoredVersion) -> bool:
        return version.origin_node in self.names or version.link in self.names

    def has_news(self, page: Page) -> bool:
        return any(not self.covers(item) for item in page.items)


@dataclass(frozen=True)
class HeldAnswer:
    """What a held read answers: the page (from where everything before it was not news), the seconds the
    node granted (0: declined), and the date_added up to which all was not news (None: nothing passed)."""

    page: Page
    granted: float
    passed: int | None


def _past(query: ObjectQuery, items: list[StoredVersion]) -> ObjectQuery:
    """The query positioned after `items` (in date_added order), as a `next` cursor would be."""
    return replace(query, after=items[-1].date_added) if items else query


def _passed(query: ObjectQuery, scan: ObjectQuery) -> int | None:
    return scan.after if scan.after != query.after else None
