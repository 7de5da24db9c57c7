"""Who is calling and what they may do: hashed passwords, HTTP Basic, per-collection grants."""

import base64
import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import dataclass

from taxii_federation.server.config import CollectionConfig, Grant, UserConfig
from taxii_federation.server.errors import TaxiiError

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


class Authenticator:
    """Checks HTTP Basic credentials against one node's users."""

    def __init__(self, users: dict[str, UserConfig]):
        self._users = users
        # Remembers verified passwords under a keyed digest, never in clear, for this process only.
        self._cache_key = secrets.token_bytes(32)
        self._verified: set[tuple[str, bytes]] = set()
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> UserConfig:
        if not authorization:
            raise _unauthorized("this node requires HTTP Basic authentication; send a user name and password")
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise _unauthorized(f"unsupported authorization scheme {scheme!r}; use HTTP Basic")
        try:
            name, sep, password = (
                base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
            )
        except (ValueError, UnicodeDecodeError):
            sep = ""
        if not sep:
            raise _unauthorized(
                "the Authorization header is not valid HTTP Basic (base64 of 'user:password')"
            )
        user = self._users.get(name)
        if user is None or not self._password_matches(user, password):
            raise _unauthorized("unknown user name or wrong password")
        return user

    def _password_matches(self, user: UserConfig, password: str) -> bool:
        if user.password_hash is None:
            return False  # a user who logs in by client certificate only
        token = (user.name, hmac.digest(self._cache_key, password.encode(), "sha256"))
        if token in self._verified:
            return True
        if not verify_password(password, user.password_hash):
            return False
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified.add(token)
        return True


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
