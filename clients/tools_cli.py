"""The CERT and SOC commands of `taxii-fed`: discover, publish, poll. They parse arguments and call the
functions in clients/ that the tests call too."""

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click

from taxii_federation.clients.credentials import CredentialsError, load_credentials
from taxii_federation.clients.discover import discover, open_collection
from taxii_federation.clients.poll import Cursor, Output, follow, poll_once
from taxii_federation.clients.publish import BundleError, publish, summary
from taxii_federation.clients.taxii import RemoteError

_CREDENTIALS = click.option(
    "--credentials",
    "credentials_file",
    type=click.Path(dir_okay=False),
    help="YAML file with 'user' and 'password' (else TAXII_FED_USER/TAXII_FED_PASSWORD, else a prompt).",
)
_USER = click.option(
    "--user", default=None, help="Account name (the password never comes from the command line)."
)
_CA = click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CA certificate(s) to verify the node's TLS certificate (verification is always on).",
)
_COLLECTION = click.option(
    "--collection",
    required=True,
    help="The collection's URL (…/API-ROOT/collections/ID/), or its id or alias with --url.",
)
_URL = click.option(
    "--url", default=None, help="The node (its base or discovery URL) when --collection is an alias."
)
_API_ROOT = click.option(
    "--api-root", default=None, help="API root of the alias (default: the node's default)."
)


def _fail(message: str, code: int = 2):
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def _progress(label: str):
    """A counter on a terminal; nothing when stderr is a file or a pipe."""
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if sys.stderr.isatty():
            click.echo(f"\r{label}: {done} objects", nl=False, err=True)

    return advance


@click.command("discover")
@click.argument("url")
@_CREDENTIALS
@_USER
@_CA
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def discover_command(url, credentials_file, user, ca_bundle, as_json) -> None:
    """List the API roots and collections a node shows you, with your read/write access."""
    try:
        rows = discover(url, load_credentials(credentials_file, user), ca_bundle)
    except (CredentialsError, RemoteError) as error:
        _fail(str(error))
    if as_json:
        click.echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    click.echo(f"{'read':<5} {'write':<6} {'alias':<24} {'id':<37} {'title':<30} api root")
    for row in rows:
        click.echo(
            f"{'yes' if row.can_read else 'no':<5} {'yes' if row.can_write else 'no':<6} {row.alias:<24} "
            f"{row.id:<37} {row.title[:30]:<30} {row.api_root}"
        )


@click.command("publish")
@click.argument("files", nargs=-1, required=True)
@_COLLECTION
@_URL
@_API_ROOT
@_CREDENTIALS
@_USER
@_CA
@click.option("--skip-invalid", is_flag=True, help="Send the valid objects even if some are invalid.")
def publish_command(
    files, collection, url, api_root, credentials_file, user, ca_bundle, skip_invalid
) -> None:
    """Validate STIX bundles (files, folders, - for stdin) and publish them to a collection."""
    try:
        remote = open_collection(
            collection, load_credentials(credentials_file, user), url, api_root, ca_bundle
        )
        report = publish(list(files), remote, skip_invalid, _progress("published"))
    except (CredentialsError, RemoteError, BundleError) as error:
        _fail(str(error))
    if sys.stderr.isatty():
        click.echo(err=True)
    click.echo(summary(report))
    raise SystemExit(0 if report.ok else 1)


@click.command("poll")
@_COLLECTION
@_URL
@_API_ROOT
@_CREDENTIALS
@_USER
@_CA
@click.option("--out", "out", default="-", show_default=True, help="Output file, or - for standard output.")
@click.option(
    "--format", "output_format", type=click.Choice(["bundle", "jsonl"]), default="bundle", show_default=True
)
@click.option(
    "--cursor",
    "cursor_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Cursor file (default: OUT.cursor; none when writing to standard output).",
)
@click.option("--type", "types", multiple=True, help="Only these STIX types (repeatable).")
@click.option("--follow", "follow_", is_flag=True, help="Keep polling every --interval seconds.")
@click.option("--interval", type=float, default=60, show_default=True)
@click.option("--max-polls", type=int, default=None, help="With --follow: stop after this many polls.")
def poll_command(
    collection,
    url,
    api_root,
    credentials_file,
    user,
    ca_bundle,
    out,
    output_format,
    cursor_path,
    types,
    follow_,
    interval,
    max_polls,
) -> None:
    """Pull what is new in a collection since the last poll."""
    cursor_file = Path(cursor_path) if cursor_path else (None if out == "-" else Path(out + ".cursor"))
    try:
        remote = open_collection(
            collection, load_credentials(credentials_file, user), url, api_root, ca_bundle
        )
        cursor = Cursor.load(cursor_file, remote.url)
        output = Output(out, output_format, sys.stdout if out == "-" else None)
        if follow_:
            report = follow(remote, cursor, output, interval, max_polls, tuple(types), _poll_line(cursor))
            failed = f", {report.failed_polls} failed" if report.failed_polls else ""
            click.echo(
                f"followed {report.polls} polls{failed}: received {report.received} objects; "
                f"cursor {cursor.added_after or 'unchanged'}",
                err=True,
            )
            return
        received = poll_once(remote, cursor, output, tuple(types), _progress("received"))
    except (CredentialsError, RemoteError, ValueError) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    if sys.stderr.isatty():
        click.echo(err=True)
    click.echo(f"received {received} objects; cursor {cursor.added_after or 'unchanged'}", err=True)


def _poll_line(cursor: Cursor):
    """One line per poll of --follow: when, what came, where the cursor stands (or why the poll failed)."""

    def report(number: int, new: int, error: str | None) -> None:
        moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if error:
            click.echo(f"{moment} poll {number} failed: {error}; trying again", err=True)
        else:
            click.echo(
                f"{moment} poll {number}: {new} new objects; cursor {cursor.added_after or 'none'}", err=True
            )

    return report


COMMANDS = (discover_command, publish_command, poll_command)
