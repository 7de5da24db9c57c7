"""`taxii-fed federation up` and `taxii-fed mirror`: the members' nodes that this machine runs (up only),
plus the links between all members; `apply` rebuilds both from a changed config while running."""

import logging
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from taxii_federation.clients.federation.config import FederationConfig, Member
from taxii_federation.clients.federation.reload import without_paused
from taxii_federation.clients.federation.scheduler import Federation
from taxii_federation.clients.federation.state import FederationState
from taxii_federation.server.config import load_node_config
from taxii_federation.server.serve import RunningNode, start_node

log = logging.getLogger(__name__)


def _start_member_node(member: Member, config: FederationConfig) -> RunningNode:
    """The member's node on the host and port of its URL; the hub's also serves the federation's pages."""
    address = urlsplit(member.url)
    node_config = replace(
        load_node_config(member.node_config), host=address.hostname, port=address.port or 80
    )
    if member.node_tls is not None:
        node_config = replace(node_config, tls=member.node_tls)
    if member.name == config.hub and config.source is not None:
        from taxii_federation.clients.federation.hub import hub_extension

        return start_node(node_config, extension=hub_extension(config.source, config.demo_pki))
    return start_node(node_config)


def _runs_here(member: Member | None) -> tuple | None:
    return (member.url, member.node_config) if member is not None and member.node_config else None


@dataclass
class RunningAlliance:
    config: FederationConfig
    nodes: dict[str, RunningNode]
    federation: Federation
    run_links: bool = True
    run_nodes: bool = True
    errors: list[str] = field(default_factory=list)  # what the last apply could not do

    def apply(self, config: FederationConfig) -> None:
        """Run `config` instead: links rebuilt (their checkpoints are in the state file, so each continues
        where it stopped), nodes of new members started, of removed or moved members stopped."""
        self.federation.stop()
        self.errors = []
        if self.run_nodes:
            for name in list(self.nodes):
                if _runs_here(config.members.get(name)) != _runs_here(self.config.members.get(name)):
                    self.nodes.pop(name).stop()
            for member in config.members.values():
                if member.node_config is not None and member.name not in self.nodes:
                    try:
                        self.nodes[member.name] = _start_member_node(member, config)
                    except (OSError, ValueError) as error:
                        self.errors.append(f"node {member.name} did not start: {error}")
                        log.error("node %s did not start: %s", member.name, error)
        self.config = config
        self.federation = Federation(without_paused(config), self.federation.state)
        if self.run_links:
            self.federation.start()
        log.info("federation config applied: %d links", len(self.federation.links))

    def stop(self) -> None:
        self.federation.stop()
        for node in self.nodes.values():
            node.stop()


def start_alliance(
    config: FederationConfig, run_links: bool = True, run_nodes: bool = True
) -> RunningAlliance:
    """Start every member with a `node_config` (unless `run_nodes` is off: `mirror` runs links only), then,
    unless told not to, run every link of a member that is not paused continuously."""
    nodes: dict[str, RunningNode] = {}
    try:
        for member in config.members.values():
            if run_nodes and member.node_config is not None:
                nodes[member.name] = _start_member_node(member, config)
        federation = Federation(without_paused(config), FederationState(config.state_path))
        if run_links:
            federation.start()
    except BaseException:
        for node in nodes.values():
            node.stop()
        raise
    return RunningAlliance(config, nodes, federation, run_links, run_nodes)
