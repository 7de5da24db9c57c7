"""What the server may do with a request before any worker thread sees it (server/login_gate.py is the one
the node uses): let it through, let it through once a slot is free, or answer it from the event loop after
a delay. A request that waits here costs a socket and a timer, never a worker, so a flood of requests that
a node will refuse anyway cannot take the threads or the CPU that its other clients need."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class GateRefusal:
    """Answer this error after `delay` seconds instead of running the app; the connection ends after it."""

    delay: float
    status: int
    title: str
    description: str
    headers: dict[str, str] = field(default_factory=dict)


# Run the app now; when a callable, call it once (the slot the request took): when the app calls the
# environ's GATE_PASSED_ENVIRON_KEY, or else when it has answered.
Admission = GateRefusal | Callable[[], None] | None

# The environ key of a callable that the app calls, from its worker thread, once it is past what the gate
# admitted the request for (its login): a long-poll must not keep a password-check slot while it waits.
GATE_PASSED_ENVIRON_KEY = "taxii_federation.gate_passed"


class Gate(Protocol):
    async def admit(self, environ: dict) -> Admission:
        """Runs on the event loop, for every request, with the WSGI environ the app would get."""
