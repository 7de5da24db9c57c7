"""The node's commands of `taxii-fed` (serve, users, storage, audit); clients/cli.py assembles the whole
command.

They parse arguments and call the functions tests call too."""

import dataclasses
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from taxii_federation.server.auth import hash_password
from taxii_federation.server.config import ACCESS_LEVELS, ROLES, ConfigError, NodeConfig, load_node_config
from taxii_federation.server.extension import NO_EXTENSION, NodeExtension


def _load(config_path: str):
    try:
        return load_node_config(config_path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The node's YAML config file.",
)
@click.option("--host", default=None, help="Address to listen on (default: the config's listen.host).")
@click.option("--port", default=None, type=int, help="Port to listen on (default: the config's listen.port).")
@click.pass_context
def serve(ctx: click.Context, config_path: str, host: str | None, port: int | None) -> None:
    """Run one TAXII 2.1 node."""
    from taxii_federation.server.serve import serve_forever

    config = _load(config_path)
    if config.logs.audit is None:
        click.echo(
            f"warning: {config_path} sets no logs.audit: writes and refused logins leave no trace", err=True
        )
    # What the layers above add to a node (clients/cli.py: the federation's dashboard on a hub).
    extension_for: Callable[[NodeConfig], NodeExtension] = (ctx.obj or {}).get(NODE_EXTENSION_KEY, _none)
    serve_forever(config, host, port, extension_for(config))


NODE_EXTENSION_KEY = "node_extension"  # in the click context's obj: NodeConfig -> NodeExtension


def _none(config: NodeConfig) -> NodeExtension:
    return NO_EXTENSION


@click.group()
def users() -> None:
    """Manage node users."""


_PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (else: prompt twice)."
)
_NODE_CONFIG = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The node's YAML config file.",
)


def _new_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise click.ClickException("the two passwords differ; nothing was changed")
    if not password:
        raise click.ClickException("an empty password is not allowed")
    return password


@users.command("hash")
@_PASSWORD_STDIN
def users_hash(password_stdin: bool) -> None:
    """Print a password hash for a user's `password_hash` in a node config."""
    click.echo(hash_password(_new_password(password_stdin)))


def _edit_users(config_path: str, change) -> NodeConfig:
    from taxii_federation.server.config_edit import edit_users

    try:
        return edit_users(Path(config_path), change)
    except ConfigError as error:
        raise click.ClickException(f"{error}; the file is unchanged") from None


@users.command("add")
@click.argument("name")
@_NODE_CONFIG
@click.option(
    "--grant",
    "grants",
    multiple=True,
    metavar="API_ROOT:COLLECTIONS:ACCESS",
    help="e.g. 'alliance:*:read' or 'alliance:alliance-indicators,alliance-reference:read-write' "
    "(repeatable).",
)
@click.option("--role", "roles", multiple=True, type=click.Choice(ROLES), help="Repeatable.")
@_PASSWORD_STDIN
def users_add(name: str, config_path: str, grants: tuple, roles: tuple, password_stdin: bool) -> None:
    """Add a user to a node config (the password is hashed for you; a running node picks it up)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    from taxii_federation.server.config_edit import flow_list, parse_grant

    try:
        parsed = [parse_grant(grant) for grant in grants]
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    password_hash = hash_password(_new_password(password_stdin))

    def add(users) -> None:
        if name in users:
            raise ConfigError(
                f"{config_path}: user {name!r} exists; `taxii-fed users passwd {name}` changes it"
            )
        entry = CommentedMap(password_hash=password_hash)
        if roles:
            entry["roles"] = flow_list(list(roles))
        if parsed:
            entry["grants"] = CommentedSeq(parsed)
        users[name] = entry

    _edit_users(config_path, add)
    click.echo(f"user {name!r} added to {config_path}")


def _existing(config_path: str, users, name: str) -> dict:
    if name not in users:
        raise ConfigError(f"{config_path}: no user {name!r}; `taxii-fed users list` shows the users")
    return users[name]


@users.command("passwd")
@click.argument("name")
@_NODE_CONFIG
@_PASSWORD_STDIN
def users_passwd(name: str, config_path: str, password_stdin: bool) -> None:
    """Set a user's password (its previous password stops working on the running node within a second)."""
    password_hash = hash_password(_new_password(password_stdin))
    _edit_users(
        config_path, lambda users: _existing(config_path, users, name).update(password_hash=password_hash)
    )
    click.echo(f"password of {name!r} changed in {config_path}")


@users.command("remove")
@click.argument("name")
@_NODE_CONFIG
def users_remove(name: str, config_path: str) -> None:
    """Remove a user from a node config (the running node refuses it within a second)."""

    def remove(users) -> None:
        _existing(config_path, users, name)
        del users[name]

    _edit_users(config_path, remove)
    click.echo(f"user {name!r} removed from {config_path}")


