"""Spec-exact details of TAXII 2.1 and STIX 2.1, each test quoting the section it holds the node to."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from taxii_federation.server.config import load_node_config
from tests.conftest import PASSWORDS, TAXII, load_bundle

REPO = Path(__file__).resolve().parents[1]
STIX20_ID = "9a0f6b1e-5a54-4c3e-8a52-4f6f0e4d2a04"
STIX20_COLLECTION = {
    "id": STIX20_ID,
    "alias": "legacy-feeds",
    "title": "2.0 feeds",
    "stix_versions": ["2.1", "2.0"],
}


@pytest.fixture
def storage_url(tmp_path) -> str:
    return f"sqlite:{tmp_path / 'node.db'}"


def _empty_lists(value, path: str = "") -> list[str]:
    if value == []:
        return [path]
    if isinstance(value, dict):
        return [found for key, child in value.items() for found in _empty_lists(child, f"{path}.{key}")]
    if isinstance(value, list):
        return [
            found for index, child in enumerate(value) for found in _empty_lists(child, f"{path}[{index}]")
        ]
    return []


def test_discovery_gives_relative_api_root_urls_whatever_the_host_header(node):
    """§4.1.1: "api_roots: ... Each API Root URL MUST be an HTTPS absolute URL or relative URL"."""
    response = node.session().get(node.url + "taxii2/", headers={"Host": "attacker.example:443"})
    body = response.json()
    assert body["default"] == "/alliance/"
    assert body["api_roots"] == ["/alliance/", "/national/"]
    assert "attacker" not in response.text and "http://" not in response.text


def test_no_resource_uses_an_empty_list_for_an_optional_property(node):
    """§2 (Overview): "Empty lists are prohibited in TAXII and MUST NOT be used as a substitute for omitting
    optional properties"."""
    objects = load_bundle("oasis-examples/poisonivy.json")
    status = node.post(objects)  # every object stored: no failures, no pendings
    assert "failures" not in status and "pendings" not in status and status["failure_count"] == 0
    session = node.session("cert")
    object_url = node.objects_url() + objects[1]["id"] + "/"
    urls = [
        node.url + "taxii2/",
        node.url + "alliance/",
        node.url + "alliance/collections/",
        node.collection_url(),
        node.objects_url(),
        node.objects_url() + "?added_after=2099-01-01T00:00:00Z",
        node.collection_url() + "manifest/",
        node.collection_url() + "manifest/?match[type]=no-such-type",
        object_url,
        object_url + "versions/",
        object_url + "versions/?added_after=2099-01-01T00:00:00Z",
        node.url + f"alliance/status/{status['id']}/",
    ]
    for url in urls:
        response = session.get(url)
        assert response.status_code == 200, url
        assert _empty_lists(response.json()) == [], url
    assert (
        requests.get(
            node.url + "national/collections/",
            auth=("soc", PASSWORDS["soc"]),
            headers={"Accept": TAXII},
            timeout=30,
        ).status_code
        == 404
    )


def test_every_identifier_the_node_ships_or_mints_is_a_version_4_uuid(node):
    """§2: "identifier: An RFC 4122-compliant Version 4 UUID"."""
    for config_file in ("hub.yaml", "ua.yaml", "ro.yaml", "md.yaml"):
        config = load_node_config(REPO / "config" / config_file)
        for api_root in config.api_roots:
            for collection in api_root.collections:
                assert uuid.UUID(collection.id).version == 4, (config_file, collection.id)
    status_id = node.post(load_bundle("oasis-examples/apt1.json")[:2])["id"]
    assert uuid.UUID(status_id).version == 4


def test_manifest_versions_and_status_show_each_objects_own_timestamp(node):
    """§5.6 (manifest) "version: The version of this object": the object's `modified`, as written; §5.8 the
    versions resource lists "the versions of the object" the same way."""
    malware = next(o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "malware")
    written = ["2016-04-06T20:03:48Z", "2016-05-07T11:22:30.1Z", "2017-01-01T00:00:00.000000Z"]
    versions = [{**malware, "modified": stamp} for stamp in written]
    status = node.post(versions)
    assert [s["version"] for s in status["successes"]] == written
    manifest = node.session("soc").get(node.collection_url() + "manifest/", params={"match[version]": "all"})
    assert [record["version"] for record in manifest.json()["objects"]] == written
    listed = node.session("soc").get(node.objects_url() + malware["id"] + "/versions/").json()
    assert listed["versions"] == written


def test_an_empty_versions_result_has_the_shape_of_5_8_1(node):
    """§5.8.1: the versions resource has `more` and an optional `versions` list, omitted when empty."""
    malware = next(o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "malware")
    node.post([malware])
    url = node.objects_url() + malware["id"] + "/versions/"
    response = node.session("soc").get(url, params={"added_after": "2099-01-01T00:00:00Z"})
    assert response.status_code == 200 and response.json() == {"more": False}
    assert "X-TAXII-Date-Added-First" not in response.headers


