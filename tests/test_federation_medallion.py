"""A mixed federation: one member runs a stock medallion, and the federation speaks only standard TAXII
2.1 to it."""

import json

import pytest
import requests
import yaml

from clients.alliance import start_alliance
from clients.federation_config import load_federation_config
from tests.conftest import (
    COLLECTION_ID,
    PASSWORDS,
    SHARED_INDICATORS,
    TAXII,
    load_bundle,
    write_federation_files,
)
from tests.medallion_member import MedallionMember


@pytest.fixture
def mixed_alliance(tmp_path):
    """hub and ua are ours; md is a stock medallion with the same collection."""
    agreement = dict(SHARED_INDICATORS, members=["ua", "md"])
    path = write_federation_files(tmp_path, [agreement], members=("hub", "ua", "md"))
    federation = yaml.safe_load(path.read_text())
    md = federation["members"]["md"]
    port = int(md["url"].rstrip("/").rsplit(":", 1)[1])
    medallion = MedallionMember(
        tmp_path / "medallion",
        port,
        COLLECTION_ID,
        "alliance-indicators",
        {"mirror": PASSWORDS["mirror"], "soc": PASSWORDS["soc"]},
    ).start()
    del md["node_config"]
    md["server"] = "medallion"
    path.write_text(yaml.safe_dump(federation))
    alliance = start_alliance(load_federation_config(path), run_links=False)
    yield alliance, medallion
    alliance.stop()
    medallion.stop()


def _medallion_objects(medallion: MedallionMember) -> list[dict]:
    objects, params = [], {"limit": 100}  # medallion answers 500 to `next` without `limit`
    for _ in range(1000):
        response = requests.get(
            f"{medallion.url}alliance/collections/{COLLECTION_ID}/objects/",
            params=params,
            auth=("soc", PASSWORDS["soc"]),
            headers={"Accept": TAXII},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        objects.extend(body.get("objects", []))
        if not body.get("more"):
            return objects
        params = {"limit": 100, "next": body["next"]}
    raise AssertionError("pages did not end")


def _ours(alliance, member: str) -> list[dict]:
    response = requests.get(
        f"{alliance.nodes[member].url}alliance/collections/{COLLECTION_ID}/objects/",
        params={"match[version]": "all"},
        auth=("soc", PASSWORDS["soc"]),
        headers={"Accept": TAXII},
        timeout=60,
    )
    return response.json().get("objects", [])


def _ids(objects: list[dict]) -> set[str]:
    return {obj["id"] for obj in objects}


def test_a_stock_medallion_member_receives_and_contributes(mixed_alliance):
    alliance, medallion = mixed_alliance
    from_ua = load_bundle("oasis-examples/apt1.json")
    response = requests.post(
        f"{alliance.nodes['ua'].url}alliance/collections/{COLLECTION_ID}/objects/",
        data=json.dumps({"objects": from_ua}),
        auth=("cert", PASSWORDS["cert"]),
        headers={"Accept": TAXII, "Content-Type": TAXII},
        timeout=60,
    )
    assert response.status_code == 202
    from_md = load_bundle("oasis-examples/poisonivy.json")[:40]
    response = requests.post(
        f"{medallion.url}alliance/collections/{COLLECTION_ID}/objects/",
        data=json.dumps({"objects": from_md}),
        auth=("mirror", PASSWORDS["mirror"]),
        headers={"Accept": TAXII, "Content-Type": TAXII},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    results = alliance.federation.run_once()
    assert not [r for r in results.values() if isinstance(r, Exception)], results
    assert _ids(_medallion_objects(medallion)) == _ids(from_ua) | _ids(from_md)
    assert _ids(_ours(alliance, "hub")) == _ids(from_ua) | _ids(from_md)
    assert _ids(_ours(alliance, "ua")) == _ids(from_ua) | _ids(from_md)
    again = alliance.federation.run_once()
    assert sum(run.stored for run in again.values()) == 0
    held = alliance.federation.state.links()
    assert not any(state.held_back for state in held.values()), {k: v.held_back for k, v in held.items()}
