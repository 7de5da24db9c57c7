"""Node configuration: one YAML file per node plus the collection catalogue it names.

Everything is validated at start; a `ConfigError` names the file, the key and what to change.
Relative paths in a config file are relative to that file's folder.
"""

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCESS_LEVELS = {"read": (True, False), "write": (False, True), "read-write": (True, True)}
_API_ROOT_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
DEFAULT_MAX_CONTENT_LENGTH = 10 * 1024 * 1024
# 'federation': a mirror's account, allowed to state where an object came from.
# 'operator': read-only operations: the hub dashboard and /metrics; no TAXII data without grants.
# 'admin': a node administrator, who may read every status resource of the node.
ROLES = ("federation", "operator", "admin")
METRICS_AUTH = ("operator", "none")
STIX_VERSIONS = ("2.1", "2.0")


class ConfigError(ValueError):
    """A config file that cannot be used, with the file, the key and what is wrong."""


@dataclass(frozen=True)
class CollectionConfig:
    id: str
    title: str
    alias: str | None = None
    description: str = ""
    allow_custom: bool = True
    # The STIX versions the collection stores: 2.1, and 2.0 for feeds that still speak it.
    stix_versions: tuple[str, ...] = ("2.1",)


@dataclass(frozen=True)
class ApiRootConfig:
    path: str
    title: str
    description: str = ""
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    collections: tuple[CollectionConfig, ...] = ()

    def find_collection(self, id_or_alias: str) -> CollectionConfig | None:
        for collection in self.collections:
            if id_or_alias in (collection.id, collection.alias):
                return collection
        return None


@dataclass(frozen=True)
class Grant:
    """Access of one user to collections of one API root; `collection` is an id or '*'."""

    api_root: str
    collection: str
    can_read: bool
    can_write: bool


LOGIN_METHODS = ("password", "certificate", "password-or-certificate", "password-and-certificate")


@dataclass(frozen=True)
class CertificateMatch:
    """One way to recognise a user's client certificate (server/cert_auth.py): `kind` is subject, san or
    sha256; `key` is canonical, `text` as the config wrote it."""

    kind: str
    text: str
    key: str


@dataclass(frozen=True)
class UserConfig:
    name: str
    password_hash: str | None  # None: the user logs in by client certificate only
    grants: tuple[Grant, ...] = ()
    roles: frozenset[str] = frozenset()  # from ROLES
    certificates: tuple[CertificateMatch, ...] = ()
    login: str = "password"  # one of LOGIN_METHODS


CLIENT_CERTIFICATE_MODES = ("optional", "required")


@dataclass(frozen=True)
class TlsConfig:
    cert: Path
    key: Path
    # Client certificates are asked for only when a CA bundle to verify them is named.
    client_ca: Path | None = None
    client_certificates: str = "optional"  # or "required": the handshake fails without one
    handshake_seconds: float = 10.0


@dataclass(frozen=True)
class LimitsConfig:
    """What one connection may cost the HTTP server before the app sees a request (server/http_server/)."""

    request_line_bytes: int = 16 * 1024  # method, target and version: 414 above
    header_bytes: int = 32 * 1024  # all header lines together: 431 above
    headers: int = 100  # header lines: 431 above
    keep_alive_seconds: float = 15.0  # a connection with no request under way is closed after this
    request_seconds: float = 60.0  # from a request's first byte to its last: 408 after this
    connections: int = 1000  # open connections; more are closed at once
    # A connection older than this ends after its next answer: a replaced certificate (the node's or a
    # client's) or CA bundle then applies to busy keep-alive connections too, within this time.
    connection_seconds: float = 300.0


@dataclass(frozen=True)
class LogConfig:
    """The node's JSON-lines logs, each rotated at `rotate_bytes` with `keep` old files."""

    access: Path | None = None
    audit: Path | None = None
    rotate_bytes: int = 100 * 1024 * 1024
    keep: int = 10


@dataclass(frozen=True)
class LoginThrottleConfig:
    """After `max_failures` wrong passwords for one user or from one address within `window_seconds`, that
    user or address is refused (429) without a password check for `lockout_seconds`, doubling with each
    further lockout up to `max_lockout_seconds`. Password checks run at most `concurrent_checks` at a time,
    so a flood of guesses cannot take the CPU that logged-in clients need."""

    max_failures: int = 5
    window_seconds: float = 300
    lockout_seconds: float = 30
    max_lockout_seconds: float = 900
    concurrent_checks: int = 1


