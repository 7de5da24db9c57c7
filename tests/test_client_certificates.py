"""Client certificates (mTLS): users recognised by subject, SAN or fingerprint, logins that need a
certificate, a password or both, handshakes that fail for certificates the node must not trust, and
certificates replaced on disk taking effect without a restart."""

import datetime
import json
import shutil
from pathlib import Path

import pytest
import requests
import yaml

from taxii_federation.clients.federation.pki import Issued, LocalCA
from taxii_federation.server.config import ConfigError, load_node_config
from taxii_federation.server.serve import RunningNode, start_node
from tests.conftest import COLLECTION_ID, PASSWORDS, TAXII, _password_hash, eventually, write_node_files

GRANT = [{"api_root": "alliance", "collections": "*", "access": "read"}]


@pytest.fixture(autouse=True)
def _no_ca_bundle_from_the_environment(monkeypatch):
    # requests lets these variables override a Session's own `verify` (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


class Pki:
    """The node's CA (it signs the node's certificate and the clients' that the node trusts) and a
    stranger CA whose certificates the node must refuse."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.ca = LocalCA.create(folder / "alliance", "alliance CA")
        self.stranger = LocalCA.create(folder / "stranger", "stranger CA")
        self.node = self.ca.issue_server(folder / "alliance", "node", ["127.0.0.1"])

    def client(
        self, name: str, common_name: str, ca: LocalCA | None = None, unit: str = "test", **validity
    ) -> Issued:
        return (ca or self.ca).issue_client(self.folder / "clients", name, common_name, unit=unit, **validity)


@pytest.fixture
def pki(tmp_path) -> Pki:
    return Pki(tmp_path / "pki")


def _fingerprint(issued: Issued) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return x509.load_pem_x509_certificate(issued.cert.read_bytes()).fingerprint(hashes.SHA256()).hex(":")


def _node_config(tmp_path: Path, pki: Pki, users: dict, client_certificates: str = "optional") -> Path:
    tls = {
        "cert": str(pki.node.cert),
        "key": str(pki.node.key),
        "client_ca": str(pki.ca.files.cert),
        "client_certificates": client_certificates,
    }
    path = write_node_files(tmp_path / "node", storage_url=f"sqlite:{tmp_path / 'node.db'}", tls=tls)
    data = yaml.safe_load(path.read_text())
    data["users"].update(users)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def node(tmp_path, pki):
    started: list[RunningNode] = []

    def start(users: dict, **options) -> RunningNode:
        started.append(start_node(load_node_config(_node_config(tmp_path, pki, users, **options))))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def _get(running: RunningNode, pki: Pki, cert: Issued | None = None, auth=None) -> requests.Response:
    return requests.get(
        f"{running.url}alliance/collections/{COLLECTION_ID}/objects/",
        cert=(str(cert.cert), str(cert.key)) if cert else None,
        auth=auth,
        verify=str(pki.ca.files.cert),
        headers={"Accept": TAXII},
        timeout=10,
    )


@pytest.mark.parametrize("way", ["subject", "san", "sha256"])
def test_a_mapped_certificate_logs_in_without_a_password(node, pki, way):
    sensor = pki.client("sensor", "sensor.ua.example")
    match = {
        "subject": {"subject": "CN=sensor.ua.example,OU=test,O=taxii-federation demo alliance"},
        "san": None,
        "sha256": {"sha256": _fingerprint(sensor)},
    }[way]
    if way == "san":
        sensor = pki.ca.issue_client(
            pki.folder / "clients", "sensor-san", "sensor", hosts=("sensor.ua.example",)
        )
        match = {"san": "DNS:Sensor.UA.example"}  # host names compare without case
    running = node({"sensor": {"certificates": [match], "grants": GRANT}})
    response = _get(running, pki, sensor)
    assert response.status_code == 200, response.text
    assert response.json() == {"more": False}


def test_a_subject_matches_whatever_order_its_attributes_are_written_in(node, pki):
    sensor = pki.client("sensor", "sensor.ua.example")
    subject = "O=taxii-federation demo alliance,CN=sensor.ua.example,OU=test"
    running = node({"sensor": {"certificates": [{"subject": subject}], "grants": GRANT}})
    assert _get(running, pki, sensor).status_code == 200


def test_an_unmapped_certificate_gets_401_naming_it(node, pki):
    running = node({})
    stranger = pki.client("unknown", "unknown.example")
    response = _get(running, pki, stranger)
    assert response.status_code == 401
    body = response.json()
    assert body["http_status"] == "401"
    assert "CN=unknown.example" in body["description"] and "not mapped to a user" in body["description"]


def test_a_certificate_from_another_ca_fails_the_handshake(node, pki):
    running = node(
        {
            "sensor": {
                "certificates": [{"subject": "CN=sensor,OU=test,O=taxii-federation demo alliance"}],
                "grants": GRANT,
            }
        }
    )
    forged = pki.client("forged", "sensor", ca=pki.stranger)
    with pytest.raises(requests.exceptions.SSLError, match="unknown ca"):
        _get(running, pki, forged)
    assert _get(running, pki, auth=("soc", PASSWORDS["soc"])).status_code == 200  # the node still serves


def test_an_expired_certificate_fails_the_handshake(node, pki):
    now = datetime.datetime.now(datetime.UTC)
    expired = pki.client(
        "expired",
        "sensor",
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    running = node({"sensor": {"certificates": [{"sha256": _fingerprint(expired)}], "grants": GRANT}})
    with pytest.raises(requests.exceptions.SSLError, match="certificate expired"):
        _get(running, pki, expired)


def test_a_user_who_needs_both_is_refused_with_either_alone(node, pki):
    auditor = pki.client("auditor", "auditor")
    user = {
        "password_hash": _password_hash(PASSWORDS["soc"]),
        "certificates": [{"sha256": _fingerprint(auditor)}],
        "login": "password-and-certificate",
        "grants": GRANT,
    }
    running = node({"auditor": user})
    by_password = _get(running, pki, auth=("auditor", PASSWORDS["soc"]))
    assert by_password.status_code == 401 and "must also present its client certificate" in by_password.text
    by_certificate = _get(running, pki, auditor)
    assert by_certificate.status_code == 401 and "must also send its password" in by_certificate.text
    assert _get(running, pki, auditor, auth=("auditor", PASSWORDS["soc"])).status_code == 200


def test_a_password_and_a_certificate_of_different_users_are_refused(node, pki):
    sensor = pki.client("sensor", "sensor")
    running = node({"sensor": {"certificates": [{"sha256": _fingerprint(sensor)}], "grants": GRANT}})
    response = _get(running, pki, sensor, auth=("soc", PASSWORDS["soc"]))
    assert response.status_code == 401
    assert "belongs to user 'sensor', the password to 'soc'" in response.json()["description"]


def test_a_certificate_only_user_cannot_log_in_with_a_password(node, pki):
    sensor = pki.client("sensor", "sensor")
    running = node({"sensor": {"certificates": [{"sha256": _fingerprint(sensor)}], "grants": GRANT}})
    assert _get(running, pki, auth=("sensor", "")).status_code == 401


def test_required_client_certificates_refuse_a_handshake_without_one(node, pki):
    running = node({}, client_certificates="required")
    with pytest.raises(requests.exceptions.SSLError):
        _get(running, pki, auth=("soc", PASSWORDS["soc"]))
    with_certificate = _get(running, pki, pki.client("any", "any"), auth=("soc", PASSWORDS["soc"]))
    assert with_certificate.status_code == 200


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"subject": "not a subject"}, "not an RFC 4514 subject"),
        ({"san": "mirror.example"}, "must be TYPE:VALUE"),
        ({"sha256": "abcd"}, "64 hex digits"),
        ({"serial": "1"}, "unknown key"),
    ],
)
def test_certificate_entries_are_checked_at_start(tmp_path, pki, entry, problem):
    path = _node_config(tmp_path, pki, {"sensor": {"certificates": [entry], "grants": GRANT}})
    with pytest.raises(ConfigError, match=rf"users\.sensor\.certificates\[0\].*{problem}"):
        load_node_config(path)


def test_a_certificate_only_user_needs_a_client_ca(tmp_path):
    path = write_node_files(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["users"]["sensor"] = {"certificates": [{"subject": "CN=sensor"}], "grants": GRANT}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"users\.sensor: logs in by certificate only.*tls\.client_ca"):
        load_node_config(path)


def _replace(source: Issued, destination: Issued) -> None:
    """Rotate as an operator would: new files moved over the old ones."""
    for new, old in ((source.key, destination.key), (source.cert, destination.cert)):
        shutil.copyfile(new, old.with_name(old.name + ".tmp"))
        old.with_name(old.name + ".tmp").replace(old)


def test_an_edited_certificate_mapping_applies_to_the_running_node(node, pki):
    """Renewing a certificate mapped by fingerprint means editing users.NAME.certificates: the running
    node takes the new mapping with the rest of its users (server/user_reload.py), no restart."""
    old, renewed = pki.client("old", "sensor"), pki.client("renewed", "sensor")
    sensor = {
        "password_hash": _password_hash(PASSWORDS["soc"]),
        "certificates": [{"sha256": _fingerprint(old)}],
        "grants": GRANT,
    }
    running = node({"sensor": sensor})
    assert _get(running, pki, old).status_code == 200
    assert _get(running, pki, renewed).status_code == 401
    config_path = running.config.source
    data = yaml.safe_load(config_path.read_text())
    data["users"]["sensor"]["certificates"] = [{"sha256": _fingerprint(renewed)}]
    config_path.write_text(yaml.safe_dump(data))
    eventually(lambda: _get(running, pki, renewed).status_code == 200)
    assert _get(running, pki, old).status_code == 401
    # Passwords and certificates were reloaded as one user table: both credentials are still one user.
    assert _get(running, pki, renewed, auth=("sensor", PASSWORDS["soc"])).status_code == 200


def test_refused_certificate_logins_are_audited(tmp_path, pki):
    audit = tmp_path / "audit.log"
    path = _node_config(tmp_path, pki, {})
    data = yaml.safe_load(path.read_text())
    data["logs"] = {"audit": str(audit)}
    path.write_text(yaml.safe_dump(data))
    running = start_node(load_node_config(path))
    try:
        assert _get(running, pki, pki.client("unknown", "unknown.example")).status_code == 401
    finally:
        running.stop()
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(event["event"], event["user"]) for event in events] == [("login_failed", None)], events


def test_the_node_certificate_and_client_ca_are_reloaded_without_a_restart(node, pki):
    old_ca_client = pki.client("old", "sensor")
    running = node(
        {
            "sensor": {
                "certificates": [{"subject": "CN=sensor,OU=test,O=taxii-federation demo alliance"}],
                "grants": GRANT,
            }
        }
    )
    assert _get(running, pki, old_ca_client).status_code == 200

    # The alliance moves to a new CA: the node's certificate and the CA bundle it trusts are replaced.
    new_ca = LocalCA.create(pki.folder / "next", "alliance CA")
    new_node = new_ca.issue_server(pki.folder / "next", "node", ["127.0.0.1"])
    new_ca_client = new_ca.issue_client(pki.folder / "next", "sensor", "sensor", unit="test")
    _replace(new_node, pki.node)
    shutil.copyfile(new_ca.files.cert, pki.ca.files.cert)

    def served_by_the_new_certificate():
        try:
            return _get(running, pki, new_ca_client).status_code == 200  # verify= now names the new CA
        except requests.exceptions.SSLError:
            return False

    eventually(served_by_the_new_certificate)
    with pytest.raises(requests.exceptions.SSLError):
        _get(running, pki, old_ca_client)  # the old CA is no longer trusted for clients


def test_a_federation_whose_links_use_client_certificates_only(tmp_path, pki):
    from taxii_federation.clients.federation.alliance import start_alliance
    from taxii_federation.clients.federation.config import load_federation_config
    from tests.conftest import SHARED_INDICATORS, load_bundle, write_federation_files
    from tests.processes import free_port

    agreement = {**SHARED_INDICATORS, "members": ["ua", "md"]}
    path = write_federation_files(tmp_path / "federation", [agreement], members=("hub", "ua", "md"))
    federation = yaml.safe_load(path.read_text())
    for name, member in federation["members"].items():
        client = pki.client(f"mirror-{name}", "mirror", unit=name)
        node_path = Path(member["node_config"])
        node_data = yaml.safe_load(node_path.read_text())
        node_data["tls"] = {
            "cert": str(pki.node.cert),
            "key": str(pki.node.key),
            "client_ca": str(pki.ca.files.cert),
        }
        mirror = node_data["users"]["mirror"]
        del mirror["password_hash"]
        mirror["certificates"] = [{"subject": f"CN=mirror,OU={name},O=taxii-federation demo alliance"}]
        node_path.write_text(yaml.safe_dump(node_data))
        member["url"] = f"https://127.0.0.1:{free_port()}/"
        member["ca_bundle"] = str(pki.ca.files.cert)
        member["credentials"] = {
            "user": "mirror",
            "client_cert": str(client.cert),
            "client_key": str(client.key),
        }
    path.write_text(yaml.safe_dump(federation))
    config = load_federation_config(path)
    assert all(member.password is None for member in config.members.values())

    alliance = start_alliance(config)
    try:
        objects = load_bundle("oasis-examples/indicator-for-c2-ip-address.json")
        ua = alliance.nodes["ua"].url
        response = requests.post(
            f"{ua}alliance/collections/{COLLECTION_ID}/objects/",
            data=json.dumps({"objects": objects}),
            auth=("cert", PASSWORDS["cert"]),
            headers={"Accept": TAXII, "Content-Type": TAXII},
            verify=str(pki.ca.files.cert),
            timeout=30,
        )
        assert response.status_code == 202, response.text
        md = alliance.nodes["md"].url
        eventually(lambda: len(_walk_tls(md, pki)) == len(objects), 30)
    finally:
        alliance.stop()


def _walk_tls(base_url: str, pki: Pki) -> list[dict]:
    response = requests.get(
        f"{base_url}alliance/collections/{COLLECTION_ID}/objects/",
        auth=("soc", PASSWORDS["soc"]),
        headers={"Accept": TAXII},
        verify=str(pki.ca.files.cert),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json().get("objects", [])


def test_a_replaced_client_certificate_is_used_without_a_restart(tmp_path, pki):
    """The mirror's side of a rotation: the node knows only the new certificate; the client, started with
    the old files, logs in once they are replaced, on the connection it opens next (a node ends every
    connection older than limits.connection_seconds after its answer)."""
    from taxii_federation.clients.taxii import Endpoint, RemoteCollection, RemoteError

    old = pki.client("mirror", "mirror")
    new = pki.client("mirror-next", "mirror")
    path = _node_config(
        tmp_path, pki, {"sensor": {"certificates": [{"sha256": _fingerprint(new)}], "grants": GRANT}}
    )
    data = yaml.safe_load(path.read_text())
    data["limits"] = {"connection_seconds": 0.5}
    path.write_text(yaml.safe_dump(data))
    running = start_node(load_node_config(path))
    try:
        in_use = Issued(pki.folder / "in-use.crt", pki.folder / "in-use.key")
        shutil.copyfile(old.cert, in_use.cert)
        shutil.copyfile(old.key, in_use.key)
        endpoint = Endpoint(
            "node",
            running.url,
            "alliance",
            "sensor",
            None,
            str(pki.ca.files.cert),
            str(in_use.cert),
            str(in_use.key),
        )
        remote = RemoteCollection(endpoint, "alliance-indicators", timeout=10)
        with pytest.raises(RemoteError, match="not mapped to a user"):
            remote.connect()

        def connects() -> bool:
            try:
                remote.connect()
            except RemoteError:
                return False
            return remote.first_date_added(None) is None  # an empty collection, read as 'sensor'

        _replace(new, in_use)
        eventually(connects)
    finally:
        running.stop()
