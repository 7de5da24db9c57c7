"""The node's operator commands as an operator types them: `taxii-fed users add|passwd|remove|list` on a
running node's config, and `taxii-fed audit`."""

import json
import os
import stat
import subprocess

import pytest
import requests

from tests.conftest import PASSWORDS, TAXII, eventually, load_bundle
from tests.processes import taxii_fed


def run(*args: str, password: str | None = None) -> subprocess.CompletedProcess:
    return taxii_fed(*args, stdin=f"{password}\n" if password else None)


def _status(node, user: str, password: str) -> int:
    return requests.get(
        node.url + "alliance/collections/", auth=(user, password), headers={"Accept": TAXII}, timeout=30
    ).status_code


def test_users_add_passwd_remove_take_effect_on_the_running_node_and_keep_comments(node_factory):
    # Polling until the node has reloaded its users means wrong-password answers until then (at most a
    # second's worth): the login throttle must not turn them into a lockout of the test's own address.
    node = node_factory(login_throttle={"max_failures": 1000})
    config = node.config_path
    config.write_text("# the test node: keep this comment\n" + config.read_text())
    before = config.read_text()
    added = run(
        "users", "add", "analyst", "--config", str(config), "--grant", "alliance:alliance-indicators:read",
        "--password-stdin", password="first-pass",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    after = config.read_text()
    assert after.startswith("# the test node: keep this comment\n")
    assert "first-pass" not in after and "analyst:" in after
    # Only lines were added: everything the operator wrote is where it was.
    assert [line for line in before.splitlines() if line not in after.splitlines()] == []
    eventually(lambda: _status(node, "analyst", "first-pass") == 200)

    changed = run(
        "users", "passwd", "analyst", "--config", str(config), "--password-stdin", password="second"
    )
    assert changed.returncode == 0, changed.stderr
    eventually(lambda: _status(node, "analyst", "first-pass") == 401)
    assert _status(node, "analyst", "second") == 200

    listed = run("users", "list", "--config", str(config))
    assert "analyst" in listed.stdout and "alliance:alliance-indicators:read" in listed.stdout
    assert "ops" in listed.stdout and "operator" in listed.stdout

    removed = run("users", "remove", "analyst", "--config", str(config))
    assert removed.returncode == 0, removed.stderr
    eventually(lambda: _status(node, "analyst", "second") == 401)
    assert config.read_text() == before


def test_users_edits_that_would_break_the_config_are_refused_and_leave_it_unchanged(node):
    config = node.config_path
    before = config.read_text()
    unknown = run(
        "users", "add", "x", "--config", str(config), "--grant", "alliance:no-such-collection:read",
        "--password-stdin", password="p",
    )  # fmt: skip
    assert unknown.returncode != 0
    assert "no collection with id or alias 'no-such-collection'" in unknown.stderr
    assert str(config) in unknown.stderr and "unchanged" in unknown.stderr
    twice = run("users", "add", "cert", "--config", str(config), "--password-stdin", password="p")
    assert twice.returncode != 0 and "exists" in twice.stderr
    missing = run("users", "remove", "nobody", "--config", str(config))
    assert missing.returncode != 0 and "no user 'nobody'" in missing.stderr
    bad_grant = run("users", "add", "y", "--config", str(config), "--grant", "alliance:*", "--password-stdin")
    assert bad_grant.returncode != 0 and "API_ROOT:COLLECTIONS:ACCESS" in bad_grant.stderr
    assert config.read_text() == before
    assert _status(node, "cert", PASSWORDS["cert"]) == 200


def test_audit_names_who_published_an_object_and_when(node):
    objects = load_bundle("oasis-examples/apt1.json")[:3]
    status = node.post(objects)
    result = run("audit", objects[1]["id"], "--config", str(node.config_path), "--json")
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)
    assert entry["node"] == "test" and entry["collection"] == "alliance-indicators"
    assert entry["origin_node"] == "test" and entry["link"] is None
    (post,) = entry["posts"]
    assert post["user"] == "cert" and post["status_id"] == status["id"] and post["remote"] == "127.0.0.1"
    text = run("audit", objects[1]["id"], "--config", str(node.config_path))
    assert "published here" in text.stdout and "by cert from 127.0.0.1" in text.stdout
    unknown = run(
        "audit", "indicator--00000000-0000-4000-8000-000000000000", "--config", str(node.config_path)
    )
    assert unknown.returncode != 0 and "holds" in unknown.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root (CI runs as root)")
def test_users_add_by_root_keeps_the_owner_group_and_mode_the_node_reads_the_config_through(node):
    """docs/deployment.md: /etc/taxii-fed/node.yaml is root:taxii-fed 0640 and the node runs as taxii-fed;
    an edit by root must leave it so, or the running node can no longer read its users."""
    config = node.config_path
    os.chown(config, 0, 4242)
    config.chmod(0o640)
    added = run(
        "users", "add", "analyst", "--config", str(config), "--grant", "alliance:*:read",
        "--password-stdin", password="first-pass",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    after = config.stat()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (0, 4242, 0o640)
