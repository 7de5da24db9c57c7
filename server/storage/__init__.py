"""Storage backends behind one interface (server.storage.base.Storage)."""

from server.storage.base import Storage


def open_storage(url: str) -> Storage:
    """Open the backend a config names: 'sqlite:PATH' or a 'mongodb://' URL."""
    scheme, _, rest = url.partition(":")
    if scheme == "sqlite":
        from server.storage.sqlite import SqliteStorage

        return SqliteStorage(rest)
    raise ValueError(f"unsupported storage {url!r}; use 'sqlite:PATH'")
