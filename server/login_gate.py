"""The node's gate on its HTTP server (server/http_server/gate.py): guesses at passwords wait or are refused
on the event loop, so that a flood of them costs neither worker threads nor CPU that logged-in clients
need (measured by bench/login_flood.py; docs/robustness.md).

- Credentials verified before, and requests without Basic credentials, go straight to a worker.
- A locked-out user or address (server/login_throttle.py) is answered 429 from the event loop, after a
  delay: an attacker's connection then makes a guess every few seconds instead of hundreds a second.
- Credentials that need a password check wait on the event loop for one of `concurrent_checks` slots;
  when too many wait already, they are answered 429 after a delay as well."""

import asyncio
import math

from taxii_federation.server.auth import Authenticator
from taxii_federation.server.config import LoginThrottleConfig
from taxii_federation.server.http_server.gate import Admission, GateRefusal
from taxii_federation.server.login_throttle import BUSY, LOCKED_OUT

TARPIT_SECONDS = 2.0  # the longest a refused guess is held before its answer
WAITING_PER_SLOT = 16  # requests that may wait for each password-check slot
WAIT_SECONDS = 5.0  # the longest a request waits for a slot


class LoginGate:
    def __init__(self, authenticator: Authenticator, throttle: LoginThrottleConfig):
        self.authenticator = authenticator
        self.slots_count = throttle.concurrent_checks
        self._slots: asyncio.Semaphore | None = None  # made on the event loop, on first use
        self._waiting = 0

    async def admit(self, environ: dict) -> Admission:
        screening = self.authenticator.screen(environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR"))
        if not screening.needs_check:
            return None
        if screening.locked_for:
            return _too_many(LOCKED_OUT, screening.locked_for)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.slots_count)
        if self._waiting >= WAITING_PER_SLOT * self.slots_count:
            return _too_many(BUSY, 1.0)
        self._waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), WAIT_SECONDS)
        except TimeoutError:
            return _too_many(BUSY, 1.0)
        finally:
            self._waiting -= 1
        return self._slots.release


def _too_many(reason: str, retry_after: float) -> GateRefusal:
    seconds = math.ceil(retry_after)
    return GateRefusal(
        delay=min(retry_after, TARPIT_SECONDS),
        status=429,
        title="Too Many Requests",
        description=f"{reason}; retry in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )
