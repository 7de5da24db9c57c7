"""A local certificate authority: the demo alliance's certificates (`taxii-fed pki init`), one per node and
one per mirror account, and the ones the tests need. A member joining a real alliance gets its
certificates from the alliance's own CA instead (docs/deployment.md); nothing here is needed then.

Keys are ECDSA P-256 (fast handshakes, accepted by every TLS 1.2+ stack); certificates carry the key usages
and extended key usages that TLS clients and servers check (RFC 5280 §4.2.1.3, §4.2.1.12)."""

import datetime
import ipaddress
import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEMO_ORGANIZATION = "taxii-federation demo alliance"
CA_DAYS = 3650
LEAF_DAYS = 825  # the longest a TLS leaf certificate may live in common browser and OS policies


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Written to a new file, then renamed: a node reloading its key never reads half of one, and the key
    # is never readable by others, not even for a moment.
    temporary = path.with_name(path.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(temporary, path)


def _name(common_name: str, organization: str, unit: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)]
    if unit:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _key_usage(ca: bool) -> x509.KeyUsage:
    """Signatures only (ECDSA keys sign; they never encipher); a CA also signs certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


class LocalCA:
    """A CA certificate and key on disk that issues server and client certificates."""

    def __init__(self, issued: Issued):
        self.files = issued
        self.cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
        key = serialization.load_pem_private_key(issued.key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{issued.key}: the CA key must be an EC key")
        self.key = key

    @classmethod
    def create(
        cls,
        folder: Path,
        common_name: str = "taxii-federation demo CA",
        organization: str = DEMO_ORGANIZATION,
    ) -> "LocalCA":
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name, organization)
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        issued = Issued(folder / "ca.crt", folder / "ca.key")
        _write_key(issued.key, key)
        _write_cert(issued.cert, cert)
        return cls(issued)

    def issue_server(self, folder: Path, name: str, hosts: list[str], **validity) -> Issued:
        """A certificate for a node, valid for each of `hosts` (names or IP addresses)."""
        return self._issue(
            folder,
            name,
            _name(hosts[0], self._organization(), name),
            [_general_name(host) for host in hosts],
            ExtendedKeyUsageOID.SERVER_AUTH,
            **validity,
        )

    def issue_client(
        self,
        folder: Path,
        name: str,
        common_name: str,
        unit: str | None = None,
        hosts: tuple[str, ...] = (),
        **validity,
    ) -> Issued:
        """A certificate a client (a mirror, a SOC tool) logs in with; its subject (or a SAN from `hosts`)
        is what a node maps to a user (`users.NAME.certificates`)."""
        return self._issue(
            folder,
            name,
            _name(common_name, self._organization(), unit),
            [_general_name(host) for host in hosts],
            ExtendedKeyUsageOID.CLIENT_AUTH,
            **validity,
        )

    def _organization(self) -> str:
        values = self.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(values[0].value) if values else DEMO_ORGANIZATION

    def _issue(
        self,
        folder: Path,
        name: str,
        subject: x509.Name,
        alternative_names: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
            .not_valid_after(not_after or now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if alternative_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        issued = Issued(folder / f"{name}.crt", folder / f"{name}.key")
        _write_key(issued.key, key)
        _write_cert(issued.cert, cert)
        return issued


DEMO_PKI = Path("var/pki")


def load_or_create_ca(folder: Path) -> LocalCA:
    issued = Issued(folder / "ca.crt", folder / "ca.key")
    return LocalCA(issued) if issued.cert.exists() and issued.key.exists() else LocalCA.create(folder)


def mirror_subject(member: str, organization: str = DEMO_ORGANIZATION) -> str:
    """The subject of the certificate the federation logs in to `member` with (RFC 4514)."""
    return f"CN=mirror,OU={member},O={organization}"


def init_demo_pki(config, folder: Path = DEMO_PKI) -> LocalCA:
    """A CA in `folder` (kept if there is one), a server certificate per member the config runs and a
    mirror client certificate per member (subject mirror_subject(member)). Re-running re-issues the
    leaf certificates, which is also how the demo rotates them."""
    ca = load_or_create_ca(folder)
    for name, member in config.members.items():
        host = urlsplit(member.url).hostname or "127.0.0.1"
        if member.node_config is not None:
            ca.issue_server(folder, f"node-{name}", list(dict.fromkeys([host, "localhost", "127.0.0.1"])))
        ca.issue_client(folder, f"mirror-{name}", "mirror", unit=name)
    return ca


def with_demo_tls(config, folder: Path = DEMO_PKI):
    """The federation config over HTTPS with mTLS: every member's URL in https, its node serving the
    certificate from `folder` and verifying clients against the demo CA, and every link logging in with
    its mirror certificate only (no password)."""
    from taxii_federation.server.config import TlsConfig

    ca_cert = str(folder / "ca.crt")
    members = {}
    for name, member in config.members.items():
        node_tls = None
        if member.node_config is not None:
            node_tls = TlsConfig(folder / f"node-{name}.crt", folder / f"node-{name}.key", Path(ca_cert))
        members[name] = replace(
            member,
            url="https://" + member.url.split("://", 1)[1],
            password=None,
            password_from=f"client certificate {folder / f'mirror-{name}.crt'}",
            ca_bundle=ca_cert,
            client_cert=str(folder / f"mirror-{name}.crt"),
            client_key=str(folder / f"mirror-{name}.key"),
            node_tls=node_tls,
        )
    return replace(config, members=members, demo_pki=folder)
