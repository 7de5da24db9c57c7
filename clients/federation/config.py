"""The federation's description: members (config/federation.yaml), agreements (collections/agreements.yaml).

Both are validated at start with messages a hub operator can act on.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from taxii_federation.clients.taxii import Endpoint
from taxii_federation.server.config import (
    ConfigError,
    ConfigSection,
    TlsConfig,
    load_node_config,
    read_yaml,
    resolve_path,
)

TLP_LEVELS = {"clear": 0, "white": 0, "green": 1, "amber": 2, "amber+strict": 3, "red": 4}
DIRECTIONS = ("to-hub", "from-hub", "both")
UNMARKED_RULES = ("share", "hold")
SERVER_KINDS = ("taxii-fed", "medallion", "other")


@dataclass(frozen=True)
class Member(Endpoint):
    """A node of the alliance, as federation.yaml describes it."""

    node_config: Path | None = None  # set when `federation up` runs this member's node itself
    # taxii-fed nodes give every object its own, strictly increasing date_added, so a link may checkpoint
    # after each page; other servers (medallion gives a whole POST one date_added) only after a full walk.
    server: str = "taxii-fed"
    node_tls: TlsConfig | None = None  # `federation up --tls`: the TLS of the node it runs for this member
    paused: bool = False  # its links are shown, not run (maintenance at the member)
    password_from: str = ""  # where the password was read, for messages: "password_file PATH"
    password_file: Path | None = None


@dataclass(frozen=True)
class Agreement:
    collection: str  # alias, the same on every member
    members: tuple[str, ...]
    direction: str
    max_tlp: str
    unmarked: str

    @property
    def max_level(self) -> int:
        return TLP_LEVELS[self.max_tlp]


@dataclass(frozen=True)
class DemoUser:
    member: str
    user: str
    password: str
    can: str


@dataclass(frozen=True)
class FederationConfig:
    hub: str
    members: dict[str, Member]
    agreements: tuple[Agreement, ...]
    state_path: Path
    poll_interval: float  # for sources that do not hold reads (medallion, OpenTAXII)
    demo_users: tuple[DemoUser, ...] = ()
    link_workers: int | None = None  # link passes that run at once; None: as many as one commit wakes
    lagging_after_seconds: float = 60.0  # a link whose oldest unread object waited longer is lagging
    source: Path | None = None
    agreements_path: Path | None = None
    files: tuple[Path, ...] = ()  # every file it was read from: a change to any of them is a new config
    demo_pki: Path | None = None  # `federation up --tls`: the demo CA folder every member's TLS comes from


def _password(section: ConfigSection, base: Path) -> tuple[str | None, str, Path | None]:
    """The password (None: the link logs in with its client certificate only), where it came from (for
    messages) and the file that holds it, if one does."""
    if "password_env" in section.data:
        name = section.get("password_env", str)
        if name not in os.environ:
            section.fail(
                f"environment variable {name} is not set; export the member's password in it", "password_env"
            )
        return os.environ[name], f"{section.key}.password_env {name}", None
    if "password_file" not in section.data:
        if section.data.get("client_cert"):
            return None, f"{section.key}.client_cert", None
        section.fail("needs password_file, password_env or client_cert (with client_key)")
    path = resolve_path(base, section.get("password_file", str, required=True))
    try:
        return path.read_text(encoding="utf-8").strip(), f"{section.key}.password_file {path}", path
    except OSError as error:
        section.fail(f"cannot read {path}: {error.strerror}", "password_file")


def _credential_file(section: ConfigSection, base: Path, key: str) -> str | None:
    text = section.get(key, str, None)
    if text is None:
        return None
    path = resolve_path(base, text)
    if not path.is_file():
        section.fail(f"file {path} does not exist", key)
    return str(path)


def _member(name: str, section: ConfigSection, base: Path) -> Member:
    section.check_known({"url", "api_root", "credentials", "ca_bundle", "node_config", "server", "paused"})
    url = section.get("url", str, required=True)
    if not url.startswith(("http://", "https://")):
        section.fail(f"must be an http:// or https:// URL, got {url!r}", "url")
    server = section.get("server", str, "taxii-fed")
    if server not in SERVER_KINDS:
        section.fail(f"must be one of {', '.join(SERVER_KINDS)}, got {server!r}", "server")
    credentials = section.child("credentials")
    credentials.check_known({"user", "password_file", "password_env", "client_cert", "client_key"})
    ca_bundle = section.get("ca_bundle", str, None)
    node_config = section.get("node_config", str, None)
    password, password_from, password_file = _password(credentials, base)
    return Member(
        name=name,
        url=url.rstrip("/") + "/",
        api_root=section.get("api_root", str, required=True).strip("/"),
        user=credentials.get("user", str, required=True),
        password=password,
        ca_bundle=str(resolve_path(base, ca_bundle)) if ca_bundle else None,
        client_cert=_credential_file(credentials, base, "client_cert"),
        client_key=_credential_file(credentials, base, "client_key"),
        node_config=resolve_path(base, node_config) if node_config else None,
        server=server,
        paused=section.get("paused", bool, False),
        password_from=password_from,
        password_file=password_file,
    )


def _agreement(section: ConfigSection, members: dict[str, Member], hub: str) -> Agreement:
    section.check_known({"collection", "members", "direction", "max_tlp", "unmarked"})
    names = tuple(section.get("members", list, required=True))
    for name in names:
        if name not in members:
            section.fail(
                f"unknown member {name!r}; members are {', '.join(sorted(members))} (config/federation.yaml)",
                "members",
            )
        if name == hub:
            section.fail(f"{name!r} is the hub; list the members the hub shares with", "members")
    direction = section.get("direction", str, required=True)
    if direction not in DIRECTIONS:
        section.fail(f"must be one of {', '.join(DIRECTIONS)}, got {direction!r}", "direction")
    max_tlp = section.get("max_tlp", str, required=True).lower()
    if max_tlp not in TLP_LEVELS:
        section.fail(f"must be clear, green or amber, got {max_tlp!r}", "max_tlp")
    if TLP_LEVELS[max_tlp] > TLP_LEVELS["amber"]:
        section.fail(
            f"{max_tlp.upper()} never leaves its node (TLP:RED, AMBER+STRICT); "
            "the highest an agreement can carry is amber",
            "max_tlp",
        )
    unmarked = section.get("unmarked", str, required=True)
    if unmarked not in UNMARKED_RULES:
        section.fail(f"must be share or hold, got {unmarked!r}", "unmarked")
    return Agreement(section.get("collection", str, required=True), names, direction, max_tlp, unmarked)


def _check_catalogues(
    agreements: tuple[Agreement, ...], members: dict[str, Member], hub: str, source: Path
) -> None:
    """Members whose node config we have must hold every agreed collection in their API root."""
    for agreement in agreements:
        for name in (hub, *agreement.members):
            member = members[name]
            if member.node_config is None:
                continue  # a remote member: checked when its links start
            node = load_node_config(member.node_config)
            api_root = node.find_api_root(member.api_root)
            if api_root is None:
                raise ConfigError(
                    f"{source}: members.{name}.api_root: {member.node_config} has no API root "
                    f"{member.api_root!r}"
                )
            if api_root.find_collection(agreement.collection) is None:
                raise ConfigError(
                    f"{source}: agreement on {agreement.collection!r}: member {name!r} has no "
                    f"collection with that alias in API root {member.api_root!r} "
                    f"(its catalogue is named in {member.node_config})"
                )


def load_federation_config(path: str | Path, agreements_path: Path | None = None) -> FederationConfig:
    """Read and validate a federation file; `agreements_path` reads the agreements from another file than
    the one it names (an edit about to replace it)."""
    path = Path(path)
    base = path.resolve().parent
    top = ConfigSection(read_yaml(path), path, "")
    top.check_known(
        {
            "hub",
            "poll_interval_seconds",
            "link_workers",
            "lagging_after_seconds",
            "agreements",
            "state",
            "members",
            "demo_users",
        }
    )
    members_section = top.child("members")
    members = {
        str(name): _member(str(name), members_section.child(str(name)), base) for name in members_section.data
    }
    password_files = [member.password_file for member in members.values() if member.password_file]
    hub = top.get("hub", str, required=True)
    if hub not in members:
        top.fail(f"names {hub!r}, which is not one of the members", "hub")
    poll_interval = top.get("poll_interval_seconds", (int, float), 5)
    if poll_interval <= 0:
        top.fail(f"must be above 0, got {poll_interval}", "poll_interval_seconds")
    lagging_after = top.get("lagging_after_seconds", (int, float), 60)
    if lagging_after <= 0:
        top.fail(f"must be above 0, got {lagging_after}", "lagging_after_seconds")
    agreements_path = agreements_path or resolve_path(base, top.get("agreements", str, required=True))
    agreements_top = ConfigSection(read_yaml(agreements_path), agreements_path, "")
    agreements_top.check_known({"agreements"})
    agreements = tuple(
        _agreement(ConfigSection(item, agreements_path, f"agreements[{index}]"), members, hub)
        for index, item in enumerate(agreements_top.get("agreements", list, required=True))
    )
    _check_catalogues(agreements, members, hub, path)
    demo_users = tuple(DemoUser(**item) for item in top.data.get("demo_users") or [])
    return FederationConfig(
        hub,
        members,
        agreements,
        resolve_path(base, top.get("state", str, required=True)),
        float(poll_interval),
        demo_users,
        link_workers=top.positive_int("link_workers", 1) if "link_workers" in top.data else None,
        lagging_after_seconds=float(lagging_after),
        source=path,
        agreements_path=agreements_path,
        files=(path, agreements_path, *password_files),
    )