@dataclass(frozen=True)
class NodeConfig:
    name: str
    title: str
    storage_url: str
    api_roots: tuple[ApiRootConfig, ...]
    users: dict[str, UserConfig] = field(default_factory=dict)
    description: str = ""
    contact: str = ""
    host: str = "127.0.0.1"
    port: int = 6100
    tls: TlsConfig | None = None
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    default_api_root: str | None = None
    max_page_size: int = 1000
    # A page is cut at this many bytes of objects as well as at `limit` (`more`/`next` continue it).
    max_page_bytes: int = 16 * 1024 * 1024
    # Validating one envelope stops after this long; the objects not checked by then are refused.
    max_validation_seconds: float = 60
    login_throttle: LoginThrottleConfig = field(default_factory=lambda: LoginThrottleConfig())
    status_retention_hours: int = 168
    threads: int = 16
    validation_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Reads a mirror may ask the node to hold open until the next commit (server/held_reads.py).
    max_held_reads: int = 4
    held_read_seconds: int = 30
    logs: LogConfig = LogConfig()
    metrics_auth: str = "operator"  # from METRICS_AUTH
    # The hub's federation file: its dashboard and link metrics show those links (read by the clients layer).
    federation: Path | None = None
    source: Path | None = None

    def find_api_root(self, path: str) -> ApiRootConfig | None:
        for api_root in self.api_roots:
            if api_root.path == path:
                return api_root
        return None


