"""What a node offers a caller (`taxii-fed discover`), and finding one collection by URL, id or alias."""

import re
from dataclasses import dataclass

import requests
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import Server

from taxii_federation.clients.credentials import Credentials
from taxii_federation.clients.taxii import Endpoint, RemoteCollection, RemoteError

_COLLECTION_URL = re.compile(
    r"^(?P<base>https?://[^/]+/(?:.+/)?)(?P<root>[^/]+)/collections/(?P<id>[^/]+)/?$"
)


@dataclass(frozen=True)
class CollectionRow:
    api_root: str
    id: str
    alias: str
    title: str
    can_read: bool
    can_write: bool


def _server(url: str, credentials: Credentials, ca_bundle: str | None) -> Server:
    discovery = url if url.rstrip("/").endswith("taxii2") else url.rstrip("/") + "/taxii2/"
    server = Server(
        discovery.rstrip("/") + "/",
        user=credentials.user,
        password=credentials.password,
        verify=ca_bundle or True,
    )
    if ca_bundle:
        server._conn.session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify (psf/requests#3829)
    return server


def _remote(error: Exception, url: str, user: str) -> RemoteError:
    response = getattr(error, "response", None)
    if response is not None and response.status_code == 401:
        return RemoteError(f"{url}: the node refused the credentials of user '{user}' (401)")
    if isinstance(error, requests.ConnectionError):
        return RemoteError(f"cannot reach {url}: connection refused")
    return RemoteError(f"{url}: {error}")


def discover(url: str, credentials: Credentials, ca_bundle: str | None = None) -> list[CollectionRow]:
    """Every collection of every API root the caller can see, with the caller's own access."""
    rows = []
    try:
        for api_root in _server(url, credentials, ca_bundle).api_roots:
            for collection in api_root.collections:
                rows.append(
                    CollectionRow(
                        api_root.url,
                        collection.id,
                        collection.alias or "",
                        collection.title,
                        collection.can_read,
                        collection.can_write,
                    )
                )
    except (requests.RequestException, TAXIIServiceException) as error:
        raise _remote(error, url, credentials.user) from None
    return rows


def open_collection(
    collection: str,
    credentials: Credentials,
    url: str | None = None,
    api_root: str | None = None,
    ca_bundle: str | None = None,
) -> RemoteCollection:
    """A collection named by its full URL, or by id or alias on the node at `url` (in `api_root`, by default
    the node's default API root)."""
    match = _COLLECTION_URL.match(collection)
    if match:
        base, api_root, collection = match["base"], match["root"], match["id"]
    elif url is None:
        raise RemoteError(f"'{collection}' is not a collection URL; give the node with --url")
    else:
        base = url.split("/taxii2")[0].rstrip("/") + "/"
        if api_root is None:
            try:
                default = _server(url, credentials, ca_bundle).default
            except (requests.RequestException, TAXIIServiceException) as error:
                raise _remote(error, url, credentials.user) from None
            if default is None:
                raise RemoteError(f"{url} names no default API root; give one with --api-root")
            api_root = default.url.rstrip("/").rsplit("/", 1)[1]
    member = Endpoint(
        name=base.rstrip("/"),
        url=base,
        api_root=api_root.strip("/"),
        user=credentials.user,
        password=credentials.password,
        ca_bundle=ca_bundle,
    )
    remote = RemoteCollection(member, collection, timeout=120)
    remote.connect()
    return remote
