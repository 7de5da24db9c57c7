"""One running node: its config, storage and users, reachable from a request as `current_node()`.

Views call the lookups here, so every endpoint applies the same grant rules (TAXII 2.1 §5):
a collection the caller has no grant on does not exist for them (404); a visible collection that
lacks the needed access answers 403.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Response, current_app, g

from taxii_federation.server.auth import Access, Authenticator, collection_access, has_api_root_grant
from taxii_federation.server.cert_auth import CertificateIdentities
from taxii_federation.server.config import ApiRootConfig, CollectionConfig, NodeConfig, UserConfig
from taxii_federation.server.errors import TaxiiError
from taxii_federation.server.held_reads import HeldReads
from taxii_federation.server.json_output import json_bytes
from taxii_federation.server.media import TAXII_MEDIA_TYPE
from taxii_federation.server.storage.base import Storage
from taxii_federation.server.validation import EnvelopeValidator

_EXTENSION_KEY = "taxii_node"


@dataclass
class Node:
    config: NodeConfig
    storage: Storage
    authenticator: Authenticator
    validator: EnvelopeValidator
    held_reads: HeldReads  # commits wake the reads mirrors hold open (server/held_reads.py)
    certificates: CertificateIdentities  # who a verified client certificate is (server/cert_auth.py)
    on_close: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.on_close:
            close()
        self.held_reads.close()
        self.validator.close()
        self.storage.close()


@dataclass(frozen=True)
class CollectionContext:
    api_root: ApiRootConfig
    collection: CollectionConfig
    access: Access


def attach_node(app, node: Node) -> None:
    app.extensions[_EXTENSION_KEY] = node


def current_node() -> Node:
    return current_app.extensions[_EXTENSION_KEY]


def node_of(app) -> Node:
    return app.extensions[_EXTENSION_KEY]


def current_user() -> UserConfig:
    return g.user


def find_api_root(api_root: str) -> ApiRootConfig:
    root = current_node().config.find_api_root(api_root)
    if root is None or not has_api_root_grant(current_user(), api_root):
        raise TaxiiError(
            404,
            "Not Found",
            f"no API root '{api_root[:100]}' on this node for user '{current_user().name}'; "
            "the discovery resource at /taxii2/ lists yours",
        )
    return root


def find_collection(api_root: str, collection_id: str, need: str | None = None) -> CollectionContext:
    """The collection, if the caller may see it; `need` is 'read', 'write' or 'read and write' when the
    endpoint needs it."""
    root = find_api_root(api_root)
    collection = next((c for c in root.collections if c.id == collection_id), None)
    user = current_user()
    access = collection_access(user, root.path, collection) if collection else Access()
    if collection is None or not access.visible:
        raise TaxiiError(
            404,
            "Not Found",
            f"no collection '{collection_id}' in API root '{api_root}' for user '{user.name}'",
        )
    allowed = {
        "read": access.can_read,
        "write": access.can_write,
        "read and write": access.can_read and access.can_write,
        None: True,
    }[need]
    if not allowed:
        label = collection.alias or collection.id
        adjective = {"read": "readable", "write": "writable", "read and write": "readable and writable"}[need]
        raise TaxiiError(403, "Forbidden", f"collection '{label}' is not {adjective} by '{user.name}'")
    return CollectionContext(root, collection, access)


def taxii_response(body: dict | str, status: int = 200, headers: dict | None = None) -> Response:
    text = body if isinstance(body, str) else json_bytes(body)
    response = Response(text, status=status, mimetype=TAXII_MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
