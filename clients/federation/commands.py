"""The federation's commands of `taxii-fed`: `federation up|status|check|add-member` and `mirror`."""

import json
import sys
from pathlib import Path

import click

from taxii_federation.server.config import ConfigError


def _load_federation(config_path: str, demo_pki: Path | None = None):
    from taxii_federation.clients.federation.reload import FederationConfigFiles

    try:
        return FederationConfigFiles(config_path, demo_pki)
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


@click.group()
def federation() -> None:
    """Run the alliance's nodes and mirrors; show federation health."""


_TLS_OPTION = click.option(
    "--tls",
    is_flag=True,
    help="The demo over HTTPS with mTLS between nodes, with the certificates of `taxii-fed pki init`.",
)
_PKI_OPTION = click.option(
    "--pki",
    "pki_folder",
    default="var/pki",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder of the demo CA and certificates.",
)


def _demo_pki(config_path: str, tls: bool, pki_folder: str, create: bool = False) -> Path | None:
    """With --tls, the folder of the demo CA (made first if `create` and it is missing); else None."""
    if not tls:
        return None
    from taxii_federation.clients.federation.pki import init_demo_pki

    folder = Path(pki_folder)
    if not (folder / "ca.crt").exists():
        if not create:
            raise click.ClickException(f"no demo CA in {folder}; run `taxii-fed pki init` first")
        init_demo_pki(_load_federation(config_path).config, folder)
        click.echo(f"made the demo CA and certificates in {folder} (taxii-fed pki init)")
    return folder


def _check_local_members(config) -> None:
    """What `federation up` refuses to start with: a local member whose mirror account would not work."""
    from taxii_federation.clients.federation.check import check_federation

    failures = [finding for finding in check_federation(config, offline_only=True) if not finding.ok]
    if failures:
        raise click.ClickException(
            "nothing was started:\n" + "\n".join(str(f) for f in failures) + "\n(taxii-fed federation check)"
        )


@federation.command("up")
@_FEDERATION_OPTION
@_TLS_OPTION
@_PKI_OPTION
def federation_up(config_path: str, tls: bool, pki_folder: str) -> None:
    """Start every member node this config runs, plus all mirrors, until Ctrl-C. A change to the config
    files (or SIGHUP) is applied while running; checkpoints are kept."""
    from taxii_federation.clients.federation.alliance import start_alliance

    files = _load_federation(config_path, _demo_pki(config_path, tls, pki_folder, create=True))
    config = files.config
    _check_local_members(config)
    alliance = start_alliance(config)
    click.echo(
        f"federation up: hub '{config.hub}', {len(alliance.federation.links)} links, "
        f"woken by taxii-federation sources, other servers polled every {config.poll_interval:g} s; "
        f"state in {config.state_path}"
    )
    for name, node in alliance.nodes.items():
        click.echo(f"  {name:<4} {node.url}taxii2/   (API root {config.members[name].api_root}/)")
    if config.hub in alliance.nodes:
        click.echo(f"dashboard: {alliance.nodes[config.hub].url}dashboard/ (an operator's login of the hub)")
    if config.demo_users:
        click.echo("demo users (demo only):")
        for user in config.demo_users:
            click.echo(f"  {user.member:<4} {user.user:<10} password {user.password:<15} {user.can}")
    click.echo("taxii-fed federation status shows each link's lag; Ctrl-C stops everything.")
    sys.stdout.flush()  # a log file or pipe gets the addresses now, not when the alliance stops
    _run_until_stopped(files, alliance)


def _run_until_stopped(files, alliance) -> None:
    """Apply config changes (file edits, SIGHUP) until SIGTERM or Ctrl-C, then stop everything."""
    import signal
    import threading

    from taxii_federation.clients.federation.reload import ConfigWatcher

    def apply(config) -> None:
        alliance.apply(config)
        started = ", ".join(sorted(alliance.nodes))
        click.echo(f"config reloaded: {len(alliance.federation.links)} links; nodes {started}", err=True)
        for error in alliance.errors:
            click.echo(f"  {error}", err=True)

    watcher = ConfigWatcher(files, apply)
    watcher.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: watcher.hangup())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    watcher.stop()
    alliance.stop()


@federation.command("status")
@_FEDERATION_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON document (links and members).")
@_TLS_OPTION
@_PKI_OPTION
def federation_status(config_path: str, as_json: bool, tls: bool, pki_folder: str) -> None:
    """Per link: state, checkpoint, lag, last success, last error, held-back counts. Exits 1 when any link
    is failing (for monitoring)."""
    from dataclasses import asdict

    from taxii_federation.clients.federation.monitor import FederationMonitor
    from taxii_federation.clients.federation.status import format_report

    try:
        monitor = FederationMonitor(
            config_path, cache_seconds=0, demo_pki=_demo_pki(config_path, tls, pki_folder)
        )
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    try:
        links = monitor.links()
        if as_json:
            members = [asdict(member) for member in monitor.members()]
            click.echo(
                json.dumps({"links": [link.as_json() for link in links], "members": members}, indent=2)
            )
        else:
            click.echo(format_report(links))
    finally:
        monitor.close()
    raise SystemExit(1 if any(link.health == "failing" for link in links) else 0)


