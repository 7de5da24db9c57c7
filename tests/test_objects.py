"""Adding and reading objects (TAXII 2.1 §5.3-§5.8) with real ATT&CK and OASIS data."""

import json

from taxii2client.v21 import Collection, as_pages

from tests.conftest import COLLECTION_ID, PASSWORDS, STRICT_ID, TAXII, load_bundle


def _collection(node, user="soc", collection_id=COLLECTION_ID) -> Collection:
    return Collection(node.collection_url(collection_id), user=user, password=PASSWORDS[user])


def _walk(collection: Collection, per_request: int = 100, **filters) -> list[dict]:
    objects = []
    for envelope in as_pages(collection.get_objects, per_request=per_request, **filters):
        objects.extend(envelope.get("objects", []))
    return objects


def test_a_published_attack_release_reads_back_object_for_object(node):
    ics = load_bundle("attack/ics-attack-18.1.json")
    status = node.post(ics)
    assert (status["status"], status["total_count"], status["success_count"]) == ("complete", 1826, 1826)
    served = _walk(_collection(node), per_request=250)
    assert served == ics  # same objects, same content, in publishing order


def test_reposting_an_identical_version_succeeds_and_stores_nothing_twice(node):
    apt1 = load_bundle("oasis-examples/apt1.json")
    node.post(apt1)
    again = node.post(apt1)
    assert again["success_count"] == len(apt1) and again["failure_count"] == 0
    assert {s["message"] for s in again["successes"]} == {"already present; the stored copy is kept"}
    manifest = node.session().get(node.collection_url() + "manifest/").json()
    assert len(manifest["objects"]) == len(apt1)


def test_same_id_and_modified_with_other_content_keeps_the_first_copy(node):
    old = {o["id"]: o for o in load_bundle("attack/ics-attack-17.1.json")}
    new = {o["id"]: o for o in load_bundle("attack/ics-attack-18.1.json")}
    changed = next(
        i for i in old if i in new and old[i].get("modified") == new[i].get("modified") and old[i] != new[i]
    )
    node.post([old[changed]])
    node.post([new[changed]])
    versions = node.session().get(node.objects_url() + changed + "/", params={"match[version]": "all"}).json()
    assert versions["objects"] == [old[changed]]


def test_invalid_objects_are_reported_one_by_one_and_the_valid_ones_stored(node):
    apt1 = load_bundle("oasis-examples/apt1.json")[:5]
    broken_indicator = dict(apt1[1], created="yesterday")
    no_id = {"type": "malware", "spec_version": "2.1", "name": "x"}
    old_spec = dict(apt1[2], spec_version="2.0")
    envelope = [apt1[0], broken_indicator, no_id, old_spec, apt1[3], "not an object"]
    status = node.post(envelope)
    assert status["total_count"] == 6
    assert status["success_count"] == 2 and status["failure_count"] == 4
    messages = {f["id"]: f["message"] for f in status["failures"]}
    assert "created" in messages[broken_indicator["id"]]
    assert "'spec_version' '2.0' is not one this collection stores" in messages[old_spec["id"]]
    assert any("object #2 has no valid 'id'" in f["message"] for f in status["failures"])
    assert any("object #5 is not a JSON object" in f["message"] for f in status["failures"])
    stored = {o["id"] for o in node.session().get(node.objects_url()).json()["objects"]}
    assert stored == {apt1[0]["id"], apt1[3]["id"]}


def test_a_collection_refusing_custom_content_says_why(node):
    ics = load_bundle("attack/ics-attack-18.1.json")
    custom = next(o for o in ics if o["type"].startswith("x-mitre-"))
    status = node.post([custom], collection_id=STRICT_ID)
    assert status["failure_count"] == 1
    assert "refuses custom types and properties" in status["failures"][0]["message"]
    clean = load_bundle("oasis-examples/apt1.json")[:3]
    assert node.post(clean, collection_id=STRICT_ID)["success_count"] == 3


def test_get_object_returns_its_latest_version_and_versions_lists_all(node):
    old = load_bundle("attack/ics-attack-17.1.json")
    new = load_bundle("attack/ics-attack-18.1.json")
    node.post(old)
    node.post(new)
    new_by_id = {o["id"]: o for o in new}
    old_by_id = {o["id"]: o for o in old}
    object_id = next(
        i
        for i in new_by_id
        if i in old_by_id and new_by_id[i].get("modified") != old_by_id[i].get("modified")
    )
    collection = _collection(node)
    assert collection.get_object(object_id)["objects"] == [new_by_id[object_id]]
    versions = collection.object_versions(object_id)["versions"]
    assert [v[:19] for v in versions] == [
        old_by_id[object_id]["modified"][:19],
        new_by_id[object_id]["modified"][:19],
    ]
    first = collection.get_object(object_id, version="first")["objects"]
    assert first == [old_by_id[object_id]]


