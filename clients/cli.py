"""`taxii-fed`, the one command line. It is assembled here, where both layers are visible: the node's
commands come from server/commands.py, the federation's from clients/federation/commands.py and the CERT
and SOC tools from clients/tools_cli.py (server/ never imports clients/)."""

import logging

import click

from taxii_federation.clients import tools_cli
from taxii_federation.clients.federation import commands as federation_commands
from taxii_federation.server import commands as node_commands
from taxii_federation.server.config import NodeConfig
from taxii_federation.server.extension import NodeExtension


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log what the node does.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """taxii-federation: a TAXII 2.1 node and the tools around it."""
    ctx.ensure_object(dict)[node_commands.NODE_EXTENSION_KEY] = _federation_pages
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def _federation_pages(config: NodeConfig) -> NodeExtension:
    """A hub's node config names its federation file: its node serves the dashboard and link metrics."""
    from taxii_federation.clients.federation.hub import node_extension

    return node_extension(config)


for command in (*node_commands.COMMANDS, *federation_commands.COMMANDS, *tools_cli.COMMANDS):
    main.add_command(command)

if __name__ == "__main__":
    main()
