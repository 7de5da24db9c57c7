"""The federation's commands of `taxii-fed`: `federation up|status` and `mirror`."""

import click

from taxii_federation.server.config import ConfigError


def _load_federation(config_path: str):
    from taxii_federation.clients.federation.config import load_federation_config

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


def _load_maybe_tls(config_path: str, tls: bool, pki_folder: str, create: bool = False):
    from pathlib import Path

    from taxii_federation.clients.federation.pki import init_demo_pki, with_demo_tls

    config = _load_federation(config_path)
    if not tls:
        return config
    folder = Path(pki_folder)
    if not (folder / "ca.crt").exists():
        if not create:
            raise click.ClickException(f"no demo CA in {folder}; run `taxii-fed pki init` first")
        init_demo_pki(config, folder)
        click.echo(f"made the demo CA and certificates in {folder} (taxii-fed pki init)")
    return with_demo_tls(config, folder)


@federation.command("up")
@_FEDERATION_OPTION
@_TLS_OPTION
@_PKI_OPTION
def federation_up(config_path: str, tls: bool, pki_folder: str) -> None:
    """Start every member node this config runs, plus all mirrors, until Ctrl-C."""
    from taxii_federation.clients.federation.alliance import start_alliance

    config = _load_maybe_tls(config_path, tls, pki_folder, create=True)
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
@_TLS_OPTION
@_PKI_OPTION
def federation_status(config_path: str, tls: bool, pki_folder: str) -> None:
    """Per link: checkpoint, lag, last success, last error, held-back counts."""
    from taxii_federation.clients.federation.status import federation_report, format_report

    reports = federation_report(_load_maybe_tls(config_path, tls, pki_folder))
    click.echo(format_report(reports))


@click.command()
@_FEDERATION_OPTION
@click.option("--once", is_flag=True, help="One pass over every link, then exit (non-zero if a link failed).")
def mirror(config_path: str, once: bool) -> None:
    """Run the federation links against nodes that run elsewhere."""
    from taxii_federation.clients.federation.scheduler import Federation

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


@click.group()
def pki() -> None:
    """The demo alliance's certificate authority."""


@pki.command("init")
@_FEDERATION_OPTION
@_PKI_OPTION
def pki_init(config_path: str, pki_folder: str) -> None:
    """Make a local CA (kept if present) and, per member, a node certificate and a mirror certificate."""
    from pathlib import Path

    from taxii_federation.clients.federation.pki import init_demo_pki, mirror_subject

    config = _load_federation(config_path)
    init_demo_pki(config, Path(pki_folder))
    click.echo(f"demo CA {pki_folder}/ca.crt; per member node-NAME.crt/.key and mirror-NAME.crt/.key:")
    for name in config.members:
        click.echo(f"  {name:<4} mirror certificate subject {mirror_subject(name)}")
    click.echo("taxii-fed federation up --tls runs the demo over HTTPS with them")


COMMANDS = (federation, mirror, pki)