def test_unknown_object_answers_404_for_object_and_versions(node):
    missing = "indicator--00000000-0000-4000-8000-000000000000"
    session = node.session()
    assert session.get(node.objects_url() + missing + "/").status_code == 404
    assert session.get(node.objects_url() + missing + "/versions/").status_code == 404


def test_delete_removes_the_chosen_versions_and_then_the_object(node):
    node.post(load_bundle("attack/ics-attack-17.1.json"))
    new = load_bundle("attack/ics-attack-18.1.json")
    node.post(new)
    old_ids = {o["id"]: o for o in load_bundle("attack/ics-attack-17.1.json")}
    target = next(
        o for o in new if o["id"] in old_ids and o.get("modified") != old_ids[o["id"]].get("modified")
    )
    session = node.session("cert")
    url = node.objects_url() + target["id"] + "/"
    response = session.delete(url, params={"match[version]": "last"})
    assert response.status_code == 200
    # The older version is now the last one again.
    assert session.get(url).json()["objects"] == [old_ids[target["id"]]]
    assert session.delete(url).status_code == 200
    assert session.get(url).status_code == 404
    assert session.delete(url).status_code == 404


def test_objects_keep_their_json_through_the_wire_unchanged(node):
    granular = load_bundle("oasis-examples/using-granular-markings.json")
    node.post(granular)
    raw = node.session().get(node.objects_url(), params={"match[version]": "all"}).text
    assert json.loads(raw)["objects"] == granular


def test_response_headers_carry_the_taxii_media_type(node):
    node.post(load_bundle("oasis-examples/apt1.json")[:2])
    for path in ("", "manifest/", "objects/"):
        response = node.session().get(node.collection_url() + path)
        assert response.headers["Content-Type"] == TAXII


def test_validation_spread_over_worker_processes_gives_the_same_report(node_factory):
    inline, pooled = node_factory("inline"), node_factory("pooled", validation_workers=2)
    apt1 = load_bundle("oasis-examples/apt1.json")
    envelope = load_bundle("attack/ics-attack-18.1.json") + [
        dict(apt1[1], created="yesterday"),
        {"type": "x"},
    ]
    reports = [handle.post(envelope) for handle in (inline, pooled)]
    for field in ("total_count", "success_count", "failure_count", "successes", "failures"):
        assert reports[0][field] == reports[1][field]
    assert reports[1]["failure_count"] == 2 and reports[1]["success_count"] == 1826


def _post_as(node, user: str, objects: list[dict], collection_id: str = COLLECTION_ID, **headers) -> dict:
    response = node.session(user).post(
        node.objects_url(collection_id),
        data=json.dumps({"objects": objects}),
        headers={"Content-Type": TAXII, **headers},
    )
    assert response.status_code == 202, response.text
    return response.json()


def test_only_a_federation_account_may_skip_validation_already_done_upstream(node):
    indicator = next(o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "indicator")
    bad_pattern = dict(
        indicator, id="indicator--6f0c8b9e-0d4f-4b1a-9c3e-2a7d5e1f4b60", pattern="[not a pattern"
    )
    claim = {"X-TAXII-Fed-Validated": "stix2"}
    assert _post_as(node, "cert", [bad_pattern], **claim)["failure_count"] == 1  # not a federation account
    assert _post_as(node, "mirror", [bad_pattern])["failure_count"] == 1  # no claim made
    assert _post_as(node, "mirror", [bad_pattern], STRICT_ID, **claim)["failure_count"] == 1  # stricter here
    assert _post_as(node, "mirror", [bad_pattern], **claim)["success_count"] == 1
    # The structure is still checked.
    wrong_type = dict(indicator, id="malware--6f0c8b9e-0d4f-4b1a-9c3e-2a7d5e1f4b61")
    no_id = {k: v for k, v in indicator.items() if k != "id"}
    report = _post_as(node, "mirror", [wrong_type, no_id], **claim)
    assert report["failure_count"] == 2
    assert "does not match the id" in report["failures"][0]["message"]
