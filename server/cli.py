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


if __name__ == "__main__":
    main()
