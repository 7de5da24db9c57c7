"""`taxii-fed federation check`: everything a link needs, tried before anything starts. For each member,
the mirror account's password or client certificate and its access to each agreed collection: read where
the member is a link's source, write where it is a destination, and the `federation` role (without it
provenance is ignored and hub-and-spoke mirroring would echo). A member whose node this machine runs
(`node_config`) is checked against that config offline; any other member is asked over TAXII."""

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from taxii_federation.clients.federation.config import FederationConfig, Member
from taxii_federation.clients.federation.scheduler import build_links
from taxii_federation.server.auth import collection_access, verify_password
from taxii_federation.server.cert_auth import CertificateIdentities
from taxii_federation.server.config import ConfigError, UserConfig, load_node_config

TAXII = "application/taxii+json;version=2.1"


@dataclass(frozen=True)
class Finding:
    member: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.member}: {self.detail}"


def _needs(config: FederationConfig) -> dict[str, dict[str, set[str]]]:
    """Per member, per collection alias, the access its links need ('read', 'write')."""
    needs: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for link in build_links(config):
        needs[link.source.name][link.agreement.collection].add("read")
        needs[link.destination.name][link.agreement.collection].add("write")
    return needs


def _offline(member: Member, needs: dict[str, set[str]]) -> list[Finding]:
    try:
        node = load_node_config(member.node_config)
    except ConfigError as error:
        return [Finding(member.name, False, str(error))]
    user = node.users.get(member.user)
    if user is None:
        return [Finding(member.name, False, f"{member.node_config} has no user '{member.user}'")]
    findings = _credential_findings(member, user, node.users)
    if not all(finding.ok for finding in findings):
        return findings
    if "federation" not in user.roles:
        findings.append(
            Finding(member.name, False, f"user '{member.user}' of {member.node_config} lacks role federation")
        )
    api_root = node.find_api_root(member.api_root)
    for alias, wanted in sorted(needs.items()):
        collection = api_root.find_collection(alias) if api_root else None
        if collection is None:
            findings.append(
                Finding(member.name, False, f"no collection '{alias}' in API root {member.api_root}")
            )
            continue
        access = collection_access(user, member.api_root, collection)
        findings.append(_access_finding(member, alias, wanted, access.can_read, access.can_write))
    return findings


def _credential_findings(member: Member, user: UserConfig, users: dict[str, UserConfig]) -> list[Finding]:
    """Whether the member's password and client certificate, as far as it has them, are `user`'s."""
    where = f"user '{member.user}' of {member.node_config}"
    findings = []
    if member.password is not None:
        if user.password_hash is None or not verify_password(member.password, user.password_hash):
            return [
                Finding(member.name, False, f"the password of {member.password_from} does not match {where}")
            ]
        findings.append(
            Finding(member.name, True, f"{member.password_from} holds user '{member.user}''s password")
        )
    if member.client_cert:
        try:
            pem = Path(member.client_cert).read_bytes()
            der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        except (OSError, ValueError) as error:
            return [Finding(member.name, False, f"cannot read client_cert {member.client_cert}: {error}")]
        owner, described = CertificateIdentities(users).owner(der)
        if owner is None or owner.name != user.name:
            return [
                Finding(
                    member.name,
                    False,
                    f"the client certificate {member.client_cert} ({described}) is not mapped to {where} "
                    "(users.NAME.certificates)",
                )
            ]
        findings.append(Finding(member.name, True, f"client certificate {member.client_cert} is {where}"))
    if user.login == "password-and-certificate" and len(findings) < 2:
        return [Finding(member.name, False, f"{where} logs in with password and certificate; give both")]
    return findings


def _online(member: Member, needs: dict[str, set[str]]) -> list[Finding]:
    url = f"{member.api_root_url}collections/"
    try:
        response = requests.get(
            url,
            **member.requests_options(),
            headers={"Accept": TAXII},
            timeout=10,
        )
    except requests.RequestException as error:
        return [Finding(member.name, False, f"cannot reach {url}: {error.__class__.__name__}: {error}")]
    if response.status_code in (401, 403):
        return [
            Finding(
                member.name,
                False,
                f"{member.url} refused the credentials of user '{member.user}' ({response.status_code}); "
                f"check {member.password_from}",
            )
        ]
    if response.status_code != 200:
        return [Finding(member.name, False, f"GET {url} answered {response.status_code}")]
    collections = (response.json() or {}).get("collections") or []
    findings = [
        Finding(member.name, True, f"{member.url} accepts user '{member.user}' ({member.password_from})")
    ]
    for alias, wanted in sorted(needs.items()):
        found = next((c for c in collections if alias in (c.get("alias"), c.get("id"))), None)
        if found is None:
            findings.append(
                Finding(member.name, False, f"{url} shows user '{member.user}' no collection '{alias}'")
            )
            continue
        findings.append(_access_finding(member, alias, wanted, found.get("can_read"), found.get("can_write")))
    return findings


def _access_finding(member: Member, alias: str, wanted: set[str], can_read, can_write) -> Finding:
    missing = [
        right for right, has in (("read", can_read), ("write", can_write)) if right in wanted and not has
    ]
    if missing:
        return Finding(
            member.name, False, f"user '{member.user}' cannot {' or '.join(missing)} collection '{alias}'"
        )
    return Finding(member.name, True, f"collection '{alias}': {' and '.join(sorted(wanted))} allowed")


def check_federation(config: FederationConfig, offline_only: bool = False) -> list[Finding]:
    """What each member's links need, member by member; `offline_only` skips members run elsewhere."""
    needs = _needs(config)
    findings = []
    for member in config.members.values():
        if member.node_config is not None:
            findings += _offline(member, needs.get(member.name, {}))
        elif not offline_only:
            findings += _online(member, needs.get(member.name, {}))
    return findings
