"""Filters, headers and the `next` cursor (TAXII 2.1 §3.4, §3.5, Appendix B)."""

import collections as stdlib_collections

import pytest

from tests.conftest import load_bundle

ICS_17 = "attack/ics-attack-17.1.json"
ICS_18 = "attack/ics-attack-18.1.json"


@pytest.fixture
def versioned(node):
    """ICS 17.1 then 18.1 in one collection: 77 ids get a second version."""
    node.post(load_bundle(ICS_17))
    node.post(load_bundle(ICS_18))
    return node


def _walk(node, path="objects/", key="objects", **params) -> tuple[list, int]:
    session, items = node.session(), []
    params = dict(params)
    for requests_made in range(1, 10_000):
        response = session.get(node.collection_url() + path, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body.get(key, []))
        if not body["more"]:
            return items, requests_made
        params["next"] = body["next"]
    raise AssertionError("pagination did not end")


def _expected_versions():
    seen = {}
    for relative in (ICS_17, ICS_18):
        for obj in load_bundle(relative):
            key = (obj["id"], obj.get("modified") or obj["created"])
            seen.setdefault(key, obj)
    return seen


def test_walking_next_yields_every_version_exactly_once(versioned):
    items, requests_made = _walk(versioned, limit=97, **{"match[version]": "all"})
    keys = [(o["id"], o.get("modified") or o["created"]) for o in items]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(_expected_versions())
    assert requests_made == -(-len(keys) // 97)


def test_default_version_is_last_and_first_gives_the_oldest(versioned):
    latest, _ = _walk(versioned, limit=500)
    by_id = stdlib_collections.defaultdict(list)
    for object_id, modified in _expected_versions():
        by_id[object_id].append(modified)
    assert len(latest) == len(by_id)
    assert all((o.get("modified") or o["created"]) == max(by_id[o["id"]]) for o in latest)
    oldest, _ = _walk(versioned, limit=500, **{"match[version]": "first"})
    assert all((o.get("modified") or o["created"]) == min(by_id[o["id"]]) for o in oldest)
    both, _ = _walk(versioned, limit=500, **{"match[version]": "first,last"})
    assert len(both) == sum(min(len(v), 2) for v in by_id.values())


def test_match_version_by_timestamp_selects_that_version(versioned):
    old = {o["id"]: o for o in load_bundle(ICS_17)}
    new = {o["id"]: o for o in load_bundle(ICS_18)}
    object_id = next(i for i in new if i in old and old[i].get("modified") != new[i].get("modified"))
    items, _ = _walk(versioned, **{"match[id]": object_id, "match[version]": old[object_id]["modified"]})
    assert items == [old[object_id]]


def test_match_type_with_custom_and_several_types(versioned):
    items, _ = _walk(versioned, limit=20, **{"match[type]": "x-mitre-tactic,campaign"})
    latest_types = stdlib_collections.Counter(o["type"] for o in load_bundle(ICS_18))
    assert stdlib_collections.Counter(o["type"] for o in items) == {
        "x-mitre-tactic": latest_types["x-mitre-tactic"],
        "campaign": latest_types["campaign"],
    }
    assert len(items) == len({o["id"] for o in items})


def test_match_id_accepts_a_list(versioned):
    ids = [o["id"] for o in load_bundle(ICS_18)[:3]]
    items, _ = _walk(versioned, **{"match[id]": ",".join(ids)})
    assert sorted(o["id"] for o in items) == sorted(ids)


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"match[version]": "first"},
        {"match[version]": "all"},
        {"match[version]": "first,last"},
        {"match[type]": "attack-pattern,x-mitre-tactic,malware"},
        {"match[spec_version]": "2.1", "match[version]": "all"},
        {"added_after": "middle", "match[version]": "all"},
    ],
)
def test_match_id_serves_what_the_whole_collection_holds_for_those_ids(versioned, filters):
    """match[id] is read by id (an index on the ids), everything else by date_added: both must agree, with
    every other filter and across pages."""
    filters = dict(filters)
    if filters.get("added_after") == "middle":
        half = versioned.session().get(
            versioned.objects_url(), params={"limit": 900, "match[version]": "all"}
        )
        filters["added_after"] = half.headers["X-TAXII-Date-Added-Last"]
    versions_per_id = stdlib_collections.Counter(object_id for object_id, _ in _expected_versions())
    twice = sorted(i for i, count in versions_per_id.items() if count > 1)[:12]
    once = sorted(i for i, count in versions_per_id.items() if count == 1)[::40]
    ids = set(twice + once)
    everything, _ = _walk(versioned, limit=1000, **filters)
    expected = [o for o in everything if o["id"] in ids]
    assert expected, "the filters must leave something of these ids to compare"
    found, _ = _walk(versioned, limit=5, **filters, **{"match[id]": ",".join(sorted(ids))})
    assert found == expected


