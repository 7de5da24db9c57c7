"""Status resources (TAXII 2.1 §4.3) and durability: objects and status survive a restart."""

from taxii2client.v21 import Collection, Status

from tests.conftest import PASSWORDS, load_bundle


def test_status_lists_each_object_with_id_version_and_message(node):
    objects = load_bundle("oasis-examples/apt1.json")[:3]
    posted = node.post(objects)
    status = Status(node.url + f"alliance/status/{posted['id']}/", user="cert", password=PASSWORDS["cert"])
    assert status.status == "complete" and status.total_count == 3 and status.success_count == 3
    assert [s["id"] for s in status.successes] == [o["id"] for o in objects]
    assert all(
        s["version"][:19] == o["modified"][:19] for s, o in zip(status.successes, objects, strict=True)
    )
    assert status.pending_count == 0 and status.failure_count == 0


def test_taxii2_client_add_objects_waits_on_the_status(node):
    collection = Collection(node.collection_url(), user="cert", password=PASSWORDS["cert"])
    status = collection.add_objects({"objects": load_bundle("oasis-examples/poisonivy.json")})
    assert status.status == "complete" and status.success_count == 155


def test_objects_and_status_survive_a_restart(node):
    ics = load_bundle("attack/ics-attack-18.1.json")
    posted = node.post(ics)
    node.restart()
    session = node.session()
    status = session.get(node.url + f"alliance/status/{posted['id']}/").json()
    assert status["success_count"] == len(ics)
    manifest = session.get(node.collection_url() + "manifest/", params={"limit": 1000}).json()
    assert manifest["more"] is True and len(manifest["objects"]) == 1000
    # date_added keeps increasing across the restart: new objects come after the old ones.
    rest = session.get(node.collection_url() + "manifest/", params={"limit": 1000, "next": manifest["next"]})
    assert len(rest.json()["objects"]) == len(ics) - 1000 and rest.json()["more"] is False
    last_before = rest.headers["X-TAXII-Date-Added-Last"]
    extra = load_bundle("oasis-examples/apt1.json")[:1]
    node.post(extra)
    after = session.get(node.objects_url(), params={"added_after": last_before}).json()["objects"]
    assert after == extra


def test_an_unknown_status_is_404(node):
    response = node.session().get(node.url + "alliance/status/2d086da7-4bdc-4f91-900e-d77486753710/")
    assert response.status_code == 404
    assert response.json()["http_status"] == "404"
