"""How a page of stored versions becomes a paged TAXII response: `more`, `next` and the
X-TAXII-Date-Added-First/Last headers (TAXII 2.1 §3.4.1)."""

from dataclasses import replace

from flask import request

from taxii_federation.server.filters import encode_next, parse_query
from taxii_federation.server.node import current_node
from taxii_federation.server.storage.base import ObjectQuery, Page
from taxii_federation.server.timestamps import format_micros


def read_page(
    allowed: set[str],
    collection_id: str,
    scope: str,
    object_id: str | None = None,
    with_bodies: bool = True,
) -> tuple[ObjectQuery, Page]:
    node = current_node()
    args = request.args.to_dict(flat=False)
    query = parse_query(args, allowed, collection_id, node.config.max_page_size, scope, object_id)
    # Returned as run, so that a held read (server/held_reads.py) reads again with the same page limits.
    query = replace(query, with_bodies=with_bodies, max_bytes=node.config.max_page_bytes)
    return query, node.storage.query(query)


def page_fields(query: ObjectQuery, page: Page, scope: str) -> dict:
    """`more`, and `next` whenever `more` is true (taxii2-client pages only by `next`)."""
    fields: dict = {"more": page.more}
    if page.more:
        fields["next"] = encode_next(query, scope, page.items[-1].date_added)
    return fields


def date_added_headers(page: Page) -> dict[str, str]:
    if not page.items:
        return {}
    return {
        "X-TAXII-Date-Added-First": format_micros(page.items[0].date_added),
        "X-TAXII-Date-Added-Last": format_micros(page.items[-1].date_added),
    }