def test_match_spec_version(versioned):
    assert _walk(versioned, **{"match[spec_version]": "2.0"})[0] == []
    assert len(_walk(versioned, limit=1000, **{"match[spec_version]": "2.1"})[0]) == len(
        {o["id"] for o in load_bundle(ICS_17) + load_bundle(ICS_18)}
    )


def test_added_after_the_last_header_returns_only_what_came_later(node):
    apt1 = load_bundle("oasis-examples/apt1.json")
    node.post(apt1[:40])
    first = node.session().get(node.objects_url())
    last_seen = first.headers["X-TAXII-Date-Added-Last"]
    assert first.headers["X-TAXII-Date-Added-First"] <= last_seen
    node.post(apt1[40:])
    later = node.session().get(node.objects_url(), params={"added_after": last_seen}).json()["objects"]
    assert later == apt1[40:]


def test_date_added_headers_are_on_objects_object_manifest_and_versions(node):
    obj = load_bundle("oasis-examples/apt1.json")[0]
    node.post([obj])
    session = node.session()
    for url in (
        node.objects_url(),
        node.objects_url() + obj["id"] + "/",
        node.collection_url() + "manifest/",
        node.objects_url() + obj["id"] + "/versions/",
    ):
        response = session.get(url)
        assert response.status_code == 200
        assert response.headers["X-TAXII-Date-Added-First"] == response.headers["X-TAXII-Date-Added-Last"]


def test_every_object_of_one_post_gets_its_own_date_added(node):
    node.post(load_bundle("oasis-examples/apt1.json"))
    manifest, _ = _walk(node, path="manifest/", limit=1000)
    dates = [record["date_added"] for record in manifest]
    assert dates == sorted(dates) and len(set(dates)) == len(dates)


def test_manifest_pages_with_next_like_objects(versioned):
    records, _ = _walk(versioned, path="manifest/", limit=300, **{"match[version]": "all"})
    assert {(r["id"]) for r in records} == {key[0] for key in _expected_versions()}
    assert len(records) == len(_expected_versions())
    assert all(r["media_type"] == "application/stix+json;version=2.1" for r in records)


def test_versions_endpoint_pages_with_next(versioned):
    old = {o["id"] for o in load_bundle(ICS_17)}
    new = {o["id"]: o for o in load_bundle(ICS_18)}
    object_id = next(
        i
        for i in new
        if i in old
        and any(o["id"] == i and o.get("modified") != new[i].get("modified") for o in load_bundle(ICS_17))
    )
    url = versioned.objects_url() + object_id + "/versions/"
    first = versioned.session().get(url, params={"limit": 1}).json()
    assert first["more"] is True and len(first["versions"]) == 1
    second = versioned.session().get(url, params={"limit": 1, "next": first["next"]}).json()
    assert second["more"] is False and second["versions"] != first["versions"]


def test_next_survives_a_restart_of_the_node(versioned):
    session = versioned.session()
    page = session.get(versioned.objects_url(), params={"limit": 100}).json()
    versioned.restart()
    rest, _ = _walk(versioned, limit=1000, next=page["next"])
    ids = [o["id"] for o in page["objects"] + rest]
    assert len(ids) == len(set(ids)) == len({o["id"] for o in load_bundle(ICS_17) + load_bundle(ICS_18)})


def test_next_reused_with_other_filters_is_refused(versioned):
    session = versioned.session()
    page = session.get(versioned.objects_url(), params={"limit": 10}).json()
    response = session.get(versioned.objects_url(), params={"next": page["next"], "match[type]": "campaign"})
    assert response.status_code == 400
    assert "other filters" in response.json()["description"]
    assert session.get(versioned.objects_url(), params={"next": "garbage!"}).status_code == 400
    assert (
        session.get(versioned.collection_url() + "manifest/", params={"next": page["next"]}).status_code
        == 400
    )


@pytest.mark.parametrize(
    "params",
    [
        {"added_after": "yesterday"},
        {"added_after": "2020-13-01T00:00:00Z"},
        {"limit": "0"},
        {"limit": "ten"},
        {"match[version]": "newest"},
        {"match[spec_version]": "3.0"},
        {"match[colour]": "red"},
    ],
)
def test_malformed_parameters_answer_400_with_a_taxii_error(node, params):
    response = node.session().get(node.objects_url(), params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["http_status"] == "400" and body["title"] == "Bad Request" and body["description"]


def test_limit_above_the_node_maximum_is_capped(node_factory):
    node = node_factory(max_page_size=10)
    node.post(load_bundle("oasis-examples/apt1.json"))
    body = node.session().get(node.objects_url(), params={"limit": 500}).json()
    assert len(body["objects"]) == 10 and body["more"] is True and body["next"]
