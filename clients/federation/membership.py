"""`taxii-fed federation add-member NAME --url URL`: a new member in one command. It writes the member's
mirror secret, collection catalogue and node config, adds the member to the federation file and to the
agreements it joins; every edit keeps the files' comments and is validated before it replaces a file, in
an order where each intermediate state is itself valid (a running federation reloading halfway sees a
consistent config). `federation check` then passes; the member's own users are added with `users add`."""

import os
import re
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from taxii_federation.clients.federation.config import FederationConfig, load_federation_config
from taxii_federation.server.auth import hash_password
from taxii_federation.server.config import ConfigError, load_catalogue, load_node_config
from taxii_federation.server.config_edit import dump, edit_yaml, flow_list, flow_map, write_atomically

_MEMBER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


@dataclass
class NewMember:
    name: str
    secret: Path
    catalogue: Path
    node_config: Path
    agreements: tuple[str, ...]
    api_root: str
    notes: list[str] = field(default_factory=list)


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)


def _default_storage(config: FederationConfig, name: str, node_config: Path) -> str:
    hub = config.members[config.hub]
    hub_storage = load_node_config(hub.node_config).storage_url if hub.node_config else ""
    if not hub_storage.startswith("sqlite:"):
        raise ConfigError(
            f"the hub's storage is not a SQLite file, so there is no obvious place for {name}'s: "
            "pass --storage sqlite:PATH or a mongodb:// URL"
        )
    database = Path(hub_storage.removeprefix("sqlite:")).parent.parent / name / "node.db"
    return f"sqlite:{_relative(database, node_config.parent)}"


def _hub_collection_titles(config: FederationConfig) -> dict[str, tuple[str, str]]:
    hub = config.members[config.hub]
    if hub.node_config is None:
        return {}
    api_root = load_node_config(hub.node_config).find_api_root(hub.api_root)
    return {c.alias: (c.title, c.description) for c in (api_root.collections if api_root else ()) if c.alias}


def _catalogue(config: FederationConfig, name: str, api_root: str, aliases: tuple[str, ...]) -> dict:
    titles = _hub_collection_titles(config)
    collections = []
    for alias in aliases:
        title, description = titles.get(alias, (alias, ""))
        entry = {"id": str(uuid.uuid4()), "alias": alias, "title": title}
        if description:
            entry["description"] = description
        collections.append(entry)
    return {
        "default_api_root": api_root,
        "api_roots": {
            api_root: {
                "title": f"{name} - alliance collections",
                "description": "Collections shared with alliance members under the federation agreements.",
                "collections": collections,
            }
        },
    }


