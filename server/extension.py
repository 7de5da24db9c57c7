"""What a layer above the node adds to it, handed in at start (server/ never imports that layer).

The hub's node serves the federation's dashboard, link metrics and member readiness this way: the
clients layer builds a NodeExtension and passes it to `create_app` / `start_node`.
"""

from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class NodeExtension:
    # Blueprints authenticate their own requests: the node's TAXII login and Accept check skip them.
    blueprints: tuple[Blueprint, ...] = ()
    # prometheus_client collectors, asked at every scrape of the node's /metrics.
    collectors: tuple[Collector, ...] = ()
    # Each returns None when ready, else what is wrong (logged; /readyz itself answers only 'not ready').
    readiness_checks: tuple[Callable[[], str | None], ...] = ()
    close: Callable[[], None] | None = None


NO_EXTENSION = NodeExtension()
