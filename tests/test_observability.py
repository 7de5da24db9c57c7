"""What a node tells its operators: /metrics parsed as Prometheus reads it, /healthz and /readyz, the
JSON-lines access log and the audit log (DESIGN.md, "Operations")."""

import json
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from taxii_federation.server.config import load_node_config
from taxii_federation.server.serve import start_node
from tests.conftest import COLLECTION_ID, PASSWORDS, TAXII, load_bundle, write_node_files

OBJECTS_ROUTE = "/<api_root>/collections/<collection_id>/objects/"


def scrape(base_url: str, user: str | None = "ops") -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}, by prometheus_client's own parser."""
    auth = (user, PASSWORDS[user]) if user else None
    response = requests.get(f"{base_url}metrics", auth=auth, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def log_lines(node, name: str) -> list[dict]:
    path = node.config_path.parent / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_metrics_count_requests_by_route_objects_and_collection_sizes_after_a_publish(node):
    before = scrape(node.url)
    objects = load_bundle("oasis-examples/apt1.json")
    node.post(objects)
    node.post(objects[:5])  # already present: counted apart from new versions
    node.session("soc").get(node.objects_url(), params={"limit": 5})
    after = scrape(node.url)
    post = {"endpoint": OBJECTS_ROUTE, "method": "POST", "status": "202"}
    assert sample(after, "taxii_requests_total", **post) - sample(before, "taxii_requests_total", **post) == 2
    get = {"endpoint": OBJECTS_ROUTE, "method": "GET", "status": "200"}
    assert sample(after, "taxii_requests_total", **get) == sample(before, "taxii_requests_total", **get) + 1
    latency = {"endpoint": OBJECTS_ROUTE, "method": "POST"}
    assert sample(after, "taxii_request_duration_seconds_count", **latency) == 2
    assert sample(after, "taxii_request_duration_seconds_sum", **latency) > 0
    indicators = {"collection": "alliance-indicators"}
    assert sample(after, "taxii_objects_total", outcome="stored", **indicators) == len(objects)
    assert sample(after, "taxii_objects_total", outcome="already_present", **indicators) == 5
    assert sample(before, "taxii_collection_versions", **indicators) == 0
    assert sample(after, "taxii_collection_versions", **indicators) == len(objects)
    assert sample(after, "taxii_collection_objects", **indicators) == len({o["id"] for o in objects})
    # Labels name route templates, never raw paths: a collection id never becomes a label value.
    assert not any(COLLECTION_ID in value for _, labels in after for _, value in labels)


def test_metrics_count_refused_objects_and_refused_logins(node):
    before = scrape(node.url)
    node.post([{"type": "indicator", "id": "indicator--not-a-uuid", "spec_version": "2.1"}])
    for _ in range(3):
        requests.get(node.url + "taxii2/", auth=("cert", "wrong"), headers={"Accept": TAXII}, timeout=30)
    after = scrape(node.url)
    assert sample(after, "taxii_objects_total", collection="alliance-indicators", outcome="refused") == 1
    assert sample(after, "taxii_auth_failures_total") - sample(before, "taxii_auth_failures_total") == 3
    unauthorized = {"endpoint": "/taxii2/", "method": "GET", "status": "401"}
    assert sample(after, "taxii_requests_total", **unauthorized) == 3


def test_metrics_need_an_operator_login_unless_the_config_opens_them(node, tmp_path):
    assert requests.get(f"{node.url}metrics", timeout=30).status_code == 401
    assert requests.get(f"{node.url}metrics", auth=("cert", PASSWORDS["cert"]), timeout=30).status_code == 403
    assert requests.get(f"{node.url}metrics", auth=("ops", "wrong"), timeout=30).status_code == 401
    # The operator role is read-only: it sees metrics, not TAXII data.
    roots = requests.get(node.url + "taxii2/", auth=("ops", PASSWORDS["ops"]), headers={"Accept": TAXII})
    assert roots.status_code == 200
    collections = requests.get(
        node.url + "alliance/collections/", auth=("ops", PASSWORDS["ops"]), headers={"Accept": TAXII}
    )
    assert collections.status_code == 404
    open_path = write_node_files(tmp_path / "open", "open")
    config = yaml.safe_load(open_path.read_text())
    config["metrics"] = {"auth": "none"}
    open_path.write_text(yaml.safe_dump(config))
    running = start_node(load_node_config(open_path))
    try:
        assert "taxii_requests_total" in requests.get(f"{running.url}metrics", timeout=30).text
    finally:
        running.stop()


def test_every_node_in_one_process_counts_only_its_own_requests(node_factory):
    first, second = node_factory("first"), node_factory("second")
    first.post(load_bundle("oasis-examples/apt1.json")[:3])
    post = {"endpoint": OBJECTS_ROUTE, "method": "POST", "status": "202"}
    assert sample(scrape(first.url), "taxii_requests_total", **post) == 1
    assert sample(scrape(second.url), "taxii_requests_total", **post) == 0


def test_health_and_readiness_need_no_login_and_carry_no_data(node):
    health = requests.get(f"{node.url}healthz", timeout=30)
    ready = requests.get(f"{node.url}readyz", timeout=30)
    assert (health.status_code, health.text) == (200, "ok\n")
    assert (ready.status_code, ready.text) == (200, "ready\n")


def test_access_log_has_one_json_line_per_request_without_secrets(node):
    session = node.session("soc")
    session.get(node.objects_url(), params={"limit": 5, "added_after": "2016-01-01T00:00:00Z"})
    requests.get(node.url + "taxii2/", auth=("soc", "a-wrong-secret"), headers={"Accept": TAXII}, timeout=30)
    lines = log_lines(node, "access.log")
    read = next(line for line in lines if line["path"].endswith("/objects/"))
    assert read["method"] == "GET" and read["status"] == 200 and read["user"] == "soc"
    assert read["endpoint"] == OBJECTS_ROUTE and read["node"] == "test"
    assert read["query"] == ["added_after", "limit"]  # names only: a value may carry a secret
    assert read["bytes"] > 0 and read["duration_ms"] > 0 and read["remote"] == "127.0.0.1"
    refused = lines[-1]
    assert (refused["path"], refused["status"], refused["user"]) == ("/taxii2/", 401, None)
    text = (node.config_path.parent / "access.log").read_text()
    assert "a-wrong-secret" not in text and PASSWORDS["soc"] not in text and "2016-01-01" not in text
    assert "Basic " not in text


def test_audit_log_records_publishes_deletes_and_failed_logins(node):
    objects = load_bundle("oasis-examples/apt1.json")[:4]
    status = node.post(objects)
    victim = objects[0]["id"]
    deleted = node.session("cert").delete(f"{node.objects_url()}{victim}/", headers={"Accept": TAXII})
    assert deleted.status_code == 200
    forbidden = node.session("soc").post(
        node.objects_url(), data=json.dumps({"objects": objects}), headers={"Content-Type": TAXII}
    )
    assert forbidden.status_code == 403
    requests.get(node.url + "taxii2/", auth=("intruder", "guess-1"), headers={"Accept": TAXII}, timeout=30)
    events = log_lines(node, "audit.log")
    publish, delete, refused_post, login = events
    assert publish["event"] == "publish" and publish["user"] == "cert" and publish["http_status"] == 202
    assert publish["collection"] == "alliance-indicators" and publish["collection_id"] == COLLECTION_ID
    assert publish["status_id"] == status["id"]
    assert (publish["total"], publish["stored"], publish["already_present"], publish["refused"]) == (
        4,
        4,
        0,
        0,
    )
    assert {object_id for object_id, _ in publish["versions"]} == {o["id"] for o in objects}
    assert delete["event"] == "delete" and delete["user"] == "cert" and delete["object_id"] == victim
    assert delete["versions_deleted"] == 1 and delete["http_status"] == 200
    assert refused_post["user"] == "soc" and refused_post["http_status"] == 403
    assert "status_id" not in refused_post
    assert login["event"] == "login_failed" and login["user"] == "intruder"
    assert login["path"] == "/taxii2/" and login["remote"] == "127.0.0.1"
    assert "guess-1" not in (node.config_path.parent / "audit.log").read_text()


def test_logs_rotate_at_their_size_and_keep_the_configured_number_of_files(tmp_path):
    path = write_node_files(tmp_path / "rotating", "rotating")
    config = yaml.safe_load(path.read_text())
    config["logs"] = {"access": "logs/access.log", "rotate_mb": 1, "keep": 2}
    path.write_text(yaml.safe_dump(config))
    running = start_node(load_node_config(path))
    try:
        session = requests.Session()
        long_path = "x" * 6000
        for _ in range(400):  # ~2.5 MB of lines: two rotations
            session.get(f"{running.url}{long_path}", timeout=30)
    finally:
        running.stop()
    files = sorted(p.name for p in Path(tmp_path / "rotating" / "logs").iterdir())
    assert files == ["access.log", "access.log.1", "access.log.2"]
    for name in files:
        size = (tmp_path / "rotating" / "logs" / name).stat().st_size
        assert size <= 1024 * 1024
        assert all(
            json.loads(line)["status"] == 401 for line in (tmp_path / "rotating" / "logs" / name).open()
        )


@pytest.mark.parametrize("problem", ["rotate_mb: 0", "auth: everyone"])
def test_log_and_metrics_config_errors_name_the_key(tmp_path, problem):
    from taxii_federation.server.config import ConfigError

    path = write_node_files(tmp_path / "bad", "bad")
    config = yaml.safe_load(path.read_text())
    key, value = problem.split(": ")
    if key == "rotate_mb":
        config["logs"]["rotate_mb"] = int(value)
    else:
        config["metrics"] = {"auth": value}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=f"{'logs' if key == 'rotate_mb' else 'metrics'}.{key}"):
        load_node_config(path)
