"""Storage backends behind one interface (server.storage.base.Storage)."""

from taxii_federation.server.storage.base import Storage


def open_storage(url: str) -> Storage:
    """Open the backend a config names: 'sqlite:PATH' or a 'mongodb://host/database?options' URL."""
    scheme, _, rest = url.partition(":")
    if scheme == "sqlite":
        from taxii_federation.server.storage.sqlite import SqliteStorage

        return SqliteStorage(rest)
    if scheme in ("mongodb", "mongodb+srv"):
        from taxii_federation.server.storage.mongodb import MongoStorage

        return MongoStorage(url)
    raise ValueError(f"unsupported storage {url!r}; use 'sqlite:PATH' or a 'mongodb://' URL")
