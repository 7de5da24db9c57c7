"""Editing config files in place as an operator would by hand: comments, order and quoting kept (ruamel.yaml
round-trip), the result validated before it replaces the file, and the replacement atomic (a reader sees
the old file or the new one, never half of one). Concurrent editors take turns on a lock of the folder.

`users add|passwd|remove|list` (server/commands.py) and `federation add-member` (clients) edit through here.
"""

import contextlib
import fcntl
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.util import load_yaml_guess_indent

from taxii_federation.server.config import ACCESS_LEVELS, ConfigError, NodeConfig, load_node_config


def _yaml(sequence_indent: int = 4, dash_offset: int = 2) -> YAML:
    """Round-trip YAML written in a file's own indentation (the configs in config/ use the defaults)."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=max(2, sequence_indent - dash_offset), sequence=sequence_indent, offset=dash_offset)
    yaml.width = 4096  # never wrap a long hash or list onto a second line
    return yaml


@contextlib.contextmanager
def _edit_lock(path: Path) -> Iterator[None]:
    # The folder, not the file: the file is replaced by each edit, so a lock on it would lock nothing.
    folder = os.open(path.resolve().parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock


def load_for_edit(path: Path) -> tuple[Any, YAML]:
    """The file's data for a round-trip edit, and the YAML instance that writes it back in its style."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the file: {error.strerror}") from None
    _, sequence_indent, dash_offset = load_yaml_guess_indent(text)
    yaml = _yaml(sequence_indent or 4, dash_offset if dash_offset is not None else 2)
    return yaml.load(text), yaml


def write_atomically(path: Path, text: str, validate: Callable[[Path], object] | None = None) -> None:
    """Write `text` to a temporary file beside `path` (same folder: relative paths in it resolve the same),
    let `validate` read it, then rename it over `path`. A failed validation leaves `path` as it was."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if path.exists():
            before = path.stat()
            # The node may run as another user that reads the file through its group (the systemd unit's
            # taxii-fed, docs/deployment.md): an edit by root must not leave a file only root can read.
            if (before.st_uid, before.st_gid) != (os.geteuid(), os.getegid()):
                with contextlib.suppress(PermissionError):
                    os.chown(temporary, before.st_uid, before.st_gid)
            os.chmod(temporary, before.st_mode & 0o7777)
        if validate is not None:
            try:
                validate(temporary)
            except ConfigError as error:
                raise ConfigError(str(error).replace(str(temporary), str(path))) from None
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def edit_yaml(path: Path, change: Callable[[Any], None], validate: Callable[[Path], object]) -> None:
    """Load `path` for a round-trip edit, apply `change` to its data, validate and replace it."""
    with _edit_lock(path):
        data, yaml = load_for_edit(path)
        change(data)
        write_atomically(path, dump(data, yaml), validate)


def dump(data: Any, yaml: YAML | None = None) -> str:
    text = io.StringIO()
    (yaml or _yaml()).dump(data, text)
    return text.getvalue()


def flow_map(**items: Any) -> CommentedMap:
    """A mapping written on one line, as grants are in config/."""
    mapping = CommentedMap(items)
    mapping.fa.set_flow_style()
    return mapping


def flow_list(items: list) -> CommentedSeq:
    sequence = CommentedSeq(items)
    sequence.fa.set_flow_style()
    return sequence


def parse_grant(text: str) -> CommentedMap:
    """`API_ROOT:COLLECTIONS:ACCESS`: `alliance:*:read`, `alliance:alliance-indicators,x:read-write`."""
    parts = text.split(":")
    if len(parts) != 3 or not all(parts) or parts[2] not in ACCESS_LEVELS:
        raise ConfigError(
            f"grant {text!r} is not API_ROOT:COLLECTIONS:ACCESS, e.g. 'alliance:*:read' or "
            f"'alliance:alliance-indicators:read-write' (access: {', '.join(ACCESS_LEVELS)})"
        )
    api_root, collections, access = parts
    names: str | CommentedSeq = "*" if collections == "*" else flow_list(collections.split(","))
    return flow_map(api_root=api_root, collections=names, access=access)


def edit_users(path: Path, change: Callable[[CommentedMap], None]) -> NodeConfig:
    """Apply `change` to the `users` mapping of a node config; returns the config as it now is."""

    def change_users(data: Any) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: not a node config (a YAML mapping)")
        if data.get("users") is None:
            data["users"] = CommentedMap()
        change(data["users"])

    edit_yaml(path, change_users, load_node_config)
    return load_node_config(path)
