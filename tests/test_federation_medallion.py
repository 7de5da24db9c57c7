"""A mixed federation: one member runs a stock medallion (on its memory backend, and on its MongoDB
backend), another a stock OpenTAXII 0.9.3, and the federation speaks only standard TAXII 2.1 to them (it
polls them: they hold no reads)."""

import pytest
import yaml

from taxii_federation.clients.federation.alliance import start_alliance
from taxii_federation.clients.federation.config import load_federation_config
from tests.conftest import (
    COLLECTION_ID,
    PASSWORDS,
    SHARED_INDICATORS,
    load_bundle,
    post_envelope,
    walk,
    write_federation_files,
)
from tests.medallion_member import MedallionMember
from tests.mongodb_server import MongoTestServer
from tests.opentaxii_member import OpenTaxiiMember
from tests.processes import free_port


@pytest.fixture(params=["memory", "mongodb"])
def medallion_mongodb_uri(request, tmp_path):
    """None for medallion's memory backend; else an empty MongoDB server of its own (medallion's database
    names are fixed, so it cannot share the suite's)."""
    if request.param == "memory":
        yield None
        return
    server = MongoTestServer(tmp_path / "medallion-secantusdb", free_port())
    yield server.url("")
    server.stop()


@pytest.fixture
def mixed_alliance(tmp_path, medallion_mongodb_uri):
    """hub and ua are ours; md is a stock medallion and ot a stock OpenTAXII with the same collection."""
    agreement = dict(SHARED_INDICATORS, members=["ua", "md", "ot"])
    path = write_federation_files(tmp_path, [agreement], members=("hub", "ua", "md", "ot"))
    federation = yaml.safe_load(path.read_text())
    md = federation["members"]["md"]
    port = int(md["url"].rstrip("/").rsplit(":", 1)[1])
    medallion = MedallionMember(
        tmp_path / "medallion",
        port,
        COLLECTION_ID,
        "alliance-indicators",
        {"mirror": PASSWORDS["mirror"], "soc": PASSWORDS["soc"]},
        mongodb_uri=medallion_mongodb_uri,
    ).start()
    del md["node_config"]
    md["server"] = "medallion"
    ot = federation["members"]["ot"]
    opentaxii = OpenTaxiiMember(
        tmp_path / "opentaxii",
        int(ot["url"].rstrip("/").rsplit(":", 1)[1]),
        "alliance",
        "alliance-indicators",
        {"mirror": PASSWORDS["mirror"], "soc": PASSWORDS["soc"]},
    ).start()
    del ot["node_config"]
    ot.update(server="other", url=opentaxii.taxii2_url, api_root=opentaxii.api_root_id)
    path.write_text(yaml.safe_dump(federation))
    alliance = start_alliance(load_federation_config(path), run_links=False)
    yield alliance, medallion, opentaxii
    alliance.stop()
    medallion.stop()
    opentaxii.stop()


def _ids(objects: list[dict]) -> set[str]:
    return {obj["id"] for obj in objects}


def test_stock_medallion_and_opentaxii_members_receive_and_contribute(mixed_alliance):
    alliance, medallion, opentaxii = mixed_alliance
    from_ua = load_bundle("oasis-examples/apt1.json")
    post_envelope(alliance.nodes["ua"].url, from_ua)
    from_md = load_bundle("oasis-examples/poisonivy.json")[:40]
    post_envelope(medallion.url, from_md, user="mirror")
    from_ot = load_bundle("oasis-examples/poisonivy.json")[40:60]
    ot_root, ot_collection = opentaxii.api_root_id, opentaxii.collection_id
    post_envelope(opentaxii.taxii2_url, from_ot, ot_collection, "mirror", ot_root)
    results = alliance.federation.run_once()
    assert not [r for r in results.values() if isinstance(r, Exception)], results
    for base_url in (medallion.url, alliance.nodes["hub"].url, alliance.nodes["ua"].url):
        assert _ids(walk(base_url)) == _ids(from_ua) | _ids(from_md), base_url
    ot_holds = _ids(walk(opentaxii.taxii2_url, collection_id=ot_collection, api_root=ot_root))
    assert ot_holds == _ids(from_ua) | _ids(from_md) | _ids(from_ot)
    # OpenTAXII 0.9.3 serves every object with its type as `spec_version`: the hub refuses each one with
    # the reason, and the link counts it as held back, instead of storing a corrupted copy.
    held = alliance.federation.state.links()["ot->hub:alliance-indicators"].held_back
    assert sum(held.values()) == len(from_ot)
    assert all("is not one this collection stores" in reason for reason in held)
    again = alliance.federation.run_once()
    assert sum(run.stored for run in again.values()) == 0
    links = alliance.federation.state.links()
    assert not any(state.held_back for name, state in links.items() if not name.startswith("ot->"))
