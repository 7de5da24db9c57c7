"""URL parameters of the paged TAXII resources (TAXII 2.1 §3.4, §3.5) and the `next` cursor.

`next` is stateless: it carries the date_added of the last item served plus a fingerprint of the query
it belongs to, so it stays valid across processes and restarts, and a cursor reused with other
filters is refused (TAXII 2.1 Appendix B) instead of silently skipping objects.
"""

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace

from taxii_federation.server.errors import TaxiiError
from taxii_federation.server.storage.base import VERSION_ALL, VERSION_FIRST, VERSION_LAST, ObjectQuery
from taxii_federation.server.timestamps import TimestampError, parse_micros

MATCH_FIELDS = ("id", "type", "version", "spec_version")
_SPEC_VERSIONS = {"2.0", "2.1"}
# A request names at most this many values per filter: each type is one index range, each id one lookup.
MAX_MATCH_VALUES = 100
_MAX_NEXT_LENGTH = 200  # the node's own cursors are about 60 characters
_MAX_MICROS = 2**63 - 1  # storage keeps date_added as a signed 64-bit integer


def _bad_parameter(description: str) -> TaxiiError:
    return TaxiiError(400, "Bad Request", description)


def _values(args: Mapping[str, list[str]], name: str) -> tuple[str, ...]:
    values: list[str] = []
    for raw in args.get(name, []):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
        if len(values) > MAX_MATCH_VALUES:
            raise _bad_parameter(f"{name} names more than {MAX_MATCH_VALUES} values; ask in several requests")
    return tuple(dict.fromkeys(values))


def _timestamp(text: str, name: str) -> int:
    try:
        return parse_micros(text)
    except TimestampError as error:
        raise _bad_parameter(f"{name}: {error}") from None


def _versions(args: Mapping[str, list[str]]) -> tuple[str | int, ...]:
    versions: list[str | int] = []
    for value in _values(args, "match[version]"):
        if value in (VERSION_ALL, VERSION_FIRST, VERSION_LAST):
            versions.append(value)
        else:
            versions.append(_timestamp(value, "match[version]"))
    return tuple(versions) or (VERSION_LAST,)


def _limit(args: Mapping[str, list[str]], max_page_size: int) -> int:
    raw = args.get("limit", [])
    if not raw:
        return max_page_size
    try:
        limit = int(raw[-1])
    except ValueError:
        limit = 0
    if limit <= 0:
        raise _bad_parameter(f"limit must be a positive whole number, got {raw[-1]!r}")
    return min(limit, max_page_size)


def check_known_parameters(args: Mapping[str, list[str]], allowed: set[str]) -> None:
    for name in args:
        if name.startswith("match[") and name not in allowed:
            supported = ", ".join(sorted(p for p in allowed if p.startswith("match["))) or "none"
            raise _bad_parameter(f"{name} is not supported here; supported match filters: {supported}")


def parse_query(
    args: Mapping[str, list[str]],
    allowed: set[str],
    collection_id: str,
    max_page_size: int,
    scope: str = "",
    object_id: str | None = None,
) -> ObjectQuery:
    """Turn URL parameters into a storage query. `scope` names the resource, so that a `next` from one
    resource cannot be replayed on another."""
    check_known_parameters(args, allowed)
    spec_versions = _values(args, "match[spec_version]")
    for value in spec_versions:
        if value not in _SPEC_VERSIONS:
            raise _bad_parameter(f"match[spec_version]: unknown STIX version {value!r}; use 2.0 or 2.1")
    added_after = args.get("added_after", [])
    query = ObjectQuery(
        collection_id=collection_id,
        limit=_limit(args, max_page_size),
        ids=(object_id,) if object_id else _values(args, "match[id]"),
        types=_values(args, "match[type]"),
        versions=_versions(args) if "match[version]" in allowed else (VERSION_ALL,),
        spec_versions=spec_versions,
        added_after=_timestamp(added_after[-1], "added_after") if added_after else None,
    )
    next_values = [value for value in args.get("next", []) if value]
    if next_values:
        query = replace(query, after=decode_next(next_values[-1], _fingerprint(query, scope)))
    return query


def _fingerprint(query: ObjectQuery, scope: str) -> str:
    key = json.dumps(
        [
            scope,
            query.collection_id,
            query.ids,
            query.types,
            [str(v) for v in query.versions],
            query.spec_versions,
            query.added_after,
        ]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def encode_next(query: ObjectQuery, scope: str, last_date_added: int) -> str:
    raw = json.dumps([_fingerprint(query, scope), last_date_added], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_next(token: str, fingerprint: str) -> int:
    try:
        if len(token) > _MAX_NEXT_LENGTH:
            raise ValueError("longer than any cursor this node issues")
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        token_fingerprint, after = json.loads(raw)
        if type(after) is not int or not 0 <= after <= _MAX_MICROS:
            raise ValueError("position is not a date_added")
    except (ValueError, TypeError, binascii.Error, RecursionError):
        raise _bad_parameter("next: not a value this node issued; start again without next") from None
    if token_fingerprint != fingerprint:
        raise _bad_parameter(
            "next: it belongs to a request with other filters; repeat that request's "
            "filters with it, or start again without next"
        )
    return after
