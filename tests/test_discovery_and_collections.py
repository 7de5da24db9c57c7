"""Discovery, API root and collections resources (TAXII 2.1 §4.1, §4.2, §5.1, §5.2) through taxii2-client."""

from taxii2client.v21 import ApiRoot, Server

from tests.conftest import COLLECTION_ID, PASSWORDS, SECRET_ID, STRICT_ID, TAXII


def test_discovery_lists_only_the_api_roots_the_user_has_grants_on(node):
    cert = Server(node.url + "taxii2/", user="cert", password=PASSWORDS["cert"])
    assert cert.title == "Test node test"
    assert [root.url for root in cert.api_roots] == [node.url + "alliance/", node.url + "national/"]
    assert cert.default.url == node.url + "alliance/"
    soc = Server(node.url + "taxii2/", user="soc", password=PASSWORDS["soc"])
    assert [root.url for root in soc.api_roots] == [node.url + "alliance/"]


def test_api_root_reports_taxii_21_and_its_max_content_length(node_factory):
    node = node_factory(max_content_length=123456)
    root = ApiRoot(node.url + "alliance/", user="soc", password=PASSWORDS["soc"])
    assert root.versions == [TAXII]
    assert root.max_content_length == 123456


def test_collections_show_the_callers_own_can_read_and_can_write(node):
    by_user = {}
    for user in ("cert", "soc", "writer"):
        root = ApiRoot(node.url + "alliance/", user=user, password=PASSWORDS[user])
        by_user[user] = {c.id: (c.can_read, c.can_write) for c in root.collections}
    assert by_user["cert"] == {COLLECTION_ID: (True, True), STRICT_ID: (True, True)}
    assert by_user["soc"] == {COLLECTION_ID: (True, False), STRICT_ID: (True, False)}
    assert by_user["writer"] == {COLLECTION_ID: (False, True)}


def test_collection_resource_carries_alias_and_stix_media_type(node):
    body = node.session("soc").get(node.collection_url()).json()
    assert body["alias"] == "alliance-indicators"
    assert body["media_types"] == ["application/stix+json;version=2.1"]


def test_a_collection_without_a_grant_does_not_exist_for_the_caller(node):
    response = node.session("soc").get(node.collection_url(SECRET_ID, "national"))
    assert response.status_code == 404
    assert response.headers["Content-Type"] == TAXII
    assert SECRET_ID not in node.session("writer").get(node.url + "alliance/collections/").text
