"""Config files are validated at start with messages that name the file, the key and the fix."""

from pathlib import Path

import pytest
import yaml

from taxii_federation.server.config import ConfigError, load_node_config
from tests.conftest import write_node_files

REPO = Path(__file__).resolve().parents[1]


def _edit(path: Path, change) -> Path:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", ["hub", "ua", "ro", "md"])
def test_every_shipped_node_config_loads(name):
    config = load_node_config(REPO / "config" / f"{name}.yaml")
    assert config.name == name
    assert {root.path for root in config.api_roots} == {"alliance", "national"}


def test_a_missing_key_names_file_and_key(tmp_path):
    path = _edit(write_node_files(tmp_path), lambda data: data["node"].pop("title"))
    with pytest.raises(ConfigError, match=r"node\.yaml: node\.title: is required"):
        load_node_config(path)


def test_a_grant_on_an_unknown_collection_is_refused(tmp_path):
    def change(data):
        data["users"]["soc"]["grants"][0]["collections"] = ["no-such-collection"]

    path = _edit(write_node_files(tmp_path), change)
    with pytest.raises(
        ConfigError,
        match=r"users\.soc\.grants\[0\]\.collections: API root 'alliance' has no "
        r"collection with id or alias 'no-such-collection'",
    ):
        load_node_config(path)


def test_a_clear_text_password_is_refused(tmp_path):
    def change(data):
        data["users"]["soc"]["password_hash"] = "hunter2"

    path = _edit(write_node_files(tmp_path), change)
    with pytest.raises(ConfigError, match="taxii-fed users hash"):
        load_node_config(path)


def test_unknown_keys_and_bad_access_levels_are_named(tmp_path):
    path = _edit(write_node_files(tmp_path), lambda data: data.update(lisen={"port": 1}))
    with pytest.raises(ConfigError, match="lisen: unknown key"):
        load_node_config(path)

    def change(data):
        data["users"]["soc"]["grants"][0]["access"] = "rw"

    path = _edit(write_node_files(tmp_path / "b"), change)
    with pytest.raises(ConfigError, match=r"access: must be one of read, write, read-write, got 'rw'"):
        load_node_config(path)


def test_catalogue_errors_name_the_catalogue_file(tmp_path):
    path = write_node_files(tmp_path)
    catalogue = tmp_path / "catalogue.yaml"
    _edit(catalogue, lambda data: data["api_roots"]["alliance"]["collections"][0].update(id="not-a-uuid"))
    with pytest.raises(
        ConfigError,
        match=r"catalogue\.yaml: api_roots\.alliance\.collections\[0\]\.id: must be a version 4 UUID",
    ):
        load_node_config(path)


def test_a_collection_id_must_be_a_version_4_uuid(tmp_path):
    """TAXII 2.1 §2: "identifier: An RFC 4122-compliant Version 4 UUID" (the demo ids were version 5)."""
    path = write_node_files(tmp_path)
    catalogue = tmp_path / "catalogue.yaml"
    version_5 = "f49b145a-f9bc-5fd2-ab3a-30d84be5f18b"
    _edit(catalogue, lambda data: data["api_roots"]["alliance"]["collections"][0].update(id=version_5))
    with pytest.raises(ConfigError, match="must be a version 4 UUID .* for example"):
        load_node_config(path)


def test_status_retention_below_a_day_is_refused(tmp_path):
    path = _edit(write_node_files(tmp_path), lambda data: data.update(status_retention_hours=2))
    with pytest.raises(ConfigError, match="status_retention_hours: must be at least 24"):
        load_node_config(path)


def test_invalid_yaml_is_reported_with_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("node: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_node_config(path)


def test_http_limits_are_read_and_checked(tmp_path):
    path = _edit(write_node_files(tmp_path), lambda data: data.update(limits={"header_bytes": 4096}))
    limits = load_node_config(path).limits
    assert (limits.header_bytes, limits.headers, limits.keep_alive_seconds) == (4096, 100, 15.0)
    _edit(path, lambda data: data.update(limits={"keep_alive_seconds": 0}))
    with pytest.raises(ConfigError, match=r"limits\.keep_alive_seconds: must be a number of seconds above 0"):
        load_node_config(path)
    _edit(path, lambda data: data.update(limits={"header_size": 1}))
    with pytest.raises(ConfigError, match=r"limits\.header_size: unknown key"):
        load_node_config(path)


def test_required_client_certificates_need_a_client_ca(tmp_path):
    (tmp_path / "node.crt").write_text("unused")
    (tmp_path / "node.key").write_text("unused")
    tls = {"cert": "node.crt", "key": "node.key", "client_certificates": "required"}
    path = _edit(write_node_files(tmp_path), lambda data: data.update(tls=tls))
    with pytest.raises(ConfigError, match=r"needs tls\.client_ca"):
        load_node_config(path)
