"""Held reads: how a mirror learns of a commit without polling.

TAXII 2.1 has no push (it reserves Channels for a later version), so between taxii-federation nodes a
mirror asks an ordinary `GET objects/` to wait: a federation account (role `federation`) sends
`X-TAXII-Fed-Wait: SECONDS`, and when nothing matches yet the node holds the request until a commit in that
collection matches it or the time is up. The answer is the normal TAXII envelope either way (an empty page
is `{"more": false}`); a read that found nothing at first answers with how long the node agreed to hold it
(`X-TAXII-Fed-Wait: 0` when it declined), so a mirror knows whether to poll instead. Standard clients and
other accounts never see any of it: the header is ignored for them.

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

from taxii_federation.server.storage.base import ObjectQuery, Page

WAIT_HEADER = "X-TAXII-Fed-Wait"
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
        self, query: ObjectQuery, generation: int, seconds: float, read: Callable[[ObjectQuery], Page]
    ) -> tuple[Page, float]:
        """Wait until `read(query)` has items, at most `seconds` (capped by the node's bound). Returns the
        page (empty on timeout or shutdown) and the seconds granted, 0 when the node declined to hold."""
        granted = min(seconds, self.max_seconds)
        with self._changed:
            if self._closed or granted <= 0 or self._held >= self.max_held:
                return Page([], more=False), 0
            self._held += 1
        try:
            deadline = time.monotonic() + granted
            while True:
                generation = self._wait_for_commit(query.collection_id, generation, deadline)
                if generation is None:
                    return Page([], more=False), granted
                page = read(query)
                if page.items:
                    return page, granted
        finally:
            with self._changed:
                self._held -= 1

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
