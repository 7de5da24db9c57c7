"""`taxii-fed`, the one command line: it parses arguments and calls the functions tests call too."""

import getpass
import logging
import sys

import click

from server.auth import hash_password
from server.config import ConfigError, load_node_config


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log what the node does.")
def main(verbose: bool) -> None:
    """taxii-federation: a TAXII 2.1 node and the tools around it."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def _load(config_path: str):
    try:
        return load_node_config(config_path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


@main.command()
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
    from server.serve import serve_forever

    serve_forever(_load(config_path), host, port)


@main.group()
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


def _load_federation(config_path: str):
    from clients.federation_config import load_federation_config

    try:
        return load_federation_config(config_path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


_FEDERATION_OPTION = click.option(
    "--config",
    "config_path",
    default="config/federation.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The federation file: members, agreements, state.",
)


@main.group()
def federation() -> None:
    """Run the alliance's nodes and mirrors; show federation health."""


@federation.command("up")
@_FEDERATION_OPTION
def federation_up(config_path: str) -> None:
    """Start every member node this config runs, plus all mirrors, until Ctrl-C."""
    from clients.alliance import start_alliance

    config = _load_federation(config_path)
    alliance = start_alliance(config)
    click.echo(
        f"federation up: hub '{config.hub}', {len(alliance.federation.links)} links, "
        f"poll every {config.poll_interval:g} s; state in {config.state_path}"
    )
    for name, node in alliance.nodes.items():
        click.echo(f"  {name:<4} {node.url}taxii2/   (API root {config.members[name].api_root}/)")
    if config.demo_users:
        click.echo("demo users (demo only):")
        for user in config.demo_users:
            click.echo(f"  {user.member:<4} {user.user:<10} password {user.password:<15} {user.can}")
    click.echo("taxii-fed federation status shows each link's lag; Ctrl-C stops everything.")
    _wait_for_interrupt()
    alliance.stop()


def _wait_for_interrupt() -> None:
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass


@federation.command("status")
@_FEDERATION_OPTION
def federation_status(config_path: str) -> None:
    """Per link: checkpoint, lag, last success, last error, held-back counts."""
    from clients.federation_status import federation_report, format_report

    reports = federation_report(_load_federation(config_path))
    click.echo(format_report(reports))


@main.command()
@_FEDERATION_OPTION
@click.option("--once", is_flag=True, help="One pass over every link, then exit (non-zero if a link failed).")
def mirror(config_path: str, once: bool) -> None:
    """Run the federation links against nodes that run elsewhere."""
    from clients.federation import Federation

    config = _load_federation(config_path)
    running = Federation(config)
    if once:
        failed = False
        for name, result in running.run_once().items():
            if isinstance(result, Exception):
                failed = True
                click.echo(f"FAIL {name}: {result}")
            else:
                held = sum(result.held.values())
                click.echo(
                    f"OK   {name}: seen {result.seen}, stored {result.stored}, "
                    f"already present {result.already_present}, echoes skipped {result.echoes}, "
                    f"held back {held}"
                )
        raise SystemExit(1 if failed else 0)
    running.start()
    click.echo(f"mirroring {len(running.links)} links every {config.poll_interval:g} s; Ctrl-C stops")
    _wait_for_interrupt()
    running.stop()


@main.group()
def storage() -> None:
    """Move a node's data between storage backends."""


@storage.command("copy")
@click.option("--from", "source_url", required=True, help="Source store: sqlite:PATH or a mongodb:// URL.")
@click.option(
    "--to", "destination_url", required=True, help="Destination store, empty or from an earlier copy."
)
def storage_copy(source_url: str, destination_url: str) -> None:
    """Copy every object version (date_added and provenance kept) and status resource; safe to re-run."""
    from server.storage import open_storage
    from server.storage.copy import copy_storage

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

    from server.storage import open_storage
    from server.storage.medallion_import import import_medallion, write_catalogue

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


def _register_client_tools() -> None:
    from clients.tools_cli import register

    register(main)


_register_client_tools()

if __name__ == "__main__":
    main()
