"""What the hub's node serves about the federation, composed here because it needs both layers: the
dashboard, the link metrics and member readiness, handed to the node as a NodeExtension.

With `taxii-fed federation up` the hub's node gets it from the running federation; with `taxii-fed serve`
(links run by `taxii-fed mirror`, possibly in another process sharing the state file) the hub's node
config names the federation file under `federation:`.
"""

from pathlib import Path

from taxii_federation.clients.federation.dashboard import dashboard_blueprint
from taxii_federation.clients.federation.metrics import LinkCollector, members_ready
from taxii_federation.clients.federation.monitor import FederationMonitor
from taxii_federation.server.config import NodeConfig
from taxii_federation.server.extension import NO_EXTENSION, NodeExtension


def hub_extension(federation_file: Path, demo_pki: Path | None = None) -> NodeExtension:
    monitor = FederationMonitor(federation_file, demo_pki=demo_pki)
    return NodeExtension(
        blueprints=(dashboard_blueprint(monitor),),
        collectors=(LinkCollector(monitor),),
        readiness_checks=(lambda: members_ready(monitor),),
        close=monitor.close,
    )


def node_extension(config: NodeConfig) -> NodeExtension:
    """For `taxii-fed serve`: the federation's pages on a node whose config names a federation file."""
    return hub_extension(config.federation) if config.federation else NO_EXTENSION
