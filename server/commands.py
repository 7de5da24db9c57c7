"""The node's commands of `taxii-fed` (serve, users, storage); clients/cli.py assembles the whole command.

They parse arguments and call the functions tests call too."""

import getpass
import sys

import click

from taxii_federation.server.auth import hash_password
from taxii_federation.server.config import ConfigError, load_node_config


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
def serve(config_path: str, host: str | None, port: int | None) -> None:
    """Run one TAXII 2.1 node."""
    from taxii_federation.server.serve import serve_forever

    serve_forever(_load(config_path), host, port)


@click.group()
def users() -> None:
    """Manage node users."""


@users.command("hash")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_hash(password_stdin: bool) -> None:
    """Print a password hash for a user's `password_hash` in a node config."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise click.ClickException("the two passwords differ; nothing was printed")
    if not password:
        raise click.ClickException("an empty password is not allowed")
    click.echo(hash_password(password))


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


COMMANDS = (serve, users, storage)