@users.command("list")
@_NODE_CONFIG
def users_list(config_path: str) -> None:
    """The users of a node config, their roles and grants."""
    config = _load(config_path)
    for user in config.users.values():
        grants = ", ".join(
            f"{grant.api_root}:{_collection_name(config, grant.api_root, grant.collection)}:"
            f"{_ACCESS_NAMES[grant.can_read, grant.can_write]}"
            for grant in user.grants
        )
        roles = ",".join(sorted(user.roles)) or "-"
        click.echo(f"{user.name:<16} roles {roles:<20} grants {grants or '-'}")


_ACCESS_NAMES = {rights: name for name, rights in ACCESS_LEVELS.items()}


def _collection_name(config: NodeConfig, api_root: str, collection_id: str) -> str:
    root = config.find_api_root(api_root)
    collection = root.find_collection(collection_id) if root and collection_id != "*" else None
    return (collection.alias or collection.id) if collection else collection_id


@click.group()
def storage() -> None:
    """Move a node's data between storage backends."""


@storage.command("copy")
@click.option("--from", "source_url", required=True, help="Source store: sqlite:PATH or a mongodb:// URL.")
@click.option(
    "--to", "destination_url", required=True, help="Destination store, empty or from an earlier copy."
)
def storage_copy(source_url: str, destination_url: str) -> None:
    """Copy every object version (date_added and provenance kept) and status resource; safe to re-run."""
    from taxii_federation.server.storage import open_storage
    from taxii_federation.server.storage.copy import copy_storage

    copied = 0

    def progress(collection_id: str, count: int) -> None:
        nonlocal copied
        copied += count
        if sys.stderr.isatty():
            click.echo(f"\rcopying collection {collection_id}: {copied} versions", nl=False, err=True)

    source, destination = open_storage(source_url), open_storage(destination_url)
    try:
        report = copy_storage(source, destination, progress)
        if sys.stderr.isatty():
            click.echo(err=True)
    finally:
        source.close()
        destination.close()
    click.echo(
        f"copied {report.collections} collections: {report.versions_read} versions read, "
        f"{report.versions_written} written (the rest were already there), {report.statuses} status resources"
    )


@storage.command("import-medallion")
@click.argument("data_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--to", "destination_url", required=True, help="The node's store: sqlite:PATH or a mongodb:// URL."
)
@click.option(
    "--catalogue",
    "catalogue_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the collection catalogue that serves the imported collections.",
)
def storage_import_medallion(data_file: str, destination_url: str, catalogue_path: str) -> None:
    """Load a medallion memory-backend data file (objects, manifests, status) into a node's store."""
    from pathlib import Path

    from taxii_federation.server.storage import open_storage
    from taxii_federation.server.storage.medallion_import import import_medallion, write_catalogue

    destination = open_storage(destination_url)
    try:
        report = import_medallion(Path(data_file), destination)
    except (KeyError, TypeError, ValueError) as error:
        raise click.ClickException(
            f"{data_file}: not a medallion data file this can read ({error!r})"
        ) from None
    finally:
        destination.close()
    write_catalogue(report.catalogue, Path(catalogue_path))
    click.echo(
        f"imported {len(report.collections)} collections: {report.versions} versions "
        f"({report.written} new), {report.statuses} status resources; catalogue in {catalogue_path}"
    )


@click.command()
@click.argument("object_id")
@click.option(
    "--config",
    "config_paths",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="A node config; repeat it to follow the object across nodes.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def audit(object_id: str, config_paths: tuple[str, ...], as_json: bool) -> None:
    """Who published OBJECT_ID, when, and through which link: every version each node holds (its storage
    records origin and link) with the audit lines that posted it (user, time, status id)."""
    from taxii_federation.server.observability.audit import object_history

    history = [entry for path in config_paths for entry in object_history(_load(path), object_id)]
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(entry) for entry in history], indent=2))
    for entry in [] if as_json else history:
        came = (
            "published here"
            if entry.origin_node in (None, entry.node) and not entry.link
            else f"published at {entry.origin_node}, came through link {entry.link}"
        )
        click.echo(
            f"{entry.node}: {entry.collection}: version {entry.version}, added {entry.date_added}, {came}"
        )
        for post in entry.posts:
            click.echo(
                f"    posted {post['time']} by {post['user']} from {post['remote']} "
                f"(status {post['status_id']}: {post['stored']} of {post['total']} stored)"
            )
        if not entry.posts:
            click.echo("    no audit line for it (no audit log kept, or it rotated away)")
    if not history:
        raise click.ClickException(f"no node of {', '.join(config_paths)} holds {object_id}")


COMMANDS = (serve, users, storage, audit)