@federation.command("check")
@_FEDERATION_OPTION
@_TLS_OPTION
@_PKI_OPTION
def federation_check(config_path: str, tls: bool, pki_folder: str) -> None:
    """Validate every config and try each member's mirror credentials and collections, before anything
    starts: members this machine runs against their node config, the others over TAXII."""
    from taxii_federation.clients.federation.check import check_federation

    findings = check_federation(_load_federation(config_path, _demo_pki(config_path, tls, pki_folder)).config)
    for finding in findings:
        click.echo(str(finding))
    failed = [finding for finding in findings if not finding.ok]
    click.echo(f"{len(findings) - len(failed)} checks passed, {len(failed)} failed")
    raise SystemExit(1 if failed else 0)


@federation.command("add-member")
@click.argument("name")
@_FEDERATION_OPTION
@click.option("--url", required=True, help="The member node's base URL, e.g. http://127.0.0.1:6104/.")
@click.option(
    "--agreement",
    "agreements",
    multiple=True,
    help="Alias of an agreed collection it joins (repeatable; default: every agreement).",
)
@click.option("--remote", is_flag=True, help="The member runs its node itself: `federation up` does not.")
@click.option("--node-config", type=click.Path(dir_okay=False), help="Where to write its node config.")
@click.option("--catalogue", type=click.Path(dir_okay=False), help="Where to write its catalogue.")
@click.option("--storage", help="Its storage (default: a SQLite file beside the hub's).")
def federation_add_member(
    name: str,
    config_path: str,
    url: str,
    agreements: tuple[str, ...],
    remote: bool,
    node_config: str | None,
    catalogue: str | None,
    storage: str | None,
) -> None:
    """Add a member: its node config, catalogue, mirror account and secret, its entry in the federation
    file and in the agreements it joins. A running federation picks it up."""
    from taxii_federation.clients.federation.membership import add_member

    try:
        added = add_member(
            Path(config_path),
            name,
            url,
            agreements,
            remote,
            Path(node_config) if node_config else None,
            Path(catalogue) if catalogue else None,
            storage,
        )
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"member {name} added, in the agreements on {', '.join(added.agreements)}:")
    click.echo(f"  node config {added.node_config}")
    click.echo(f"  catalogue   {added.catalogue}")
    click.echo(f"  mirror secret {added.secret} (user 'mirror' of its node)")
    for note in added.notes:
        click.echo(f"  note: {note}")
    click.echo(
        f"next: `taxii-fed users add cert-{name} --config {added.node_config} "
        f"--grant '{added.api_root}:*:read-write'` for its CERT, then `taxii-fed federation check`"
    )


@click.command()
@_FEDERATION_OPTION
@click.option("--once", is_flag=True, help="One pass over every link, then exit (non-zero if a link failed).")
def mirror(config_path: str, once: bool) -> None:
    """Run the federation links against nodes that run elsewhere (config changes and SIGHUP reload)."""
    from taxii_federation.clients.federation.alliance import start_alliance

    files = _load_federation(config_path)
    config = files.config
    running = start_alliance(config, run_links=not once, run_nodes=False)
    if once:
        failed = False
        for name, result in running.federation.run_once().items():
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
    click.echo(
        f"mirroring {len(running.federation.links)} links, woken by taxii-federation sources, other servers "
        f"polled every {config.poll_interval:g} s; Ctrl-C stops"
    )
    _run_until_stopped(files, running)


@click.group()
def pki() -> None:
    """The demo alliance's certificate authority."""


@pki.command("init")
@_FEDERATION_OPTION
@_PKI_OPTION
def pki_init(config_path: str, pki_folder: str) -> None:
    """Make a local CA (kept if present) and, per member, a node certificate and a mirror certificate."""
    from taxii_federation.clients.federation.pki import init_demo_pki, mirror_subject

    config = _load_federation(config_path).config
    init_demo_pki(config, Path(pki_folder))
    click.echo(f"demo CA {pki_folder}/ca.crt; per member node-NAME.crt/.key and mirror-NAME.crt/.key:")
    for name in config.members:
        click.echo(f"  {name:<4} mirror certificate subject {mirror_subject(name)}")
    click.echo("taxii-fed federation up --tls runs the demo over HTTPS with them")


COMMANDS = (federation, mirror, pki)
