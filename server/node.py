"""One running node: its config, storage and users, reachable from a request as `current_node()`.

Views call the lookups here, so every endpoint applies the same grant rules (TAXII 2.1 §5):
a collection the caller has no grant on does not exist for them (404); a visible collection that
lacks the needed access answers 403.
"""

import json
from dataclasses import dataclass

from flask import Response, current_app, g

from taxii_federation.server.auth import Access, Authenticator, collection_access, has_api_root_grant
from taxii_federation.server.cert_auth import CertificateIdentities
from taxii_federation.server.config import ApiRootConfig, CollectionConfig, NodeConfig, UserConfig
from taxii_federation.server.errors import TaxiiError
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
    certificates: CertificateIdentities

    def close(self) -> None:
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


def current_user() -> UserConfig:
    return g.user


def find_api_root(api_root: str) -> ApiRootConfig:
    root = current_node().config.find_api_root(api_root)
    if root is None or not has_api_root_grant(current_user(), api_root):
        raise TaxiiError(
            404, "Not Found", f"no API root '{api_root}' on this node for user '{current_user().name}'"
        )
    return root


def find_collection(api_root: str, collection_id: str, need: str | None = None) -> CollectionContext:
    """The collection, if the caller may see it; `need` is 'read' or 'write' when the endpoint needs it."""
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
    allowed = {"read": access.can_read, "write": access.can_write, None: True}[need]
    if not allowed:
        label = collection.alias or collection.id
        raise TaxiiError(403, "Forbidden", f"collection '{label}' is not {need}able by '{user.name}'")
    return CollectionContext(root, collection, access)


def taxii_response(body: dict | str, status: int = 200, headers: dict | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    response = Response(text, status=status, mimetype=TAXII_MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
