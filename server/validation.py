"""STIX 2.1 validation of the objects of a POSTed envelope, one verdict per object.

Every object is checked on its own with the `stix2` library, so one bad object never spoils its
neighbours, and each refusal carries a message a CERT analyst can act on.
"""

import json
import re
from dataclasses import dataclass

import stix2
import stix2.exceptions

from server import stix_patterns
from server.storage.base import NewObject
from server.timestamps import TimestampError, parse_micros

stix_patterns.install()

_STIX_ID = re.compile(r"^([a-z0-9][a-z0-9-]*[a-z0-9])--[0-9a-fA-F-]{36}$")


@dataclass(frozen=True)
class Refusal:
    """An object that was not stored: its id and version when it had them, and why."""

    id: str | None
    version: str | None
    message: str


def version_of(obj: dict) -> int | None:
    """The version key of a STIX object: `modified`, else `created`, else none (TAXII 2.1 §3.4.3)."""
    stamp = obj.get("modified") or obj.get("created")
    return parse_micros(stamp) if stamp else None


def _describe(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    # stix2 speaks to programmers; the analyst reading a status cannot use a decorator.
    text = text.replace(" For custom types, use the CustomObject decorator.", "")
    return text.replace("\n", " ")


def validate_object(obj: object, position: int, allow_custom: bool) -> NewObject | Refusal:
    """Check one envelope entry; returns what to store, or why it was refused."""
    if not isinstance(obj, dict):
        return Refusal(None, None, f"object #{position} is not a JSON object")
    object_id = obj.get("id")
    stamp = obj.get("modified") or obj.get("created")
    version_text = stamp if isinstance(stamp, str) else None
    if not isinstance(object_id, str) or not _STIX_ID.match(object_id):
        return Refusal(
            None,
            version_text,
            f"object #{position} has no valid 'id' (expected '<type>--<UUID>'), got {object_id!r}",
        )
    if obj.get("spec_version") != "2.1":
        return Refusal(
            object_id,
            version_text,
            f"{object_id}: 'spec_version' must be '2.1'; this node stores STIX 2.1 only",
        )
    try:
        stix2.parse(obj, allow_custom=allow_custom, version="2.1")
        version = version_of(obj)
    except (stix2.exceptions.STIXError, TimestampError, ValueError, TypeError, KeyError) as error:
        hint = ""
        if (
            not allow_custom
            and isinstance(error, stix2.exceptions.STIXError)
            and "custom" in str(error).lower()
        ):
            hint = " (this collection refuses custom types and properties)"
        return Refusal(object_id, version_text, f"{object_id}: {_describe(error)}{hint}")
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return NewObject(id=object_id, type=obj["type"], spec_version="2.1", version=version, body=body)