def test_an_sco_without_spec_version_is_stix_21_and_is_stored(node):
    """STIX 2.1 §3.2 (spec_version): "If this property is absent [on an SCO], then the value is assumed to be
    2.1"; the OASIS infrastructure example has two such SCOs."""
    objects = load_bundle("oasis-examples/infrastructure.json")
    scos = [o for o in objects if "spec_version" not in o]
    assert {o["type"] for o in scos} == {"ipv4-addr", "domain-name"}
    status = node.post(objects)
    assert status["success_count"] == len(objects), status.get("failures")
    stored = node.session("soc").get(node.objects_url(), params={"match[spec_version]": "2.1"}).json()
    assert {o["id"] for o in scos} <= {o["id"] for o in stored["objects"]}
    assert all("spec_version" not in o for o in stored["objects"] if o["id"] in {s["id"] for s in scos})


def test_publish_sends_the_oasis_infrastructure_example(node, tmp_path):
    env = {"TAXII_FED_USER": "cert", "TAXII_FED_PASSWORD": PASSWORDS["cert"], "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "taxii_federation.clients.cli",
            "publish",
            str(REPO / "tests/data/oasis-examples/infrastructure.json"),
            "--collection",
            node.collection_url(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "10 stored" in result.stdout


def test_a_stix_20_object_is_refused_where_only_stix_21_is_stored(node):
    legacy = json.loads((REPO / "tests/data/attack-stix20/ics-attack.json").read_text())["objects"][:3]
    status = node.post(legacy)
    assert status["failure_count"] == 3
    assert (
        "it has no 'spec_version' but has 'created', so it is a STIX 2.0 object"
        in status["failures"][0]["message"]
    )


def test_a_collection_that_stores_stix_20_serves_each_objects_latest_stix_version(node_factory):
    """§3.4.1 (match[spec_version]): "If no spec_version parameter is provided, the server MUST return only
    the latest spec_version for each object matching the remaining filters"; §5.2 media_types lists the
    versions the collection holds. The data is ATT&CK ICS v18.1 in both STIX versions (same ids)."""
    node = node_factory(extra_collections=[STIX20_COLLECTION])
    legacy = json.loads((REPO / "tests/data/attack-stix20/ics-attack.json").read_text())["objects"][:200]
    current_by_id = {o["id"]: o for o in load_bundle("attack/ics-attack-18.1.json")}
    current = [current_by_id[o["id"]] for o in legacy if o["id"] in current_by_id][:100]
    session = node.session("cert")
    collection = session.get(node.collection_url(STIX20_ID)).json()
    assert collection["media_types"] == [
        "application/stix+json;version=2.1",
        "application/stix+json;version=2.0",
    ]
    assert node.post(legacy, STIX20_ID)["success_count"] == 200  # validated with stix2's 2.0 parser
    assert node.post(current, STIX20_ID)["success_count"] == 100  # the same versions in STIX 2.1: stored too

    def ids_and_specs(**params) -> dict[str, set[str]]:
        page = session.get(node.objects_url(STIX20_ID), params={"match[version]": "all", **params}).json()
        found: dict[str, set[str]] = {}
        for obj in page["objects"]:
            found.setdefault(obj["id"], set()).add(obj.get("spec_version", "2.0"))
        return found

    default = ids_and_specs()
    upgraded = {o["id"] for o in current}
    assert all(default[object_id] == {"2.1"} for object_id in upgraded)
    assert all(specs == {"2.0"} for object_id, specs in default.items() if object_id not in upgraded)
    assert set(ids_and_specs(**{"match[spec_version]": "2.0"})) == {o["id"] for o in legacy}
    assert all(
        specs == {"2.0", "2.1"}
        for object_id, specs in ids_and_specs(**{"match[spec_version]": "2.0,2.1"}).items()
        if object_id in upgraded
    )
    manifest = session.get(
        node.collection_url(STIX20_ID) + "manifest/", params={"match[spec_version]": "2.0"}
    )
    assert {record["media_type"] for record in manifest.json()["objects"]} == {
        "application/stix+json;version=2.0"
    }
    # A second post of the same 2.0 copies stores nothing twice.
    assert node.post(legacy[:10], STIX20_ID)["successes"][0]["message"].startswith("already present")


def test_stix_versions_in_a_catalogue_are_checked(tmp_path):
    from taxii_federation.server.config import ConfigError
    from tests.conftest import write_node_files

    path = write_node_files(tmp_path, extra_collections=[{**STIX20_COLLECTION, "stix_versions": ["1.2"]}])
    with pytest.raises(ConfigError, match="stix_versions: must list STIX versions out of 2.1, 2.0"):
        load_node_config(path)
