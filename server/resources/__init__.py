"""One module per TAXII 2.1 resource (§4 and §5); each exposes a Flask blueprint."""

from taxii_federation.server.resources import (
    api_root,
    collections,
    discovery,
    manifest,
    objects,
    status,
    versions,
)

BLUEPRINTS = (
    discovery.blueprint,
    api_root.blueprint,
    status.blueprint,
    collections.blueprint,
    objects.blueprint,
    manifest.blueprint,
    versions.blueprint,
)
