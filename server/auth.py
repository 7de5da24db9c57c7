"""Who is calling and what they may do: hashed passwords, HTTP Basic, per-collection grants."""

import base64
import hashlib
import hmac
import logging
import math
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from taxii_federation.server.config import CollectionConfig, Grant, LoginThrottleConfig, UserConfig
from taxii_federation.server.errors import TaxiiError
from taxii_federation.server.login_throttle import LoginsThrottled, LoginThrottle

log = logging.getLogger(__name__)

# scrypt at n=2**14 costs ~40 ms: slow for an attacker with a stolen hash, and verified once per
# password per process thanks to the cache below (OpenTAXII pays ~0.1 s of CPU on every request).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_REALM = 'Basic realm="taxii-federation", charset="UTF-8"'


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    encode = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, password_hash: str) -> bool:
    try:
        _, n, r, p, salt, digest = password_hash.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class Access:
    can_read: bool = False
    can_write: bool = False

    @property
    def visible(self) -> bool:
        return self.can_read or self.can_write


@dataclass(frozen=True)
class Screening:
    """Whether a request's credentials need a password check, and how long their user or address is locked
    out (0: not locked)."""

    needs_check: bool
    locked_for: float = 0.0


class Authenticator:
    """Checks HTTP Basic credentials against one node's users, throttling failed logins. `on_failure` hears
    of every refused credential (the user name given, or None when the header was not valid Basic): the
    audit log."""

    def __init__(
        self,
        users: dict[str, UserConfig],
        throttle: LoginThrottleConfig | None = None,
        on_failure: Callable[[str | None], None] | None = None,
    ):
        self._users = users
        self._throttle = LoginThrottle(throttle or LoginThrottleConfig())
        self._on_failure = on_failure or (lambda name: None)
        # Unknown users are checked against this hash, so that timing does not tell them from known ones.
        self._dummy_hash = hash_password(secrets.token_urlsafe(16))
        # Remembers verified passwords under a keyed digest, never in clear, for this process only.
        self._cache_key = secrets.token_bytes(32)
        self._verified: set[tuple[str, bytes]] = set()
        self._flights: dict[tuple[str, bytes], _Flight] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None, address: str | None = None) -> UserConfig:
        """The user the Authorization header names and proves; `address` is the client's, for throttling."""
        if not authorization:
            raise _unauthorized("this node requires HTTP Basic authentication; send a user name and password")
        try:
            name, password = _basic_credentials(authorization)
        except TaxiiError:
            self._on_failure(None)
            raise
        user = self._users.get(name)
        token = (name, hmac.digest(self._cache_key, password.encode("utf-8", "replace"), "sha256"))
        if user is not None and token in self._verified:
            return user  # verified before: no password check, no throttling

        password_hash = user.password_hash if user is not None else None

        def check() -> bool:
            self._throttle.check_allowed(name, address)
            with self._throttle.password_check():
                # Unknown users and users who log in by client certificate only are checked against the
                # dummy hash: the same time, and never a match.
                matches = verify_password(password, password_hash or self._dummy_hash)
                return matches and password_hash is not None

        try:
            matches = self._check_once(token, check)
        except LoginsThrottled as throttled:
            raise TaxiiError(
                429,
                "Too Many Requests",
                f"{throttled.reason}; retry in {math.ceil(throttled.retry_after)} s",
                {"Retry-After": str(math.ceil(throttled.retry_after))},
            ) from None
        if user is None or not matches:
            self._throttle.record_failure(name, address)
            log.warning("failed login for user %r from %s", name[:100], address or "an unknown address")
            self._on_failure(name)
            raise _unauthorized("unknown user name or wrong password")
        self._throttle.record_success(name)
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified.add(token)
        return user

    def screen(self, authorization: str | None, address: str | None) -> "Screening":
        """What a request's credentials will cost, decided without a password check (server/login_gate.py
        asks on the event loop, before a worker is used)."""
        if not authorization:
            return Screening(needs_check=False)
        try:
            name, password = _basic_credentials(authorization)
        except TaxiiError:
            return Screening(needs_check=False)  # refused at once by `authenticate`
        token = (name, hmac.digest(self._cache_key, password.encode("utf-8", "replace"), "sha256"))
        if name in self._users and token in self._verified:
            return Screening(needs_check=False)
        return Screening(needs_check=True, locked_for=self._throttle.lockout_remaining(name, address))

    def refused(self, user_name: str | None) -> None:
        """A login refused for another reason than a password (server/cert_auth.py): audited alike."""
        self._on_failure(user_name)

    def find_user(self, name: str) -> UserConfig | None:
        """The user as the config now has it (a session of a removed user must end)."""
        return self._users.get(name)

    def replace_users(self, users: dict[str, UserConfig]) -> None:
        """Take a new user table (the node config was edited); passwords verified before are forgotten."""
        with self._lock:
            self._users = users
            self._verified.clear()

    def _check_once(self, token: tuple[str, bytes], check: Callable[[], bool]) -> bool:
        """Requests that arrive together with the same credentials share one password check: a mirror
        starting its links logs in many times at once, and must not fill the queue for checks."""
        with self._lock:
            flight = self._flights.get(token)
            leading = flight is None
            if leading:
                flight = self._flights[token] = _Flight()
        if not leading:
            if not flight.done.wait(timeout=5):
                raise LoginsThrottled(1.0, "the node is busy checking passwords")
            if flight.throttled is not None:
                raise flight.throttled
            return flight.matches
        try:
            flight.matches = check()
        except LoginsThrottled as throttled:
            flight.throttled = throttled
            raise
        finally:
            with self._lock:
                del self._flights[token]
            flight.done.set()
        return flight.matches


@dataclass
class _Flight:
    """One password check in progress, and its verdict for the requests waiting on it."""

    done: threading.Event = field(default_factory=threading.Event)
    matches: bool = False
    throttled: LoginsThrottled | None = None


def _basic_credentials(authorization: str) -> tuple[str, str]:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise _unauthorized(f"unsupported authorization scheme {scheme[:20]!r}; use HTTP Basic")
    try:
        name, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        sep = ""
    if not sep or len(name) > 256 or len(password) > 1024:
        raise _unauthorized("the Authorization header is not valid HTTP Basic (base64 of 'user:password')")
    return name, password


def _unauthorized(description: str) -> TaxiiError:
    return TaxiiError(401, "Unauthorized", description, {"WWW-Authenticate": _REALM})


def _grant_applies(grant: Grant, api_root: str, collection_id: str) -> bool:
    return grant.api_root == api_root and grant.collection in ("*", collection_id)


def collection_access(user: UserConfig, api_root: str, collection: CollectionConfig) -> Access:
    """The union of the user's grants on one collection."""
    can_read = can_write = False
    for grant in user.grants:
        if _grant_applies(grant, api_root, collection.id):
            can_read = can_read or grant.can_read
            can_write = can_write or grant.can_write
    return Access(can_read, can_write)


def has_api_root_grant(user: UserConfig, api_root: str) -> bool:
    return any(grant.api_root == api_root for grant in user.grants)