def _write_new(path: Path, text: str, mode: int = 0o644) -> None:
    if path.exists():
        raise ConfigError(
            f"{path} exists already; remove it or name other paths (--node-config, --catalogue)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text)
    os.chmod(path, mode)


def add_member(
    federation_path: Path,
    name: str,
    url: str,
    agreements: tuple[str, ...] = (),
    remote: bool = False,
    node_config_path: Path | None = None,
    catalogue_path: Path | None = None,
    storage: str | None = None,
) -> NewMember:
    config = load_federation_config(federation_path)
    if not _MEMBER_NAME.match(name):
        raise ConfigError(
            f"member name {name!r}: use lower-case letters, digits and '-', starting with a letter"
        )
    if name in config.members:
        raise ConfigError(f"{federation_path}: members.{name} exists already")
    address = urlsplit(url)
    if address.scheme not in ("http", "https") or not address.hostname:
        raise ConfigError(f"--url must be the node's http:// or https:// base URL, got {url!r}")
    known = tuple(agreement.collection for agreement in config.agreements)
    chosen = agreements or known
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise ConfigError(f"no agreement on {', '.join(unknown)} in {config.agreements_path}; known: {known}")
    hub = config.members[config.hub]
    folder = hub.node_config.parent if hub.node_config else federation_path.parent
    node_config_path = node_config_path or folder / f"{name}.yaml"
    catalogue_path = catalogue_path or _catalogue_beside_hub(config, name, node_config_path)
    storage = storage or _default_storage(config, name, node_config_path)
    secret_folder = _secret_folder(config, federation_path)
    secret_path = secret_folder / f"mirror-{name}.txt"
    notes = []

    # 1. New files, that nothing refers to yet.
    password = secrets.token_urlsafe(24)
    _write_new(secret_path, password + "\n", 0o600)
    _write_new(catalogue_path, dump(_catalogue(config, name, hub.api_root, chosen)))
    load_catalogue(catalogue_path)
    node_config = _node_config(name, address, storage, _relative(catalogue_path, node_config_path.parent))
    node_config["users"] = {
        "mirror": {
            "password_hash": hash_password(password),
            "roles": flow_list(["federation"]),
            "grants": [
                flow_map(api_root=hub.api_root, collections=flow_list(list(chosen)), access="read-write")
            ],
        }
    }
    header = (
        f"# Node config of member {name}, made by `taxii-fed federation add-member`.\n"
        f"# Add the member's own users with `taxii-fed users add NAME --config {node_config_path.name}`.\n"
    )
    _write_new(node_config_path, header + dump(node_config))
    load_node_config(node_config_path)
    if address.scheme == "https":
        notes.append(f"{url} is https: give {node_config_path} its tls.cert and tls.key before it starts")

    # 2. The member, in no agreement yet: a valid federation on its own.
    def add(data) -> None:
        entry = {
            "url": url.rstrip("/") + "/",
            "api_root": hub.api_root,
            **({} if remote else {"node_config": _relative(node_config_path, federation_path.parent)}),
            "credentials": flow_map(
                user="mirror", password_file=_relative(secret_path, federation_path.parent)
            ),
        }
        data["members"][name] = entry

    edit_yaml(federation_path, add, load_federation_config)

    # 3. The agreements it joins.
    def join(data) -> None:
        for agreement in data["agreements"]:
            if agreement["collection"] in chosen and name not in agreement["members"]:
                agreement["members"].append(name)

    edit_yaml(
        config.agreements_path, join, lambda temporary: load_federation_config(federation_path, temporary)
    )
    if remote:
        notes.append(
            f"{name} runs its node itself: hand over {node_config_path} and {catalogue_path} "
            f"(the mirror account's password is in {secret_path})"
        )
    return NewMember(name, secret_path, catalogue_path, node_config_path, chosen, hub.api_root, notes)


def _node_config(name: str, address, storage: str, catalogue: str) -> dict:
    config = {
        "node": {"name": name, "title": f"National node {name}"},
        "listen": {
            "host": address.hostname,
            "port": address.port or (443 if address.scheme == "https" else 80),
        },
        "storage": storage,
        "catalogue": catalogue,
    }
    if storage.startswith("sqlite:"):
        logs = Path(storage.removeprefix("sqlite:")).parent
        config["logs"] = {"access": str(logs / "access.log"), "audit": str(logs / "audit.log")}
    return config


def _hub_catalogue_path(hub_node_config: Path) -> Path | None:
    """The catalogue file the hub's node config names (NodeConfig keeps only what it read from it)."""
    from taxii_federation.server.config import read_yaml, resolve_path

    data = read_yaml(hub_node_config)
    catalogue = data.get("catalogue") if isinstance(data, dict) else None
    return resolve_path(hub_node_config.resolve().parent, catalogue) if isinstance(catalogue, str) else None


def _catalogue_beside_hub(config: FederationConfig, name: str, node_config: Path) -> Path:
    """NAME.yaml beside the hub's catalogue (collections/ in the demo), unless that is the node config."""
    hub = config.members[config.hub]
    hub_catalogue = _hub_catalogue_path(hub.node_config) if hub.node_config else None
    folder = hub_catalogue.parent if hub_catalogue else node_config.parent
    path = folder / f"{name}.yaml"
    return path if path.resolve() != node_config.resolve() else folder / f"{name}-catalogue.yaml"


def _secret_folder(config: FederationConfig, federation_path: Path) -> Path:
    """Where the hub's mirror secret is (config/demo-secrets/ in the demo), else secrets/ beside the file."""
    hub = config.members[config.hub]
    return hub.password_file.parent if hub.password_file else federation_path.parent / "secrets"
