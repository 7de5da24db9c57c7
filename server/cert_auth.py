"""Who a client certificate belongs to, and which credentials a user must show.

A node maps certificates to users (`users.NAME.certificates`) by subject, by one subject alternative name,
or by SHA-256 fingerprint; a user's `login` says whether a password, a certificate, either or both are
needed. Only certificates the TLS handshake verified against `tls.client_ca` get here (server/http_server/
tls.py): wrong CA, expired or not yet valid certificates never complete a handshake. This module only
recognises them."""

import hashlib
import ipaddress
import re
import threading
from dataclasses import dataclass

from cryptography import x509

from taxii_federation.server.auth import Authenticator, _unauthorized
from taxii_federation.server.config import CertificateMatch, UserConfig

MATCH_KINDS = ("subject", "san", "sha256")
_SAN_TYPES = {
    "dns": x509.DNSName,
    "email": x509.RFC822Name,
    "uri": x509.UniformResourceIdentifier,
    "ip": None,
}
_HEX_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


def _subject_key(name: x509.Name) -> str:
    # RDN order differs between tools (OpenSSL prints C first, RFC 4514 strings put CN first), so a
    # subject is compared as the set of its attributes.
    return "\n".join(sorted(f"{attribute.oid.dotted_string}={attribute.value}" for attribute in name))


def _san_key(kind: str, value: str) -> str:
    if kind == "ip":
        return f"ip:{ipaddress.ip_address(value)}"
    if kind in ("dns", "email"):
        return f"{kind}:{value.lower()}"  # host names and mail domains are case-insensitive
    return f"{kind}:{value}"


def parse_certificate_match(kind: str, text: str) -> CertificateMatch:
    """Read one `users.NAME.certificates` entry; ValueError says what is wrong with it."""
    if kind == "subject":
        try:
            name = x509.Name.from_rfc4514_string(text)
        except ValueError as error:
            raise ValueError(
                f"not an RFC 4514 subject such as 'CN=mirror,O=Alliance' ({error}); "
                "`openssl x509 -noout -subject -nameopt RFC2253 -in CERT` prints one"
            ) from None
        if not list(name):
            raise ValueError("an empty subject matches nothing")
        return CertificateMatch(kind, text, _subject_key(name))
    if kind == "san":
        san_type, sep, value = text.partition(":")
        if not sep or san_type.lower() not in _SAN_TYPES or not value:
            raise ValueError(
                "must be TYPE:VALUE with TYPE one of DNS, email, URI, IP, e.g. 'DNS:mirror.hub.example'"
            )
        try:
            return CertificateMatch(kind, text, _san_key(san_type.lower(), value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
    if kind == "sha256":
        fingerprint = text.replace(":", "").replace(" ", "").lower()
        if not _HEX_FINGERPRINT.match(fingerprint):
            raise ValueError(
                "must be the certificate's SHA-256 fingerprint, 64 hex digits with or without colons "
                "(`openssl x509 -noout -fingerprint -sha256 -in CERT`)"
            )
        return CertificateMatch(kind, text, fingerprint)
    raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(MATCH_KINDS)}")


@dataclass(frozen=True)
class _Presented:
    """What a presented certificate can be recognised by."""

    keys: tuple[tuple[str, str], ...]
    description: str


def _presented(der: bytes) -> _Presented:
    certificate = x509.load_der_x509_certificate(der)
    fingerprint = hashlib.sha256(der).hexdigest()
    keys = [("sha256", fingerprint), ("subject", _subject_key(certificate.subject))]
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = []
    for name in names:
        for kind, name_class in _SAN_TYPES.items():
            if (
                kind == "ip"
                and isinstance(name, x509.IPAddress)
                or name_class
                and isinstance(name, name_class)
            ):
                keys.append(("san", _san_key(kind, str(name.value))))
    return _Presented(tuple(keys), f"subject '{certificate.subject.rfc4514_string()}', sha256 {fingerprint}")


class CertificateIdentities:
    """The users of one node by the certificates that identify them."""

    _CACHE_LIMIT = 10_000

    def __init__(self, users: dict[str, UserConfig]):
        self._owners = self._by_certificate(users)
        self._parsed: dict[bytes, _Presented] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _by_certificate(users: dict[str, UserConfig]) -> dict[tuple[str, str], UserConfig]:
        return {(match.kind, match.key): user for user in users.values() for match in user.certificates}

    def replace_users(self, users: dict[str, UserConfig]) -> None:
        """Take the user table of an edited node config (the Authenticator takes the same one), so that a
        certificate's owner and a password's user are the same object again."""
        self._owners = self._by_certificate(users)

    def _recognise(self, der: bytes) -> _Presented:
        presented = self._parsed.get(der)
        if presented is None:
            presented = _presented(der)
            with self._lock:
                if len(self._parsed) >= self._CACHE_LIMIT:
                    self._parsed.clear()
                self._parsed[der] = presented
        return presented

    def owner(self, der: bytes) -> tuple[UserConfig | None, str]:
        """The user a verified certificate belongs to (fingerprint first, then subject, then SANs), and
        a description of the certificate for messages."""
        presented = self._recognise(der)
        for key in presented.keys:
            if key in self._owners:
                return self._owners[key], presented.description
        return None, presented.description


def log_in(
    authenticator: Authenticator,
    identities: CertificateIdentities,
    authorization: str | None,
    certificate: bytes | None,
    address: str | None = None,
) -> UserConfig:
    """The user of a request from its Authorization header and its TLS client certificate, as the user's
    `login` demands; a TAXII 401 otherwise. `address` is the client's, for throttling failed passwords."""
    owner, described = identities.owner(certificate) if certificate else (None, "")
    if authorization is not None:
        user = authenticator.authenticate(authorization, address)
        if owner is not None and owner is not user:
            authenticator.refused(user.name)
            raise _unauthorized(
                f"the client certificate ({described}) belongs to user '{owner.name}', the password to "
                f"'{user.name}'; present one user's credentials"
            )
        if user.login == "password-and-certificate" and owner is not user:
            authenticator.refused(user.name)
            raise _unauthorized(f"user '{user.name}' must also present its client certificate")
        return user
    if owner is not None:
        if owner.login == "password-and-certificate":
            authenticator.refused(owner.name)
            raise _unauthorized(f"user '{owner.name}' must also send its password (HTTP Basic)")
        return owner
    if certificate is not None:
        authenticator.refused(None)
        raise _unauthorized(
            f"the client certificate ({described}) is not mapped to a user of this node "
            "(users.NAME.certificates)"
        )
    return authenticator.authenticate(None)