class ConfigSection:
    """A mapping read from one file, that knows its key path for error messages."""

    def __init__(self, data: Any, source: Path, key: str):
        self.source, self.key = source, key
        if not isinstance(data, dict):
            self.fail(f"must be a mapping, got {type(data).__name__}")
        self.data = data

    def fail(self, problem: str, key: str | None = None):
        where = ".".join(k for k in (self.key, key) if k) or "(top level)"
        raise ConfigError(f"{self.source}: {where}: {problem}")

    def child(self, key: str) -> "ConfigSection":
        return ConfigSection(self.data.get(key), self.source, self._join(key))

    def _join(self, key: str) -> str:
        return f"{self.key}.{key}" if self.key else key

    def get(self, key: str, kind: type | tuple, default: Any = ..., required: bool = False) -> Any:
        if key not in self.data or self.data[key] is None:
            if required or default is ...:
                self.fail("is required", key)
            return default
        value = self.data[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.fail(f"must be {expected}, got {value!r}", key)
        return value

    def positive_int(self, key: str, default: int) -> int:
        value = self.get(key, int, default)
        if value <= 0:
            self.fail(f"must be a positive whole number, got {value}", key)
        return value

    def positive_seconds(self, key: str, default: float) -> float:
        value = self.get(key, (int, float), default)
        if isinstance(value, bool) or value <= 0:
            self.fail(f"must be a number of seconds above 0, got {value!r}", key)
        return float(value)

    def check_known(self, known: set[str]) -> None:
        for key in self.data:
            if key not in known:
                self.fail(f"unknown key; the known keys are {', '.join(sorted(known))}", str(key))


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the file: {error.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None


def _collection(section: ConfigSection) -> CollectionConfig:
    section.check_known({"id", "title", "alias", "description", "allow_custom", "stix_versions"})
    collection_id = section.get("id", str, required=True)
    try:
        version = uuid.UUID(collection_id).version
    except ValueError:
        version = None
    if version != 4:
        section.fail(
            f"must be a version 4 UUID (TAXII 2.1 §2: identifiers are RFC 4122 version 4 UUIDs), got "
            f"{collection_id!r}; for example {uuid.uuid4()}",
            "id",
        )
    return CollectionConfig(
        id=collection_id,
        title=section.get("title", str, required=True),
        alias=section.get("alias", str, None),
        description=section.get("description", str, ""),
        allow_custom=section.get("allow_custom", bool, True),
        stix_versions=_stix_versions(section),
    )


def _stix_versions(section: ConfigSection) -> tuple[str, ...]:
    versions = [str(v) for v in section.get("stix_versions", list, ["2.1"])]
    if not versions or set(versions) - set(STIX_VERSIONS):
        section.fail(
            f"must list STIX versions out of {', '.join(STIX_VERSIONS)}, got {versions!r}", "stix_versions"
        )
    return tuple(v for v in STIX_VERSIONS if v in versions)  # newest first


def _api_root(path: str, section: ConfigSection) -> ApiRootConfig:
    section.check_known({"title", "description", "max_content_length", "collections"})
    if not _API_ROOT_PATH.match(path):
        section.fail("an API root name is one URL segment of letters, digits, '.', '_' or '-'")
    raw_collections = section.get("collections", list, [])
    collections = tuple(
        _collection(ConfigSection(item, section.source, f"{section.key}.collections[{index}]"))
        for index, item in enumerate(raw_collections)
    )
    seen: set[str] = set()
    for collection in collections:
        for name in filter(None, (collection.id, collection.alias)):
            if name in seen:
                section.fail(f"collection id or alias {name!r} is used twice", "collections")
            seen.add(name)
    return ApiRootConfig(
        path=path,
        title=section.get("title", str, required=True),
        description=section.get("description", str, ""),
        max_content_length=section.positive_int("max_content_length", DEFAULT_MAX_CONTENT_LENGTH),
        collections=collections,
    )


def load_catalogue(path: Path) -> tuple[tuple[ApiRootConfig, ...], str | None]:
    """Read a collection catalogue: the API roots of a node and their collections."""
    top = ConfigSection(read_yaml(path), path, "")
    top.check_known({"api_roots", "default_api_root"})
    roots_section = top.child("api_roots")
    api_roots = tuple(_api_root(str(name), roots_section.child(str(name))) for name in roots_section.data)
    if not api_roots:
        top.fail("a catalogue needs at least one API root", "api_roots")
    default = top.get("default_api_root", str, None)
    if default is not None and default not in {root.path for root in api_roots}:
        top.fail(f"names {default!r}, which is not one of the API roots", "default_api_root")
    return api_roots, default


def _grants(section: ConfigSection, api_roots: tuple[ApiRootConfig, ...]) -> tuple[Grant, ...]:
    grants = []
    for index, item in enumerate(section.data.get("grants") or []):
        grant = ConfigSection(item, section.source, f"{section.key}.grants[{index}]")
        grant.check_known({"api_root", "collections", "access"})
        root_path = grant.get("api_root", str, required=True)
        api_root = next((root for root in api_roots if root.path == root_path), None)
        if api_root is None:
            grant.fail(f"no API root {root_path!r} in the catalogue", "api_root")
        access = grant.get("access", str, required=True)
        if access not in ACCESS_LEVELS:
            grant.fail(f"must be one of {', '.join(ACCESS_LEVELS)}, got {access!r}", "access")
        can_read, can_write = ACCESS_LEVELS[access]
        names = grant.get("collections", (str, list), required=True)
        for name in [names] if isinstance(names, str) else names:
            if name == "*":
                grants.append(Grant(root_path, "*", can_read, can_write))
                continue
            collection = api_root.find_collection(str(name))
            if collection is None:
                grant.fail(
                    f"API root {root_path!r} has no collection with id or alias {name!r}", "collections"
                )
            grants.append(Grant(root_path, collection.id, can_read, can_write))
    return tuple(grants)


def _certificates(user: ConfigSection) -> tuple[CertificateMatch, ...]:
    from taxii_federation.server.cert_auth import MATCH_KINDS, parse_certificate_match

    matches = []
    for index, item in enumerate(user.get("certificates", list, [])):
        entry = ConfigSection(item, user.source, f"{user.key}.certificates[{index}]")
        entry.check_known(set(MATCH_KINDS))
        if len(entry.data) != 1:
            entry.fail(f"give one of {', '.join(MATCH_KINDS)} per entry")
        kind = next(iter(entry.data))
        try:
            matches.append(parse_certificate_match(kind, entry.get(kind, str, required=True)))
        except ValueError as error:
            entry.fail(str(error), kind)
    return tuple(matches)


def _login(user: ConfigSection, password_hash: str | None, certificates: tuple, tls: TlsConfig | None) -> str:
    default = "password-or-certificate" if password_hash and certificates else "certificate"
    login = user.get("login", str, "password" if not certificates else default)
    if login not in LOGIN_METHODS:
        user.fail(f"must be one of {', '.join(LOGIN_METHODS)}, got {login!r}", "login")
    if "password" in login and not password_hash:
        user.fail(f"login {login} needs a password_hash (from `taxii-fed users hash`)")
    if "certificate" in login and not certificates:
        user.fail(
            f"login {login} needs certificates: the subjects, SANs or fingerprints that identify the user"
        )
    if login == "password" and certificates:
        user.fail("certificates are listed but login is password; use password-or-certificate")
    if login == "certificate" and password_hash:
        user.fail("a password_hash is given but login is certificate; use password-or-certificate")
    if login == "certificate" and (tls is None or tls.client_ca is None):
        user.fail("logs in by certificate only, but the node verifies no client certificates (tls.client_ca)")
    return login


def _users(
    section: ConfigSection, api_roots: tuple[ApiRootConfig, ...], tls: TlsConfig | None
) -> dict[str, UserConfig]:
    users = {}
    for name in section.data:
        user = section.child(str(name))
        user.check_known({"password_hash", "grants", "roles", "certificates", "login"})
        if not _USER_NAME.match(str(name)):
            user.fail("a user name is letters, digits, '.', '_', '@' or '-'")
        password_hash = user.get("password_hash", str, None)
        if password_hash is not None and not password_hash.startswith("scrypt$"):
            user.fail(
                "must be a hash made by `taxii-fed users hash` (passwords are never stored in clear)",
                "password_hash",
            )
        certificates = _certificates(user)
        if password_hash is None and not certificates:
            user.fail("needs a password_hash (from `taxii-fed users hash`) or certificates, or both")
        roles = user.get("roles", list, [])
        unknown_roles = set(roles) - set(ROLES)
        if unknown_roles:
            user.fail(f"unknown role(s) {sorted(unknown_roles)}; the roles are {', '.join(ROLES)}", "roles")
        users[str(name)] = UserConfig(
            str(name),
            password_hash,
            _grants(user, api_roots),
            frozenset(roles),
            certificates,
            _login(user, password_hash, certificates, tls),
        )
    return users


def resolve_path(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _storage_url(base: Path, text: str, section: ConfigSection) -> str:
    scheme, sep, rest = text.partition(":")
    if not sep or scheme not in {"sqlite", "mongodb", "mongodb+srv"}:
        section.fail(f"must be 'sqlite:PATH' or a 'mongodb://' URL, got {text!r}", "storage")
    if scheme == "sqlite":
        return f"sqlite:{resolve_path(base, rest)}"
    return text


def _validation_workers(top: ConfigSection) -> int:
    workers = top.get("validation_workers", int, os.cpu_count() or 1)
    if workers < 0:
        top.fail(f"must be 0 (validate in the server process) or more, got {workers}", "validation_workers")
    return workers


def _max_held_reads(top: ConfigSection, threads: int) -> int:
    """Each held read keeps an HTTP worker thread: at least half of them stay for normal requests."""
    held = top.get("max_held_reads", int, threads // 4)
    if not 0 <= held <= threads // 2:
        top.fail(
            f"must be between 0 (hold no reads) and half of `threads` ({threads // 2}), got {held}",
            "max_held_reads",
        )
    return held


def _held_read_seconds(top: ConfigSection) -> int:
    seconds = top.positive_int("held_read_seconds", 30)
    if seconds > 300:
        top.fail(f"must be at most 300 (a held read keeps a thread), got {seconds}", "held_read_seconds")
    return seconds


def _login_throttle(section: ConfigSection) -> LoginThrottleConfig:
    defaults = LoginThrottleConfig()
    section.check_known(
        {"max_failures", "window_seconds", "lockout_seconds", "max_lockout_seconds", "concurrent_checks"}
    )
    return LoginThrottleConfig(
        max_failures=section.positive_int("max_failures", defaults.max_failures),
        window_seconds=section.positive_seconds("window_seconds", defaults.window_seconds),
        lockout_seconds=section.positive_seconds("lockout_seconds", defaults.lockout_seconds),
        max_lockout_seconds=section.positive_seconds("max_lockout_seconds", defaults.max_lockout_seconds),
        concurrent_checks=section.positive_int("concurrent_checks", defaults.concurrent_checks),
    )


def _retention_hours(top: ConfigSection) -> int:
    hours = top.positive_int("status_retention_hours", 168)
    if hours < 24:
        top.fail(
            f"must be at least 24: clients may look up a status for a day, got {hours}",
            "status_retention_hours",
        )
    return hours


def _tls(section: ConfigSection, base: Path) -> TlsConfig:
    section.check_known({"cert", "key", "client_ca", "client_certificates", "handshake_seconds"})
    files = {
        key: resolve_path(base, section.get(key, str, required=key != "client_ca"))
        for key in ("cert", "key", "client_ca")
        if key != "client_ca" or section.data.get(key)
    }
    for key, file in files.items():
        if not file.is_file():
            section.fail(f"file {file} does not exist", key)
    mode = section.get("client_certificates", str, "optional")
    if mode not in CLIENT_CERTIFICATE_MODES:
        section.fail(f"must be optional or required, got {mode!r}", "client_certificates")
    if mode == "required" and "client_ca" not in files:
        section.fail("requiring client certificates needs tls.client_ca, the CA bundle that verifies them")
    return TlsConfig(
        files["cert"],
        files["key"],
        files.get("client_ca"),
        mode,
        section.positive_seconds("handshake_seconds", TlsConfig.handshake_seconds),
    )


def _limits(section: ConfigSection) -> LimitsConfig:
    section.check_known(set(LimitsConfig.__dataclass_fields__))
    defaults = LimitsConfig()
    return LimitsConfig(
        request_line_bytes=section.positive_int("request_line_bytes", defaults.request_line_bytes),
        header_bytes=section.positive_int("header_bytes", defaults.header_bytes),
        headers=section.positive_int("headers", defaults.headers),
        keep_alive_seconds=section.positive_seconds("keep_alive_seconds", defaults.keep_alive_seconds),
        request_seconds=section.positive_seconds("request_seconds", defaults.request_seconds),
        connections=section.positive_int("connections", defaults.connections),
        connection_seconds=section.positive_seconds("connection_seconds", defaults.connection_seconds),
    )


def _logs(top: ConfigSection, base: Path) -> LogConfig:
    section = ConfigSection(top.data.get("logs") or {}, top.source, "logs")
    section.check_known({"access", "audit", "rotate_mb", "keep"})
    access, audit = section.get("access", str, None), section.get("audit", str, None)
    return LogConfig(
        access=resolve_path(base, access) if access else None,
        audit=resolve_path(base, audit) if audit else None,
        rotate_bytes=section.positive_int("rotate_mb", 100) * 1024 * 1024,
        keep=section.positive_int("keep", 10),
    )


def _metrics_auth(top: ConfigSection) -> str:
    section = ConfigSection(top.data.get("metrics") or {}, top.source, "metrics")
    section.check_known({"auth"})
    auth = section.get("auth", str, "operator")
    if auth not in METRICS_AUTH:
        section.fail(
            f"must be 'operator' (HTTP Basic, a user with role operator) or 'none', got {auth!r}", "auth"
        )
    return auth


def _federation_file(top: ConfigSection, base: Path) -> Path | None:
    if top.data.get("federation") is None:
        return None
    path = resolve_path(base, top.get("federation", str))
    if not path.is_file():
        top.fail(f"names {path}, which does not exist (the federation file of this hub)", "federation")
    return path


def load_node_config(path: str | Path) -> NodeConfig:
    """Read and validate one node's config file (and the catalogue it names)."""
    path = Path(path)
    base = path.resolve().parent
    top = ConfigSection(read_yaml(path), path, "")
    top.check_known(
        {
            "node",
            "listen",
            "tls",
            "limits",
            "storage",
            "catalogue",
            "users",
            "max_page_size",
            "max_page_bytes",
            "max_validation_seconds",
            "login_throttle",
            "status_retention_hours",
            "threads",
            "validation_workers",
            "max_held_reads",
            "held_read_seconds",
            "logs",
            "metrics",
            "federation",
        }
    )
    node = top.child("node")
    node.check_known({"name", "title", "description", "contact"})
    listen = ConfigSection(top.data.get("listen") or {}, path, "listen")
    listen.check_known({"host", "port"})
    port = listen.get("port", int, 6100)
    if not 0 <= port <= 65535:
        listen.fail(f"must be a TCP port (0-65535; 0 picks a free one), got {port}", "port")
    tls = _tls(top.child("tls"), base) if top.data.get("tls") else None
    catalogue_path = resolve_path(base, top.get("catalogue", str, required=True))
    threads = top.positive_int("threads", 16)
    api_roots, default_api_root = load_catalogue(catalogue_path)
    users = _users(ConfigSection(top.data.get("users") or {}, path, "users"), api_roots, tls)
    return NodeConfig(
        name=node.get("name", str, required=True),
        title=node.get("title", str, required=True),
        description=node.get("description", str, ""),
        contact=node.get("contact", str, ""),
        host=listen.get("host", str, "127.0.0.1"),
        port=port,
        tls=tls,
        limits=_limits(ConfigSection(top.data.get("limits") or {}, path, "limits")),
        storage_url=_storage_url(base, top.get("storage", str, required=True), top),
        api_roots=api_roots,
        default_api_root=default_api_root,
        users=users,
        max_page_size=top.positive_int("max_page_size", 1000),
        max_page_bytes=top.positive_int("max_page_bytes", 16 * 1024 * 1024),
        max_validation_seconds=top.positive_seconds("max_validation_seconds", 60),
        login_throttle=_login_throttle(
            ConfigSection(top.data.get("login_throttle") or {}, path, "login_throttle")
        ),
        status_retention_hours=_retention_hours(top),
        threads=threads,
        validation_workers=_validation_workers(top),
        max_held_reads=_max_held_reads(top, threads),
        held_read_seconds=_held_read_seconds(top),
        logs=_logs(top, base),
        metrics_auth=_metrics_auth(top),
        federation=_federation_file(top, base),
        source=path,
    )
