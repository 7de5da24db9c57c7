"""config/federation.yaml and collections/agreements.yaml are refused with messages a hub operator
can act on."""

from pathlib import Path

import pytest
import yaml

from taxii_federation.clients.federation.config import load_federation_config
from taxii_federation.server.config import ConfigError
from tests.conftest import SHARED_INDICATORS, write_federation_files

REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_demo_federation_loads():
    config = load_federation_config(REPO / "config" / "federation.yaml")
    assert config.hub == "hub" and set(config.members) == {"hub", "ua", "ro", "md"}
    assert {a.collection for a in config.agreements} == {"alliance-indicators", "alliance-reference"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"members": ["ua", "pl"]}, r"agreements\[0\]\.members: unknown member 'pl'"),
        ({"max_tlp": "red"}, r"max_tlp: RED never leaves its node"),
        ({"max_tlp": "amber+strict"}, r"max_tlp: AMBER\+STRICT never leaves its node"),
        ({"direction": "sideways"}, r"direction: must be one of to-hub, from-hub, both"),
        ({"collection": "no-such-collection"}, r"member 'hub' has no collection with that alias"),
        ({"unmarked": "maybe"}, r"unmarked: must be share or hold"),
    ],
)
def test_a_bad_agreement_is_refused_with_the_key_to_fix(tmp_path, change, message):
    path = write_federation_files(tmp_path, [dict(SHARED_INDICATORS, **change)])
    with pytest.raises(ConfigError, match=message):
        load_federation_config(path)


def test_missing_credentials_are_named(tmp_path, monkeypatch):
    path = write_federation_files(tmp_path, [SHARED_INDICATORS])
    data = yaml.safe_load(path.read_text())
    data["members"]["ro"]["credentials"] = {"user": "mirror", "password_env": "TAXII_FED_RO_PASSWORD"}
    path.write_text(yaml.safe_dump(data))
    monkeypatch.delenv("TAXII_FED_RO_PASSWORD", raising=False)
    with pytest.raises(
        ConfigError,
        match=r"members\.ro\.credentials\.password_env: environment variable "
        r"TAXII_FED_RO_PASSWORD is not set",
    ):
        load_federation_config(path)
    monkeypatch.setenv("TAXII_FED_RO_PASSWORD", "from-the-environment")
    assert load_federation_config(path).members["ro"].password == "from-the-environment"


def test_an_unknown_hub_is_refused(tmp_path):
    path = write_federation_files(tmp_path, [SHARED_INDICATORS])
    path.write_text(path.read_text().replace("hub: hub", "hub: kyiv"))
    with pytest.raises(ConfigError, match="hub: names 'kyiv', which is not one of the members"):
        load_federation_config(path)
