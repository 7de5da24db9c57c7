"""Failed logins, counted per user and per client address, and the CPU that password checks may take.

A password check costs ~40 ms of scrypt, which is the point (server/auth.py) but also a lever: a flood of
guesses could keep every core busy. So after `max_failures` wrong passwords within the window a user or an
address is locked out, with a lockout that doubles each time; while locked, its requests are refused before
any password is checked. Checks also run at most `concurrent_checks` at a time, whoever sends them, so
guesses from many addresses still leave CPU to clients whose credentials are already verified (those never
wait here).
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from taxii_federation.server.config import LoginThrottleConfig

_MAX_TRACKED = 100_000  # users and addresses remembered at once; the oldest are forgotten first
_CHECK_QUEUE_SECONDS = 2.0  # how long a request waits for a free password check before it is turned away
_QUEUE_PER_SLOT = 4  # requests that may wait for each password-check slot


LOCKED_OUT = "too many failed logins for this user or from this address"
BUSY = "the node is busy checking passwords"


class LoginsThrottled(Exception):
    """The caller must wait before trying again; `retry_after` is in seconds."""

    def __init__(self, retry_after: float, reason: str):
        super().__init__(reason)
        self.retry_after, self.reason = retry_after, reason


@dataclass
class _Failures:
    window_start: float
    count: int = 0
    lockouts: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(self, config: LoginThrottleConfig, clock: Callable[[], float] = time.monotonic):
        self.config, self._clock = config, clock
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(config.concurrent_checks)
        self._waiting = 0

    @staticmethod
    def _keys(user: str, address: str | None) -> list[str]:
        return [f"user:{user}"] + ([f"address:{address}"] if address else [])

    def lockout_remaining(self, user: str, address: str | None) -> float:
        """Seconds until neither the user nor the address is locked out; 0 when neither is."""
        now = self._clock()
        with self._lock:
            return max(
                (
                    entry.locked_until - now
                    for key in self._keys(user, address)
                    if (entry := self._failures.get(key)) and entry.locked_until > now
                ),
                default=0.0,
            )

    def check_allowed(self, user: str, address: str | None) -> None:
        """Raise LoginsThrottled while the user or the address is locked out."""
        if wait := self.lockout_remaining(user, address):
            raise LoginsThrottled(wait, LOCKED_OUT)

    def record_failure(self, user: str, address: str | None) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(user, address):
                entry = self._failures.pop(key, None)  # re-inserted: the dict's order is the forgetting order
                if entry is None:
                    entry = _Failures(window_start=now)
                elif now - entry.window_start > self.config.window_seconds:
                    # A new window; lockouts keep doubling only while they follow each other closely.
                    recent = entry.locked_until > now - self.config.window_seconds
                    entry = _Failures(window_start=now, lockouts=entry.lockouts if recent else 0)
                self._failures[key] = entry
                entry.count += 1
                if entry.count >= self.config.max_failures:
                    entry.lockouts += 1
                    seconds = self.config.lockout_seconds * 2 ** (entry.lockouts - 1)
                    entry.locked_until = now + min(self.config.max_lockout_seconds, seconds)
                    entry.count, entry.window_start = 0, now
            while len(self._failures) > _MAX_TRACKED:
                del self._failures[next(iter(self._failures))]

    def record_success(self, user: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{user}", None)

    @contextmanager
    def password_check(self) -> Iterator[None]:
        """Hold one of the few password-check slots. A few requests may queue for one (a burst of honest
        logins); beyond that, or when none frees up in time, LoginsThrottled: waiting requests hold server
        threads, and a flood must not hold them all."""
        with self._lock:
            if self._waiting >= _QUEUE_PER_SLOT * self.config.concurrent_checks:
                raise LoginsThrottled(1.0, BUSY)
            self._waiting += 1
        try:
            acquired = self._checks.acquire(timeout=_CHECK_QUEUE_SECONDS)
        finally:
            with self._lock:
                self._waiting -= 1
        if not acquired:
            raise LoginsThrottled(1.0, BUSY)
        try:
            yield
        finally:
            self._checks.release()
