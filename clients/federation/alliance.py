"""`taxii-fed federation up`: the members' nodes that this machine runs, plus the mirrors between them."""

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from taxii_federation.clients.federation.config import FederationConfig
from taxii_federation.clients.federation.scheduler import Federation
from taxii_federation.server.config import load_node_config
from taxii_federation.server.serve import RunningNode, start_node


@dataclass
class RunningAlliance:
    nodes: dict[str, RunningNode]
    federation: Federation

    def stop(self) -> None:
        self.federation.stop()
        for node in self.nodes.values():
            node.stop()


def start_alliance(config: FederationConfig, run_links: bool = True) -> RunningAlliance:
    """Start every member with a `node_config` on the host and port of its URL, then (unless told not to)
    run every link continuously."""
    nodes: dict[str, RunningNode] = {}
    try:
        for member in config.members.values():
            if member.node_config is None:
                continue
            address = urlsplit(member.url)
            node_config = replace(
                load_node_config(member.node_config), host=address.hostname, port=address.port or 80
            )
            if member.node_tls is not None:
                node_config = replace(node_config, tls=member.node_tls)
            nodes[member.name] = start_node(node_config)
        federation = Federation(config)
        if run_links:
            federation.start()
    except BaseException:
        for node in nodes.values():
            node.stop()
        raise
    return RunningAlliance(nodes, federation)
